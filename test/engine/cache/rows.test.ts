import { checkRowIndices, gatherRows, rowGeometry, scatterRows } from '../../../src/engine/cache/rows';

describe('row geometry, gather and scatter', () => {
  test('geometry of [2, R, C] on axis 1, latents [4, R] on axis 1, and bad axes', () => {
    expect(rowGeometry('t', [2, 10, 3], 1)).toEqual({ outer: 2, rows: 10, inner: 3 });
    expect(rowGeometry('t', [4, 10], 1)).toEqual({ outer: 4, rows: 10, inner: 1 });
    expect(() => rowGeometry('t', [4, 10], 2)).toThrow(/not an axis/);
    expect(() => rowGeometry('t', [], 0)).toThrow(/non-empty/);
  });

  test.each([[[2, 10, 3], 1], [[4, 10], 1], [[10, 40], 0]] as Array<[number[], number]>)('shape %j axis %i: gather matches element-wise indexing; scatter inverts it', (shape, axis) => {
    const g = rowGeometry('t', shape, axis);
    const full = Uint16Array.from({ length: g.outer * g.rows * g.inner }, (_, i) => i + 1);
    const rows = Int32Array.of(0, 3, 4, 9);
    const got = gatherRows(full, g, rows);
    for (let o = 0; o < g.outer; o++) {
      rows.forEach((r, k) => {
        for (let c = 0; c < g.inner; c++) expect(got[(o * rows.length + k) * g.inner + c]).toBe(full[(o * g.rows + r) * g.inner + c]);
      });
    }
    const back = new Uint16Array(full.length);
    scatterRows(back, g, rows, got);
    for (let i = 0; i < full.length; i++) {
      const r = Math.floor(i / g.inner) % g.rows;
      expect(back[i]).toBe(rows.includes(r) ? full[i] : 0);
    }
  });

  test('row indices must be strictly increasing and in range', () => {
    expect(() => checkRowIndices('t', Int32Array.of(0, 2, 2), 5)).toThrow(/strictly increasing/);
    expect(() => checkRowIndices('t', Int32Array.of(-1), 5)).toThrow(/outside 0\.\.4/);
    expect(() => checkRowIndices('t', Int32Array.of(1, 4), 5)).not.toThrow();
  });
});
