import { BinaryMask, downsampleAny, upsampleNearest } from '../../../src/engine/mask/binaryMask';
import { dilate } from '../../../src/engine/mask/morphology';
import { buildConvTable, buildMaskPyramid, ConvTable, neighborsIntoFullMap, PyramidLevel, pyramidFractions } from '../../../src/engine/mask/pyramid';
import { randomMask, seededRandom } from './seededRandom';

const C = 3;
const CO = 2;

// Dense 3×3 conv, zero padding, on a full map x [h·w, C] (channels last), weight w[o][c][ky][kx] flat.
function denseConvAt(x: Float64Array, w: number, h: number, weight: Float64Array, stride: number, oy: number, ox: number): number[] {
  const out = new Array<number>(CO).fill(0);
  for (let o = 0; o < CO; o++) {
    for (let ky = 0; ky < 3; ky++) {
      for (let kx = 0; kx < 3; kx++) {
        const y = stride * oy + ky - 1;
        const xx = stride * ox + kx - 1;
        if (y < 0 || xx < 0 || y >= h || xx >= w) continue;
        for (let c = 0; c < C; c++) out[o] += weight[((o * C + c) * 3 + ky) * 3 + kx] * x[(y * w + xx) * C + c];
      }
    }
  }
  return out;
}

// The sparse recipe the graph will run: stack = [new active rows; cached halo rows; zero row], gather, MatMul.
function sparseConv(newRows: Float64Array, nIn: number, cachedFull: Float64Array, table: ConvTable, weight: Float64Array, nOut: number): number[][] {
  const stack = new Float64Array((table.zeroRow + 1) * C);
  stack.set(newRows.subarray(0, nIn * C));
  table.halo.forEach((p, j) => stack.set(cachedFull.subarray(p * C, p * C + C), (nIn + j) * C));
  const out: number[][] = [];
  for (let r = 0; r < nOut; r++) {
    const v = new Array<number>(CO).fill(0);
    for (let t = 0; t < 9; t++) {
      const row = table.neighbors[r * 9 + t];
      for (let o = 0; o < CO; o++) for (let c = 0; c < C; c++) v[o] += weight[(o * C + c) * 9 + t] * stack[row * C + c];
    }
    out.push(v);
  }
  return out;
}

function mixed(level: PyramidLevel, fresh: Float64Array, cached: Float64Array): Float64Array {
  const m = Float64Array.from(cached);
  for (const p of level.active) m.set(fresh.subarray(p * C, p * C + C), p * C);
  return m;
}

function rowsOf(full: Float64Array, pixels: Int32Array): Float64Array {
  const out = new Float64Array(pixels.length * C);
  pixels.forEach((p, r) => out.set(full.subarray(p * C, p * C + C), r * C));
  return out;
}

const randomArray = (rand: () => number, n: number) => Float64Array.from({ length: n }, () => rand() * 2 - 1);
const setOf = (a: Int32Array) => Array.from(a);
const pixelsOf = (m: BinaryMask) => Array.from(m.data.keys()).filter((p) => m.data[p]);

describe('buildMaskPyramid', () => {
  const rand = seededRandom(13);
  const cases: Array<{ name: string; mask: BinaryMask; dilation: number | number[]; coverCoarse?: boolean }> = [
    { name: 'blobs, 1 px per level', mask: randomMask(rand, 32, 24, 0.15, 4), dilation: 1 },
    { name: 'speckle, no dilation (FISEdit)', mask: randomMask(rand, 32, 24, 0.05), dilation: 0 },
    { name: 'blobs, per-level dilation, coverCoarse', mask: randomMask(rand, 32, 24, 0.1, 3), dilation: [0, 1, 2], coverCoarse: true },
    { name: 'border-touching block', mask: { width: 16, height: 16, data: Uint8Array.from({ length: 256 }, (_, p) => (p % 16 < 3 && p < 64 ? 1 : 0)) }, dilation: 1 },
  ];

  test.each(cases)('$name: active sets follow the any-child + dilation rule', ({ mask, dilation, coverCoarse }) => {
    const levels = buildMaskPyramid(mask, { levels: 3, dilation, coverCoarse });
    const d = typeof dilation === 'number' ? [dilation, dilation, dilation] : dilation;
    expect(levels.map((l) => [l.width, l.height])).toEqual([[mask.width, mask.height], [mask.width / 2, mask.height / 2], [mask.width / 4, mask.height / 4]]);
    let expected = dilate(mask, 2 * d[0] + 1);
    const bottomUp = [expected];
    for (let i = 1; i < 3; i++) bottomUp.push((expected = dilate(downsampleAny(expected, 2), 2 * d[i] + 1)));
    for (let i = 0; i < 3; i++) {
      const l = levels[i];
      if (!coverCoarse) expect(Array.from(l.mask.data)).toEqual(Array.from(bottomUp[i].data));
      expect(setOf(l.active)).toEqual(pixelsOf(l.mask));
      expect(l.active.length + l.inactive.length).toBe(l.width * l.height);
      expect(l.fraction).toBeCloseTo(l.active.length / (l.width * l.height), 12);
      l.active.forEach((p, r) => expect(l.rowOf[p]).toBe(r));
      l.inactive.forEach((p) => expect(l.rowOf[p]).toBe(-1));
      // Coarser level contains every parent of an active finer pixel.
      if (i < 2) {
        const parents = downsampleAny(l.mask, 2);
        parents.data.forEach((v, p) => v && expect(levels[i + 1].mask.data[p]).toBe(1));
      }
      if (coverCoarse && i < 2) {
        const children = upsampleNearest(levels[i + 1].mask, 2);
        children.data.forEach((v, p) => v && expect(l.mask.data[p]).toBe(1));
      }
    }
    expect(pyramidFractions(levels).map((f) => f.active)).toEqual(levels.map((l) => l.active.length));
  });

  test.each(cases)('$name: 3×3 conv via the neighbour table equals a dense conv of the mixed map', ({ mask, dilation, coverCoarse }) => {
    const levels = buildMaskPyramid(mask, { levels: 3, dilation, coverCoarse });
    const weight = randomArray(rand, CO * C * 9);
    for (const l of levels) {
      const n = l.width * l.height;
      const fresh = randomArray(rand, n * C);
      const cached = randomArray(rand, n * C);
      const { conv } = l;
      // Halo = the in-image 1-px ring around the active set, ascending.
      const ring = pixelsOf(dilate(l.mask, 3)).filter((p) => !l.mask.data[p]);
      expect(setOf(conv.halo)).toEqual(ring);
      expect(conv.zeroRow).toBe(l.active.length + conv.halo.length);
      if (l.active.length > 0 && l.active.length < n) expect(conv.halo.length).toBeGreaterThan(0); // the cache path is exercised
      expect(conv.neighbors.length).toBe(9 * l.active.length);
      expect(conv.neighbors.every((v) => v >= 0 && v <= conv.zeroRow)).toBe(true);
      const got = sparseConv(rowsOf(fresh, l.active), l.active.length, cached, conv, weight, l.active.length);
      const m = mixed(l, fresh, cached);
      l.active.forEach((p, r) => {
        const want = denseConvAt(m, l.width, l.height, weight, 1, Math.floor(p / l.width), p % l.width);
        for (let o = 0; o < CO; o++) expect(got[r][o]).toBeCloseTo(want[o], 12);
      });
    }
  });

  test.each(cases)('$name: stride-2 downsample and nearest upsample index maps', ({ mask, dilation, coverCoarse }) => {
    const levels = buildMaskPyramid(mask, { levels: 3, dilation, coverCoarse });
    const weight = randomArray(rand, CO * C * 9);
    for (let i = 1; i < 3; i++) {
      const fine = levels[i - 1];
      const coarse = levels[i];
      const table = coarse.downsample!;
      const fresh = randomArray(rand, fine.width * fine.height * C);
      const cached = randomArray(rand, fine.width * fine.height * C);
      const got = sparseConv(rowsOf(fresh, fine.active), fine.active.length, cached, table, weight, coarse.active.length);
      const m = mixed(fine, fresh, cached);
      coarse.active.forEach((p, r) => {
        const want = denseConvAt(m, fine.width, fine.height, weight, 2, Math.floor(p / coarse.width), p % coarse.width);
        for (let o = 0; o < CO; o++) expect(got[r][o]).toBeCloseTo(want[o], 12);
      });
      expect(table.halo.every((p) => fine.rowOf[p] === -1)).toBe(true);
    }
    expect(levels[0].downsample).toBeUndefined();
    expect(levels[2].upsample).toBeUndefined();
    for (let i = 0; i < 2; i++) {
      const fine = levels[i];
      const coarse = levels[i + 1];
      fine.active.forEach((p, r) => {
        const y = Math.floor(p / fine.width);
        const x = p % fine.width;
        expect(coarse.active[fine.upsample![r]]).toBe((y >> 1) * coarse.width + (x >> 1));
      });
    }
  });

  test.each(cases)('$name: the full-map variant gathers the same inputs', ({ mask, dilation, coverCoarse }) => {
    const levels = buildMaskPyramid(mask, { levels: 3, dilation, coverCoarse });
    for (let i = 0; i < 3; i++) {
      const pairs: Array<[ConvTable, PyramidLevel]> = [[levels[i].conv, levels[i]]];
      if (i > 0) pairs.push([levels[i].downsample!, levels[i - 1]]);
      for (const [table, input] of pairs) {
        const nIn = input.active.length;
        const n = input.width * input.height;
        const full = neighborsIntoFullMap(table, nIn, n);
        // Name every stack row by what it holds: 'a<pixel>' new active, 'c<pixel>' cached, 'z' zero.
        const haloStack = [...Array.from(input.active, (p) => `a${p}`), ...Array.from(table.halo, (p) => `c${p}`), 'z'];
        const fullStack = [...Array.from(input.active, (p) => `a${p}`), ...Array.from({ length: n }, (_, p) => `c${p}`), 'z'];
        expect(Array.from(full, (v) => fullStack[v])).toEqual(Array.from(table.neighbors, (v) => haloStack[v]));
      }
    }
  });

  test('all-active mask: no halo, out-of-image taps point at the zero row N', () => {
    const full = { width: 8, height: 8, data: new Uint8Array(64).fill(1) };
    const [l0] = buildMaskPyramid(full, { levels: 2 });
    expect(l0.conv.halo.length).toBe(0);
    expect(l0.conv.zeroRow).toBe(64);
    // Pixel (0, 0): taps (−1,−1), (−1,0), (−1,1), (0,−1), (1,−1) are outside.
    expect(Array.from(l0.conv.neighbors.subarray(0, 9))).toEqual([64, 64, 64, 64, 0, 1, 64, 8, 9]);
    expect(l0.fraction).toBe(1);
  });

  test('empty mask: empty sets and tables', () => {
    const levels = buildMaskPyramid({ width: 8, height: 8, data: new Uint8Array(64) }, { levels: 3 });
    for (const l of levels) {
      expect(l.active.length).toBe(0);
      expect(l.conv.neighbors.length).toBe(0);
      expect(l.conv.zeroRow).toBe(0);
      expect(l.fraction).toBe(0);
    }
  });

  test('buildConvTable works for an arbitrary set (fused-resnet conv1 over A ⊕ 1)', () => {
    const m = randomMask(rand, 12, 12, 0.1, 2);
    const wide = dilate(m, 3);
    const t = buildConvTable(wide);
    expect(setOf(t.halo)).toEqual(pixelsOf(dilate(wide, 3)).filter((p) => !wide.data[p]));
  });

  test('sizes that the levels cannot halve, and bad options, are errors', () => {
    const m = { width: 10, height: 12, data: new Uint8Array(120) };
    expect(() => buildMaskPyramid(m, { levels: 3 })).toThrow(/10x12 is not divisible by 2\^2 = 4/);
    expect(() => buildMaskPyramid(m, { levels: 2, dilation: [1] })).toThrow(/1 values for 2 levels/);
    expect(() => buildMaskPyramid(m, { levels: 2, dilation: -1 })).toThrow(/non-negative/);
  });
});

describe('lazy gather tables', () => {
  it('are built on first read, once, and are plain enumerable fields to copies and comparisons', () => {
    const rnd = seededRandom(11);
    const mask = randomMask(rnd, 32, 32, 0.2);
    const a = buildMaskPyramid(mask, { levels: 3 });
    const b = buildMaskPyramid(mask, { levels: 3 });
    for (const l of a) expect(Object.getOwnPropertyDescriptor(l, 'conv')!.get).toBeDefined(); // not built yet
    expect(a[1].conv).toBe(a[1].conv); // memoised
    expect(a[0].upsample).toBe(a[0].upsample);
    expect(Object.keys(a[1])).toEqual(expect.arrayContaining(['conv', 'downsample', 'upsample']));
    expect({ ...a[2] }.downsample).toEqual(b[2].downsample);
    expect(a).toEqual(b);
    // the table of a level is that of the same active set built alone
    expect(a[0].conv).toEqual(buildConvTable(a[0].mask));
  });
});

describe("coarseCover 'half'", () => {
  // Children counted directly from the finer level (an independent count, not the module's code).
  const childCount = (fine: BinaryMask, y: number, x: number) =>
    fine.data[2 * y * fine.width + 2 * x] + fine.data[2 * y * fine.width + 2 * x + 1] + fine.data[(2 * y + 1) * fine.width + 2 * x] + fine.data[(2 * y + 1) * fine.width + 2 * x + 1];

  it('activates the coarse pixels with at least 2 of 4 children active, and no more than any', () => {
    const rnd = seededRandom(5);
    for (let trial = 0; trial < 20; trial++) {
      const mask = randomMask(rnd, 32, 32, 0.1 + 0.02 * trial);
      const half = buildMaskPyramid(mask, { levels: 4, dilation: 0, coarseCover: 'half' });
      const any = buildMaskPyramid(mask, { levels: 4, dilation: 0 });
      expect(half[0].mask.data).toEqual(any[0].mask.data);
      for (let i = 1; i < 4; i++) {
        const fine = half[i - 1].mask;
        const expected = new Uint8Array(half[i].width * half[i].height);
        for (let y = 0; y < half[i].height; y++) for (let x = 0; x < half[i].width; x++) expected[y * half[i].width + x] = childCount(fine, y, x) >= 2 ? 1 : 0;
        if (expected.some((v) => v)) expect(half[i].mask.data).toEqual(expected);
        expect(half[i].active.length).toBeLessThanOrEqual(any[i].active.length);
      }
    }
  });

  it('lists the active pixels whose coarse parent is inactive, and indexes them after the coarse rows', () => {
    // A 3-pixel L at the top left: its 2×2 cell has 3 children (active); a lone pixel at (1, 5) has 1 (inactive).
    const m: BinaryMask = { width: 8, height: 8, data: new Uint8Array(64) };
    for (const [y, x] of [[0, 0], [0, 1], [1, 0], [1, 5]]) m.data[y * 8 + x] = 1;
    const [l0, l1] = buildMaskPyramid(m, { levels: 2, dilation: 0, coarseCover: 'half' });
    expect(setOf(l1.active)).toEqual([0]);
    expect(setOf(l0.upsampleFallback!)).toEqual([13]);
    // active rows of l0: pixels 0, 1, 8, 13 → parents row 0, 0, 0, then fallback 0 after N_1 = 1 coarse row
    expect(setOf(l0.active)).toEqual([0, 1, 8, 13]);
    expect(setOf(l0.upsample!)).toEqual([0, 0, 0, 1]);
    // 'any' keeps both cells and has no fallback
    const [a0, a1] = buildMaskPyramid(m, { levels: 2, dilation: 0 });
    expect(setOf(a1.active)).toEqual([0, 2]);
    expect(a0.upsampleFallback!.length).toBe(0);
    expect(setOf(a0.upsample!)).toEqual([0, 0, 0, 1]);
  });

  it("falls back to 'any' where 'half' would leave a level empty (a tiny mask still reaches the coarsest level)", () => {
    const m: BinaryMask = { width: 16, height: 16, data: new Uint8Array(256) };
    m.data[5 * 16 + 9] = 1;
    const half = buildMaskPyramid(m, { levels: 4, dilation: 0, coarseCover: 'half' });
    expect(half.map((l) => l.active.length)).toEqual([1, 1, 1, 1]);
    expect(half.slice(0, 3).every((l) => l.upsampleFallback!.length === 0)).toBe(true);
    expect(() => buildMaskPyramid(m, { levels: 2, coarseCover: 'most' as never })).toThrow(/coarseCover/);
  });
});
