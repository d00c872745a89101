// The edit's input checks that concern its mask: which strategy runs, how many dense capture steps it
// takes, and the user mask read at the parent's size.

import { BinaryMask, checkMask } from '../mask/binaryMask';
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
