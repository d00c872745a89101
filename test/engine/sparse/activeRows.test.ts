import { ActiveRowsError, gatherActiveRows, scatterActiveRows } from '../../../src/engine/sparse/activeRows';

describe('active rows', () => {
  // map [2, 3, 4] with value b·100 + c·10 + p
  const map = Float32Array.from({ length: 24 }, (_, i) => Math.floor(i / 12) * 100 + (Math.floor(i / 4) % 3) * 10 + (i % 4));
  const active = Int32Array.from([1, 3]);

  it('gathers [B, N, C] rows at the active pixels', () => {
    expect(Array.from(gatherActiveRows(map, 2, 3, 4, active))).toEqual([1, 11, 21, 3, 13, 23, 101, 111, 121, 103, 113, 123]);
  });

  it('scatters rows back and leaves the other pixels alone', () => {
    const target = new Float32Array(24).fill(-1);
    scatterActiveRows(gatherActiveRows(map, 2, 3, 4, active), target, 2, 3, 4, active);
    for (let i = 0; i < 24; i++) expect(target[i]).toBe(i % 4 === 1 || i % 4 === 3 ? map[i] : -1);
  });

  it('refuses mismatched sizes', () => {
    expect(() => gatherActiveRows(map, 2, 3, 5, active)).toThrow(ActiveRowsError);
    expect(() => scatterActiveRows(new Float32Array(5), new Float32Array(24), 2, 3, 4, active)).toThrow(ActiveRowsError);
  });
});
