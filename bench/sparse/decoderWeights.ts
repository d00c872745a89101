// The sparse VAE decode with fp32 and with int8 decoder weights, side by side in one process (issue 20's
// decode lever): RegionDecoder.create({ weights }) for both formats, each parent recorded by its own full
// decode (its conv inputs are the halos its children read), then the sparse decode of a child whose
// latents changed inside a disc, at each area, interleaved fp32 / int8 / int8 / fp32 …, median of `reps`
// after a warm-up at each shape. Also the full decode (context only) of both. The error column compares
// the int8 sparse decode's rows with the fp32 one's, in /255 after the image postprocessing (random
// weights: a guide to the scale, not an image-quality claim).
//
//   npx tsx bench/sparse/decoderWeights.ts [modelDir] [imageSide] [areas] [reps] [--graph-cache DIR] [--out FILE]
//   e.g. npx tsx bench/sparse/decoderWeights.ts bench/.cache/sd15-random-full 256 0.1,0.25 3 --graph-cache bench/.cache/graphs

import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import type { WeightFormat } from '../../src/engine/graph/graphBuilder';
import { loadModelFolder } from '../../src/engine/model/modelFolder';
import { planSparseDecode } from '../../src/engine/pipeline/regionDecode';
import { RegionDecoder, type DecoderContext, type DecoderEntry } from '../../src/engine/pipeline/regionDecoder';
import { gaussianFloat32 } from '../../src/engine/random/gaussian';
import { GraphCache } from '../../src/engine/runtime/graphCache';
import { discMask } from '../edit/masks';
import { median, parseBenchArgs } from './benchArgs';

const { flags, dir, side, areas, reps } = parseBenchArgs(process.argv.slice(2), ['--graph-cache', '--out'], { side: 256, areas: '0.1,0.25', reps: 3 });
const cacheDir = flags['--graph-cache'];
const outFile = flags['--out'];
const threads = 2;
const to255 = (v: number) => Math.round(Math.min(1, Math.max(0, v / 2 + 0.5)) * 255);

interface Parent {
  decoder: RegionDecoder;
  context: DecoderContext;
  entries: Map<string, DecoderEntry>;
}

async function main(): Promise<void> {
  const folder = loadModelFolder(dir);
  const vae = folder.vae;
  const F = 2 ** (vae.config.blockOutChannels.length - 1);
  const h = side / F;
  const w = side / F;
  const C = vae.config.latentChannels;
  const graphCache = cacheDir ? new GraphCache({ dir: path.resolve(cacheDir), log: (m) => process.stderr.write(`${m}\n`) }) : undefined;
  const z = gaussianFloat32(7, C * h * w);
  const formats: WeightFormat[] = ['fp32', 'int8'];
  const parents = new Map<WeightFormat, Parent>();
  const fullMs = new Map<WeightFormat, number[]>(formats.map((f) => [f, []]));
  for (const f of formats) {
    const t = performance.now();
    const decoder = await RegionDecoder.create(vae.config, vae.weights, { intraOpNumThreads: threads, graphCache, weights: f });
    process.stderr.write(`${f}: decoder sessions in ${((performance.now() - t) / 1000).toFixed(1)} s\n`);
    const rec = await decoder.decodeRecording(z, h, w, { entries: true });
    parents.set(f, { decoder, context: rec.context, entries: rec.entries });
  }
  // Full decodes (what a dense regeneration pays), interleaved.
  for (let r = 0; r <= reps; r++) {
    for (const f of r % 2 ? [...formats].reverse() : formats) {
      const t = performance.now();
      await parents.get(f)!.decoder.decodeRecording(z, h, w, { entries: false });
      if (r > 0) fullMs.get(f)!.push(performance.now() - t);
    }
  }
  const rows: Record<string, unknown>[] = [];
  for (const area of areas) {
    const mask = discMask(w, h, area);
    const child = Float32Array.from(z);
    const noise = gaussianFloat32(11, C * h * w);
    for (let c = 0; c < C; c++) for (let p = 0; p < h * w; p++) if (mask.data[p]) child[c * h * w + p] += noise[c * h * w + p];
    const ms = new Map<WeightFormat, number[]>(formats.map((f) => [f, []]));
    const out = new Map<WeightFormat, Float32Array>();
    let macFraction = 0;
    let level0 = 0;
    for (let r = 0; r <= reps; r++) {
      for (const f of r % 2 ? [...formats].reverse() : formats) {
        const p = parents.get(f)!;
        const t = performance.now();
        const plan = planSparseDecode(mask, F, p.decoder.levelMacs, { dilate: 1 });
        const feed = p.decoder.preparePyramid(plan.levels);
        const top = plan.levels[plan.levels.length - 1];
        const latentRows = new Float32Array(top.active.length * C);
        top.active.forEach((px, i) => {
          for (let c = 0; c < C; c++) latentRows[i * C + c] = child[c * h * w + px];
        });
        const res = await p.decoder.decodeSparse(feed, latentRows, p.context, plan.changed, async (name) => p.entries.get(name)!.data);
        if (r > 0) ms.get(f)!.push(performance.now() - t);
        out.set(f, res.rows);
        macFraction = plan.macFraction;
        level0 = plan.levels[0].fraction;
      }
    }
    const a = out.get('fp32')!;
    const b = out.get('int8')!;
    let maxErr = 0;
    let sumErr = 0;
    for (let i = 0; i < a.length; i++) {
      const d = Math.abs(to255(a[i]) - to255(b[i]));
      maxErr = Math.max(maxErr, d);
      sumErr += d;
    }
    const row = {
      area,
      maskFraction: mask.data.reduce((s, v) => s + v, 0) / (h * w),
      level0Active: level0,
      macFraction,
      fp32Ms: median(ms.get('fp32')!),
      int8Ms: median(ms.get('int8')!),
      speedup: median(ms.get('fp32')!) / median(ms.get('int8')!),
      int8VsFp32Max255: maxErr,
      int8VsFp32Mean255: sumErr / a.length,
      fp32AllMs: ms.get('fp32'),
      int8AllMs: ms.get('int8'),
    };
    rows.push(row);
    process.stdout.write(`${JSON.stringify(row)}\n`);
  }
  const result = {
    bench: 'sparse/decoderWeights',
    model: path.relative(process.cwd(), dir),
    side,
    reps,
    threads,
    loadavg: os.loadavg(),
    fullDecodeMs: { fp32: median(fullMs.get('fp32')!), int8: median(fullMs.get('int8')!) },
    rows,
  };
  process.stdout.write(`full decode: fp32 ${result.fullDecodeMs.fp32.toFixed(0)} ms, int8 ${result.fullDecodeMs.int8.toFixed(0)} ms; load ${os.loadavg().map((v) => v.toFixed(1)).join(' ')}\n`);
  if (outFile) fs.writeFileSync(outFile, JSON.stringify(result, null, 2) + '\n');
  for (const p of parents.values()) await p.decoder.release();
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
