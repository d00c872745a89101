import { binarize, otsuThreshold } from '../../../src/engine/mask/otsu';
import { seededRandom } from './seededRandom';

// Independent reference: between-class variance straight from the pixel lists, every t, first maximum.
function bruteForceOtsu(map: Uint8Array): { t: number; variance: (t: number) => number } {
  const values = Array.from(map);
  const variance = (t: number): number => {
    const lo = values.filter((v) => v <= t);
    const hi = values.filter((v) => v > t);
    if (lo.length === 0 || hi.length === 0) return 0;
    const mean = (a: number[]) => a.reduce((s, v) => s + v, 0) / a.length;
    const w0 = lo.length / values.length;
    return w0 * (1 - w0) * (mean(lo) - mean(hi)) ** 2;
  };
  let best = 0;
  let bestV = 0;
  for (let t = 0; t < 255; t++) {
    const v = variance(t);
    if (v > bestV * (1 + 1e-12)) {
      bestV = v;
      best = t;
    }
  }
  return { t: best, variance };
}

describe('otsuThreshold', () => {
  test('hand-computed case: {10, 20, 30, 200} splits after 30 (σ_b² = 6075 vs 2500 and 1008)', () => {
    const map = Uint8Array.from([10, 20, 30, 200]);
    expect(otsuThreshold(map)).toBe(30);
    expect(bruteForceOtsu(map).variance(30)).toBeCloseTo(6075, 9);
  });

  test('two clusters: the smallest threshold that separates them (ties resolve low, like OpenCV)', () => {
    const map = new Uint8Array(100);
    map.fill(50, 0, 60);
    map.fill(200, 60);
    expect(otsuThreshold(map)).toBe(50);
    expect(Array.from(binarize(map, 50)).reduce((a, b) => a + b, 0)).toBe(40);
  });

  test('noisy bimodal map: threshold falls between the modes and separates them', () => {
    const rand = seededRandom(1);
    const map = new Uint8Array(4000);
    const truth = new Uint8Array(4000);
    for (let i = 0; i < map.length; i++) {
      truth[i] = rand() < 0.25 ? 1 : 0;
      const centre = truth[i] ? 190 : 40;
      map[i] = Math.max(0, Math.min(255, Math.round(centre + (rand() - 0.5) * 60)));
    }
    const t = otsuThreshold(map);
    expect(t).toBeGreaterThanOrEqual(70);
    expect(t).toBeLessThan(160);
    expect(Array.from(binarize(map, t))).toEqual(Array.from(truth));
  });

  test('matches brute-force maximisation of the between-class variance on random maps', () => {
    const rand = seededRandom(7);
    for (let trial = 0; trial < 30; trial++) {
      const n = 1 + Math.floor(rand() * 300);
      const spread = 1 + Math.floor(rand() * 255);
      const map = Uint8Array.from({ length: n }, () => Math.floor(rand() * spread));
      const ref = bruteForceOtsu(map);
      const t = otsuThreshold(map);
      // Same maximum; on a float tie the reference may pick another t with equal variance.
      expect(ref.variance(t)).toBeCloseTo(ref.variance(ref.t), 9);
      if (ref.variance(ref.t) > 0) expect(ref.variance(t)).toBeGreaterThan(0);
      expect(t).toBe(ref.t);
    }
  });

  test('a constant map has no split: threshold 0 (OpenCV), so a zero map is all background', () => {
    expect(otsuThreshold(new Uint8Array(50))).toBe(0);
    expect(Array.from(binarize(new Uint8Array(50), 0)).every((v) => v === 0)).toBe(true);
    expect(otsuThreshold(new Uint8Array(50).fill(128))).toBe(0);
  });
});
