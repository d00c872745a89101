import { BinaryMask } from '../../../src/engine/mask/binaryMask';
import { cleanMask, close, dilate, erode, fillHoles, labelComponents, open, removeSmallComponents } from '../../../src/engine/mask/morphology';
import { randomMask, seededRandom } from './seededRandom';

// Naive references written from the set definitions (B = {−a … k−1−a}², a = ⌊k/2⌋).
function offsets(k: number): number[] {
  const a = Math.floor(k / 2);
  return Array.from({ length: k }, (_, i) => i - a);
}
function erodeNaive(m: BinaryMask, k: number): Uint8Array {
  const out = new Uint8Array(m.data.length);
  for (let y = 0; y < m.height; y++) {
    for (let x = 0; x < m.width; x++) {
      let ok = 1;
      for (const by of offsets(k)) {
        for (const bx of offsets(k)) {
          const qx = x + bx;
          const qy = y + by;
          if (qx >= 0 && qy >= 0 && qx < m.width && qy < m.height && !m.data[qy * m.width + qx]) ok = 0;
        }
      }
      out[y * m.width + x] = ok;
    }
  }
  return out;
}
// Minkowski sum: every active x stamps x + b for b ∈ B.
function dilateNaive(m: BinaryMask, k: number): Uint8Array {
  const out = new Uint8Array(m.data.length);
  for (let y = 0; y < m.height; y++) {
    for (let x = 0; x < m.width; x++) {
      if (!m.data[y * m.width + x]) continue;
      for (const by of offsets(k)) {
        for (const bx of offsets(k)) {
          const qx = x + bx;
          const qy = y + by;
          if (qx >= 0 && qy >= 0 && qx < m.width && qy < m.height) out[qy * m.width + qx] = 1;
        }
      }
    }
  }
  return out;
}
const subset = (a: Uint8Array, b: Uint8Array) => a.every((v, i) => v <= b[i]);
const fromRows = (rows: string[]): BinaryMask => ({
  width: rows[0].length,
  height: rows.length,
  data: Uint8Array.from(rows.join('').split(''), (c) => (c === '#' ? 1 : 0)),
});
const toRows = (m: BinaryMask): string[] =>
  Array.from({ length: m.height }, (_, y) => Array.from(m.data.subarray(y * m.width, (y + 1) * m.width), (v) => (v ? '#' : '.')).join(''));

describe('erode / dilate / open / close', () => {
  test('match the naive set definitions for k = 1..5, 9 and 13 on random masks (incl. 1-pixel-wide images and windows wider than the image)', () => {
    const rand = seededRandom(3);
    const sizes: Array<[number, number]> = [[1, 9], [9, 1], [7, 5], [16, 16], [23, 11]];
    for (const [w, h] of sizes) {
      for (const k of [1, 2, 3, 4, 5, 9, 13]) {
        for (const density of [0.05, 0.2, 0.5, 0.8, 0.95]) {
          const m = randomMask(rand, w, h, density);
          expect(Array.from(erode(m, k).data)).toEqual(Array.from(erodeNaive(m, k)));
          expect(Array.from(dilate(m, k).data)).toEqual(Array.from(dilateNaive(m, k)));
        }
      }
    }
  });

  test('2×2: a single pixel dilates up-left (scipy convention); erosion keeps the bottom-right corner (OpenCV)', () => {
    const one = fromRows(['.....', '.....', '...#.', '.....']);
    expect(toRows(dilate(one, 2))).toEqual(['.....', '..##.', '..##.', '.....']);
    const block = fromRows(['......', '.###..', '.###..', '.###..', '......']);
    expect(toRows(erode(block, 2))).toEqual(['......', '......', '..##..', '..##..', '......']);
    // Opening a shape the element fits in gives the shape back, unshifted (OpenCV would shift it by +1, +1).
    expect(toRows(open(block, 2))).toEqual(toRows(block));
  });

  test('FISEdit 2×2 opening removes 1-pixel lines and isolated pixels but keeps 2×2 blobs', () => {
    const m = fromRows(['........', '.#......', '.####...', '........', '.....##.', '.....##.']);
    expect(toRows(open(m, 2))).toEqual(['........', '........', '........', '........', '.....##.', '.....##.']);
  });

  test('border rule: pixels outside the image never erode, so a corner pixel survives a 2×2 opening (as in OpenCV)', () => {
    const m = fromRows(['#...', '....', '....']);
    expect(toRows(erode(m, 2))).toEqual(['#...', '....', '....']);
    expect(toRows(open(m, 2))).toEqual(['#...', '....', '....']);
  });

  test('opening ⊆ mask ⊆ closing, both idempotent, for even and odd k', () => {
    const rand = seededRandom(11);
    for (let k = 2; k <= 4; k++) {
      for (let trial = 0; trial < 5; trial++) {
        const m = randomMask(rand, 20, 17, 0.5);
        const o = open(m, k);
        const c = close(m, k);
        expect(subset(o.data, m.data)).toBe(true);
        expect(subset(m.data, c.data)).toBe(true);
        expect(Array.from(open(o, k).data)).toEqual(Array.from(o.data));
        expect(Array.from(close(c, k).data)).toEqual(Array.from(c.data));
      }
    }
  });

  test('bad kernel sizes are errors', () => {
    const m = fromRows(['#']);
    expect(() => erode(m, 0)).toThrow(/positive integer/);
    expect(() => dilate(m, 1.5)).toThrow(/positive integer/);
  });
});

// Union–find reference for component sizes.
function componentSizesNaive(m: BinaryMask, conn: 4 | 8): number[] {
  const parent = Array.from(m.data, (_, i) => i);
  const find = (i: number): number => (parent[i] === i ? i : (parent[i] = find(parent[i])));
  for (let y = 0; y < m.height; y++) {
    for (let x = 0; x < m.width; x++) {
      const p = y * m.width + x;
      if (!m.data[p]) continue;
      const nbrs = conn === 8 ? [[1, 0], [0, 1], [1, 1], [-1, 1]] : [[1, 0], [0, 1]];
      for (const [dx, dy] of nbrs) {
        const qx = x + dx;
        const qy = y + dy;
        if (qx < 0 || qy < 0 || qx >= m.width || qy >= m.height || !m.data[qy * m.width + qx]) continue;
        parent[find(qy * m.width + qx)] = find(p);
      }
    }
  }
  const size = new Map<number, number>();
  m.data.forEach((v, i) => v && size.set(find(i), (size.get(find(i)) ?? 0) + 1));
  return [...size.values()].sort((a, b) => a - b);
}

describe('connected components', () => {
  test('component sizes match union–find for 4- and 8-connectivity', () => {
    const rand = seededRandom(5);
    for (let trial = 0; trial < 10; trial++) {
      const m = randomMask(rand, 19, 13, 0.45);
      for (const conn of [4, 8] as const) {
        expect([...labelComponents(m, conn).sizes].sort((a, b) => a - b)).toEqual(componentSizesNaive(m, conn));
      }
    }
  });

  test('removeSmallComponents keeps exactly the components with ≥ N pixels', () => {
    const rand = seededRandom(9);
    const m = randomMask(rand, 30, 30, 0.3);
    const out = removeSmallComponents(m, 5);
    const { labels, sizes } = labelComponents(m, 8);
    for (let i = 0; i < m.data.length; i++) expect(out.data[i]).toBe(m.data[i] && sizes[labels[i]] >= 5 ? 1 : 0);
    expect(componentSizesNaive(out, 8).every((s) => s >= 5)).toBe(true);
  });

  test('diagonal neighbours join under 8- but not 4-connectivity', () => {
    const m = fromRows(['#..', '.#.', '..#']);
    expect(labelComponents(m, 8).sizes).toEqual([3]);
    expect(labelComponents(m, 4).sizes).toEqual([1, 1, 1]);
    expect(toRows(removeSmallComponents(m, 2, 4))).toEqual(['...', '...', '...']);
  });

  test('fillHoles fills enclosed background only, up to maxArea', () => {
    const m = fromRows(['#####....', '#...#..#.', '#...#.#.#', '#####..#.', '.........']);
    expect(toRows(fillHoles(m))).toEqual(['#####....', '#####..#.', '#####.###', '#####..#.', '.........']);
    expect(toRows(fillHoles(m, 1))).toEqual(['#####....', '#...#..#.', '#...#.###', '#####..#.', '.........']);
    // A "hole" open to the border is not a hole.
    const u = fromRows(['#.#', '#.#', '###']);
    expect(toRows(fillHoles(u))).toEqual(['#.#', '#.#', '###']);
  });

  test('cleanMask applies open → close → specks → holes → dilate', () => {
    const m = fromRows(['#.........', '..........', '..###.....', '..#.#.....', '..###.....', '..........']);
    const out = cleanMask(m, { minComponent: 2, fillHoles: true });
    expect(toRows(out)).toEqual(['..........', '..........', '..###.....', '..###.....', '..###.....', '..........']);
    expect(toRows(cleanMask(out, { dilate: 1 }))[1]).toBe('.#####....');
  });
});
