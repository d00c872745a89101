// Decode only what an edit changed, and keep everything else the parent's, byte for byte.
//
// The child's latents differ from the parent's only inside the latent mask M. The image pixels taken
// from the child ("affected") are M dilated by `dilate` latent pixels, scaled up by the VAE factor: the
// ring gives the decoder's spread of the change a soft edge instead of a seam on M's border. Every other
// pixel is copied from the parent's stored image.
//
// The decoder itself runs on a latent box: the bounding box of the affected region grown by `margin`
// latent pixels (clipped to the image), so the pixels we keep see the context the decoder's convolutions
// need. The decoder's GroupNorms and mid-block attention are whole-image operations: decodeBox() here
// runs the plain decoder, which sees the box only; editDecode.ts uses RegionDecoder, which feeds the
// parent's whole-image statistics and outside tokens instead (as SIGE caches them). When the box is most
// of the image, the whole latent is decoded instead (about the same cost, exact).

import { imageTensorToRgb } from '../image/png';
import { BinaryMask, upsampleNearest } from '../mask/binaryMask';
import { dilate } from '../mask/morphology';
import { buildMaskPyramid, type PyramidLevel } from '../mask/pyramid';
import { gatherActiveRows } from '../sparse/activeRows';
import type { DiffusionModels, ModelInfo } from './models';

export interface LatentBox {
  x: number;
  y: number;
  width: number;
  height: number;
}

export interface RegionDecodePlan {
  /** Image-resolution mask of the pixels taken from the decode. */
  affected: BinaryMask;
  /** The same region at latent resolution (M dilated): the latent pixels whose decode is kept. */
  changed: BinaryMask;
  /** The latent box decoded (the whole latent when mode resolves to full). */
  box: LatentBox;
  full: boolean;
}

export interface RegionDecodeOptions {
  /** Latent pixels added around M for the affected region. Default 1. */
  dilate?: number;
  /** Latent pixels of context around the affected region in the decoded box. Default 6. */
  margin?: number;
  /** 'auto': crop unless the box covers more than fullAbove of the latent. */
  mode?: 'auto' | 'crop' | 'full';
  fullAbove?: number;
}

/**
 * Image pixels × decoder width² at or below which 'auto' decodes the whole latent. A box decode sees its
 * own GroupNorm statistics, not the image's: on the bundled model (64×64, width 64) crops of 5–10 % edits
 * differed from the full decode by 10–12/255 on average (up to 136) inside the region, while the full
 * decode took 15–66 ms. So a crop is only worth its approximation where decoding is expensive (SD: 256²
 * with width 512 is 260× above this).
 */
export const FULL_DECODE_MAX_COST = 128 * 128 * 64 * 64;

/** The decode mode 'auto' resolves to for an image of this model: 'full' where decoding is cheap. */
export function autoDecodeMode(vaeDecoderWidth: number, width: number, height: number): 'auto' | 'full' {
  return width * height * vaeDecoderWidth ** 2 <= FULL_DECODE_MAX_COST ? 'full' : 'auto';
}

/** The latent mask M dilated by `d` px (the latent pixels whose decode is kept) and that region at image size. */
function keptRegion(mask: BinaryMask, factor: number, d: number): { changed: BinaryMask; affected: BinaryMask } {
  const changed = d > 0 ? dilate(mask, 2 * d + 1) : mask;
  return { changed, affected: upsampleNearest(changed, factor) };
}

export function planRegionDecode(mask: BinaryMask, factor: number, opts: RegionDecodeOptions = {}): RegionDecodePlan {
  const margin = opts.margin ?? 6;
  const { changed: grown, affected } = keptRegion(mask, factor, opts.dilate ?? 1);
  const { width: w, height: h } = mask;
  let x0 = w;
  let y0 = h;
  let x1 = -1;
  let y1 = -1;
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      if (!grown.data[y * w + x]) continue;
      if (x < x0) x0 = x;
      if (x > x1) x1 = x;
      if (y < y0) y0 = y;
      if (y > y1) y1 = y;
    }
  }
  const whole: LatentBox = { x: 0, y: 0, width: w, height: h };
  if (x1 < 0) return { affected, changed: grown, box: whole, full: true };
  const box: LatentBox = {
    x: Math.max(0, x0 - margin),
    y: Math.max(0, y0 - margin),
    width: Math.min(w, x1 + margin + 1) - Math.max(0, x0 - margin),
    height: Math.min(h, y1 + margin + 1) - Math.max(0, y0 - margin),
  };
  const mode = opts.mode ?? 'auto';
  const full = mode === 'full' || (mode === 'auto' && box.width * box.height > (opts.fullAbove ?? 0.5) * w * h);
  return { affected, changed: grown, box: full ? whole : box, full };
}

/** The decoder input of `box`: latents [C, h, w] inside it, / scaling_factor (+ shift_factor), [C, bh, bw]. */
export function scaledLatentBox(info: ModelInfo, latents: Float32Array, channels: number, h: number, w: number, box: LatentBox): Float32Array {
  const inv = Math.fround(info.scalingFactor);
  const shift = info.shiftFactor === null ? null : Math.fround(info.shiftFactor);
  const z = new Float32Array(channels * box.width * box.height);
  if (box.x === 0 && box.y === 0 && box.width === w && box.height === h) {
    // The whole latent: one flat loop (the nested one ran cold for ~4 ms of a 64 px edit in a fresh process).
    for (let i = 0; i < z.length; i++) {
      const s = Math.fround(latents[i] / inv);
      z[i] = shift === null ? s : Math.fround(s + shift);
    }
    return z;
  }
  for (let c = 0; c < channels; c++) {
    for (let y = 0; y < box.height; y++) {
      for (let x = 0; x < box.width; x++) {
        const s = Math.fround(latents[c * h * w + (box.y + y) * w + box.x + x] / inv);
        z[(c * box.height + y) * box.width + x] = shift === null ? s : Math.fround(s + shift);
      }
    }
  }
  return z;
}

/**
 * Decode latents [C, h, w] (before the 1/scaling_factor of the VAE) inside plan.box; returns the box's
 * RGB pixels [box.height·f, box.width·f, 3] with generate()'s scaling and postprocessing.
 */
export async function decodeBox(models: DiffusionModels, latents: Float32Array, channels: number, h: number, w: number, box: LatentBox): Promise<Uint8Array> {
  const { info } = models;
  const z = scaledLatentBox(info, latents, channels, h, w, box);
  const f = info.vaeScaleFactor;
  return boxImageToRgb(await models.decodeLatents(z, box.height, box.width), box, f);
}

/** A decoded box's image [1, 3, bh·f, bw·f] → RGB [bh·f, bw·f, 3], checking its size. */
export function boxImageToRgb(image: Float32Array, box: LatentBox, f: number): Uint8Array {
  if (image.length !== 3 * box.height * f * box.width * f) throw new RangeError(`decoder returned ${image.length} values for a ${box.width}×${box.height} latent box`);
  return imageTensorToRgb(image, 3, box.height * f, box.width * f);
}

/** parent RGB [H, W, 3] with the affected pixels replaced by the decoded box's. */
export function compositeRegion(parentRgb: Uint8Array, width: number, height: number, boxRgb: Uint8Array, box: LatentBox, factor: number, affected: BinaryMask): Uint8Array {
  if (affected.width !== width || affected.height !== height) throw new RangeError(`affected mask ${affected.width}×${affected.height} does not match the image ${width}×${height}`);
  const out = Uint8Array.from(parentRgb);
  const bx = box.x * factor;
  const by = box.y * factor;
  const bw = box.width * factor;
  const bh = box.height * factor;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      if (!affected.data[y * width + x]) continue;
      if (x < bx || y < by || x >= bx + bw || y >= by + bh) throw new RangeError(`affected pixel (${x}, ${y}) lies outside the decoded box`);
      const s = ((y - by) * bw + (x - bx)) * 3;
      const d = (y * width + x) * 3;
      out[d] = boxRgb[s];
      out[d + 1] = boxRgb[s + 1];
      out[d + 2] = boxRgb[s + 2];
    }
  }
  return out;
}

/**
 * Decoder pyramid dilation per level (level 0 = image), in each level's own pixels: 6 at the image level,
 * 4 at the next, 1 elsewhere. A sparse decode reads the parent's activations just outside its active set,
 * and a change spreads 1 px per 3×3 conv; the fine levels (7 convs each in SD's VAE) are where that error
 * reaches the pixels kept, so only their rings matter. SD's VAE at 256 px (bench/edit/decodeMargin.ts,
 * error inside the affected region against the child's full decode, mean / max /255):
 *   10 % disc: 1/1/1/1 4.7 / 82; 2/2/4/6 3.7 / 65; 4/4/1/1 3.13 / 26 at 25 % of the decoder's MACs;
 *              8/8/4/4 3.08 / 26 at 39 %; the box with 6 px of context 3.0 / 22 at 63 % of the latent
 *   25 % disc: 4/4/1/1 1.64 / 32; 6/4/1/1 1.58 / 13.4 at 47 %; the box 1.86 / 15 at 88 %
 *   5 % disc:  4/4/1/1 1.18 / 11.7; 6/4/1/1 1.05 / 7.4 at 17 %; the box 2.03 / 14.7 at 47 %
 */
export function defaultSparseDecodeDilation(levels: number): number[] {
  return Array.from({ length: levels }, (_, l) => (l === 0 ? 6 : l === 1 ? 4 : 1));
}

export interface SparseDecodePlan {
  /** Image-resolution mask of the pixels taken from the decode (as planRegionDecode's). */
  affected: BinaryMask;
  /** The same region at latent resolution (M dilated). */
  changed: BinaryMask;
  /** The decoder's pyramid at image resolution: level 0 = image, last = latent. */
  levels: PyramidLevel[];
  /** Share of the decoder's MACs the sparse decode runs (per-level active fraction weighted by MACs). */
  macFraction: number;
}

/**
 * Plan a sparse decode of an edit whose latents changed inside `mask` (latent size). levelMacs: the
 * decoder's MACs per level (level 0 = image), for macFraction; dilation per level (or one value).
 */
export function planSparseDecode(mask: BinaryMask, factor: number, levelMacs: readonly number[], opts: { dilate?: number; dilation?: number | readonly number[] } = {}): SparseDecodePlan {
  const { changed, affected } = keptRegion(mask, factor, opts.dilate ?? 1);
  const L = levelMacs.length;
  const dil = opts.dilation ?? defaultSparseDecodeDilation(L);
  const levels = buildMaskPyramid(affected, { levels: L, dilation: dil });
  const total = levelMacs.reduce((a, b) => a + b, 0);
  const macFraction = levels.reduce((a, l, i) => a + l.fraction * levelMacs[i], 0) / total;
  return { affected, changed, levels, macFraction };
}

/** Scaled decoder input at `active` latent pixels, channels last: [N, C] of latents / scaling_factor (+ shift). */
export function scaledLatentRows(info: ModelInfo, latents: Float32Array, channels: number, h: number, w: number, active: Int32Array): Float32Array {
  return gatherActiveRows(scaledLatentBox(info, latents, channels, h, w, { x: 0, y: 0, width: w, height: h }), 1, channels, h * w, active);
}

/**
 * parent RGB [H, W, 3] with the affected pixels replaced by a sparse decode's rows [N_0, 3] (level 0 of
 * its pyramid), postprocessed as imageTensorToRgb does.
 */
export function compositeRows(parentRgb: Uint8Array, width: number, height: number, rows: Float32Array, level0: PyramidLevel, affected: BinaryMask): Uint8Array {
  if (affected.width !== width || affected.height !== height || level0.width !== width || level0.height !== height) {
    throw new RangeError(`affected mask ${affected.width}×${affected.height} / decoded level ${level0.width}×${level0.height} do not match the image ${width}×${height}`);
  }
  if (rows.length !== 3 * level0.active.length) throw new RangeError(`decoder returned ${rows.length} values for ${level0.active.length} pixels`);
  const out = Uint8Array.from(parentRgb);
  for (let p = 0; p < width * height; p++) {
    if (!affected.data[p]) continue;
    const r = level0.rowOf[p];
    if (r < 0) throw new RangeError(`affected pixel ${p} was not decoded`);
    const rgb = imageTensorToRgb(rows.subarray(3 * r, 3 * r + 3), 3, 1, 1);
    out.set(rgb, 3 * p);
  }
  return out;
}
