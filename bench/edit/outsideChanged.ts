// The check every edit bench prints: pixels outside the edit's affected region that differ from the parent.
import type { EditResult } from '../../src/engine/pipeline/editTypes';

/** Pixels outside `e.affected` whose RGB differs from the parent's (0 for a correct FISEdit edit). */
export function outsideChanged(e: EditResult, parent: Uint8Array): number {
  let n = 0;
  for (let p = 0; p < e.affected.data.length; p++) {
    if (e.affected.data[p]) continue;
    if (e.rgb[3 * p] !== parent[3 * p] || e.rgb[3 * p + 1] !== parent[3 * p + 1] || e.rgb[3 * p + 2] !== parent[3 * p + 2]) n++;
  }
  return n;
}

/** Mean and max |a − b| (in /255, over channels) at the pixels inside `region` (e.g. two edits of one mask). */
export function insideDifference(a: Uint8Array, b: Uint8Array, region: { data: Uint8Array }): { mean: number; max: number } {
  let sum = 0;
  let n = 0;
  let max = 0;
  for (let p = 0; p < region.data.length; p++) {
    if (!region.data[p]) continue;
    for (let c = 0; c < 3; c++) {
      const d = Math.abs(a[3 * p + c] - b[3 * p + c]);
      sum += d;
      max = Math.max(max, d);
      n++;
    }
  }
  return { mean: n ? sum / n : 0, max };
}
