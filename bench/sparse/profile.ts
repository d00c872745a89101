// Where a sparse step's time goes: runs one recorded step, then `reps` sparse steps of a disc mask (the
// edit bench's shape, the edit's default dilation) with onnxruntime's profiler on, and prints the time per
// op type and the slowest nodes. Not a benchmark (the profiler adds overhead): a guide for optimising.
//
//   npx tsx bench/sparse/profile.ts [modelDir] [latentSide] [area] [reps] [threads]
//   e.g. npx tsx bench/sparse/profile.ts bench/.cache/sd15-sdvae 32 0.1 3 2

import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { buildMaskPyramid } from '../../src/engine/mask/pyramid';
import { loadModelFolder } from '../../src/engine/model/modelFolder';
import { defaultEditDilation } from '../../src/engine/pipeline/edit';
import { SparseUNetRunner } from '../../src/engine/sparse/sparseUNetRunner';
import { discMask } from '../edit/masks';

const [dirArg, sideArg, areaArg, repsArg, threadsArg] = process.argv.slice(2);
const dir = path.resolve(dirArg ?? 'test/fixtures/models/sd-narrow');
const side = Number(sideArg ?? 32);
const area = Number(areaArg ?? 0.1);
const reps = Number(repsArg ?? 3);
const threads = Number(threadsArg ?? 2);

interface TraceEvent { cat?: string; name?: string; dur?: number; args?: { op_name?: string } }

async function main(): Promise<void> {
  const { unet } = loadModelFolder(dir);
  const cfg = unet.config;
  const B = 2;
  let x = 1;
  const rnd = () => ((x = (Math.imul(x, 1664525) + 1013904223) >>> 0) / 2 ** 32) * 2 - 1;
  const sample = Float32Array.from({ length: B * cfg.inChannels * side * side }, rnd);
  const text = Float32Array.from({ length: B * 77 * cfg.crossAttentionDim }, rnd);
  const recorder = await SparseUNetRunner.create(cfg, unet.weights, { sessions: { sparse: false }, intraOpNumThreads: threads });
  const rec = await recorder.recordStep(sample, side, side, 500, text);
  await recorder.release();
  const prefix = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'fisedit-prof-')), 'sparse');
  const runner = await SparseUNetRunner.create(cfg, unet.weights, { sessions: { recording: false }, intraOpNumThreads: threads, sessionOptions: { profileFilePrefix: prefix } });
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
  (runner as unknown as { sparse: { endProfiling(): void } }).sparse.endProfiling();
  await runner.release();
  const file = fs.readdirSync(path.dirname(prefix)).map((f) => path.join(path.dirname(prefix), f)).find((f) => f.endsWith('.json'));
  if (!file) throw new Error('no profile written');
  const events = JSON.parse(fs.readFileSync(file, 'utf8')) as TraceEvent[];
  const nodes = events.filter((e) => e.cat === 'Node' && e.name?.endsWith('_kernel_time'));
  const byOp = new Map<string, number>();
  const byNode = new Map<string, number>();
  for (const e of nodes) {
    const op = e.args?.op_name ?? '?';
    byOp.set(op, (byOp.get(op) ?? 0) + (e.dur ?? 0));
    const n = e.name!.replace(/_kernel_time$/, '');
    byNode.set(`${op} ${n}`, (byNode.get(`${op} ${n}`) ?? 0) + (e.dur ?? 0));
  }
  const runs = reps + 1;
  const total = [...byOp.values()].reduce((a, b) => a + b, 0) / runs / 1000;
  console.log(`${path.basename(dir)} latent ${side}², mask ${(100 * area).toFixed(0)} % → per level ${pyr.map((l) => `${((100 * l.active.length) / (l.width * l.height)).toFixed(0)}%`).join('/')}`);
  console.log(`wall per step (ms): ${wall.map((w) => w.toFixed(0)).join(', ')}; kernel time per step ${total.toFixed(0)} ms`);
  console.log('\nop type            ms/step   share');
  for (const [op, us] of [...byOp].sort((a, b) => b[1] - a[1]).slice(0, 18)) console.log(`${op.padEnd(18)} ${(us / runs / 1000).toFixed(1).padStart(8)}  ${((100 * us) / runs / 1000 / total).toFixed(1).padStart(5)}%`);
  console.log('\nslowest nodes       ms/step');
  for (const [n, us] of [...byNode].sort((a, b) => b[1] - a[1]).slice(0, 25)) console.log(`${(us / runs / 1000).toFixed(1).padStart(8)}  ${n}`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
