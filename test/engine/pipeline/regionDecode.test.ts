// Region decode (src/engine/pipeline/regionDecode.ts): which pixels an edit takes from its decode, the
// latent box the decoder runs on, when 'auto' decodes everything, and the composite that keeps every
// other pixel the parent's.
import { autoDecodeMode, compositeRegion, FULL_DECODE_MAX_COST, planRegionDecode } from '../../../src/engine/pipeline/regionDecode';
import { rectMask } from './editFixtures';

describe('planRegionDecode', () => {
  test('affected = M dilated by 1 latent px, ×factor; box = its bounds + margin, clipped', () => {
    const m = rectMask(32, 32, 10, 12, 14, 15); // x 10..13, y 12..14
    const plan = planRegionDecode(m, 2, { margin: 6, mode: 'crop' });
    expect(plan.full).toBe(false);
    // grown: x 9..14, y 11..15 → box x 3..20, y 5..21
    expect(plan.box).toEqual({ x: 3, y: 5, width: 18, height: 17 });
    expect([plan.affected.width, plan.affected.height]).toEqual([64, 64]);
    const on = (x: number, y: number) => plan.affected.data[y * 64 + x];
    expect([on(18, 22), on(29, 31), on(17, 22), on(18, 21), on(30, 31)]).toEqual([1, 1, 0, 0, 0]);
    expect(plan.affected.data.reduce((a, v) => a + v, 0)).toBe(6 * 5 * 4);
  });

  test("'auto' decodes the whole latent when the box is more than half of it; an empty mask affects nothing", () => {
    expect(planRegionDecode(rectMask(16, 16, 2, 2, 12, 12), 8).full).toBe(true);
    expect(planRegionDecode(rectMask(32, 32, 2, 2, 5, 5), 8).full).toBe(false);
    const none = planRegionDecode(rectMask(16, 16, 0, 0, 0, 0), 8);
    expect(none.affected.data.every((v) => v === 0)).toBe(true);
  });
});

test('autoDecodeMode: the bundled model (64², width 64) decodes fully, SD 1.5 at 256² (width 512) may crop', () => {
  expect(autoDecodeMode(64, 64, 64)).toBe('full');
  expect(autoDecodeMode(64, 128, 128)).toBe('full'); // exactly FULL_DECODE_MAX_COST
  expect(128 * 128 * 64 ** 2).toBe(FULL_DECODE_MAX_COST);
  expect(autoDecodeMode(64, 136, 128)).toBe('auto');
  expect(autoDecodeMode(512, 256, 256)).toBe('auto');
});

test('compositeRegion takes affected pixels from the box and every other pixel from the parent', () => {
  const W = 8;
  const parent = Uint8Array.from({ length: W * W * 3 }, (_, i) => i % 251);
  const m = rectMask(4, 4, 1, 1, 2, 2);
  const plan = planRegionDecode(m, 2, { margin: 1, dilate: 0, mode: 'crop' });
  expect(plan.box).toEqual({ x: 0, y: 0, width: 3, height: 3 });
  const box = new Uint8Array(6 * 6 * 3).fill(255);
  const out = compositeRegion(parent, W, W, box, plan.box, 2, plan.affected);
  for (let y = 0; y < W; y++) {
    for (let x = 0; x < W; x++) {
      const inside = x >= 2 && x < 4 && y >= 2 && y < 4;
      const p = (y * W + x) * 3;
      expect(Array.from(out.subarray(p, p + 3))).toEqual(inside ? [255, 255, 255] : Array.from(parent.subarray(p, p + 3)));
    }
  }
  const far = planRegionDecode(rectMask(4, 4, 3, 3, 4, 4), 2, { margin: 0, dilate: 0, mode: 'crop' });
  expect(() => compositeRegion(parent, W, W, box, plan.box, 2, far.affected)).toThrow(/outside the decoded box/);
});
