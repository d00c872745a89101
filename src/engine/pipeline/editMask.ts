// The edit's input checks that concern its mask: which strategy runs, how many dense capture steps it
// takes, and the user mask read at the parent's size.

import { BinaryMask, checkMask } from '../mask/binaryMask';
import { dilate } from '../mask/morphology';
import { readUserMask } from '../mask/userMask';
import type { NodeRecord } from '../state/nodeRecord';
import { DEFAULT_CAPTURE_FRACTION, EditInputError, MASK_STRATEGIES, type EditRequest, type MaskStrategy } from './editTypes';
import { ATTENTION_CAPTURE_FRACTION } from './editAttention';
import type { ModelInfo } from './models';

export interface ResolvedStrategy {
  strategy: Exclude<MaskStrategy, 'auto'>;
  /** Dense steps before the sparse part (0 for a user mask: the mask is known before step 0). */
  captureSteps: number;
}

/** Default k for T steps: DEFAULT_CAPTURE_FRACTION of them, at least 1. */
export function defaultCaptureSteps(steps: number): number {
  return Math.max(1, Math.round(DEFAULT_CAPTURE_FRACTION * steps));
}

export function resolveStrategy(req: EditRequest, steps: number): ResolvedStrategy {
  const given = req.strategy ?? 'auto';
  if (!MASK_STRATEGIES.includes(given)) throw new EditInputError('strategy', `must be one of ${MASK_STRATEGIES.join(', ')} (got ${JSON.stringify(given)})`);
  const hasMask = req.mask !== undefined && req.mask !== null;
  if (given === 'mask' && !hasMask) throw new EditInputError('mask', 'strategy "mask" needs a mask (a PNG the size of the image, white where the edit may change things)');
  if (hasMask && given !== 'auto' && given !== 'mask') throw new EditInputError('mask', `a mask was given with strategy "${given}"; use strategy "mask" (or auto) to edit inside it`);
  const strategy = given === 'auto' ? (hasMask ? 'mask' : 'latent') : given;
  const captures = strategy === 'latent' || strategy === 'attention';
  if (req.captureSteps !== undefined && !captures) {
    throw new EditInputError('captureSteps', `applies to the latent and attention strategies only (this edit uses "${strategy}")`);
  }
  if (!captures) return { strategy, captureSteps: 0 };
  const k = req.captureSteps ?? (strategy === 'attention' ? Math.max(1, Math.round(ATTENTION_CAPTURE_FRACTION * steps)) : defaultCaptureSteps(steps));
  if (!Number.isInteger(k) || k < 1 || k > steps) throw new EditInputError('captureSteps', `must be an integer in [1, ${steps}] for this ${steps}-step node (got ${k})`);
  return { strategy, captureSteps: k };
}

/** The user mask at latent resolution; a file is read at the parent's image size (UserMaskError when it does not fit). */
export async function loadUserMask(mask: NonNullable<EditRequest['mask']>, parent: NodeRecord, info: ModelInfo): Promise<BinaryMask> {
  const [, h, w] = parent.latentShape;
  if ('file' in mask) return readUserMask(mask.file, { imageWidth: parent.width, imageHeight: parent.height, factor: info.vaeScaleFactor });
  checkMask('edit mask', mask);
  if (mask.width !== w || mask.height !== h) {
    throw new EditInputError('mask', `is ${mask.width}x${mask.height}; node ${parent.id} has a ${w}x${h} latent (its image is ${parent.width}x${parent.height})`);
  }
  return mask;
}

/** Number of UNet resolutions: unetDownscale = 2^(levels − 1). */
export function unetLevels(info: ModelInfo): number {
  return Math.round(Math.log2(info.unetDownscale)) + 1;
}

/**
 * No dilation at any level by default, as FISEdit. The sparse steps recompute exactly the mask's pixels
 * (and, below, the coarse pixels it touches); the halo just outside reads the parent's features, which is
 * what the unedited surroundings should contribute. The pixels taken from the decode are the mask plus
 * a 1-px latent ring either way (regionDecode), so a UNet ring changes no footprint, only work: on SD-1.5
 * width at 256 px a 10.9 % mask costs 1/6.10 of a dense step's MACs without it and 1/4.49 with
 * 1 px (bench/sparse/macBound.ts), and on the bundled model 30 held-out edits scored no worse without it
 * (new attribute 20.0 vs 16.7 %, others kept 93.9 vs 90.9 %, `fisedit eval --edits --dilation 0|1`).
 * With 1 px at EVERY level (SIGE) a 10 % mask made the coarsest two SD levels 56 and 100 % active.
 */
export const DEFAULT_MASK_DILATION = 0;

/**
 * Masks the edit FOUND (latent and attention strategies) get a ring of recomputed context at the finest
 * level, 1/16 of the latent's shorter side (2 px on the bundled model's 32², 4 px at SD's 64²: the
 * same share of the picture); a user's mask stays exact. A found mask is where the latents differed after k of T
 * steps, and the object's border is still forming there: with the ring, the region's border rows see the
 * new prompt's features instead of the parent's. On the bundled model (60 held-out edits, step-11129
 * snapshot, `fisedit eval --edits --limit 60 --dilation 0|2`) edits whose parent drew the object right
 * showed the new attribute in 81.0 % of cases against 66.7 % (shape edits 81.8 vs 54.5 %, colour 80 vs
 * 80 %), all edits 43.3 vs 36.7 %, 0 pixels outside the region either way, at 1.73× instead of 2.21×
 * the dense generation's speed. The latents outside the mask stay the parent's (takeParentOutside).
 */
export const FOUND_MASK_RING_SHARE = 1 / 16;

/** The found-mask ring in latent pixels for a latent of h × w (at least 1). */
export function foundMaskDilation(h: number, w: number): number {
  return Math.max(1, Math.round(FOUND_MASK_RING_SHARE * Math.min(h, w)));
}

export function defaultEditDilation(levels: number, maskDilation = DEFAULT_MASK_DILATION): number[] {
  if (!Number.isInteger(maskDilation) || maskDilation < 0) throw new EditInputError('maskDilation', `must be a non-negative integer, got ${maskDilation}`);
  return Array.from({ length: levels }, (_, i) => (i === 0 ? maskDilation : 0));
}

/**
 * Latent pixels a FOUND mask grows by before its latents change: the found mask (Otsu over the capture's
 * latent difference) is the changing object's core, and the object's soft edge lies outside it. Without
 * the growth the edge kept the parent's latents and the edit left a ring of the old object beside the new
 * one: "a red circle" → "a green circle" on the bundled model, 12 edits (seeds 1–6, left and centre),
 * 7–26 pixels of red/orange/yellow remained where the dense regeneration has none (src/eval/remnants.ts);
 * growing by 1 px left 0–11, by 2 px 0–5 (the rest is the new circle's own edge tint, not a ring), at a
 * mean recomputed share of 13 % instead of 4.7 %. Same share of the latent side as the ring
 * (FOUND_MASK_RING_SHARE: 2 px at 32², 4 px at SD's 64²), which then adds context around the grown mask.
 */
export function foundMaskGrowth(h: number, w: number): number {
  return foundMaskDilation(h, w);
}

/** The mask grown by `px` latent pixels in every direction (a (2·px+1)² square); px 0 returns it as is. */
export function growMask(mask: BinaryMask, px: number): BinaryMask {
  if (!Number.isInteger(px) || px < 0) throw new EditInputError('maskGrowth', `must be a non-negative integer, got ${px}`);
  return px === 0 ? mask : dilate(mask, 2 * px + 1);
}
