// Where a sparse VAE decode's time goes (issue 20: the decode is the largest fixed cost of a short edit):
// one full recording decode for the parent's conv inputs and context, then `reps` sparse decodes of a disc
// (the edit bench's shape, the edit's decode plan) with onnxruntime's profiler on; prints the time per op
// type and node, and the wall, user and system CPU of each run (--arena on|off: the session's memory
// arena, default the engine's SPARSE_DECODER_ARENA). Not a benchmark (the profiler
// adds overhead): a guide for optimising.
//
//   npx tsx bench/sparse/decoderProfile.ts [modelDir] [imageSide] [area] [reps] [--graph-cache DIR] [--arena on|off]
//   e.g. npx tsx bench/sparse/decoderProfile.ts bench/.cache/sd15-random-full 256 0.1 2 --graph-cache bench/.cache/graphs

import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { planSparseDecode } from '../../src/engine/pipeline/regionDecode';
import { RegionDecoder, SPARSE_DECODER_ARENA } from '../../src/engine/pipeline/regionDecoder';
import { gaussianFloat32 } from '../../src/engine/random/gaussian';
import { GraphCache } from '../../src/engine/runtime/graphCache';
import { createSession, float32Tensor, type EngineTensor } from '../../src/engine/runtime/ortSession';
import { buildPyramidFeed } from '../../src/engine/sparse/pyramidInputs';
import { CACHE_INPUT_PREFIX } from '../../src/engine/sparse/sparseLayers';
import { buildSparseVaeDecoderGraph } from '../../src/engine/sparse/sparseVaeDecoder';
import { discMask } from '../edit/masks';
import { kernelMsPerRun, printKernelTimes, readKernelTimes } from './cpuProfile';
import { parseBenchArgs, vaeAtSide } from './benchArgs';


const { flags, dir, side, areas, reps } = parseBenchArgs(process.argv.slice(2), ['--arena', '--graph-cache'], { side: 256, areas: '0.1', reps: 2 });
const arena = flags['--arena'] === undefined ? SPARSE_DECODER_ARENA : flags['--arena'] === 'on';
const graphCache = flags['--graph-cache'] ? new GraphCache({ dir: path.resolve(flags['--graph-cache']) }) : undefined;
const area = areas[0];

async function main(): Promise<void> {
  const { vae, L, F, C, h, w } = vaeAtSide(dir, side);
  const decoder = await RegionDecoder.create(vae.config, vae.weights, { intraOpNumThreads: 2, graphCache, sparse: true });
  const z = gaussianFloat32(7, C * h * w);
  const rec = await decoder.decodeRecording(z, h, w, { entries: true });
  await decoder.release();
  const prefix = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'fisedit-decprof-')), 'sparse');
  const sp = buildSparseVaeDecoderGraph(vae.config, vae.weights);
  const session = await createSession(sp.g.build(), { intraOpNumThreads: 2, enableCpuMemArena: arena, enableMemPattern: false, profileFilePrefix: prefix });
  const plan = planSparseDecode(discMask(w, h, area), F, [1, 1, 1, 1].slice(0, L), { dilate: 1 });
  const feed = buildPyramidFeed(plan.levels);
  const top = plan.levels[L - 1];
  const rows = new Float32Array(top.active.length * C);
  top.active.forEach((p, i) => {
    for (let c = 0; c < C; c++) rows[i * C + c] = z[c * h * w + p];
  });
  const S = rec.context.mean.length / vae.config.normNumGroups;
  const feeds: Record<string, EngineTensor> = {
    latent_rows: float32Tensor(rows, [1, top.active.length, C]),
    gn_mean: float32Tensor(rec.context.mean, [S, vae.config.normNumGroups, 1]),
    gn_var: float32Tensor(rec.context.variance, [S, vae.config.normNumGroups, 1]),
    mid_k: float32Tensor(rec.context.k, [1, h * w, rec.context.k.length / (h * w)]),
    mid_v: float32Tensor(rec.context.v, [1, h * w, rec.context.v.length / (h * w)]),
  };
  for (const input of session.inputNames) {
    if (input in feeds) continue;
    if (feed.tensors[input]) feeds[input] = feed.tensors[input];
    else if (input.startsWith(CACHE_INPUT_PREFIX)) {
      const e = rec.entries.get(input.slice(CACHE_INPUT_PREFIX.length))!;
      feeds[input] = { dtype: 'float16', dims: e.shape, data: e.data };
    }
  }
  const wall: string[] = [];
  for (let r = 0; r <= reps; r++) {
    const cu = process.cpuUsage();
    const a = performance.now();
    await session.run(feeds);
    const u = process.cpuUsage(cu);
    wall.push(`${(performance.now() - a).toFixed(0)} (user ${(u.user / 1000).toFixed(0)}, sys ${(u.system / 1000).toFixed(0)})`);
  }
  session.endProfiling();
  await session.release();
  const times = readKernelTimes(prefix);
  const runs = reps + 1;
  const total = kernelMsPerRun(times, runs);
  console.log(`${path.basename(dir)} ${side}², disc ${(100 * area).toFixed(0)} % → active per level ${plan.levels.map((l) => `${(100 * l.fraction).toFixed(0)}%`).join('/')}, MAC share ${(100 * plan.macFraction).toFixed(0)} %`);
  console.log(`wall per run (ms): ${wall.join(', ')}; kernel time per run ${total.toFixed(0)} ms; load ${os.loadavg().map((v) => v.toFixed(1)).join(' ')}`);
  printKernelTimes(times, runs, 'run', 14, 16);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
