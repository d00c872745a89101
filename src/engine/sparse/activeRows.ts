// Between NCHW latents (what schedulers and the dense UNet use) and the sparse step's active rows
// [B, N, C] (channels last, rows in the order of a pyramid level's `active` pixel list).

export class ActiveRowsError extends Error {
  constructor(reason: string) {
    super(`sparse/activeRows.ts: ${reason}`);
    this.name = 'ActiveRowsError';
  }
}

function check(where: string, mapLength: number, batch: number, channels: number, pixels: number): void {
  if (mapLength !== batch * channels * pixels) throw new ActiveRowsError(`${where}: map has ${mapLength} values, not [${batch}, ${channels}, ${pixels}]`);
}

/** map [B, C, h·w] → rows [B, N, C] at `active` (pixel indices p = y·w + x). */
export function gatherActiveRows(map: Float32Array, batch: number, channels: number, pixels: number, active: Int32Array): Float32Array {
  check('gatherActiveRows', map.length, batch, channels, pixels);
  const n = active.length;
  const out = new Float32Array(batch * n * channels);
  for (let b = 0; b < batch; b++) {
    for (let c = 0; c < channels; c++) {
      const src = (b * channels + c) * pixels;
      for (let r = 0; r < n; r++) out[(b * n + r) * channels + c] = map[src + active[r]];
    }
  }
  return out;
}

/** rows [B, N, C] → written into map [B, C, h·w] at `active`; other pixels are left as they are. */
export function scatterActiveRows(rows: Float32Array, map: Float32Array, batch: number, channels: number, pixels: number, active: Int32Array): void {
  check('scatterActiveRows', map.length, batch, channels, pixels);
  const n = active.length;
  if (rows.length !== batch * n * channels) throw new ActiveRowsError(`scatterActiveRows: rows have ${rows.length} values, not [${batch}, ${n}, ${channels}]`);
  for (let b = 0; b < batch; b++) {
    for (let c = 0; c < channels; c++) {
      const dst = (b * channels + c) * pixels;
      for (let r = 0; r < n; r++) map[dst + active[r]] = rows[(b * n + r) * channels + c];
    }
  }
}
