// fp32 against int8 UNet weights, step by step (issue 20, lever 1): the dense step and the sparse step at
// several mask areas, both weight formats in one process, runs interleaved (fp32, int8, fp32, …) so load
// drift on a shared machine hits both alike. The sparse steps read one recorded step's cache (recorded
// with fp32 weights; the values do not change the time). Also ε of int8 against fp32 at each step kind.
//
//   npx tsx bench/sparse/weights.ts [modelDir] [latentSide] [reps] [fractions] [--graph-cache DIR] [--out FILE.json]
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
for (let i = 2; i < process.argv.length; i++) {
  const a = process.argv[i];
  if (a === '--graph-cache') graphCache = new GraphCache({ dir: path.resolve(process.argv[++i]) });
  else if (a === '--out') out = path.resolve(process.argv[++i]);
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
  // 2. both formats' dense and sparse sessions
  const dense = new Map<WeightFormat, OrtModelSession>();
  const sparse = new Map<WeightFormat, SparseUNetRunner>();
  for (const wf of WEIGHT_FORMATS) {
    dense.set(wf, await createSession(buildUNetGraph(cfg, folder.unet.weights, { graph: { weights: wf } }).g.build(), { intraOpNumThreads: 2, ...sessionOptions }));
    sparse.set(wf, await SparseUNetRunner.create(cfg, folder.unet.weights, { intraOpNumThreads: 2, sessionOptions, weights: wf, sessions: { recording: false } }));
  }
  const feeds = { sample: float32Tensor(sample, [B, cfg.inChannels, side, side]), timestep: float32Tensor(new Float32Array([T, T]), [B]), encoder_hidden_states: float32Tensor(text, [B, 77, cfg.crossAttentionDim]) };
  const timeDense = async (wf: WeightFormat) => {
    const t = performance.now();
    const eps = (await dense.get(wf)!.run(feeds, ['noise_pred'])).noise_pred.data as Float32Array;
    return { ms: performance.now() - t, eps };
  };
  const rows: Record<string, unknown>[] = [];
  const denseMs = new Map<WeightFormat, number[]>(WEIGHT_FORMATS.map((wf) => [wf, []]));
  const denseEps = new Map<WeightFormat, Float32Array>();
  for (const wf of WEIGHT_FORMATS) denseEps.set(wf, (await timeDense(wf)).eps); // warm-up
  for (let r = 0; r < reps; r++) for (const wf of r % 2 ? [...WEIGHT_FORMATS].reverse() : WEIGHT_FORMATS) denseMs.get(wf)!.push((await timeDense(wf)).ms);
  const dMed = Object.fromEntries(WEIGHT_FORMATS.map((wf) => [wf, median(denseMs.get(wf)!)]));
  console.log(`dense step (CFG batch 2, ${side}×${side} latent): fp32 ${dMed.fp32.toFixed(0)} ms, int8 ${dMed.int8.toFixed(0)} ms (${(dMed.fp32 / dMed.int8).toFixed(2)}×); ε int8 vs fp32 rel err ${relErr(denseEps.get('int8')!, denseEps.get('fp32')!).toExponential(2)}`);
  console.log('mask    fp32 sparse   int8 sparse   int8 ×   step × fp32   step × int8');
  for (const fraction of fractions) {
    const pyr = buildMaskPyramid(discMask(fraction), { levels: cfg.blockOutChannels.length });
    const rowsIn = gatherActiveRows(sample, B, cfg.inChannels, side * side, pyr[0].active);
    const ms = new Map<WeightFormat, number[]>(WEIGHT_FORMATS.map((wf) => [wf, []]));
    const noise = new Map<WeightFormat, Float32Array>();
    const run = async (wf: WeightFormat) => {
      const runner = sparse.get(wf)!;
      const feed = runner.preparePyramid(pyr);
      const t = performance.now();
      const res = await runner.sparseStep(feed, rowsIn, T, text, (n) => rec.entries.get(n)!.data);
      ms.get(wf)!.push(performance.now() - t);
      noise.set(wf, res.noise);
    };
    for (const wf of WEIGHT_FORMATS) await run(wf); // warm-up at this shape
    for (const wf of WEIGHT_FORMATS) ms.get(wf)!.length = 0;
    for (let r = 0; r < reps; r++) for (const wf of r % 2 ? [...WEIGHT_FORMATS].reverse() : WEIGHT_FORMATS) await run(wf);
    const m = Object.fromEntries(WEIGHT_FORMATS.map((wf) => [wf, median(ms.get(wf)!)]));
    const row = {
      fraction: pyr[0].fraction,
      levelFractions: pyr.map((l) => l.fraction),
      sparseMs: m,
      int8Speedup: m.fp32 / m.int8,
      stepSpeedup: { fp32: dMed.fp32 / m.fp32, int8: dMed.int8 / m.int8 },
      noiseRelErr: relErr(noise.get('int8')!, noise.get('fp32')!),
    };
    rows.push(row);
    console.log(`${(100 * row.fraction).toFixed(1).padStart(4)} %  ${m.fp32.toFixed(0).padStart(8)} ms  ${m.int8.toFixed(0).padStart(8)} ms   ${row.int8Speedup.toFixed(2)}×   ${row.stepSpeedup.fp32.toFixed(2).padStart(8)}×   ${row.stepSpeedup.int8.toFixed(2).padStart(8)}×   (ε rel err ${row.noiseRelErr.toExponential(2)})`);
  }
  for (const s of [...dense.values()]) await s.release();
  for (const s of [...sparse.values()]) await s.release();
  const result = { bench: 'sparse-weights', date: new Date().toISOString(), model: path.basename(dir), latent: side, reps, machine: { cpus: os.cpus().length, cpuModel: os.cpus()[0]?.model, loadavg: os.loadavg() }, denseMs: dMed, denseEpsRelErr: relErr(denseEps.get('int8')!, denseEps.get('fp32')!), rows, peakRssGiB: process.resourceUsage().maxRSS / 2 ** 20 };
  fs.mkdirSync(path.dirname(out), { recursive: true });
  fs.writeFileSync(out, `${JSON.stringify(result, null, 2)}\n`);
  console.log(`peak resident ${result.peakRssGiB.toFixed(1)} GiB → ${out}`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
