// The sparse VAE decoder with and without onnxruntime's CPU memory arena, side by side in one process
// (issue 20: the decode is the largest fixed cost of a short edit). Without an arena every intermediate
// (a level-0 im2col is 58–117 MiB at 256 px) is a fresh allocation whose pages are faulted in on first
// touch; with one, the second run reuses the first's blocks. One recording decode for the parent's conv
// inputs and context, then both sessions decode the same discs, interleaved (off, on, on, off, …), median
// of `reps` after a warm-up at each area; wall, user and system CPU per run, and the process's resident
// memory after each area (the arena keeps its high-water mark).
//
//   npx tsx bench/sparse/decoderArena.ts [modelDir] [imageSide] [areas] [reps] [--graph-cache DIR] [--out FILE]
//   e.g. npx tsx bench/sparse/decoderArena.ts bench/.cache/sd15-random-full 256 0.1,0.25,0.5 3 --graph-cache bench/.cache/graphs

import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { planSparseDecode } from '../../src/engine/pipeline/regionDecode';
import { RegionDecoder } from '../../src/engine/pipeline/regionDecoder';
import { gaussianFloat32 } from '../../src/engine/random/gaussian';
import { GraphCache } from '../../src/engine/runtime/graphCache';
import { createSession, float32Tensor, type EngineTensor, type OrtModelSession } from '../../src/engine/runtime/ortSession';
import { buildPyramidFeed } from '../../src/engine/sparse/pyramidInputs';
import { CACHE_INPUT_PREFIX } from '../../src/engine/sparse/sparseLayers';
import { buildSparseVaeDecoderGraph, decoderLevelMacs } from '../../src/engine/sparse/sparseVaeDecoder';
import { discMask } from '../edit/masks';
import { median, parseBenchArgs, rssGiB, vaeAtSide } from './benchArgs';

const { flags, dir, side, areas, reps } = parseBenchArgs(process.argv.slice(2), ['--graph-cache', '--out'], { side: 256, areas: '0.1,0.25', reps: 3 });
const cacheDir = flags['--graph-cache'];
const outFile = flags['--out'];


async function main(): Promise<void> {
  const { vae, L, F, C, h, w } = vaeAtSide(dir, side);
  const graphCache = cacheDir ? new GraphCache({ dir: path.resolve(cacheDir) }) : undefined;
  const decoder = await RegionDecoder.create(vae.config, vae.weights, { intraOpNumThreads: 2, graphCache });
  const z = gaussianFloat32(7, C * h * w);
  const rec = await decoder.decodeRecording(z, h, w, { entries: true });
  await decoder.release();
  const bytes = buildSparseVaeDecoderGraph(vae.config, vae.weights).g.build();
  const variants: Record<'off' | 'on', OrtModelSession> = {
    off: await createSession(bytes, { intraOpNumThreads: 2, enableCpuMemArena: false, enableMemPattern: false, graphCache }),
    on: await createSession(bytes, { intraOpNumThreads: 2, enableCpuMemArena: true, enableMemPattern: false, graphCache }),
  };
  const S = rec.context.mean.length / vae.config.normNumGroups;
  const rows: Record<string, unknown>[] = [];
  console.log(`${path.basename(dir)} ${side}² sparse decode, arena off / on; load ${os.loadavg().map((v) => v.toFixed(1)).join(' ')}; rss ${rssGiB().toFixed(2)} GiB`);
  for (const area of areas) {
    const plan = planSparseDecode(discMask(w, h, area), F, decoderLevelMacs(vae.config, side * side), { dilate: 1 });
    const feed = buildPyramidFeed(plan.levels);
    const top = plan.levels[L - 1];
    const latent = new Float32Array(top.active.length * C);
    top.active.forEach((p, i) => {
      for (let c = 0; c < C; c++) latent[i * C + c] = z[c * h * w + p];
    });
    const feeds: Record<string, EngineTensor> = {
      latent_rows: float32Tensor(latent, [1, top.active.length, C]),
      gn_mean: float32Tensor(rec.context.mean, [S, vae.config.normNumGroups, 1]),
      gn_var: float32Tensor(rec.context.variance, [S, vae.config.normNumGroups, 1]),
      mid_k: float32Tensor(rec.context.k, [1, h * w, rec.context.k.length / (h * w)]),
      mid_v: float32Tensor(rec.context.v, [1, h * w, rec.context.v.length / (h * w)]),
    };
    for (const input of variants.off.inputNames) {
      if (input in feeds) continue;
      if (feed.tensors[input]) feeds[input] = feed.tensors[input];
      else if (input.startsWith(CACHE_INPUT_PREFIX)) {
        const e = rec.entries.get(input.slice(CACHE_INPUT_PREFIX.length))!;
        feeds[input] = { dtype: 'float16', dims: e.shape, data: e.data };
      }
    }
    const ms: Record<string, number[]> = { off: [], on: [] };
    const sys: Record<string, number[]> = { off: [], on: [] };
    const outs: Record<string, Float32Array> = {};
    for (let r = 0; r <= reps; r++) {
      for (const v of (r % 2 ? ['on', 'off'] : ['off', 'on']) as ('off' | 'on')[]) {
        const cu = process.cpuUsage();
        const t = performance.now();
        const out = await variants[v].run(feeds, ['image_rows']);
        const u = process.cpuUsage(cu);
        outs[v] = out.image_rows.data as Float32Array;
        if (r > 0) {
          ms[v].push(performance.now() - t);
          sys[v].push(u.system / 1000);
        }
      }
    }
    const same = outs.off.every((x, i) => x === outs.on[i]);
    const row = {
      area,
      level0Active: plan.levels[0].fraction,
      macFraction: plan.macFraction,
      offMs: median(ms.off),
      onMs: median(ms.on),
      speedup: median(ms.off) / median(ms.on),
      offSysMs: median(sys.off),
      onSysMs: median(sys.on),
      sameBits: same,
      rssGiBAfter: rssGiB(),
      offAllMs: ms.off.map(Math.round),
      onAllMs: ms.on.map(Math.round),
    };
    rows.push(row);
    console.log(`disc ${(100 * area).toFixed(0)} % (MAC share ${(100 * plan.macFraction).toFixed(0)} %): off ${row.offMs.toFixed(0)} ms (sys ${row.offSysMs.toFixed(0)}), on ${row.onMs.toFixed(0)} ms (sys ${row.onSysMs.toFixed(0)}), ${row.speedup.toFixed(2)}×, same bits ${same}; rss ${row.rssGiBAfter.toFixed(2)} GiB; runs off ${row.offAllMs.join('/')} on ${row.onAllMs.join('/')}`);
  }
  const result = { bench: 'sparse/decoderArena', model: path.basename(dir), side, reps, threads: 2, loadavg: os.loadavg(), rows };
  if (outFile) fs.writeFileSync(outFile, JSON.stringify(result, null, 2) + '\n');
  await Promise.all([variants.off.release(), variants.on.release()]);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
