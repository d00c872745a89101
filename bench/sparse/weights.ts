// UNet weight formats against each other, step by step (issue 20, lever 1): the dense step and the sparse
// step at several mask areas, every format in one process, runs interleaved (fp32, int8, then in
// reverse, …) so load drift on a shared machine hits all alike. The sparse steps read one recorded step's
// cache (recorded with fp32 weights; the values do not change the time). Also ε of each format against
// the first one at each step kind.
//
//   npx tsx bench/sparse/weights.ts [modelDir] [latentSide] [reps] [fractions] [--formats fp32,int8]
//                                   [--graph-cache DIR] [--out FILE.json]
//   e.g. npx tsx bench/sparse/weights.ts bench/.cache/sd15-random-full 32 3 0.02,0.05,0.1,0.25,0.5 --graph-cache bench/.cache/graphs
//
// Memory at SD width: the fp32 recording session is released after its one step; then two plain UNets
// (fp32 3.4 GB, int8 ~2.7 GB with its convs dequantised) and two sparse UNets (3.4 GB, 0.9 GB) are held.

import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { buildUNetGraph } from '../../src/engine/arch/unet';
import { WEIGHT_FORMATS, type WeightFormat } from '../../src/engine/graph/graphBuilder';
import { buildMaskPyramid } from '../../src/engine/mask/pyramid';
import { loadModelFolder } from '../../src/engine/model/modelFolder';
import { GraphCache } from '../../src/engine/runtime/graphCache';
import { createSession, float32Tensor, type OrtModelSession } from '../../src/engine/runtime/ortSession';
import { gatherActiveRows } from '../../src/engine/sparse/activeRows';
import { SparseUNetRunner } from '../../src/engine/sparse/sparseUNetRunner';
import { relErr } from '../../test/engine/graph/reference';

const ROOT = path.resolve(__dirname, '../..');
const positional: string[] = [];
let graphCache: GraphCache | undefined;
let out = path.join(ROOT, 'bench/results/sparse-weights.json');
let formats: WeightFormat[] = [...WEIGHT_FORMATS];
for (let i = 2; i < process.argv.length; i++) {
  const a = process.argv[i];
  if (a === '--graph-cache') graphCache = new GraphCache({ dir: path.resolve(process.argv[++i]) });
  else if (a === '--out') out = path.resolve(process.argv[++i]);
  else if (a === '--formats') {
    formats = process.argv[++i].split(',') as WeightFormat[];
    if (formats.length < 2 || formats.some((f) => !WEIGHT_FORMATS.includes(f))) throw new Error(`bench/sparse/weights: --formats takes two or more of ${WEIGHT_FORMATS.join(', ')}`);
  }
  else positional.push(a);
}
const [dirArg, sideArg, repsArg, fracArg] = positional;
const dir = path.resolve(dirArg ?? 'test/fixtures/models/sd-narrow');
const side = Number(sideArg ?? 32);
const reps = Number(repsArg ?? 3);
const fractions = (fracArg ?? '0.02,0.05,0.1,0.25,0.5').split(',').map(Number);
const B = 2;
const T = 601;

function lcg(seed: number): () => number {
  let x = seed >>> 0;
  return () => ((x = (Math.imul(x, 1664525) + 1013904223) >>> 0) / 2 ** 32) * 2 - 1;
}

/** A centred disc of about `fraction` of the latent. */
function discMask(fraction: number) {
  const data = new Uint8Array(side * side);
  const r = Math.sqrt((fraction * side * side) / Math.PI);
  const c = (side - 1) / 2;
  for (let y = 0; y < side; y++) for (let x = 0; x < side; x++) if ((x - c) ** 2 + (y - c) ** 2 <= r * r) data[y * side + x] = 1;
  return { width: side, height: side, data };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function main(): Promise<void> {
  const folder = loadModelFolder(dir);
  const cfg = folder.unet.config;
  const rnd = lcg(1);
  const sample = Float32Array.from({ length: B * cfg.inChannels * side * side }, rnd);
  const text = Float32Array.from({ length: B * 77 * cfg.crossAttentionDim }, rnd);
  const sessionOptions = { graphCache };
  // 1. one recorded step (fp32) for the sparse steps' cache
  const recorder = await SparseUNetRunner.create(cfg, folder.unet.weights, { intraOpNumThreads: 2, sessionOptions, sessions: { sparse: false, dense: false } });
  const rec = await recorder.recordStep(sample, side, side, T, text);
  await recorder.release();
  // 2. every format's dense and sparse sessions
  const dense = new Map<WeightFormat, OrtModelSession>();
  const sparse = new Map<WeightFormat, SparseUNetRunner>();
  for (const wf of formats) {
    dense.set(wf, await createSession(buildUNetGraph(cfg, folder.unet.weights, { graph: { weights: wf } }).g.build(), { intraOpNumThreads: 2, ...sessionOptions }));
    sparse.set(wf, await SparseUNetRunner.create(cfg, folder.unet.weights, { intraOpNumThreads: 2, sessionOptions, weights: wf, sessions: { recording: false } }));
  }
  const feeds = { sample: float32Tensor(sample, [B, cfg.inChannels, side, side]), timestep: float32Tensor(new Float32Array([T, T]), [B]), encoder_hidden_states: float32Tensor(text, [B, 77, cfg.crossAttentionDim]) };
  const timeDense = async (wf: WeightFormat) => {
    const t = performance.now();
    const eps = (await dense.get(wf)!.run(feeds, ['noise_pred'])).noise_pred.data as Float32Array;
    return { ms: performance.now() - t, eps };
  };
  const [base] = formats;
  const others = formats.slice(1);
  const rows: Record<string, unknown>[] = [];
  const denseMs = new Map<WeightFormat, number[]>(formats.map((wf) => [wf, []]));
  const denseEps = new Map<WeightFormat, Float32Array>();
  for (const wf of formats) denseEps.set(wf, (await timeDense(wf)).eps); // warm-up
  for (let r = 0; r < reps; r++) for (const wf of r % 2 ? [...formats].reverse() : formats) denseMs.get(wf)!.push((await timeDense(wf)).ms);
  const dMed = Object.fromEntries(formats.map((wf) => [wf, median(denseMs.get(wf)!)]));
  const denseEpsRelErr = Object.fromEntries(others.map((wf) => [wf, relErr(denseEps.get(wf)!, denseEps.get(base)!)]));
  console.log(`dense step (CFG batch 2, ${side}×${side} latent): ${formats.map((wf) => `${wf} ${dMed[wf].toFixed(0)} ms`).join(', ')}; ε vs ${base} rel err ${others.map((wf) => `${wf} ${denseEpsRelErr[wf].toExponential(2)}`).join(', ')}`);
  console.log(`mask    ${formats.map((wf) => `${wf} sparse`.padStart(12)).join(' ')}   ${others.map((wf) => `${wf} vs ${base}`.padStart(13)).join(' ')}   ${formats.map((wf) => `step × ${wf}`.padStart(12)).join(' ')}`);
  for (const fraction of fractions) {
    const pyr = buildMaskPyramid(discMask(fraction), { levels: cfg.blockOutChannels.length });
    const rowsIn = gatherActiveRows(sample, B, cfg.inChannels, side * side, pyr[0].active);
    const ms = new Map<WeightFormat, number[]>(formats.map((wf) => [wf, []]));
    const noise = new Map<WeightFormat, Float32Array>();
    const run = async (wf: WeightFormat) => {
      const runner = sparse.get(wf)!;
      const feed = runner.preparePyramid(pyr);
      const t = performance.now();
      const res = await runner.sparseStep(feed, rowsIn, T, text, (n) => rec.entries.get(n)!.data);
      ms.get(wf)!.push(performance.now() - t);
      noise.set(wf, res.noise);
    };
    for (const wf of formats) await run(wf); // warm-up at this shape
    for (const wf of formats) ms.get(wf)!.length = 0;
    for (let r = 0; r < reps; r++) for (const wf of r % 2 ? [...formats].reverse() : formats) await run(wf);
    const m = Object.fromEntries(formats.map((wf) => [wf, median(ms.get(wf)!)]));
    const row = {
      fraction: pyr[0].fraction,
      levelFractions: pyr.map((l) => l.fraction),
      sparseMs: m,
      /** Sparse step of the first format over each other one's. */
      sparseSpeedup: Object.fromEntries(others.map((wf) => [wf, m[base] / m[wf]])),
      /** Dense over sparse step, each format against itself. */
      stepSpeedup: Object.fromEntries(formats.map((wf) => [wf, dMed[wf] / m[wf]])),
      noiseRelErr: Object.fromEntries(others.map((wf) => [wf, relErr(noise.get(wf)!, noise.get(base)!)])),
    };
    rows.push(row);
    console.log(
      `${(100 * row.fraction).toFixed(1).padStart(4)} %  ${formats.map((wf) => `${m[wf].toFixed(0)} ms`.padStart(12)).join(' ')}   ${others.map((wf) => `${row.sparseSpeedup[wf].toFixed(2)}×`.padStart(13)).join(' ')}   ${formats.map((wf) => `${row.stepSpeedup[wf].toFixed(2)}×`.padStart(12)).join(' ')}   (ε rel err vs ${base}: ${others.map((wf) => `${wf} ${row.noiseRelErr[wf].toExponential(2)}`).join(', ')})`,
    );
  }
  for (const s of [...dense.values()]) await s.release();
  for (const s of [...sparse.values()]) await s.release();
  const result = { bench: 'sparse-weights', date: new Date().toISOString(), model: path.basename(dir), latent: side, reps, machine: { cpus: os.cpus().length, cpuModel: os.cpus()[0]?.model, loadavg: os.loadavg() }, formats, denseMs: dMed, denseEpsRelErr, rows, peakRssGiB: process.resourceUsage().maxRSS / 2 ** 20 };
  fs.mkdirSync(path.dirname(out), { recursive: true });
  fs.writeFileSync(out, `${JSON.stringify(result, null, 2)}\n`);
  console.log(`peak resident ${result.peakRssGiB.toFixed(1)} GiB → ${out}`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
