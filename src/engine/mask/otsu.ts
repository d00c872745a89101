// Otsu's threshold on a uint8 map, with OpenCV's conventions (cv.threshold(..., THRESH_BINARY + THRESH_OTSU),
// which FISEdit uses): the threshold t splits the pixels into {v ≤ t} and {v > t}; t maximises the
// between-class variance σ_b²(t) = ω0·ω1·(μ0 − μ1)²; the smallest such t wins ties; a map with no
// split (all pixels equal) gives t = 0. Foreground is v > t.
//
// σ_b² is compared exactly: with n_i pixel counts and s_i value sums of the two classes,
// σ_b²·N² = (s0·n1 − s1·n0)² / (n0·n1), a ratio of integers compared by cross-multiplication in BigInt,
// so ties are real ties and the result never depends on rounding.

import { MaskError } from './binaryMask';

export function histogram256(map: Uint8Array): Float64Array {
  const h = new Float64Array(256);
  for (let i = 0; i < map.length; i++) h[map[i]]++;
  return h;
}

/** Largest map whose sums stay exact in float64 (255·N² < 2^53). Latent maps are ~10^4 pixels. */
export const OTSU_MAX_PIXELS = 5_000_000;

export function otsuThreshold(map: Uint8Array): number {
  const n = map.length;
  if (n > OTSU_MAX_PIXELS) throw new MaskError('otsuThreshold', `map has ${n} pixels, more than the ${OTSU_MAX_PIXELS} this exact implementation supports`);
  const hist = histogram256(map);
  let total = 0;
  for (let v = 0; v < 256; v++) total += v * hist[v];
  let n0 = 0;
  let s0 = 0;
  let bestT = 0;
  let bestNum = -1n; // numerator (s0·n1 − s1·n0)² of the best so far
  let bestDen = 1n; // denominator n0·n1
  for (let t = 0; t < 255; t++) {
    n0 += hist[t];
    s0 += t * hist[t];
    const n1 = n - n0;
    if (n0 === 0 || n1 === 0) continue;
    const d = BigInt(s0 * n1 - (total - s0) * n0); // exact: |s·n| < 255·N² < 2^53 (OTSU_MAX_PIXELS)
    const num = d * d;
    const den = BigInt(n0 * n1);
    if (num * bestDen > bestNum * den) {
      bestNum = num;
      bestDen = den;
      bestT = t;
    }
  }
  return bestT;
}

/** 1 where map[i] > threshold, else 0. */
export function binarize(map: Uint8Array, threshold: number): Uint8Array {
  const out = new Uint8Array(map.length);
  for (let i = 0; i < map.length; i++) out[i] = map[i] > threshold ? 1 : 0;
  return out;
}
