// Per-step arithmetic of the edit around the shared denoising step (denoiseLoop.ts), on flat float32
// latents [C, h, w].

/** In place: x[c, p] = parent[c, p] wherever keep[p] is 0 (bit copies). */
export function takeParentOutside(x: Float32Array, parent: Float32Array, keep: Uint8Array): void {
  const hw = keep.length;
  const channels = x.length / hw;
  for (let c = 0; c < channels; c++) {
    const o = c * hw;
    for (let p = 0; p < hw; p++) if (!keep[p]) x[o + p] = parent[o + p];
  }
}

/** Index of the first non-finite value, or −1. */
export function firstNonFinite(x: Float32Array): number {
  for (let i = 0; i < x.length; i++) if (!Number.isFinite(x[i])) return i;
  return -1;
}
