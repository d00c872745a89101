// From a latent-resolution mask to what the sparse UNet needs at each of its resolutions.
//
// LEVELS. Level i is the UNet resolution (H/2^i) × (W/2^i); level 0 is the latent itself (SD 1.5 at
// 512 px: 64², 32², 16², 8²). A_i is the set of active pixels at level i: their rows are recomputed,
// every other pixel takes the parent's cached value.
//   A_0     = dilate(mask, d_0)
//   A_{i+1} = dilate(cover(A_i), d_{i+1})   cover 'any' (default, FISEdit's and SIGE's rule): a coarse
//             pixel is active if any of its 2×2 children is; 'half': if at least 2 of the 4 are
// d_i (options.dilation, default 1 px per level, as SIGE) keeps the recomputed region one step ahead of
// the change: a 3×3 conv spreads a change by 1 px, so the ring just outside the changed pixels is
// recomputed rather than read stale from the cache. With 'any', A_{i+1} ⊇ parent(A_i), so a nearest
// upsample into level i only ever reads active coarse rows. 'half' trades exactness at the region's
// border for work (a 25 % disc at a 32² latent: coarse levels 27/25/38 % active instead of 30/38/50 %):
// a fine active pixel whose coarse parent is inactive takes the parent node's upsampled coarse value,
// i.e. its cached upsampler-conv input (upsampleFallback). A level that 'half' would leave empty falls
// back to 'any' (a tiny mask still reaches the coarsest level). coverCoarse additionally adds children(A_{i+1}) to
// A_i (top-down), so that everything the coarse level changes is recomputed at the fine level too; it
// costs area (a 1-px dilation at 8² is 8 px at 64²), so it is off by default.
//
// HALO RULE. A 3×3 conv (stride 1, pad 1) whose outputs are the N rows of A needs its input at A ⊕ 1 px.
// The active part comes from the new rows; the ring (A ⊕ 1) \ A, the "halo", is read from the PARENT's
// cached input of that same conv at that step (SIGE's and FISEdit's approximation); outside the image
// the input is zero (conv zero padding). A resnet is 2 convs, and each reads its own cached input, so
// each needs a 1-px halo and both use this level's table. Running two convs back to back without the
// cache in between (a fused resnet) would need a 2-px halo: build its conv1 table for A ⊕ 1 with
// buildConvTable(dilate(mask, 3)). Row-wise ops (1×1 convs, linears, norms) need no halo.
//
// INDEX CONVENTION (all Int32, all pixel indices row-major p = y·w + x at the level's own size):
//   active[r]   pixel of row r, ascending; N = active.length
//   rowOf[p]    r if p is active, else −1
//   halo[j]     pixel of halo row j, ascending; M = halo.length
//   neighbors   [N, 9], tap t = (dy+1)·3 + (dx+1), dy, dx ∈ {−1, 0, 1} (the kernel's own order, so the
//               gathered [N, 9, C] reshapes to [N, 9C] against the weight [C_out, C, 3, 3] permuted to
//               [3, 3, C, C_out] = [9C, C_out]). Each entry indexes the row stack
//                 X = concat([newActiveRows (N×C) ; haloRows (M×C) ; zeroRow (1×C)])
//               value < N: an active row; N ≤ value < N+M: halo row value−N; value = N+M: the zero row.
//               haloRows = Gather(cachedFullMap [h·w, C], halo). The zero row is X's last row, so an
//               index of −1 would address it as well; we write N+M so the table is valid for any gather.
//   Stride-2 downsample (level i−1 → i, 3×3, stride 2, pad 1): output pixel (Y, X) ∈ A_i reads input
//               (2Y+dy, 2X+dx); same tap order, indices into concat([level i−1 active rows ; its halo
//               rows from the cached downsample input ; zero row]).
//   Full-map variant: neighborsIntoFullMap() rewrites a table to index
//               concat([newActiveRows (N) ; cachedFullMap (h·w rows) ; zeroRow]) instead (cached pixel p is
//               row N + p, the zero row N + h·w): no halo Gather, at the cost of passing the whole map.
//   Nearest upsample (level i+1 → i): upsample[r] indexes concat([level i+1's active rows (N_{i+1}) ;
//               fallback rows]) for level i's active row r: the row of its parent (y>>1, x>>1) when
//               that parent is active, else N_{i+1} + j where upsampleFallback[j] is the pixel itself
//               (its row is the parent node's cached upsampled map at that pixel). 'any' has no fallback.

import { BinaryMask, checkMask, downsampleAny, MaskError, upsampleNearest } from './binaryMask';
import { dilate } from './morphology';

export interface ConvTable {
  /** Input pixels read from the cache, ascending (M). */
  halo: Int32Array;
  /** [N, 9]: indices into concat(input active rows ; halo rows ; zero row). */
  neighbors: Int32Array;
  /** Index of the zero row = N_in + M (the last row of the stack). */
  zeroRow: number;
}

export interface PyramidLevel {
  level: number;
  width: number;
  height: number;
  mask: BinaryMask;
  active: Int32Array;
  inactive: Int32Array;
  rowOf: Int32Array;
  /** N / (width · height). */
  fraction: number;
  /** 3×3 stride-1 conv at this level (outputs = inputs = active rows). */
  conv: ConvTable;
  /** Stride-2 conv from level − 1 into this level's active pixels (absent at level 0). */
  downsample?: ConvTable;
  /** [N]: row of each active pixel's coarse parent in concat(level + 1's active rows ; fallback rows) (absent at the last level). */
  upsample?: Int32Array;
  /** Active pixels of this level whose coarse parent is inactive, ascending (only with coarseCover 'half'; absent at the last level). */
  upsampleFallback?: Int32Array;
}

/** Which coarse pixels a finer level's active set makes active (see the header). */
export const COARSE_COVERS = ['any', 'half'] as const;
export type CoarseCover = (typeof COARSE_COVERS)[number];

export function isCoarseCover(v: unknown): v is CoarseCover {
  return (COARSE_COVERS as readonly unknown[]).includes(v);
}

export interface PyramidOptions {
  /** Number of UNet resolutions (SD: 4). The mask's size must be divisible by 2^(levels−1). */
  levels: number;
  /** Pixels of dilation per level at that level's resolution: one value or one per level. Default 1. */
  dilation?: number | readonly number[];
  /** Also activate the children of active coarse pixels (see the header). Default false. */
  coverCoarse?: boolean;
  /** Default 'any'. */
  coarseCover?: CoarseCover;
}

function perLevel(opts: PyramidOptions): number[] {
  const d = opts.dilation ?? 1;
  const list = typeof d === 'number' ? new Array<number>(opts.levels).fill(d) : [...d];
  if (list.length !== opts.levels) throw new MaskError('buildMaskPyramid', `dilation has ${list.length} values for ${opts.levels} levels`);
  for (const v of list) if (!Number.isInteger(v) || v < 0) throw new MaskError('buildMaskPyramid', `dilation must be non-negative integers, got ${v}`);
  return list;
}

function grow(m: BinaryMask, px: number): BinaryMask {
  return px > 0 ? dilate(m, 2 * px + 1) : m;
}

export function buildMaskPyramid(mask: BinaryMask, opts: PyramidOptions): PyramidLevel[] {
  checkMask('buildMaskPyramid', mask);
  const L = opts.levels;
  if (!Number.isInteger(L) || L < 1) throw new MaskError('buildMaskPyramid', `levels must be a positive integer, got ${L}`);
  const f = 2 ** (L - 1);
  if (mask.width % f || mask.height % f) {
    throw new MaskError('buildMaskPyramid', `mask ${mask.width}x${mask.height} is not divisible by 2^${L - 1} = ${f} (needed for ${L} levels)`);
  }
  const d = perLevel(opts);
  const cover = opts.coarseCover ?? 'any';
  if (!isCoarseCover(cover)) throw new MaskError('buildMaskPyramid', `coarseCover must be one of ${COARSE_COVERS.join(', ')}, got ${String(cover)}`);
  const masks: BinaryMask[] = [grow(mask, d[0])];
  for (let i = 1; i < L; i++) masks.push(grow(coarseLevel(masks[i - 1], cover), d[i]));
  if (opts.coverCoarse) {
    for (let i = L - 2; i >= 0; i--) {
      const up = upsampleNearest(masks[i + 1], 2);
      const data = Uint8Array.from(masks[i].data, (v, p) => v | up.data[p]);
      masks[i] = { ...masks[i], data };
    }
  }
  const levels = masks.map((m, i) => describeLevel(m, i));
  for (let i = 1; i < L; i++) lazyField(levels[i], 'downsample', () => buildTable(levels[i].active, levels[i].width, levels[i - 1], 2));
  for (let i = 0; i < L - 1; i++) {
    let map: UpsampleMap | undefined;
    const made = () => (map ??= buildUpsampleMap(levels[i], levels[i + 1]));
    lazyField(levels[i], 'upsample', () => made().upsample);
    lazyField(levels[i], 'upsampleFallback', () => made().fallback);
  }
  return levels;
}

/** The next coarser level's active set before dilation; 'half' falls back to 'any' rather than leave it empty. */
function coarseLevel(fine: BinaryMask, cover: CoarseCover): BinaryMask {
  const any = downsampleAny(fine, 2);
  if (cover === 'any') return any;
  const { width: w, height: h } = any;
  const data = new Uint8Array(w * h);
  let n = 0;
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const p = 2 * y * fine.width + 2 * x;
      const children = fine.data[p] + fine.data[p + 1] + fine.data[p + fine.width] + fine.data[p + fine.width + 1];
      if (children >= 2) (data[y * w + x] = 1), n++;
    }
  }
  return n > 0 ? { width: w, height: h, data } : any;
}

/**
 * The gather tables are built when first read: an edit reads its pyramid's active sets to choose between
 * sparse and dense steps, and a dense edit never reads a table (building them was half of a bundled-model
 * edit's mask phase in a fresh process). Enumerable, so a copy or a comparison sees the values.
 */
function lazyField<K extends 'conv' | 'downsample' | 'upsample' | 'upsampleFallback'>(level: PyramidLevel, key: K, make: () => NonNullable<PyramidLevel[K]>): void {
  let value: PyramidLevel[K] | undefined;
  let made = false;
  Object.defineProperty(level, key, {
    enumerable: true,
    configurable: true,
    get() {
      if (!made) {
        value = make();
        made = true;
      }
      return value;
    },
    set(v: PyramidLevel[K]) {
      value = v;
      made = true;
    },
  });
}

function describeLevel(mask: BinaryMask, level: number): PyramidLevel {
  const { width, height } = mask;
  const rowOf = new Int32Array(width * height).fill(-1);
  let n = 0;
  for (let p = 0; p < rowOf.length; p++) if (mask.data[p]) rowOf[p] = n++;
  const active = new Int32Array(n);
  const inactive = new Int32Array(rowOf.length - n);
  for (let p = 0, a = 0, b = 0; p < rowOf.length; p++) {
    if (rowOf[p] >= 0) active[a++] = p;
    else inactive[b++] = p;
  }
  const partial = { level, width, height, mask, active, inactive, rowOf, fraction: n / rowOf.length };
  const described = partial as PyramidLevel;
  lazyField(described, 'conv', () => buildTable(active, width, partial, 1));
  return described;
}

/** 3×3 stride-1 table for an arbitrary active set (e.g. a fused resnet's widened conv1). */
export function buildConvTable(mask: BinaryMask): ConvTable {
  checkMask('buildConvTable', mask);
  return describeLevel(mask, 0).conv;
}

interface InputGrid {
  width: number;
  height: number;
  active: Int32Array;
  rowOf: Int32Array;
}

/** Outputs (pixels at output width outW) read input (stride·y + dy, stride·x + dx), dy, dx ∈ {−1, 0, 1}. */
function buildTable(outputs: Int32Array, outW: number, input: InputGrid, stride: 1 | 2): ConvTable {
  const { width: w, height: h, rowOf } = input;
  const nIn = input.active.length;
  const haloRow = new Int32Array(w * h).fill(-1);
  const inPixel = (r: number, t: number): number => {
    const oy = Math.floor(outputs[r] / outW);
    const ox = outputs[r] - oy * outW;
    const y = stride * oy + Math.floor(t / 3) - 1;
    const x = stride * ox + (t % 3) - 1;
    return y < 0 || x < 0 || y >= h || x >= w ? -1 : y * w + x;
  };
  // Pass 1: mark halo pixels; pass 2: number them in ascending pixel order; pass 3: write indices.
  for (let r = 0; r < outputs.length; r++) {
    for (let t = 0; t < 9; t++) {
      const p = inPixel(r, t);
      if (p >= 0 && rowOf[p] < 0) haloRow[p] = 0;
    }
  }
  let m = 0;
  for (let p = 0; p < haloRow.length; p++) if (haloRow[p] === 0) haloRow[p] = ++m; // 1-based while counting
  const halo = new Int32Array(m);
  for (let p = 0; p < haloRow.length; p++) if (haloRow[p] > 0) halo[--haloRow[p]] = p;
  for (let j = 0; j < m; j++) haloRow[halo[j]] = j;
  const zeroRow = nIn + m;
  const neighbors = new Int32Array(outputs.length * 9);
  for (let r = 0; r < outputs.length; r++) {
    for (let t = 0; t < 9; t++) {
      const p = inPixel(r, t);
      neighbors[r * 9 + t] = p < 0 ? zeroRow : rowOf[p] >= 0 ? rowOf[p] : nIn + haloRow[p];
    }
  }
  return { halo, neighbors, zeroRow };
}

interface UpsampleMap {
  upsample: Int32Array;
  fallback: Int32Array;
}

function buildUpsampleMap(fine: PyramidLevel, coarse: PyramidLevel): UpsampleMap {
  const upsample = new Int32Array(fine.active.length);
  const fallback: number[] = [];
  const nCoarse = coarse.active.length;
  for (let r = 0; r < upsample.length; r++) {
    const p = fine.active[r];
    const y = Math.floor(p / fine.width);
    const x = p - y * fine.width;
    const row = coarse.rowOf[(y >> 1) * coarse.width + (x >> 1)];
    upsample[r] = row >= 0 ? row : nCoarse + fallback.push(p) - 1;
  }
  return { upsample, fallback: Int32Array.from(fallback) };
}

/**
 * Rewrite a table to index concat([input active rows (nIn) ; the whole cached input map (inPixels rows) ;
 * zero row]): active → unchanged, halo row j → nIn + halo[j], zero row → nIn + inPixels.
 * For a level's conv: (level.conv, level.active.length, width·height); for a downsample: the finer level's.
 */
export function neighborsIntoFullMap(table: ConvTable, nIn: number, inPixels: number): Int32Array {
  const out = new Int32Array(table.neighbors.length);
  for (let i = 0; i < out.length; i++) {
    const v = table.neighbors[i];
    out[i] = v < nIn ? v : v === table.zeroRow ? nIn + inPixels : nIn + table.halo[v - nIn];
  }
  return out;
}

/** Per-level summary for reports: [{ level, width, height, active, fraction }]. */
export function pyramidFractions(levels: readonly PyramidLevel[]): Array<{ level: number; width: number; height: number; active: number; fraction: number }> {
  return levels.map((l) => ({ level: l.level, width: l.width, height: l.height, active: l.active.length, fraction: l.fraction }));
}
