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
