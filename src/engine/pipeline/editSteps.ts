// Per-step arithmetic of the edit around the shared denoising step (denoiseLoop.ts), on flat float32
// latents [C, h, w].

/** In place: x[c, p] = parent[c, p] wherever keep[p] is 0 (bit copies). */
export function takeParentOutside(x: Float32Array, parent: Float32Array, keep: Uint8Array): void {
  parentOutsideCopier(keep)(x, parent);
}

/**
 * takeParentOutside for one mask, many steps: the runs of 0s in `keep` are found once, and each step
 * copies those runs (an edit's per-step test of every pixel ran cold in a fresh CLI process).
 */
export function parentOutsideCopier(keep: Uint8Array): (x: Float32Array, parent: Float32Array) => void {
  const hw = keep.length;
  const runs: number[] = [];
  for (let p = 0; p < hw; ) {
    if (keep[p]) {
      p++;
      continue;
    }
    const start = p;
    while (p < hw && !keep[p]) p++;
    runs.push(start, p);
  }
  return (x, parent) => {
    if (x.length % hw || parent.length !== x.length) throw new RangeError(`takeParentOutside: ${x.length} and ${parent.length} values for a ${hw}-pixel mask`);
    // Native copies of each run: an element loop ran interpreted (cold) in a fresh CLI process.
    for (let o = 0; o < x.length; o += hw) {
      for (let r = 0; r < runs.length; r += 2) x.set(parent.subarray(o + runs[r], o + runs[r + 1]), o + runs[r]);
    }
  };
}

/** Index of the first non-finite value, or −1. */
export function firstNonFinite(x: Float32Array): number {
  for (let i = 0; i < x.length; i++) if (!Number.isFinite(x[i])) return i;
  return -1;
}
