// The edit bench's user masks, shared with bench/sparse/macBound.ts so both measure the same shapes.

import type { BinaryMask } from '../../src/engine/mask/binaryMask';

/** A centred disc of (close to) the requested area on a w × h latent: an object-shaped user mask. */
export function discMask(w: number, h: number, fraction: number): BinaryMask {
  const r = Math.sqrt((fraction * w * h) / Math.PI);
  const data = new Uint8Array(w * h);
  const cx = (w - 1) / 2 - w / 8; // off-centre, like an object on the left
  const cy = (h - 1) / 2;
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) if ((x - cx) ** 2 + (y - cy) ** 2 <= r * r) data[y * w + x] = 1;
  return { width: w, height: h, data };
}
