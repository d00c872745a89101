// Recorded cross-attention maps ("<attn2 path>.probs", [B, h_l·w_l, L] fp16, cacheManifest.ts) as the
// AttentionSource inputs of mask/attentionMask.ts ([L, h_l, w_l] float32 of ONE batch row).
// With classifier-free guidance the batch is [unconditional, conditional]: the prompt's words live in
// row 1 (the unconditional row never sees the prompt), so that is the default.

import { halvesToFloats } from '../cache/fp16';
import type { AttentionSource } from '../mask/attentionMask';
import { CacheEntrySpec } from './cacheManifest';

export class AttentionMapError extends Error {
  constructor(reason: string) {
    super(`sparse/attentionMaps.ts: ${reason}`);
    this.name = 'AttentionMapError';
  }
}

export interface AttentionMapInput {
  /** The recorded entry: shape [B, h_l·w_l, L], fp16 bits. */
  shape: readonly number[];
  data: Uint16Array;
}

/**
 * One recorded map → AttentionSource of batch row `batchIndex` (default: the last row, the conditional
 * half under CFG). `changed` are token positions (BOS = 0) whose maps the mask sums.
 */
export function attentionSource(
  spec: CacheEntrySpec,
  entry: AttentionMapInput,
  latentHeight: number,
  latentWidth: number,
  changed: readonly number[],
  batchIndex?: number,
): AttentionSource {
  if (spec.kind !== 'crossAttnProbs') throw new AttentionMapError(`${spec.name} is a ${spec.kind} entry, not an attention map`);
  const [B, hw, L] = entry.shape;
  const height = latentHeight >> spec.level;
  const width = latentWidth >> spec.level;
  if (entry.shape.length !== 3 || hw !== height * width || entry.data.length !== B * hw * L) {
    throw new AttentionMapError(`${spec.name}: shape [${entry.shape.join(', ')}] (${entry.data.length} values) is not [B, ${height}·${width}, L]`);
  }
  const b = batchIndex ?? B - 1;
  if (!Number.isInteger(b) || b < 0 || b >= B) throw new AttentionMapError(`${spec.name}: batch index ${b} outside 0..${B - 1}`);
  const rows = halvesToFloats(entry.data.subarray(b * hw * L, (b + 1) * hw * L)); // [hw, L]
  const probs = new Float32Array(L * hw); // [L, h, w]
  for (let p = 0; p < hw; p++) for (let t = 0; t < L; t++) probs[t * hw + p] = rows[p * L + t];
  return { probs, tokens: L, height, width, changed };
}
