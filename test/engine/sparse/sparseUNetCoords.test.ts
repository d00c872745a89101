/** @jest-environment ./test/engine/runtime/ortTestEnvironment.js */
// The sparse UNet step of a UNet with coordinate input channels (coord_channels 2, arch/coordChannels.ts)
// against its dense graph: the tiny-2level fixture with conv_in grown by two random coordinate taps per
// output channel. The sparse step takes the coordinates of its active rows from the pyramid feed, its halo
// from the recorded conv_in input (which then carries the planes), so both must agree with the dense planes.

import { buildUNetGraph } from '../../../src/engine/arch/unet';
import { coordRows, pixelCoord } from '../../../src/engine/arch/coordChannels';
import { buildMaskPyramid } from '../../../src/engine/mask/pyramid';
import { UNetConfig } from '../../../src/engine/model/configs';
import { WeightMap } from '../../../src/engine/model/tensor';
import { createSession, float32Tensor, OrtModelSession } from '../../../src/engine/runtime/ortSession';
import { gatherActiveRows } from '../../../src/engine/sparse/activeRows';
import { buildRecordingUNetGraph } from '../../../src/engine/sparse/recordingUNet';
import { RecordedStep, SparseUNetRunner } from '../../../src/engine/sparse/sparseUNetRunner';
import { fixtureModel } from '../arch/goldens';
import { randArray, relErr } from '../graph/reference';
import { BATCH, blobMask, fullMask, goldenText, seededSample } from './sparseFixtures';
import { describeWithWebGpu } from '../../helpers/webgpu';

const H = 16;
const W = 12; // non-square: a swapped x / y shows
const T = 601;

/** conv_in [C0, Cin, 3, 3] grown to [C0, Cin + 2, 3, 3]; the new taps are random and large enough to matter. */
function withCoordTaps(weights: WeightMap, cin: number, seed = 5): WeightMap {
  const w = weights.get('conv_in.weight')!;
  const [c0] = w.shape;
  const old = new Float32Array(w.data.slice().buffer);
  const grown = new Float32Array(c0 * (cin + 2) * 9);
  const taps = randArray(c0 * 18, seed);
  for (let o = 0; o < c0; o++) {
    grown.set(old.subarray(o * cin * 9, (o + 1) * cin * 9), o * (cin + 2) * 9);
    for (let k = 0; k < 18; k++) grown[(o * (cin + 2) + cin) * 9 + k] = taps[o * 18 + k];
  }
  return new Map([...weights, ['conv_in.weight', { ...w, shape: [c0, cin + 2, 3, 3], data: new Uint8Array(grown.buffer) }]]);
}

describe('sparse UNet step with coordinate input channels (tiny-2level + 2 coordinate taps)', () => {
  const model = fixtureModel('tiny-2level');
  const cfg: UNetConfig = { ...model.unet.config, coordChannels: 2 };
  const weights = withCoordTaps(model.unet.weights, cfg.inChannels);
  const levels = cfg.blockOutChannels.length;
  const cin = cfg.inChannels;
  const cout = cfg.outChannels;
  const sample = seededSample(cin, H, W);
  const text = goldenText('tiny-2level');
  let dense: OrtModelSession;
  let plain: OrtModelSession;
  let exact32: SparseUNetRunner<'float32'>;
  let cached32: SparseUNetRunner<'float32'>;
  let rec32: RecordedStep<'float32'>;

  const run = async (s: OrtModelSession): Promise<Float32Array> => {
    const out = await s.run({
      sample: float32Tensor(sample, [BATCH, cin, H, W]),
      timestep: float32Tensor(new Float32Array([T, T]), [BATCH]),
      encoder_hidden_states: float32Tensor(text, [BATCH, text.length / (BATCH * cfg.crossAttentionDim), cfg.crossAttentionDim]),
    });
    return out.noise_pred.data as Float32Array;
  };

  beforeAll(async () => {
    const opts = { intraOpNumThreads: 1 };
    dense = await createSession(buildUNetGraph(cfg, weights).g.build(), opts);
    plain = await createSession(buildUNetGraph(model.unet.config, model.unet.weights).g.build(), opts);
    exact32 = await SparseUNetRunner.create(cfg, weights, { ...opts, cacheDType: 'float32', groupNorm: 'exact', sessions: { recording: false } });
    cached32 = await SparseUNetRunner.create(cfg, weights, { ...opts, cacheDType: 'float32' });
    rec32 = await cached32.recordStep(sample, H, W, T, text);
  });
  afterAll(async () => {
    await Promise.all([dense?.release(), plain?.release(), exact32?.release(), cached32?.release()]);
  });

  it('coordinate rows are pixel centres in [-1, 1], x then y', () => {
    [-2 / 3, 0, 2 / 3].forEach((want, i) => expect(pixelCoord(i, 3)).toBeCloseTo(want, 12));
    const rows = coordRows(Int32Array.from([0, 13, W * H - 1]), H, W);
    // pixel 13 of a 12-wide grid: column 1, row 1
    expect(Array.from(rows)).toEqual([1 / W - 1, 1 / H - 1, 3 / W - 1, 3 / H - 1, 1 - 1 / W, 1 - 1 / H].map(Math.fround));
  });

  it('the recording graph records conv_in input with the planes (width Cin + 2), and the planes change the output', async () => {
    const rec = buildRecordingUNetGraph(cfg, weights);
    const convIn = rec.manifest.find((e) => e.name.startsWith('conv_in') && e.kind === 'convInput');
    expect(convIn?.width).toBe(cin + 2);
    expect(relErr(await run(dense), await run(plain))).toBeGreaterThan(1e-2);
  });

  it('(a) all-active mask with exact GroupNorm equals the dense UNet within 1e-4', async () => {
    const pyr = buildMaskPyramid(fullMask(W, H), { levels });
    const res = await exact32.sparseStep(exact32.preparePyramid(pyr), gatherActiveRows(sample, BATCH, cin, H * W, pyr[0].active), T, text, (n) => rec32.entries.get(n)!.data);
    const err = relErr(res.noise, gatherActiveRows(await run(dense), BATCH, cout, H * W, pyr[0].active));
    console.log(`coord (a) all-active exact GN vs dense: rel err ${err.toExponential(2)}`);
    expect(err).toBeLessThan(1e-4);
  });

  it('(b) partial mask, parent = child input: active rows equal dense within 1e-4 (float32 cache)', async () => {
    const pyr = buildMaskPyramid(blobMask(W, H, [3, 5, 7, 9], [[10, 2]]), { levels });
    expect(pyr[0].fraction).toBeLessThan(0.5);
    const res = await cached32.sparseStep(cached32.preparePyramid(pyr), gatherActiveRows(sample, BATCH, cin, H * W, pyr[0].active), T, text, (n) => rec32.entries.get(n)!.data);
    const err = relErr(res.noise, gatherActiveRows(await run(dense), BATCH, cout, H * W, pyr[0].active));
    console.log(`coord (b) mask ${(100 * pyr[0].fraction).toFixed(1)}%: rel err ${err.toExponential(2)}`);
    expect(err).toBeLessThan(1e-4);
  });
});

describeWithWebGpu('coordinate input channels on webgpu match the CPU (tiny-2level + 2 coordinate taps)', () => {
  const model = fixtureModel('tiny-2level');
  const cfg: UNetConfig = { ...model.unet.config, coordChannels: 2 };
  const weights = withCoordTaps(model.unet.weights, cfg.inChannels);
  const cin = cfg.inChannels;
  const sample = seededSample(cin, H, W);
  const text = goldenText('tiny-2level');
  const runners: SparseUNetRunner<'float32'>[] = [];

  afterAll(async () => {
    await Promise.all(runners.map((r) => r.release()));
  });

  it('the recording step and a sparse step (the planes built on the device from the shape and the pyramid feed)', async () => {
    const opts = { intraOpNumThreads: 1, cacheDType: 'float32' as const };
    const [cpu, gpu] = await Promise.all([
      SparseUNetRunner.create(cfg, weights, opts),
      SparseUNetRunner.create(cfg, weights, { ...opts, sessionOptions: { device: 'webgpu' } }),
    ]);
    runners.push(cpu, gpu);
    const recC = await cpu.recordStep(sample, H, W, T, text);
    const recG = await gpu.recordStep(sample, H, W, T, text);
    const dense = relErr(recG.noise, recC.noise);
    const pyr = buildMaskPyramid(blobMask(W, H, [3, 5, 7, 9], [[10, 2]]), { levels: cfg.blockOutChannels.length });
    const rows = gatherActiveRows(sample, BATCH, cin, H * W, pyr[0].active);
    const c = await cpu.sparseStep(cpu.preparePyramid(pyr), rows, T, text, (n) => recC.entries.get(n)!.data);
    const g = await gpu.sparseStep(gpu.preparePyramid(pyr), rows, T, text, (n) => recC.entries.get(n)!.data);
    const sparse = relErr(g.noise, c.noise);
    console.log(`coord UNet webgpu vs cpu: recording step rel err ${dense.toExponential(2)}, sparse step ${sparse.toExponential(2)}`);
    expect(dense).toBeLessThan(1e-4);
    expect(sparse).toBeLessThan(1e-4);
  }, 120_000);
});
