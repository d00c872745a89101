import { latentL1Difference, minMaxNormalize, TargetAreaCapture, targetAreaMask } from '../../../src/engine/mask/latentDifference';
import { seededRandom } from './seededRandom';

const shape = { channels: 4, height: 6, width: 8 };
const hw = shape.height * shape.width;

function randomLatent(rand: () => number): Float32Array {
  return Float32Array.from({ length: shape.channels * hw }, () => rand() * 2 - 1);
}

// Reference written from FISEdit's numpy lines: sum of per-step minmax, minmax, ×255, astype(uint8).
function fiseditReference(pairs: Array<[Float32Array, Float32Array]>): Uint8Array {
  const acc = new Array<number>(hw).fill(0);
  for (const [a, b] of pairs) {
    const d = Array.from({ length: hw }, (_, p) => {
      let s = 0;
      for (let c = 0; c < shape.channels; c++) s += Math.abs(a[c * hw + p] - b[c * hw + p]);
      return s;
    });
    const lo = Math.min(...d);
    const hi = Math.max(...d);
    d.forEach((v, p) => (acc[p] += (v - lo) / (hi - lo)));
  }
  const lo = Math.min(...acc);
  const hi = Math.max(...acc);
  return Uint8Array.from(acc, (v) => Math.trunc(((v - lo) / (hi - lo)) * 255));
}

describe('latent difference (target-area capture)', () => {
  test('per-pixel L1 over channels, hand-checked at one pixel', () => {
    const a = new Float32Array(4 * hw);
    const b = new Float32Array(4 * hw);
    const p = 2 * shape.width + 5;
    [0.5, -1, 0.25, 2].forEach((v, c) => (a[c * hw + p] = v));
    [0, 1, 0.25, -1].forEach((v, c) => (b[c * hw + p] = v));
    const d = latentL1Difference(a, b, shape);
    expect(d[p]).toBeCloseTo(0.5 + 2 + 0 + 3, 6);
    expect(d.reduce((s, v) => s + v, 0)).toBeCloseTo(5.5, 6);
  });

  test('k-step map equals the FISEdit numpy recipe (uint8 truncation) for k = 1, 3, 10', () => {
    const rand = seededRandom(21);
    for (const k of [1, 3, 10]) {
      const pairs: Array<[Float32Array, Float32Array]> = Array.from({ length: k }, () => [randomLatent(rand), randomLatent(rand)]);
      const cap = new TargetAreaCapture(shape);
      pairs.forEach(([a, b]) => cap.addStep(a, b));
      expect(cap.steps).toBe(k);
      const map = cap.differenceMap();
      const ref = fiseditReference(pairs);
      // Float32 inputs, float64 accumulation on both sides: at most one level apart at a truncation edge.
      let maxDiff = 0;
      map.forEach((v, i) => (maxDiff = Math.max(maxDiff, Math.abs(v - ref[i]))));
      expect(maxDiff).toBeLessThanOrEqual(1);
      expect(Math.max(...map)).toBe(255);
      expect(Math.min(...map)).toBe(0);
    }
  });

  test('identical latents give an all-zero map (not NaN) and an empty mask', () => {
    const rand = seededRandom(2);
    const z = randomLatent(rand);
    const cap = new TargetAreaCapture(shape);
    cap.addStep(z, z);
    const map = cap.differenceMap();
    expect(Array.from(map).every((v) => v === 0)).toBe(true);
    expect(targetAreaMask(map, shape.width, shape.height).mask.data.every((v) => v === 0)).toBe(true);
    expect(Array.from(minMaxNormalize([3, 3, 3]))).toEqual([0, 0, 0]);
  });

  test('a changed block under small noise is recovered by Otsu + 2×2 opening', () => {
    const rand = seededRandom(4);
    const big = { channels: 4, height: 32, width: 32 };
    const n = 32 * 32;
    const cap = new TargetAreaCapture(big);
    for (let step = 0; step < 10; step++) {
      const parent = Float32Array.from({ length: 4 * n }, () => rand());
      const edit = Float32Array.from(parent, (v) => v + (rand() - 0.5) * 0.05);
      for (let y = 8; y < 20; y++) for (let x = 10; x < 26; x++) for (let c = 0; c < 4; c++) edit[c * n + y * 32 + x] += 0.5 + rand() * 0.2;
      cap.addStep(edit, parent);
    }
    const { mask, threshold } = targetAreaMask(cap.differenceMap(), 32, 32);
    expect(threshold).toBeGreaterThan(0);
    for (let y = 0; y < 32; y++) {
      for (let x = 0; x < 32; x++) expect(mask.data[y * 32 + x]).toBe(y >= 8 && y < 20 && x >= 10 && x < 26 ? 1 : 0);
    }
  });

  test('bad inputs are clear errors', () => {
    const cap = new TargetAreaCapture(shape);
    expect(() => cap.differenceMap()).toThrow(/at least one step/);
    expect(() => cap.addStep(new Float32Array(3), new Float32Array(3))).toThrow(/expected \[4, 6, 8\]/);
    const nan = new Float32Array(4 * hw);
    nan[7] = NaN;
    expect(() => cap.addStep(nan, new Float32Array(4 * hw))).toThrow(/NaN or Inf/);
    expect(() => targetAreaMask(new Uint8Array(4), 2, 2, { threshold: 300 })).toThrow(/0\.\.255/);
  });
});
