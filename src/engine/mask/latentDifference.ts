// FISEdit's target-area capture ("where does the edit change the image?"), as the authors' code does it
// (pipeline_stable_diffusion_edit_hetu.py): during the first k dense steps of the edit, per step i,
//   diff_i[y,x] = Σ_c |z_edit_i[c,y,x] − z_parent_i[c,y,x]|        (latents after the scheduler step)
// then at step k: sum over i of minmax(diff_i), minmax again, × 255, truncate to uint8.
// Thresholding (Otsu) and cleaning (2×2 opening) are in targetAreaMask below.
//
// Latents are one image's [C, h, w] (CFG already combined), flat row-major Float32Array.

import { BinaryMask, MaskError } from './binaryMask';
import { cleanMask, MaskCleanup } from './morphology';
import { binarize, otsuThreshold } from './otsu';

export interface LatentShape {
  channels: number;
  height: number;
  width: number;
}

function checkLatent(where: string, z: Float32Array, s: LatentShape): void {
  const n = s.channels * s.height * s.width;
  if (z.length !== n) {
    throw new MaskError(where, `latent has ${z.length} values, expected [${s.channels}, ${s.height}, ${s.width}] = ${n}`);
  }
}

/** Per-pixel L1 distance over channels. a, b: [C, h, w] → [h*w] (row-major y*w+x). */
export function latentL1Difference(a: Float32Array, b: Float32Array, shape: LatentShape): Float32Array {
  checkLatent('latentL1Difference (edit latent)', a, shape);
  checkLatent('latentL1Difference (parent latent)', b, shape);
  const hw = shape.height * shape.width;
  const out = new Float32Array(hw);
  for (let c = 0; c < shape.channels; c++) {
    const off = c * hw;
    for (let i = 0; i < hw; i++) out[i] += Math.abs(a[off + i] - b[off + i]);
  }
  for (let i = 0; i < hw; i++) {
    if (!Number.isFinite(out[i])) throw new MaskError('latentL1Difference', `non-finite difference at pixel ${i}: the latents hold NaN or Inf`);
  }
  return out;
}

/**
 * Min–max normalise to [0, 1] (float64). A constant map has no "changed" part and becomes all zeros
 * (numpy would divide 0 by 0 and produce NaN; FISEdit never hits that case, we must not propagate it).
 */
export function minMaxNormalize(map: ArrayLike<number>): Float64Array {
  let lo = Infinity;
  let hi = -Infinity;
  for (let i = 0; i < map.length; i++) {
    if (map[i] < lo) lo = map[i];
    if (map[i] > hi) hi = map[i];
  }
  const out = new Float64Array(map.length);
  const range = hi - lo;
  if (!(range > 0)) return out;
  for (let i = 0; i < map.length; i++) out[i] = (map[i] - lo) / range;
  return out;
}

/**
 * Accumulates the k captured steps. Feed one (edit, parent) latent pair per dense step with addStep,
 * then differenceMap() gives FISEdit's uint8 map [h*w] (0 = unchanged, 255 = most changed).
 */
export class TargetAreaCapture {
  private readonly sum: Float64Array;
  /** One step's L1 map, reused. */
  private diff: Float32Array | null = null;
  private count = 0;

  constructor(readonly shape: LatentShape) {
    if (![shape.channels, shape.height, shape.width].every((v) => Number.isInteger(v) && v > 0)) {
      throw new MaskError('TargetAreaCapture', `bad latent shape ${JSON.stringify(shape)}`);
    }
    this.sum = new Float64Array(shape.height * shape.width);
  }

  get steps(): number {
    return this.count;
  }

  addStep(editLatent: Float32Array, parentLatent: Float32Array): void {
    // latentL1Difference + minMaxNormalize + the sum in one pass over the map (and one over the other
    // channels): the same float32 sums and float64 normalisation, without their arrays. An edit's
    // capture runs this cold in a fresh CLI process, where each pass costs ~1 ms at 32×32.
    checkLatent('latentL1Difference (edit latent)', editLatent, this.shape);
    checkLatent('latentL1Difference (parent latent)', parentLatent, this.shape);
    const hw = this.sum.length;
    const diff = (this.diff ??= new Float32Array(hw));
    for (let i = 0; i < hw; i++) diff[i] = Math.abs(editLatent[i] - parentLatent[i]);
    for (let off = hw; off < editLatent.length; off += hw) {
      for (let i = 0; i < hw; i++) diff[i] += Math.abs(editLatent[off + i] - parentLatent[off + i]);
    }
    let lo = Infinity;
    let hi = -Infinity;
    for (let i = 0; i < hw; i++) {
      const v = diff[i];
      if (!Number.isFinite(v)) throw new MaskError('latentL1Difference', `non-finite difference at pixel ${i}: the latents hold NaN or Inf`);
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
    const range = hi - lo;
    // A constant map adds zeros (minMaxNormalize's rule).
    if (range > 0) for (let i = 0; i < hw; i++) this.sum[i] += (diff[i] - lo) / range;
    this.count++;
  }

  /** [h*w] uint8: minmax(Σ_i minmax(diff_i)) × 255, truncated like numpy's astype(uint8). */
  differenceMap(): Uint8Array {
    if (this.count === 0) throw new MaskError('TargetAreaCapture', 'differenceMap() before any addStep(): capture needs at least one step');
    const norm = minMaxNormalize(this.sum);
    const out = new Uint8Array(norm.length);
    for (let i = 0; i < norm.length; i++) out[i] = Math.floor(norm[i] * 255);
    return out;
  }
}

export interface TargetAreaOptions {
  /** 'otsu' (FISEdit) or a fixed uint8 level: pixel active iff value > level. */
  threshold?: 'otsu' | number;
  /** Cleaning after thresholding; default FISEdit's { open: 2 } (2×2 opening, nothing else). */
  cleanup?: MaskCleanup;
}

/** Threshold + clean a uint8 difference map [h*w] into a latent-resolution mask. */
export function targetAreaMask(map: Uint8Array, width: number, height: number, opts: TargetAreaOptions = {}): { mask: BinaryMask; threshold: number } {
  if (map.length !== width * height) throw new MaskError('targetAreaMask', `map has ${map.length} values, expected ${width}x${height}`);
  const t = opts.threshold ?? 'otsu';
  const level = t === 'otsu' ? otsuThreshold(map) : t;
  if (!Number.isInteger(level) || level < 0 || level > 255) throw new MaskError('targetAreaMask', `threshold must be 'otsu' or an integer 0..255, got ${t}`);
  const raw: BinaryMask = { width, height, data: binarize(map, level) };
  return { mask: cleanMask(raw, opts.cleanup ?? { open: 2 }), threshold: level };
}
