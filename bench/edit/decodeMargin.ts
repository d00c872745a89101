// How much decoder context an edit's box needs (not a test): for disc masks (bench/edit/masks.ts) the box
// decode with the parent's decoder context (RegionDecoder) at several margins, against the full decode
// of the same child latents. Parent latents are Gaussian, the child's differ inside the disc. Prints, per
// area and margin, the box share of the latent, its decode time against the full decode's, and the error
// inside the affected region (mean and max, in /255 of the [-1, 1] image range, and mean relative to the
// image's standard deviation: random-weight decoders are not scaled like trained ones).
//
// Then the same for the SPARSE decode (sparse/sparseVaeDecoder.ts: halos from the parent's recorded
// conv inputs) at several per-level dilations ("a/b/c/d" = image, ½, ¼, latent level, in each level's
// pixels), with its share of the decoder's MACs.
//
//   npx tsx bench/edit/decodeMargin.ts [modelDir] [latentSide] [areas] [margins] [reps] [dilations]
//   e.g. npx tsx bench/edit/decodeMargin.ts bench/.cache/sd15-sdvae 32 0.1,0.25 2,3,4,6 2 1/1/1/1,2/2/2/2

import * as path from 'path';
import { loadModelFolder } from '../../src/engine/model/modelFolder';
import { RegionDecoder } from '../../src/engine/pipeline/regionDecoder';
import { planRegionDecode, planSparseDecode, scaledLatentRows, type LatentBox } from '../../src/engine/pipeline/regionDecode';
import { gaussianFloat32 } from '../../src/engine/random/gaussian';
import { discMask } from './masks';

const [dirArg, sideArg, areasArg, marginsArg, repsArg] = process.argv.slice(2);
const dir = path.resolve(dirArg ?? 'models/default');
const side = Number(sideArg ?? 32);
const areas = (areasArg ?? '0.05,0.1,0.25').split(',').map(Number);
const margins = (marginsArg ?? '1,2,3,4,6,8').split(',').map(Number);
const reps = Number(repsArg ?? 2);
const dilations = (process.argv[7] ?? '0/0/0/1,1/1/1/1,1/1/1/2,2/2/2/2,2/2/2/3').split(',').map((d) => d.split('/').map(Number));

function crop(z: Float32Array, C: number, box: LatentBox): Float32Array {
  const out = new Float32Array(C * box.width * box.height);
  for (let c = 0; c < C; c++) for (let y = 0; y < box.height; y++) for (let x = 0; x < box.width; x++) out[(c * box.height + y) * box.width + x] = z[(c * side + box.y + y) * side + box.x + x];
  return out;
}

async function timed<T>(f: () => Promise<T>): Promise<{ r: T; ms: number }> {
  let best = Infinity;
  let r!: T;
  for (let i = 0; i < reps; i++) {
    const t = performance.now();
    r = await f();
    best = Math.min(best, performance.now() - t);
  }
  return { r, ms: best };
}

async function main(): Promise<void> {
  const folder = loadModelFolder(dir);
  const C = folder.vae.config.latentChannels;
  const f = 2 ** (folder.vae.config.blockOutChannels.length - 1);
  const decoder = await RegionDecoder.create(folder.vae.config, folder.vae.weights, { intraOpNumThreads: 2 });
  const parentZ = gaussianFloat32(1n, C * side * side);
  const parent = await decoder.decodeRecording(parentZ, side, side);
  const other = gaussianFloat32(2n, C * side * side);
  console.log(`${path.basename(dir)}: latent ${side}², image ${side * f}², best of ${reps}`);
  console.log('area   margin  box    box ms / full ms   mean /255  max /255  mean/std');
  for (const area of areas) {
    const mask = discMask(side, side, area);
    const child = Float32Array.from(parentZ);
    for (let c = 0; c < C; c++) for (let i = 0; i < side * side; i++) if (mask.data[i]) child[c * side * side + i] = other[c * side * side + i];
    const full = await timed(() => decoder.decodeRecording(child, side, side));
    const ref = full.r.image;
    let mean = 0;
    let sq = 0;
    for (const v of ref) {
      mean += v;
      sq += v * v;
    }
    const std = Math.sqrt(sq / ref.length - (mean / ref.length) ** 2);
    for (const margin of margins) {
      const plan = planRegionDecode(mask, f, { margin, dilate: 1, mode: 'crop' });
      const { box } = plan;
      const r = await timed(() => decoder.decodeBox(crop(child, C, box), box, parent.context, plan.changed));
      const W = side * f;
      const bw = box.width * f;
      let sum = 0;
      let max = 0;
      let n = 0;
      for (let y = 0; y < W; y++) {
        for (let x = 0; x < W; x++) {
          if (!plan.affected.data[y * W + x]) continue;
          for (let ch = 0; ch < 3; ch++) {
            const a = ref[(ch * W + y) * W + x];
            const b = r.r.image[(ch * box.height * f + (y - box.y * f)) * bw + (x - box.x * f)];
            const d = Math.abs(a - b);
            sum += d;
            max = Math.max(max, d);
            n++;
          }
        }
      }
      const share = (box.width * box.height) / (side * side);
      console.log(
        `${(area * 100).toFixed(0).padStart(3)} %  ${String(margin).padStart(4)}   ${(share * 100).toFixed(0).padStart(3)} %  ${r.ms.toFixed(0).padStart(6)} / ${full.ms.toFixed(0).padEnd(6)}    ` +
          `${((sum / n) * 127.5).toFixed(3).padStart(8)}  ${(max * 127.5).toFixed(2).padStart(8)}  ${(sum / n / std).toExponential(2)}`,
      );
    }
    const identity = { scalingFactor: 1, shiftFactor: null } as Parameters<typeof scaledLatentRows>[0];
    for (const dil of dilations) {
      const plan = planSparseDecode(mask, f, decoder.levelMacs, { dilate: 1, dilation: dil });
      const feed = decoder.preparePyramid(plan.levels);
      const top = plan.levels[plan.levels.length - 1];
      const rows = scaledLatentRows(identity, child, C, side, side, top.active);
      const r = await timed(() => decoder.decodeSparse(feed, rows, parent.context, plan.changed, async (name) => parent.entries.get(name)!.data));
      const W = side * f;
      const l0 = plan.levels[0];
      let sum = 0;
      let max = 0;
      let n = 0;
      for (let p = 0; p < W * W; p++) {
        if (!plan.affected.data[p]) continue;
        const row = l0.rowOf[p];
        for (let ch = 0; ch < 3; ch++) {
          const d = Math.abs(ref[ch * W * W + p] - r.r.rows[row * 3 + ch]);
          sum += d;
          max = Math.max(max, d);
          n++;
        }
      }
      const fr = plan.levels.map((l) => `${(100 * l.fraction).toFixed(0)}`).join('/');
      console.log(
        `${(area * 100).toFixed(0).padStart(3)} %  sparse ${dil.join('/')}  MACs ${(100 * plan.macFraction).toFixed(0).padStart(3)} % (levels ${fr} %)  ${r.ms.toFixed(0).padStart(6)} / ${full.ms.toFixed(0).padEnd(6)}  ` +
          `${((sum / n) * 127.5).toFixed(3).padStart(8)}  ${(max * 127.5).toFixed(2).padStart(8)}  ${(sum / n / std).toExponential(2)}`,
      );
    }
  }
  await decoder.release();
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
