/** @jest-environment ./test/engine/runtime/ortTestEnvironment.js */
// UNet graph against the PyTorch golden (unet_out.npy = unet(unet_sample, t, text_embeds)), plus the
// recording hooks and F16 weights.

import { buildUNetGraph } from '../../../src/engine/arch/unet';
import { ArchHooks } from '../../../src/engine/arch/archContext';
import { GraphBuilder } from '../../../src/engine/graph/graphBuilder';
import { createSession, EngineTensor, float32Tensor, OrtModelSession } from '../../../src/engine/runtime/ortSession';
import { floatToHalf, toFloat32, WeightMap } from '../../../src/engine/model/tensor';
import { UNetConfig } from '../../../src/engine/model/configs';
import { FIXTURE_MODELS, fixtureModel, goldenF32, goldenMeta } from './goldens';
import { maxAbsDiff, relErr } from '../graph/reference';

function goldenFeeds(name: (typeof FIXTURE_MODELS)[number]): Record<string, EngineTensor> {
  const sample = goldenF32(name, 'unet_sample.npy');
  const text = goldenF32(name, 'text_embeds.npy');
  const t = goldenMeta(name).unet_timestep;
  return {
    sample: float32Tensor(sample.data, sample.shape),
    timestep: float32Tensor(new Float32Array([t, t]), [2]),
    encoder_hidden_states: float32Tensor(text.data, text.shape),
  };
}

/** Count of 3×3 convs, transformers and GroupNorms the config implies (independent of the builder). */
function expectedCounts(cfg: UNetConfig): { convs: number; transformers: number; groupNorms: number } {
  const L = cfg.blockOutChannels.length;
  const n = cfg.layersPerBlock;
  const resnets = L * n + 2 + L * (n + 1);
  const down = cfg.downBlockTypes.filter((t) => t === 'CrossAttnDownBlock2D').length * n;
  const up = cfg.upBlockTypes.filter((t) => t === 'CrossAttnUpBlock2D').length * (n + 1);
  const transformers = down + 1 + up;
  return { convs: 2 /* conv_in, conv_out */ + 2 * resnets + 2 * (L - 1), transformers, groupNorms: 2 * resnets + transformers + 1 };
}

describe.each(FIXTURE_MODELS)('UNet (%s)', (name) => {
  const model = fixtureModel(name);
  const cfg = model.unet.config;
  let session: OrtModelSession;
  let dense: Float32Array;
  const built = buildUNetGraph(cfg, model.unet.weights);

  beforeAll(async () => {
    session = await createSession(built.g.build(), { intraOpNumThreads: 1 });
  });
  afterAll(() => session.release());

  it('uses every weight in the file', () => {
    expect(built.unusedWeights).toEqual([]);
  });

  it('matches the golden noise prediction within 1e-4 relative', async () => {
    const out = await session.run(goldenFeeds(name));
    const ref = goldenF32(name, 'unet_out.npy');
    expect(out.noise_pred.dims).toEqual(ref.shape);
    dense = out.noise_pred.data as Float32Array;
    const err = relErr(dense, ref.data);
    console.log(`${name} unet_out rel err ${err.toExponential(2)} (max abs ${maxAbsDiff(dense, ref.data).toExponential(2)})`);
    expect(err).toBeLessThan(1e-4);
  });

  it('treats batch rows independently (dynamic batch: one row alone gives the same result)', async () => {
    const feeds = goldenFeeds(name);
    const per = (feeds.sample.data.length / 2) | 0;
    const text = feeds.encoder_hidden_states;
    const perText = text.data.length / 2;
    const one = await session.run({
      sample: float32Tensor((feeds.sample.data as Float32Array).slice(per), [1, ...feeds.sample.dims.slice(1)]),
      timestep: float32Tensor((feeds.timestep.data as Float32Array).slice(1), [1]),
      encoder_hidden_states: float32Tensor((text.data as Float32Array).slice(perText), [1, ...text.dims.slice(1)]),
    });
    expect(relErr(one.noise_pred.data as Float32Array, dense.subarray(per))).toBeLessThan(1e-5);
  });

  it('depends on the timestep (fractional values allowed)', async () => {
    const feeds = goldenFeeds(name);
    const t = goldenMeta(name).unet_timestep + 0.5;
    const out = await session.run({ ...feeds, timestep: float32Tensor(new Float32Array([t, t]), [2]) });
    const d = relErr(out.noise_pred.data as Float32Array, dense);
    expect(d).toBeGreaterThan(1e-5);
    expect(d).toBeLessThan(0.5);
  });

  it('recording hooks expose every spatial conv input, self-attention K/V and GroupNorm statistic', async () => {
    const seen = { conv: [] as string[], kv: [] as string[], gn: [] as string[] };
    const g = new GraphBuilder('unet_recording');
    const hooks: ArchHooks = {
      convInput: (path, x) => {
        seen.conv.push(path);
        g.output(`conv_in:${path}`, x, 'float32');
      },
      selfAttentionKV: (path, k, v) => {
        seen.kv.push(path);
        g.output(`k:${path}`, k, 'float32');
        g.output(`v:${path}`, v, 'float32');
      },
      groupNormStats: (path, mean, variance) => {
        seen.gn.push(path);
        g.output(`gn_mean:${path}`, mean, 'float32');
        g.output(`gn_var:${path}`, variance, 'float32');
      },
    };
    const rec = buildUNetGraph(cfg, model.unet.weights, { hooks, builder: g });
    const want = expectedCounts(cfg);
    expect(seen.conv.length).toBe(want.convs);
    expect(seen.kv.length).toBe(want.transformers);
    expect(seen.gn.length).toBe(want.groupNorms);
    expect(seen.conv).toContain('down_blocks.0.resnets.0.conv1');
    expect(seen.kv).toContain('mid_block.attentions.0.transformer_blocks.0.attn1');

    const s = await createSession(rec.g.build(), { intraOpNumThreads: 1 });
    const feeds = goldenFeeds(name);
    const out = await s.run(feeds);
    await s.release();
    // Same prediction with the ReduceMean GroupNorm used by recording graphs.
    expect(relErr(out.noise_pred.data as Float32Array, goldenF32(name, 'unet_out.npy').data)).toBeLessThan(1e-4);
    // conv_in's input is the sample itself; K/V are [B, HW, C] at the block's resolution.
    expect(Array.from(out['conv_in:conv_in'].data as Float32Array)).toEqual(Array.from(feeds.sample.data as Float32Array));
    const k = out['k:down_blocks.0.attentions.0.transformer_blocks.0.attn1'];
    expect(k).toBeDefined();
    expect(k.dims).toEqual([2, feeds.sample.dims[2] * feeds.sample.dims[3], cfg.blockOutChannels[0]]);
    const m = out['gn_mean:conv_norm_out'];
    expect(m.dims).toEqual([2, cfg.normNumGroups, 1]);
  });

  it('F16 weights: Cast in the graph and JS widening agree, and stay close to F32', async () => {
    // sd-narrow ships an F16 UNet file (its golden used the same fp16-rounded values); tiny-2level is
    // F32 and gets rounded here.
    const half: WeightMap = new Map();
    let rounded = false;
    for (const [k, t] of model.unet.weights) {
      if (t.dtype === 'F16') {
        half.set(k, t);
        continue;
      }
      const h = Uint16Array.from(toFloat32(t), floatToHalf);
      half.set(k, { name: k, dtype: 'F16', shape: t.shape, data: new Uint8Array(h.buffer) });
      rounded = true;
    }
    const results: Float32Array[] = [];
    for (const f16Weights of ['cast', 'widen'] as const) {
      const g = new GraphBuilder('unet', { f16Weights });
      buildUNetGraph(cfg, half, { builder: g });
      expect(g.stats().opCounts['Cast'] ?? 0).toBe(f16Weights === 'cast' ? half.size : 0);
      const s = await createSession(g.build(), { intraOpNumThreads: 1 });
      results.push((await s.run(goldenFeeds(name))).noise_pred.data as Float32Array);
      await s.release();
    }
    expect(relErr(results[0], results[1])).toBeLessThan(1e-6);
    const err = relErr(results[0], dense);
    console.log(`${name} F16-weight UNet rel err vs F32 weights ${err.toExponential(2)}`);
    if (rounded) expect(err).toBeGreaterThan(1e-6);
    expect(err).toBeLessThan(1e-2);
  });
});
