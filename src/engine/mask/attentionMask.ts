// Masks from cross-attention (Prompt-to-Prompt's local blend, adapted): where do the changed words look?
// Input maps are softmax probabilities [T, h, w] per resolution, averaged over heads (and over the CFG
// conditional half only: the unconditional half never sees the prompt). For each source:
//   s[y,x] = Σ_{t ∈ changed} probs[t, y, x]  →  nearest-upsampled to the output size  →  min–max to [0,1]
// Sources (several layers/resolutions, the parent's maps for removed words and the child's for new ones)
// are combined by pixel-wise max, so the mask is the union of where the old and the new words live.
// Then uint8, Otsu (or a fixed fraction), cleaning. The result is at (outWidth, outHeight), normally the
// latent resolution.

import { BinaryMask, MaskError } from './binaryMask';
import { minMaxNormalize } from './latentDifference';
import { cleanMask, MaskCleanup } from './morphology';
import { binarize, otsuThreshold } from './otsu';

export interface AttentionSource {
  /** [tokens, height, width] probabilities, row-major. */
  probs: Float32Array;
  tokens: number;
  height: number;
  width: number;
  /** Token positions on the map's token axis (sequence positions, BOS = 0) whose maps to use. */
  changed: readonly number[];
}

export interface AttentionMaskOptions {
  outWidth: number;
  outHeight: number;
  /** 'otsu' (default), or a fraction in [0, 1) of the normalised map: active iff value > fraction. P2P uses 0.3. */
  threshold?: 'otsu' | number;
  /** Default { close: 3, minComponent: 4, dilate: 1 }: attention maps are coarse and blotchy. */
  cleanup?: MaskCleanup;
}

/** Σ of the changed tokens' maps at output resolution (nearest upsample), min–max normalised. */
function sourceMap(s: AttentionSource, W: number, H: number, i: number): Float64Array {
  const where = `buildAttentionMask (source ${i})`;
  if (s.probs.length !== s.tokens * s.height * s.width) {
    throw new MaskError(where, `probs has ${s.probs.length} values, expected [${s.tokens}, ${s.height}, ${s.width}]`);
  }
  if (W % s.width || H % s.height) throw new MaskError(where, `map ${s.width}x${s.height} does not divide the output ${W}x${H}`);
  const fx = W / s.width;
  const fy = H / s.height;
  const hw = s.width * s.height;
  const sum = new Float64Array(hw);
  for (const t of s.changed) {
    if (!Number.isInteger(t) || t < 0 || t >= s.tokens) throw new MaskError(where, `token position ${t} is outside 0..${s.tokens - 1}`);
    for (let p = 0; p < hw; p++) sum[p] += s.probs[t * hw + p];
  }
  const up = new Float64Array(W * H);
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) up[y * W + x] = sum[Math.floor(y / fy) * s.width + Math.floor(x / fx)];
  }
  return minMaxNormalize(up);
}

/**
 * An empty `changed` list everywhere (identical prompts) gives an empty mask: nothing to recompute.
 * Returns the mask and the uint8 threshold used (value > threshold is active).
 */
export function buildAttentionMask(sources: readonly AttentionSource[], opts: AttentionMaskOptions): { mask: BinaryMask; threshold: number } {
  const { outWidth: W, outHeight: H } = opts;
  if (sources.length === 0) throw new MaskError('buildAttentionMask', 'no attention maps given');
  const combined = new Float64Array(W * H);
  let any = false;
  sources.forEach((s, i) => {
    const m = sourceMap(s, W, H, i);
    if (s.changed.length > 0) any = true;
    for (let p = 0; p < m.length; p++) if (m[p] > combined[p]) combined[p] = m[p];
  });
  if (!any) return { mask: { width: W, height: H, data: new Uint8Array(W * H) }, threshold: 255 };
  const u8 = Uint8Array.from(combined, (v) => Math.floor(v * 255));
  const t = opts.threshold ?? 'otsu';
  let level: number;
  if (t === 'otsu') level = otsuThreshold(u8);
  else if (t >= 0 && t < 1) level = Math.floor(t * 255);
  else throw new MaskError('buildAttentionMask', `threshold must be 'otsu' or a fraction in [0, 1), got ${t}`);
  const raw: BinaryMask = { width: W, height: H, data: binarize(u8, level) };
  return { mask: cleanMask(raw, opts.cleanup ?? { close: 3, minComponent: 4, dilate: 1 }), threshold: level };
}
