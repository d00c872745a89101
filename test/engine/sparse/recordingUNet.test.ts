/** @jest-environment ./test/engine/runtime/ortTestEnvironment.js */
// (d) The recording UNet step: same noise as the dense graph; every cache entry equals the dense graph's
// intermediate value (exposed through the arch hooks as float32 NCHW) after the channels-last + fp16
// conversion; a few entries against plain TypeScript (conv_in → GroupNorm statistics → SiLU(GN)).

import { ArchHooks } from '../../../src/engine/arch/archContext';
import { buildUNetGraph } from '../../../src/engine/arch/unet';
import { halvesToFloats } from '../../../src/engine/cache/fp16';
import { GraphBuilder } from '../../../src/engine/graph/graphBuilder';
import { toFloat32 } from '../../../src/engine/model/tensor';
import { createSession, EngineTensor, float32Tensor } from '../../../src/engine/runtime/ortSession';
import { buildAttentionMask } from '../../../src/engine/mask/attentionMask';
import { AttentionMapError, attentionSource } from '../../../src/engine/sparse/attentionMaps';
import { CacheManifestError, entryShape, levelOfPath } from '../../../src/engine/sparse/cacheManifest';
import { RecordedStep, SparseUNetRunner } from '../../../src/engine/sparse/sparseUNetRunner';
import { FIXTURE_MODELS, fixtureModel, goldenF32, goldenMeta } from '../arch/goldens';
import { relErr } from '../graph/reference';

/** NCHW [B, C, HW] → rows [B, HW, C]. */
function toRows(x: Float32Array, b: number, c: number): Float32Array {
  const hw = x.length / (b * c);
  const out = new Float32Array(x.length);
  for (let i = 0; i < b; i++) for (let ch = 0; ch < c; ch++) for (let p = 0; p < hw; p++) out[(i * hw + p) * c + ch] = x[(i * c + ch) * hw + p];
  return out;
}

/** Plain 3×3 conv, pad 1, float64 accumulation. x [B, Cin, h, w], w [Cout, Cin, 3, 3] → [B, Cout, h, w]. */
function conv3x3(x: Float32Array, b: number, cin: number, h: number, w: number, weight: Float32Array, bias: Float32Array): Float32Array {
  const cout = bias.length;
  const out = new Float32Array(b * cout * h * w);
  for (let n = 0; n < b; n++)
    for (let o = 0; o < cout; o++)
      for (let y = 0; y < h; y++)
        for (let xx = 0; xx < w; xx++) {
          let s = bias[o];
          for (let i = 0; i < cin; i++)
            for (let dy = -1; dy <= 1; dy++)
              for (let dx = -1; dx <= 1; dx++) {
                const yy = y + dy;
                const xc = xx + dx;
                if (yy < 0 || xc < 0 || yy >= h || xc >= w) continue;
                s += weight[((o * cin + i) * 3 + dy + 1) * 3 + dx + 1] * x[((n * cin + i) * h + yy) * w + xc];
              }
          out[((n * cout + o) * h + y) * w + xx] = s;
        }
  return out;
}

/** softmax(q·kᵀ/√d) per head, averaged over heads, float64. q [B,N,C], k [B,M,C] → [B,N,M]. */
function headAveragedSoftmax(q: Float32Array, k: Float32Array, b: number, m: number, c: number, heads: number): Float32Array {
  const n = q.length / (b * c);
  const d = c / heads;
  const out = new Float32Array(b * n * m);
  const s = new Float64Array(m);
  for (let i = 0; i < b; i++)
    for (let h = 0; h < heads; h++)
      for (let r = 0; r < n; r++) {
        let mx = -Infinity;
        for (let j = 0; j < m; j++) {
          let acc = 0;
          for (let e = 0; e < d; e++) acc += q[(i * n + r) * c + h * d + e] * k[(i * m + j) * c + h * d + e];
          s[j] = acc / Math.sqrt(d);
          mx = Math.max(mx, s[j]);
        }
        let z = 0;
        for (let j = 0; j < m; j++) z += (s[j] = Math.exp(s[j] - mx));
        for (let j = 0; j < m; j++) out[(i * n + r) * m + j] += s[j] / z / heads;
      }
  return out;
}

describe.each(FIXTURE_MODELS)('recording UNet step (%s)', (name) => {
  const model = fixtureModel(name);
  const cfg = model.unet.config;
  const sample = goldenF32(name, 'unet_sample.npy');
  const text = goldenF32(name, 'text_embeds.npy');
  const [B, C, H, W] = sample.shape;
  const t = goldenMeta(name).unet_timestep;
  let runner: SparseUNetRunner;
  let rec: RecordedStep;

  beforeAll(async () => {
    runner = await SparseUNetRunner.create(cfg, model.unet.weights, { intraOpNumThreads: 1, sessions: { sparse: false } });
    rec = await runner.recordStep(sample.data, H, W, t, text.data);
  });
  afterAll(() => runner?.release());

  it('predicts the golden noise and writes one entry per spatial conv, self-attention K/V and GroupNorm statistic', () => {
    expect(relErr(rec.noise, goldenF32(name, 'unet_out.npy').data)).toBeLessThan(1e-4);
    const L = cfg.blockOutChannels.length;
    const n = cfg.layersPerBlock;
    const resnets = L * n + 2 + L * (n + 1);
    const transformers = cfg.downBlockTypes.filter((b) => b === 'CrossAttnDownBlock2D').length * n + 1 + cfg.upBlockTypes.filter((b) => b === 'CrossAttnUpBlock2D').length * (n + 1);
    const count = (kind: string) => runner.manifest.filter((e) => e.kind === kind).length;
    expect(count('convInput')).toBe(2 + 2 * resnets + 2 * (L - 1));
    expect(count('selfAttnK')).toBe(transformers);
    expect(count('selfAttnV')).toBe(transformers);
    expect(count('groupNormMean')).toBe(2 * resnets + transformers + 1);
    expect(count('groupNormStd')).toBe(2 * resnets + transformers + 1);
    // Attention maps at the two coarsest levels only.
    const maps = runner.manifest.filter((e) => e.kind === 'crossAttnProbs');
    expect(maps.length).toBeGreaterThan(0);
    expect(maps.every((e) => e.level >= L - 2 && e.name.endsWith('attn2.probs'))).toBe(true);
    expect(rec.entries.size).toBe(runner.manifest.length);
    for (const e of runner.manifest) {
      const got = rec.entries.get(e.name)!;
      expect(got.shape).toEqual(entryShape(e, B, H, W));
      expect(got.data).toBeInstanceOf(Uint16Array);
    }
    expect(runner.manifest.find((e) => e.name === 'up_blocks.0.upsamplers.0.conv.input')!.level).toBe(L - 2);
  });

  it('every entry equals the dense graph’s float32 intermediate value within fp16 rounding', async () => {
    const g = new GraphBuilder('unet_probe');
    const probes = new Map<string, { value: string; nchw: boolean }>();
    const probeHeads = new Map<string, number>();
    const hooks: ArchHooks = {
      convInput: (p, x) => probes.set(`${p}.input`, { value: x, nchw: true }),
      selfAttentionKV: (p, k, v) => {
        probes.set(`${p}.k`, { value: k, nchw: false });
        probes.set(`${p}.v`, { value: v, nchw: false });
      },
      crossAttentionQK: (p, q, k, heads) => {
        probes.set(`${p}.probs`, { value: q, nchw: false });
        probes.set(`${p}.probs:k`, { value: k, nchw: false });
        probeHeads.set(`${p}.probs`, heads);
      },
      groupNormStats: (p, mean, variance) => {
        probes.set(`${p}.mean`, { value: mean, nchw: false });
        probes.set(`${p}.std`, { value: g.op('Sqrt', [variance]), nchw: false });
      },
    };
    buildUNetGraph(cfg, model.unet.weights, { hooks, builder: g });
    for (const [key, p] of probes) g.output(`probe:${key}`, p.value, 'float32');
    const s = await createSession(g.build(), { intraOpNumThreads: 1 });
    const out: Record<string, EngineTensor> = await s.run({
      sample: float32Tensor(sample.data, sample.shape),
      timestep: float32Tensor(new Float32Array([t, t]), [2]),
      encoder_hidden_states: float32Tensor(text.data, text.shape),
    });
    await s.release();
    const names = new Set(runner.manifest.map((e) => e.name));
    for (const p of probes.keys()) if (!names.has(p) && !p.endsWith('.probs') && !p.endsWith('.probs:k')) throw new Error(`hooked but not recorded: ${p}`);
    let worst = 0;
    for (const e of runner.manifest) {
      const ref = out[`probe:${e.name}`].data as Float32Array;
      let want = probes.get(e.name)!.nchw ? toRows(ref, B, e.width) : ref;
      if (e.kind === 'crossAttnProbs') {
        const k = out[`probe:${e.name}:k`];
        want = headAveragedSoftmax(ref, k.data as Float32Array, B, k.dims[1], k.dims[2], probeHeads.get(e.name)!);
      }
      const err = relErr(halvesToFloats(rec.entries.get(e.name)!.data), want);
      worst = Math.max(worst, err);
      if (err > 1e-3) throw new Error(`${e.name}: rel err ${err}`);
    }
    console.log(`${name}: ${runner.manifest.length} entries, worst rel err after fp16 ${worst.toExponential(2)}`);
  });

  it('conv_in.input, and the first resnet’s GroupNorm statistics and conv1 input, match a TypeScript reference', () => {
    // conv_in.input is the sample itself (fp16).
    expect(relErr(halvesToFloats(rec.entries.get('conv_in.input')!.data), toRows(sample.data, B, C))).toBeLessThan(5e-4);
    // x = conv_in(sample); GroupNorm statistics per (batch, group); conv1 input = SiLU(GN(x)).
    const w = model.unet.weights;
    const c0 = cfg.blockOutChannels[0];
    const x = conv3x3(sample.data, B, C, H, W, toFloat32(w.get('conv_in.weight')!), toFloat32(w.get('conv_in.bias')!));
    const G = cfg.normNumGroups;
    const per = (c0 / G) * H * W;
    const mean = new Float32Array(B * G);
    const std = new Float32Array(B * G);
    const act = new Float32Array(x.length);
    const gamma = toFloat32(w.get('down_blocks.0.resnets.0.norm1.weight')!);
    const beta = toFloat32(w.get('down_blocks.0.resnets.0.norm1.bias')!);
    for (let i = 0; i < B * G; i++) {
      const seg = x.subarray(i * per, (i + 1) * per);
      let m = 0;
      for (const v of seg) m += v;
      m /= per;
      let q = 0;
      for (const v of seg) q += (v - m) ** 2;
      q /= per;
      mean[i] = m;
      std[i] = Math.sqrt(q);
      for (let j = 0; j < per; j++) {
        const ch = (i % G) * (c0 / G) + Math.floor(j / (H * W));
        const yv = ((seg[j] - m) / Math.sqrt(q + cfg.normEps)) * gamma[ch] + beta[ch];
        act[i * per + j] = yv / (1 + Math.exp(-yv));
      }
    }
    const got = (n: string) => halvesToFloats(rec.entries.get(n)!.data);
    expect(relErr(got('down_blocks.0.resnets.0.norm1.mean'), mean)).toBeLessThan(2e-3);
    expect(relErr(got('down_blocks.0.resnets.0.norm1.std'), std)).toBeLessThan(2e-3);
    expect(relErr(got('down_blocks.0.resnets.0.conv1.input'), toRows(act, B, c0))).toBeLessThan(2e-3);
  });

  it('attention maps are per-pixel distributions over the text tokens and convert to mask sources', () => {
    const maps = runner.manifest.filter((e) => e.kind === 'crossAttnProbs');
    for (const spec of maps) {
      const e = rec.entries.get(spec.name)!;
      const L = e.shape[2];
      const src = attentionSource(spec, e, H, W, [1, 2]);
      expect([src.tokens, src.height, src.width]).toEqual([L, H >> spec.level, W >> spec.level]);
      const hw = src.height * src.width;
      const rows = halvesToFloats(e.data);
      let mismatches = 0;
      let worstSum = 0;
      for (let p = 0; p < hw; p++) {
        let sum = 0;
        for (let t = 0; t < L; t++) {
          sum += src.probs[t * hw + p];
          if (src.probs[t * hw + p] !== rows[(hw + p) * L + t]) mismatches++; // conditional row (batch 1)
        }
        worstSum = Math.max(worstSum, Math.abs(sum - 1));
      }
      expect(mismatches).toBe(0);
      expect(worstSum).toBeLessThan(2e-2); // fp16 rounding of 77 terms
      const { mask } = buildAttentionMask([src], { outWidth: W, outHeight: H, cleanup: {} });
      expect(mask.data.length).toBe(W * H);
    }
    expect(() => attentionSource(runner.manifest[0], rec.entries.get(runner.manifest[0].name)!, H, W, [1])).toThrow(AttentionMapError);
  });

  it('maps module paths to levels', () => {
    const L = cfg.blockOutChannels.length;
    expect(levelOfPath('conv_in', L)).toBe(0);
    expect(levelOfPath('conv_norm_out', L)).toBe(0);
    expect(levelOfPath('down_blocks.1.downsamplers.0.conv', L)).toBe(1);
    expect(levelOfPath('mid_block.attentions.0.norm', L)).toBe(L - 1);
    expect(levelOfPath(`up_blocks.${L - 1}.resnets.0.conv1`, L)).toBe(0);
    expect(levelOfPath('up_blocks.0.upsamplers.0.conv', L)).toBe(L - 2);
    expect(() => levelOfPath('time_embedding.linear_1', L)).toThrow(CacheManifestError);
  });
});
