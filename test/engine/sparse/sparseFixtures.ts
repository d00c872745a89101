// Shared inputs for the sparse UNet tests: a seeded latent, the golden text embeddings, masks, and
// selecting rows of recorded entries.

import { BinaryMask } from '../../../src/engine/mask/binaryMask';
import { randArray } from '../graph/reference';
import { FixtureModel, goldenF32 } from '../arch/goldens';

export const BATCH = 2;

/** Seeded latent [2, C, h, w] with unit-ish scale (both CFG halves equal, as in a real step). */
export function seededSample(channels: number, height: number, width: number, seed = 7): Float32Array {
  const one = randArray(channels * height * width, seed, 1.5);
  const s = new Float32Array(BATCH * one.length);
  s.set(one, 0);
  s.set(one, one.length);
  return s;
}

/** Golden CLIP embeddings [2, 77, D] of the fixture's negative and positive prompt. */
export function goldenText(name: FixtureModel): Float32Array {
  return goldenF32(name, 'text_embeds.npy').data;
}

/** The text with tokens [from, to) of the conditional half replaced: a stand-in for changed words. */
export function editedText(text: Float32Array, dim: number, from: number, to: number, seed = 11): Float32Array {
  const out = Float32Array.from(text);
  const seq = text.length / (BATCH * dim);
  const noise = randArray((to - from) * dim, seed, 1);
  out.set(noise, seq * dim + from * dim);
  return out;
}

/** Rectangle mask (x0..x1, y0..y1 exclusive) plus a few scattered pixels. */
export function blobMask(width: number, height: number, rect: [number, number, number, number], extra: [number, number][] = []): BinaryMask {
  const data = new Uint8Array(width * height);
  const [x0, y0, x1, y1] = rect;
  for (let y = y0; y < y1; y++) for (let x = x0; x < x1; x++) data[y * width + x] = 1;
  for (const [x, y] of extra) data[y * width + x] = 1;
  return { width, height, data };
}

export function fullMask(width: number, height: number): BinaryMask {
  return { width, height, data: new Uint8Array(width * height).fill(1) };
}

/** Rows [B, H·W, C] → rows [B, N, C] at the given pixels. */
export function selectRows(rows: ArrayLike<number>, channels: number, pixels: Int32Array): Float32Array {
  const hw = rows.length / (BATCH * channels);
  const n = pixels.length;
  const out = new Float32Array(BATCH * n * channels);
  for (let b = 0; b < BATCH; b++) {
    for (let r = 0; r < n; r++) for (let c = 0; c < channels; c++) out[(b * n + r) * channels + c] = rows[(b * hw + pixels[r]) * channels + c];
  }
  return out;
}
