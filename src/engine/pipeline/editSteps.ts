// Per-step arithmetic of the edit loop, on flat float32 latents [C, h, w] (one image; the CFG batch
// only exists around the UNet call). Every operation rounds to float32 exactly as generate.ts does, so
// a dense edit with an all-active mask reproduces generate() bit for bit.

/** ε = ε_u + s·(ε_c − ε_u) over [B, n] (B = 2), or ε itself for B = 1. */
export function guideNoise(eps: Float32Array, batch: number, guidance: number, n: number): Float32Array {
  if (batch === 1) return eps.subarray(0, n);
  const g = Math.fround(guidance);
  const out = new Float32Array(n);
  for (let k = 0; k < n; k++) {
    const u = eps[k];
    out[k] = Math.fround(u + Math.fround(g * Math.fround(eps[n + k] - u)));
  }
  return out;
}

/** x [C, hw] → rows [B, N, C] at `active` pixels (channels last), the same rows in every batch element. */
export function gatherActiveRows(x: Float32Array, channels: number, active: Int32Array, batch: number): Float32Array {
  const hw = x.length / channels;
  const N = active.length;
  const out = new Float32Array(batch * N * channels);
  for (let r = 0; r < N; r++) {
    const p = active[r];
    for (let c = 0; c < channels; c++) out[r * channels + c] = x[c * hw + p];
  }
  for (let b = 1; b < batch; b++) out.copyWithin(b * N * channels, 0, N * channels);
  return out;
}

/**
 * Sparse ε rows [B, N, C] → guided ε [C, hw], zero at pixels outside `active` (those pixels take the
 * parent's latents after the scheduler step, so their ε is never used).
 */
export function scatterGuidedRows(rows: Float32Array, batch: number, guidance: number, channels: number, active: Int32Array, hw: number): Float32Array {
  const N = active.length;
  if (rows.length !== batch * N * channels) throw new RangeError(`sparse step returned ${rows.length} values, expected [${batch}, ${N}, ${channels}]`);
  const g = Math.fround(guidance);
  const out = new Float32Array(channels * hw);
  const cond = (batch - 1) * N * channels;
  for (let r = 0; r < N; r++) {
    const p = active[r];
    for (let c = 0; c < channels; c++) {
      const u = rows[r * channels + c];
      out[c * hw + p] = batch === 1 ? u : Math.fround(u + Math.fround(g * Math.fround(rows[cond + r * channels + c] - u)));
    }
  }
  return out;
}

/** In place: x[c, p] = parent[c, p] wherever keep[p] is 0 (bit copies). */
export function takeParentOutside(x: Float32Array, parent: Float32Array, keep: Uint8Array): void {
  const hw = keep.length;
  const channels = x.length / hw;
  for (let c = 0; c < channels; c++) {
    const o = c * hw;
    for (let p = 0; p < hw; p++) if (!keep[p]) x[o + p] = parent[o + p];
  }
}

/** Non-finite check with the step named in the message. */
export function firstNonFinite(x: Float32Array): number {
  for (let i = 0; i < x.length; i++) if (!Number.isFinite(x[i])) return i;
  return -1;
}
