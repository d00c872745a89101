// Where a sparse step's time goes: runs one recorded step, then `reps` sparse steps of a disc mask (the
// edit bench's shape, the edit's default dilation) with onnxruntime's profiler on, and prints the time per
// op type and the slowest nodes. Not a benchmark (the profiler adds overhead): a guide for optimising.
//
//   npx tsx bench/sparse/profile.ts [modelDir] [latentSide] [area] [reps] [threads] [--weights fp32|int8]
//   e.g. npx tsx bench/sparse/profile.ts bench/.cache/sd15-sdvae 32 0.1 3 2
// It also prints the kernel time per UNet block (down_blocks.i, mid_block, up_blocks.i, …) beside that
// block's active share, which is what says whether a coarse level costs what its rows predict.

import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { buildMaskPyramid } from '../../src/engine/mask/pyramid';
import { loadModelFolder } from '../../src/engine/model/modelFolder';
import { defaultEditDilation } from '../../src/engine/pipeline/edit';
import { SparseUNetRunner } from '../../src/engine/sparse/sparseUNetRunner';
import { discMask } from '../edit/masks';
import type { WeightFormat } from '../../src/engine/graph/graphBuilder';
import { kernelMsPerRun, printKernelTimes, readKernelTimes, type KernelTimes } from './cpuProfile';

const argv = process.argv.slice(2);
const wi = argv.indexOf('--weights');
const weights = (wi >= 0 ? argv.splice(wi, 2)[1] : 'fp32') as WeightFormat;
const [dirArg, sideArg, areaArg, repsArg, threadsArg] = argv;
const dir = path.resolve(dirArg ?? 'test/fixtures/models/sd-narrow');
const side = Number(sideArg ?? 32);
const area = Number(areaArg ?? 0.1);
const reps = Number(repsArg ?? 3);
const threads = Number(threadsArg ?? 2);


async function main(): Promise<void> {
  const { unet } = loadModelFolder(dir);
  const cfg = unet.config;
  const B = 2;
  let x = 1;
  const rnd = () => ((x = (Math.imul(x, 1664525) + 1013904223) >>> 0) / 2 ** 32) * 2 - 1;
  const sample = Float32Array.from({ length: B * cfg.inChannels * side * side }, rnd);
  const text = Float32Array.from({ length: B * 77 * cfg.crossAttentionDim }, rnd);
  const recorder = await SparseUNetRunner.create(cfg, unet.weights, { sessions: { sparse: false }, intraOpNumThreads: threads, weights });
  const rec = await recorder.recordStep(sample, side, side, 500, text);
  await recorder.release();
  const prefix = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'fisedit-prof-')), 'sparse');
  const runner = await SparseUNetRunner.create(cfg, unet.weights, { sessions: { recording: false }, intraOpNumThreads: threads, weights, sessionOptions: { profileFilePrefix: prefix } });
  const levels = cfg.blockOutChannels.length;
  const pyr = buildMaskPyramid(discMask(side, side, area), { levels, dilation: defaultEditDilation(levels) });
  const feed = runner.preparePyramid(pyr);
  const rows = Float32Array.from({ length: B * pyr[0].active.length * cfg.inChannels }, rnd);
  const read = (n: string) => rec.entries.get(n)!.data;
  const wall: number[] = [];
  for (let r = 0; r <= reps; r++) {
    const a = performance.now();
    await runner.sparseStep(feed, rows, 500, text, read);
    wall.push(performance.now() - a);
  }
  (runner as unknown as { sparse: { created: { endProfiling(): void } } }).sparse.created.endProfiling(); // created by the steps above
  await runner.release();
  const times = readKernelTimes(prefix);
  const runs = reps + 1;
  const total = kernelMsPerRun(times, runs);
  console.log(`${path.basename(dir)} latent ${side}², mask ${(100 * area).toFixed(0)} % → per level ${pyr.map((l) => `${((100 * l.active.length) / (l.width * l.height)).toFixed(0)}%`).join('/')}`);
  console.log(`wall per step (ms): ${wall.map((w) => w.toFixed(0)).join(', ')}; kernel time per step ${total.toFixed(0)} ms`);
  printKernelTimes(times, runs, 'step', 18, 25);
  printBlockTimes(times, runs);
}

/** Kernel ms per run by the UNet block a node belongs to (its name's first two dotted parts). */
function printBlockTimes(t: KernelTimes, runs: number): void {
  const byBlock = new Map<string, number>();
  for (const [key, us] of t.byNode) {
    const name = key.slice(key.indexOf(' ') + 1);
    const m = /(down_blocks|up_blocks)[._/](\d+)|(mid_block)|(conv_in|conv_out|conv_norm_out|time_embedding)/.exec(name);
    const block = m ? (m[3] ?? m[4] ?? `${m[1]}.${m[2]}`) : 'other';
    byBlock.set(block, (byBlock.get(block) ?? 0) + us);
  }
  const total = kernelMsPerRun(t, runs);
  console.log(`\nblock              ms/step   share (weights: ${weights})`);
  for (const [b, us] of [...byBlock].sort((a, c) => a[0].localeCompare(c[0]))) console.log(`${b.padEnd(18)} ${(us / runs / 1000).toFixed(1).padStart(8)}  ${((100 * us) / runs / 1000 / total).toFixed(1).padStart(5)}%`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
