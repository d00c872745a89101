// Deterministic PRNG for tests (mulberry32): same seed, same masks, on every machine.
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

import { BinaryMask } from '../../../src/engine/mask/binaryMask';

/** Random mask with roughly `density` active pixels, optionally as blobs (random squares). */
export function randomMask(rand: () => number, width: number, height: number, density: number, blobs = 0): BinaryMask {
  const data = new Uint8Array(width * height);
  if (blobs === 0) {
    for (let i = 0; i < data.length; i++) data[i] = rand() < density ? 1 : 0;
  } else {
    for (let b = 0; b < blobs; b++) {
      const s = 1 + Math.floor(rand() * Math.max(1, Math.min(width, height) * density));
      const x0 = Math.floor(rand() * width);
      const y0 = Math.floor(rand() * height);
      for (let y = y0; y < Math.min(height, y0 + s); y++) for (let x = x0; x < Math.min(width, x0 + s); x++) data[y * width + x] = 1;
    }
  }
  return { width, height, data };
}
