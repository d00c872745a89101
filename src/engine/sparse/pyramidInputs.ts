// The per-edit graph inputs of the sparse UNet step: a mask pyramid (mask/pyramid.ts) as int32 tensors,
// built ONCE per edit and fed unchanged to every sparse step of that edit.
//
// Input names "l<level>.<kind>"; all pixel indices are row-major at the level's own size:
//   convNeighbors [N_l, 9]  3×3 stride-1 table into concat(active rows; halo rows; zero row)
//   convHalo      [M_l]     pixels whose rows come from the cached conv input (halo of the active set)
//   downNeighbors [N_l, 9]  stride-2 table (level l−1 → l) into concat(level l−1 rows; its halo; zero)
//   downHalo      [M'_l]    level l−1 pixels read from the cached downsampler input
//   upsample      [N_l]     row of concat(level l+1 rows ; fallback rows) holding each active pixel's
//                           coarse parent (nearest ×2)
//   upsampleFallback [F_l]  pixels of level l whose coarse parent is inactive (coarseCover 'half'): their
//                           rows come from the cached upsampler-conv input; padded with pixel 0 to one
//                           row when there are none, so that no graph meets an empty tensor
//   inactive      [h_l·w_l − N_l]  pixels whose self-attention K/V come from the cache
//   coords        [N_0, 2] float32, level 0 only: (x, y) of each active pixel for a UNet with coordinate
//                 input channels (arch/coordChannels.ts)
//   overlay       [h_l·w_l]  row of concat(cached entry; new rows) holding each pixel of the child's full
//                 entry: p itself where inactive, h_l·w_l + rank where active (device-resident caches)
// ONNX Gather takes int32 indices, so no int64 conversion (or 2× memory) is paid per edit.

import { COORD_CHANNELS, coordRows } from '../arch/coordChannels';
import { PyramidLevel } from '../mask/pyramid';
import { EngineTensor } from '../runtime/ortSession';

export type PyramidInputKind = 'convNeighbors' | 'convHalo' | 'downNeighbors' | 'downHalo' | 'upsample' | 'upsampleFallback' | 'inactive' | 'overlay' | 'coords';

export function pyramidInputName(kind: PyramidInputKind, level: number): string {
  return `l${level}.${kind}`;
}

export class SparseInputError extends Error {
  constructor(reason: string) {
    super(`sparse/pyramidInputs.ts: ${reason}`);
    this.name = 'SparseInputError';
  }
}

/** One edit's pyramid as graph feeds; reuse it for every sparse step of the edit. */
export interface SparsePyramidFeed {
  readonly levels: readonly PyramidLevel[];
  /** Latent size (level 0). */
  readonly height: number;
  readonly width: number;
  /** Active pixel count per level (N_l). */
  readonly activeCounts: readonly number[];
  /** Every pyramid input the graph may ask for, by input name. */
  readonly tensors: Readonly<Record<string, EngineTensor>>;
}

const i32 = (data: Int32Array, dims: number[]): EngineTensor => ({ dtype: 'int32', dims, data });

export function buildPyramidFeed(levels: readonly PyramidLevel[]): SparsePyramidFeed {
  if (levels.length === 0) throw new SparseInputError('empty pyramid');
  const tensors: Record<string, EngineTensor> = {};
  levels.forEach((l, i) => {
    if (l.level !== i) throw new SparseInputError(`pyramid entry ${i} has level ${l.level}`);
    if (i > 0 && (l.width * 2 !== levels[i - 1].width || l.height * 2 !== levels[i - 1].height)) {
      throw new SparseInputError(`level ${i} is ${l.width}x${l.height}, not half of level ${i - 1} (${levels[i - 1].width}x${levels[i - 1].height})`);
    }
    const n = l.active.length;
    if (n === 0) throw new SparseInputError(`level ${i} has no active pixels (an empty mask returns the parent; do not run a sparse step)`);
    tensors[pyramidInputName('convNeighbors', i)] = i32(l.conv.neighbors, [n, 9]);
    tensors[pyramidInputName('convHalo', i)] = i32(l.conv.halo, [l.conv.halo.length]);
    tensors[pyramidInputName('inactive', i)] = i32(l.inactive, [l.inactive.length]);
    tensors[pyramidInputName('overlay', i)] = i32(overlayTable(l.width * l.height, l.active), [l.width * l.height]);
    if (i === 0) tensors[pyramidInputName('coords', 0)] = { dtype: 'float32', dims: [n, COORD_CHANNELS], data: coordRows(l.active, l.height, l.width) };
    if (i > 0) {
      if (!l.downsample) throw new SparseInputError(`level ${i} has no downsample table`);
      tensors[pyramidInputName('downNeighbors', i)] = i32(l.downsample.neighbors, [n, 9]);
      tensors[pyramidInputName('downHalo', i)] = i32(l.downsample.halo, [l.downsample.halo.length]);
    }
    if (i < levels.length - 1) {
      if (!l.upsample || !l.upsampleFallback) throw new SparseInputError(`level ${i} has no upsample map`);
      tensors[pyramidInputName('upsample', i)] = i32(l.upsample, [n]);
      const fallback = l.upsampleFallback.length > 0 ? l.upsampleFallback : new Int32Array(1);
      tensors[pyramidInputName('upsampleFallback', i)] = i32(fallback, [fallback.length]);
    }
  });
  return { levels, height: levels[0].height, width: levels[0].width, activeCounts: levels.map((l) => l.active.length), tensors };
}

/** overlay[p] = p for inactive pixels, hw + k for the k-th active pixel (active ascending). */
export function overlayTable(hw: number, active: Int32Array): Int32Array {
  const t = new Int32Array(hw);
  for (let p = 0; p < hw; p++) t[p] = p;
  for (let k = 0; k < active.length; k++) t[active[k]] = hw + k;
  return t;
}
