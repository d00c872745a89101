/** @jest-environment ./test/engine/runtime/ortTestEnvironment.js */
// Every graph the engine builds, run on WebGPU and on the CPU with the same inputs, on the committed
// tiny-2level fixture (CLIP text L = 77, UNet self-attention over 256 tokens: both past the query length
// where the WebGPU EP's MultiHeadAttention goes wrong, so a regression of runtime/deviceGraphs.ts shows).
// Tolerances are per graph, a few times what lavapipe gives (printed), far below what the
// MultiHeadAttention bug gave (0.12 on the text encoder): max abs for float32 outputs, and for the
// recorded fp16 entries one fp16 step of their magnitude on top.
import { DiffusionEngine } from '../../../src/engine/pipeline/engine';
import { RegionDecoder } from '../../../src/engine/pipeline/regionDecoder';
import { planSparseDecode } from '../../../src/engine/pipeline/regionDecode';
import { buildMaskPyramid } from '../../../src/engine/mask/pyramid';
import { halfToFloat } from '../../../src/engine/model/tensor';
import { loadModelFolder } from '../../../src/engine/model/modelFolder';
import { gaussianFloat32 } from '../../../src/engine/random/gaussian';
import type { EngineDevice } from '../../../src/engine/runtime/ortSession';
import { gatherActiveRows } from '../../../src/engine/sparse/activeRows';
import { SparseUNetRunner, type RecordedStep } from '../../../src/engine/sparse/sparseUNetRunner';
import { TINY } from '../pipeline/editFixtures';
import { BATCH, blobMask, goldenText, seededSample } from '../sparse/sparseFixtures';
import { describeWithWebGpu } from '../../helpers/webgpu';

const DEVICES: EngineDevice[] = ['cpu', 'webgpu'];
const T = 601;

/** Largest |a − b|, and the largest |a| for scale. */
function compare(a: ArrayLike<number>, b: ArrayLike<number>): { maxAbs: number; scale: number } {
  expect(a.length).toBe(b.length);
  let maxAbs = 0;
  let scale = 0;
  for (let i = 0; i < a.length; i++) {
    maxAbs = Math.max(maxAbs, Math.abs(a[i] - b[i]));
    scale = Math.max(scale, Math.abs(a[i]));
  }
  return { maxAbs, scale };
}

function report(graph: string, r: { maxAbs: number; scale: number }, tol: number): void {
  console.log(`webgpu vs cpu, ${graph}: max abs ${r.maxAbs.toExponential(2)} (outputs up to ${r.scale.toFixed(2)}; tolerance ${tol})`);
  expect(r.maxAbs).toBeLessThan(tol);
}

const f16 = (d: ArrayLike<number>) => Float32Array.from(d as Uint16Array, halfToFloat);

describeWithWebGpu('each engine graph on webgpu matches the CPU (tiny-2level)', () => {
  const folder = loadModelFolder(TINY);
  const cfg = folder.unet.config;
  const H = 16;
  const W = 16;
  const engines = new Map<EngineDevice, DiffusionEngine>();
  const runners = new Map<EngineDevice, SparseUNetRunner>();
  const decoders = new Map<EngineDevice, RegionDecoder>();
  const recorded = new Map<EngineDevice, RecordedStep>();
  const sample = seededSample(cfg.inChannels, H, W);
  const text = goldenText('tiny-2level');

  beforeAll(async () => {
    for (const device of DEVICES) {
      engines.set(device, await DiffusionEngine.load(TINY, { intraOpNumThreads: 1, sessionOptions: { device } }));
      runners.set(device, await SparseUNetRunner.create(cfg, folder.unet.weights, { intraOpNumThreads: 1, sessionOptions: { device } }));
      decoders.set(device, await RegionDecoder.create(folder.vae.config, folder.vae.weights, { intraOpNumThreads: 1, device }));
    }
  }, 120_000);
  afterAll(async () => {
    for (const e of engines.values()) await e.dispose();
    for (const r of runners.values()) await r.release();
    for (const d of decoders.values()) await d.release();
  });

  test('the sessions run where they were asked to', () => {
    expect(engines.get('webgpu')!.device).toBe('webgpu');
    expect(engines.get('cpu')!.device).toBe('cpu');
  });

  test('text encoder', async () => {
    const cpu = engines.get('cpu')!;
    const ids = [cpu.tokenize('').ids, cpu.tokenize('a red circle on the left of a blue square').ids];
    const [c, g] = await Promise.all(DEVICES.map((d) => engines.get(d)!.encodeText(ids)));
    report('text encoder', compare(c, g), 1e-4);
  });

  test('UNet (CFG batch 2)', async () => {
    const [c, g] = await Promise.all(DEVICES.map((d) => engines.get(d)!.predictNoise(sample, BATCH, H, W, T, text)));
    report('UNet', compare(c, g), 2e-4);
  });

  test('text embeddings kept on the device feed the UNet as the uploaded ones do', async () => {
    const gpu = engines.get('webgpu')!;
    const ids = [gpu.tokenize('').ids, gpu.tokenize('a blue square').ids];
    const text = await gpu.encodeText(ids); // also kept in a WebGPU buffer, fed when this array comes back
    const fromDevice = await gpu.predictNoise(sample, BATCH, H, W, T, text);
    const uploaded = await gpu.predictNoise(sample, BATCH, H, W, T, Float32Array.from(text));
    expect(Array.from(fromDevice)).toEqual(Array.from(uploaded));
    const onCpu = await engines.get('cpu')!.predictNoise(sample, BATCH, H, W, T, await engines.get('cpu')!.encodeText(ids));
    report('UNet on device-resident text', compare(onCpu, fromDevice), 2e-4);
  });

  test('VAE decoder', async () => {
    const z = gaussianFloat32(5n, folder.vae.config.latentChannels * H * W);
    const [c, g] = await Promise.all(DEVICES.map((d) => engines.get(d)!.decodeLatents(z, H, W)));
    report('VAE decoder', compare(c, g), 1e-4);
  });

  test('recording UNet: the noise and every recorded entry', async () => {
    for (const d of DEVICES) recorded.set(d, await runners.get(d)!.recordStep(sample, H, W, T, text));
    const c = recorded.get('cpu')!;
    const g = recorded.get('webgpu')!;
    report('recording UNet noise', compare(c.noise, g.noise), 2e-4);
    let worst = 0;
    let worstName = '';
    for (const [name, e] of c.entries) {
      const ge = g.entries.get(name)!;
      expect(ge.shape).toEqual(e.shape);
      const r = compare(f16(e.data), f16(ge.data));
      // fp16 rounding: the two devices' float32 values may round to neighbouring halves
      const rel = r.maxAbs / Math.max(r.scale, 1e-3);
      if (rel > worst) [worst, worstName] = [rel, name];
    }
    console.log(`webgpu vs cpu, recorded entries (${c.entries.size}): worst relative max abs ${worst.toExponential(2)} (${worstName}; tolerance 2e-3)`);
    expect(worst).toBeLessThan(2e-3);
  });

  test('sparse step on a partial mask, reading the CPU-recorded parent entries', async () => {
    const parent = recorded.get('cpu') ?? (await runners.get('cpu')!.recordStep(sample, H, W, T, text));
    const pyr = buildMaskPyramid(blobMask(W, H, [3, 5, 8, 9], [[13, 2]]), { levels: cfg.blockOutChannels.length });
    const results: Awaited<ReturnType<SparseUNetRunner['sparseStep']>>[] = [];
    for (const d of DEVICES) {
      const runner = runners.get(d)!;
      const feed = runner.preparePyramid(pyr);
      results.push(await runner.sparseStep(feed, gatherActiveRows(sample, BATCH, cfg.inChannels, H * W, pyr[0].active), T, text, (n) => parent.entries.get(n)!.data));
    }
    const [c, g] = results;
    report('sparse step noise', compare(c.noise, g.noise), 2e-4);
    let worst = 0;
    for (const [name, delta] of c.deltas) {
      const gd = g.deltas.get(name)!;
      expect(Array.from(gd.rows)).toEqual(Array.from(delta.rows));
      const r = compare(f16(delta.data), f16(gd.data));
      worst = Math.max(worst, r.maxAbs / Math.max(r.scale, 1e-3));
    }
    console.log(`webgpu vs cpu, sparse step deltas (${c.deltas.size}): worst relative max abs ${worst.toExponential(2)} (tolerance 2e-3)`);
    expect(worst).toBeLessThan(2e-3);
  });

  test('recording decoder, and the sparse decoder on a partial mask', async () => {
    const lc = folder.vae.config.latentChannels;
    const z = gaussianFloat32(7n, lc * H * W);
    const recs: Awaited<ReturnType<RegionDecoder['decodeRecording']>>[] = [];
    for (const d of DEVICES) recs.push(await decoders.get(d)!.decodeRecording(z, H, W));
    report('recording decoder image', compare(recs[0].image, recs[1].image), 1e-4);
    // A child whose latents differ inside a disc, decoded sparsely from the CPU parent's recording.
    const mask = blobMask(W, H, [4, 4, 9, 10]);
    const child = Float32Array.from(z);
    const other = gaussianFloat32(8n, lc * H * W);
    for (let c = 0; c < lc; c++) for (let p = 0; p < H * W; p++) if (mask.data[p]) child[c * H * W + p] = other[c * H * W + p];
    const cpuDecoder = decoders.get('cpu')!;
    const plan = planSparseDecode(mask, 2 ** (folder.vae.config.blockOutChannels.length - 1), cpuDecoder.levelMacs);
    const top = plan.levels[plan.levels.length - 1].active;
    const rows = new Float32Array(top.length * lc);
    top.forEach((p, r) => {
      for (let c = 0; c < lc; c++) rows[r * lc + c] = child[c * H * W + p];
    });
    const outs: Awaited<ReturnType<RegionDecoder['decodeSparse']>>[] = [];
    for (const d of DEVICES) {
      const dec = decoders.get(d)!;
      outs.push(await dec.decodeSparse(dec.preparePyramid(plan.levels), rows, recs[0].context, plan.changed, async (n) => recs[0].entries.get(n)!.data));
    }
    report('sparse decoder rows', compare(outs[0].rows, outs[1].rows), 1e-4);
  });
});
