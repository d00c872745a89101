// Shared helpers of the sparse-decoder tests: a latent disc mask, latent rows at active pixels, and image
// rows of a full decode at level-0 active pixels (all channels-last, as the sparse decoder reads/writes).
import type { BinaryMask } from '../../../src/engine/mask/binaryMask';

/** A w×h mask of the disc centred (cx, cy) with radius r. */
export function disc(w: number, h: number, cx: number, cy: number, r: number): BinaryMask {
  const data = new Uint8Array(h * w);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) data[y * w + x] = (x - cx) ** 2 + (y - cy) ** 2 <= r * r ? 1 : 0;
  return { width: w, height: h, data };
}

/** z [C, h·w] at the active pixels → [N, C]. */
export function rowsOf(z: Float32Array, active: Int32Array, channels: number, hw: number): Float32Array {
  const out = new Float32Array(active.length * channels);
  active.forEach((p, r) => {
    for (let c = 0; c < channels; c++) out[r * channels + c] = z[c * hw + p];
  });
  return out;
}

export const maxDiff = (a: Float32Array, b: Float32Array) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0);
