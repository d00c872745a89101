// The sparse UNet step under two session settings, side by side in one process (issue 20):
//   --variant arena (default): without and with onnxruntime's CPU memory arena. The sparse session runs
//     without one (sparseUNetRunner.ts: an arena keeps the high-water mark of the largest edit it served),
//     so every step's intermediates are fresh allocations; the sparse decoder's arena made its decode
//     1.85–2.35× faster (decoderArena.ts).
//   --variant spinning: intra-op threads spinning as ORT's default ('off' below: also after a run) or as the
//     engine's sessions do ('on': DEFAULT_SPINNING, only during a run).
// One recorded step for the cache, then the two sparse sessions run the same centred discs, interleaved
// (off, on, on, off, …), median of `reps` after a warm-up at each area; wall, user and system CPU, and
// resident memory after each area.
//
//   npx tsx bench/sparse/stepSessionOptions.ts [modelDir] [latentSide] [areas] [reps] [--variant arena|spinning]
//                                     [--weights fp32|int8] [--graph-cache DIR] [--out FILE]
//   e.g. npx tsx bench/sparse/stepSessionOptions.ts bench/.cache/sd15-random-full 32 0.1,0.25 5 --weights int8 --graph-cache bench/.cache/graphs

import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { WEIGHT_FORMATS, type WeightFormat } from '../../src/engine/graph/graphBuilder';
import { buildMaskPyramid } from '../../src/engine/mask/pyramid';
import { loadModelFolder } from '../../src/engine/model/modelFolder';
import { GraphCache } from '../../src/engine/runtime/graphCache';
import { gatherActiveRows } from '../../src/engine/sparse/activeRows';
import { DEFAULT_SPINNING } from '../../src/engine/runtime/ortSession';
import { SparseUNetRunner } from '../../src/engine/sparse/sparseUNetRunner';
import { discMask } from '../edit/masks';
import { median, parseBenchArgs, rssGiB } from './benchArgs';

const { flags, dir, side, areas, reps } = parseBenchArgs(process.argv.slice(2), ['--graph-cache', '--out', '--weights', '--variant'], { side: 32, areas: '0.1,0.25', reps: 3 });
const cacheDir = flags['--graph-cache'];
const outFile = flags['--out'];
const weights = (flags['--weights'] ?? 'int8') as WeightFormat;
const variant = flags['--variant'] ?? 'arena';
if (variant !== 'arena' && variant !== 'spinning') throw new Error('bench/sparse/stepSessionOptions: --variant is arena or spinning');
if (!WEIGHT_FORMATS.includes(weights)) throw new Error(`bench/sparse/stepSessionOptions: --weights is one of ${WEIGHT_FORMATS.join(', ')}`);
const B = 2;
const T = 601;


async function main(): Promise<void> {
  const graphCache = cacheDir ? new GraphCache({ dir: path.resolve(cacheDir) }) : undefined;
  const folder = loadModelFolder(dir);
  const cfg = folder.unet.config;
  let x = 1;
  const rnd = () => ((x = (Math.imul(x, 1664525) + 1013904223) >>> 0) / 2 ** 32) * 2 - 1;
  const sample = Float32Array.from({ length: B * cfg.inChannels * side * side }, rnd);
  const text = Float32Array.from({ length: B * 77 * cfg.crossAttentionDim }, rnd);
  const recorder = await SparseUNetRunner.create(cfg, folder.unet.weights, { intraOpNumThreads: 2, weights, sessionOptions: { graphCache }, sessions: { sparse: false, dense: false } });
  const rec = await recorder.recordStep(sample, side, side, T, text);
  await recorder.release();
  const variants = {
    off: await SparseUNetRunner.create(cfg, folder.unet.weights, { intraOpNumThreads: 2, weights, sessionOptions: { graphCache, ...(variant === 'spinning' ? { spinning: 'always' as const } : {}) }, sessions: { recording: false, dense: false } }),
    on: await SparseUNetRunner.create(cfg, folder.unet.weights, { intraOpNumThreads: 2, weights, sessionOptions: { graphCache, ...(variant === 'spinning' ? { spinning: DEFAULT_SPINNING } : { enableCpuMemArena: true }) }, sessions: { recording: false, dense: false } }),
  };
  console.log(`${path.basename(dir)} ${side}² latent, ${weights}: sparse step, ${variant === 'arena' ? 'arena' : `spinning ${DEFAULT_SPINNING}`} off / on; load ${os.loadavg().map((v) => v.toFixed(1)).join(' ')}; rss ${rssGiB().toFixed(2)} GiB`);
  const rows: Record<string, unknown>[] = [];
  for (const area of areas) {
    const pyr = buildMaskPyramid(discMask(side, side, area), { levels: cfg.blockOutChannels.length });
    const rowsIn = gatherActiveRows(sample, B, cfg.inChannels, side * side, pyr[0].active);
    const ms: Record<string, number[]> = { off: [], on: [] };
    const sys: Record<string, number[]> = { off: [], on: [] };
    const outs: Record<string, Float32Array> = {};
    for (let r = 0; r <= reps; r++) {
      for (const v of (r % 2 ? ['on', 'off'] : ['off', 'on']) as ('off' | 'on')[]) {
        const runner = variants[v];
        const feed = runner.preparePyramid(pyr);
        const cu = process.cpuUsage();
        const t = performance.now();
        const res = await runner.sparseStep(feed, rowsIn, T, text, (n) => rec.entries.get(n)!.data);
        const u = process.cpuUsage(cu);
        outs[v] = res.noise;
        if (r > 0) {
          ms[v].push(performance.now() - t);
          sys[v].push(u.system / 1000);
        }
      }
    }
    const row = {
      area,
      levelFractions: pyr.map((l) => l.fraction),
      offMs: median(ms.off),
      onMs: median(ms.on),
      speedup: median(ms.off) / median(ms.on),
      offSysMs: median(sys.off),
      onSysMs: median(sys.on),
      sameBits: outs.off.every((v, i) => v === outs.on[i]),
      rssGiBAfter: rssGiB(),
      offAllMs: ms.off.map(Math.round),
      onAllMs: ms.on.map(Math.round),
    };
    rows.push(row);
    console.log(`disc ${(100 * area).toFixed(0)} % (L0 ${(100 * pyr[0].fraction).toFixed(1)} %): off ${row.offMs.toFixed(0)} ms (sys ${row.offSysMs.toFixed(0)}), on ${row.onMs.toFixed(0)} ms (sys ${row.onSysMs.toFixed(0)}), ${row.speedup.toFixed(2)}×, same bits ${row.sameBits}; rss ${row.rssGiBAfter.toFixed(2)} GiB; runs off ${row.offAllMs.join('/')} on ${row.onAllMs.join('/')}`);
  }
  const result = { bench: 'sparse/stepSessionOptions', variant, model: path.basename(dir), side, weights, reps, threads: 2, date: new Date().toISOString(), loadavg: os.loadavg(), rows };
  if (outFile) fs.writeFileSync(outFile, JSON.stringify(result, null, 2) + '\n');
  await Promise.all([variants.off.release(), variants.on.release()]);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
