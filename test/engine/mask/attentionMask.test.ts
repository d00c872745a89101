import { AttentionSource, buildAttentionMask } from '../../../src/engine/mask/attentionMask';
import { seededRandom } from './seededRandom';

// Maps [T, h, w] where token `hot` concentrates in the rectangle [x0, x1) × [y0, y1); others spread out.
function maps(T: number, h: number, w: number, hot: number, rect: [number, number, number, number], seed: number): Float32Array {
  const rand = seededRandom(seed);
  const probs = new Float32Array(T * h * w);
  for (let p = 0; p < h * w; p++) {
    const x = p % w;
    const y = Math.floor(p / w);
    const inside = x >= rect[0] && x < rect[1] && y >= rect[2] && y < rect[3];
    let total = 0;
    const raw = Array.from({ length: T }, (_, t) => (t === hot ? (inside ? 8 : 0.2) : 1) * (0.8 + 0.4 * rand()));
    raw.forEach((v) => (total += v));
    raw.forEach((v, t) => (probs[t * h * w + p] = v / total)); // softmax over tokens sums to 1 per pixel
  }
  return probs;
}

describe('buildAttentionMask', () => {
  test('the changed token\'s region, upsampled to latent resolution', () => {
    const src: AttentionSource = { probs: maps(6, 8, 8, 3, [1, 4, 2, 6], 1), tokens: 6, height: 8, width: 8, changed: [3] };
    const { mask } = buildAttentionMask([src], { outWidth: 32, outHeight: 32, cleanup: {} });
    for (let y = 0; y < 32; y++) for (let x = 0; x < 32; x++) expect(mask.data[y * 32 + x]).toBe(x >= 4 && x < 16 && y >= 8 && y < 24 ? 1 : 0);
  });

  test('sources of different resolutions combine as a union (old word in the parent, new word in the child)', () => {
    const parent: AttentionSource = { probs: maps(5, 8, 8, 2, [0, 2, 0, 2], 2), tokens: 5, height: 8, width: 8, changed: [2] };
    const child: AttentionSource = { probs: maps(5, 16, 16, 4, [10, 14, 10, 14], 3), tokens: 5, height: 16, width: 16, changed: [4] };
    const { mask } = buildAttentionMask([parent, child], { outWidth: 16, outHeight: 16, cleanup: {} });
    const on = (x: number, y: number) => mask.data[y * 16 + x];
    expect(on(0, 0) && on(3, 3) && on(10, 10) && on(13, 13)).toBe(1);
    expect(on(7, 7) || on(0, 15) || on(15, 0)).toBe(0);
    expect(mask.data.reduce((a, b) => a + b, 0)).toBe(16 + 16);
  });

  test('fixed threshold, default cleanup, and identical prompts', () => {
    const src: AttentionSource = { probs: maps(4, 8, 8, 1, [2, 6, 2, 6], 4), tokens: 4, height: 8, width: 8, changed: [1] };
    const fixed = buildAttentionMask([src], { outWidth: 8, outHeight: 8, threshold: 0.3, cleanup: {} });
    expect(fixed.threshold).toBe(76);
    expect(fixed.mask.data.reduce((a, b) => a + b, 0)).toBe(16);
    const cleaned = buildAttentionMask([src], { outWidth: 8, outHeight: 8 }); // default dilates by 1 px
    expect(cleaned.mask.data.reduce((a, b) => a + b, 0)).toBe(36);
    const none = buildAttentionMask([{ ...src, changed: [] }], { outWidth: 8, outHeight: 8 });
    expect(none.mask.data.every((v) => v === 0)).toBe(true);
  });

  test('bad inputs are clear errors', () => {
    const src: AttentionSource = { probs: new Float32Array(4 * 64), tokens: 4, height: 8, width: 8, changed: [4] };
    expect(() => buildAttentionMask([src], { outWidth: 8, outHeight: 8 })).toThrow(/token position 4 is outside 0\.\.3/);
    expect(() => buildAttentionMask([{ ...src, changed: [0] }], { outWidth: 12, outHeight: 8 })).toThrow(/does not divide the output 12x8/);
    expect(() => buildAttentionMask([{ ...src, probs: new Float32Array(3) }], { outWidth: 8, outHeight: 8 })).toThrow(/expected \[4, 8, 8\]/);
    expect(() => buildAttentionMask([{ ...src, changed: [0] }], { outWidth: 8, outHeight: 8, threshold: 2 })).toThrow(/fraction in \[0, 1\)/);
    expect(() => buildAttentionMask([], { outWidth: 8, outHeight: 8 })).toThrow(/no attention maps/);
  });
});
