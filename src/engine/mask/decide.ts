// What an edit should do with its mask: nothing (return the parent), a sparse run, or a dense run.
// The dense cut-off is a measured quantity (the fraction above which the sparse step is no faster than
// the dense one on this engine); 0.6 is a placeholder until bench/edit measures it.

import { activeFraction, BinaryMask, checkMask, MaskError } from './binaryMask';

export const DEFAULT_DENSE_ABOVE_FRACTION = 0.6;

export type EditDecision =
  | { mode: 'PARENT'; fraction: 0; reason: string }
  | { mode: 'DENSE'; fraction: number; reason: string }
  | { mode: 'SPARSE'; fraction: number; reason: string };

export interface DecideOptions {
  /** Run dense when the active fraction is above this (0 < value ≤ 1). */
  denseAboveFraction?: number;
}

/** mask: the latent-resolution mask; pass the pyramid's level-0 mask (after dilation), which is what the sparse work scales with. */
export function decideEditMode(mask: BinaryMask, opts: DecideOptions = {}): EditDecision {
  checkMask('decideEditMode', mask);
  const limit = opts.denseAboveFraction ?? DEFAULT_DENSE_ABOVE_FRACTION;
  if (!(limit > 0 && limit <= 1)) throw new MaskError('decideEditMode', `denseAboveFraction must be in (0, 1], got ${limit}`);
  const fraction = activeFraction(mask);
  const pct = (v: number) => `${(100 * v).toFixed(1)} %`;
  if (fraction === 0) return { mode: 'PARENT', fraction: 0, reason: 'the mask is empty: nothing changes, the result is the parent' };
  if (fraction > limit) {
    return { mode: 'DENSE', fraction, reason: `the mask covers ${pct(fraction)} of the image, above the ${pct(limit)} where sparse stops paying off` };
  }
  return { mode: 'SPARSE', fraction, reason: `the mask covers ${pct(fraction)} of the image (sparse up to ${pct(limit)})` };
}
