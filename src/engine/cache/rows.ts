// Row arithmetic for cache entries: a tensor [...outer, R, ...inner] seen as `outer` blocks of R rows
// of `inner` elements each (see cacheTypes.ts). Used to overlay deltas and to cut deltas from full maps.

import { CacheUsageError } from './cacheTypes';

export interface RowGeometry {
  /** Product of the dimensions before rowAxis (e.g. 2 for the CFG batch). */
  outer: number;
  /** Length of rowAxis (pixels or tokens). */
  rows: number;
  /** Product of the dimensions after rowAxis (e.g. channels). */
  inner: number;
}

export function rowGeometry(where: string, shape: readonly number[], rowAxis: number): RowGeometry {
  if (!Array.isArray(shape) || shape.length === 0 || !shape.every((d) => Number.isInteger(d) && d >= 0)) {
    throw new CacheUsageError(where, `shape must be a non-empty list of non-negative integers, got ${JSON.stringify(shape)}`);
  }
  if (!Number.isInteger(rowAxis) || rowAxis < 0 || rowAxis >= shape.length) {
    throw new CacheUsageError(where, `rowAxis ${rowAxis} is not an axis of shape [${shape.join(', ')}]`);
  }
  const prod = (a: readonly number[]) => a.reduce((x, y) => x * y, 1);
  return { outer: prod(shape.slice(0, rowAxis)), rows: shape[rowAxis], inner: prod(shape.slice(rowAxis + 1)) };
}

/** Throws unless rows is strictly increasing within [0, limit). */
export function checkRowIndices(where: string, rows: Int32Array, limit: number): void {
  for (let i = 0; i < rows.length; i++) {
    if (rows[i] < 0 || rows[i] >= limit) throw new CacheUsageError(where, `row index ${rows[i]} at position ${i} is outside 0..${limit - 1}`);
    if (i > 0 && rows[i] <= rows[i - 1]) throw new CacheUsageError(where, `row indices must be strictly increasing (position ${i}: ${rows[i - 1]} then ${rows[i]})`);
  }
}

/** full [outer, R, inner] → [outer, rows.length, inner]: the rows a delta stores. */
export function gatherRows(full: Uint16Array, g: RowGeometry, rows: Int32Array): Uint16Array {
  const k = rows.length;
  const out = new Uint16Array(g.outer * k * g.inner);
  for (let o = 0; o < g.outer; o++) {
    const src = o * g.rows * g.inner;
    const dst = o * k * g.inner;
    for (let r = 0; r < k; r++) {
      const s = src + rows[r] * g.inner;
      out.set(full.subarray(s, s + g.inner), dst + r * g.inner);
    }
  }
  return out;
}

/** Overlay: target[o, rows[r], :] = delta[o, r, :]. */
export function scatterRows(target: Uint16Array, g: RowGeometry, rows: Int32Array, delta: Uint16Array): void {
  const k = rows.length;
  const inner = g.inner;
  for (let o = 0; o < g.outer; o++) {
    const dst = o * g.rows * inner;
    const src = o * k * inner;
    if (inner < 16) {
      // short rows (latents: inner = 1): a plain loop beats a subarray + set per row
      for (let r = 0; r < k; r++) {
        const d = dst + rows[r] * inner;
        const s = src + r * inner;
        for (let c = 0; c < inner; c++) target[d + c] = delta[s + c];
      }
    } else {
      for (let r = 0; r < k; r++) {
        const s = src + r * inner;
        target.set(delta.subarray(s, s + inner), dst + rows[r] * inner);
      }
    }
  }
}
