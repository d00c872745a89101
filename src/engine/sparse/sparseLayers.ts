// The spatial primitives of the SPARSE UNet step, on active rows (channels last, [B, N_l, C] at level l):
// pixel-wise sparse 3×3 conv, GroupNorm with the parent's cached statistics, and self-attention whose
// keys/values are the new active rows ∪ the parent's cached inactive rows. Everything else in the UNet
// (1×1 convs, linears, LayerNorm, GEGLU, time-embedding adds) is row-wise and runs on the rows as is.
//
// SparseBuild owns what the graph reads beyond its weights and lazily declares it as graph inputs:
// - pyramid tables (pyramidInputs.ts), int32, one set per edit;
// - cache entries "cache:<entry name>" (cacheManifest.ts), [B, h_l·w_l, C] rows or [B, G] statistics;
// and what it writes for the child's cache: "delta:<entry name>" [B, N_l, C] fp16, the new rows of
// every row entry at the level's active pixels (stored by the edit as a delta over the parent).

import { ArchContext, inModule } from '../arch/archContext';
import { GraphBuilder, type GraphBuilderOptions } from '../graph/graphBuilder';
import { attention, linear } from '../graph/nn';
import { isQuantizable, matMulInt8 } from '../graph/quantizedWeights';
import { OnnxDataType } from '../graph/onnxProto';
import { CacheDType, CacheEntryKind, CacheEntrySpec, entryName, isRowEntry } from './cacheManifest';
import { pyramidInputName, PyramidInputKind } from './pyramidInputs';

export interface SparseBuildOptions {
  /**
   * 'cached' (FISEdit's approximate normalisation): every GroupNorm uses the parent's statistics of the
   * same step and layer. 'exact': statistics from the active rows themselves, which equals the dense
   * GroupNorm only when every pixel is active (equivalence tests).
   */
  groupNorm?: 'cached' | 'exact';
  /** Element type of the cache inputs and delta outputs (default float16). */
  cacheDType?: CacheDType;
  /** Declare "delta:<name>" outputs for the child's cache (default true). */
  emitDeltas?: boolean;
  /**
   * Also declare "full:<entry name>" outputs: the child's whole row entry [B, h_l·w_l, C] (the parent's
   * entry with the new rows laid over it), for caches that stay in device memory between edits.
   */
  emitFull?: boolean;
  /** Builder options when this function creates the builder (runtime/deviceGraphs.ts graphOptionsFor). */
  graph?: GraphBuilderOptions;
}

export interface DeltaSpec {
  /** Entry name (without the "delta:" prefix). */
  name: string;
  level: number;
  width: number;
}

export class SparseGraphError extends Error {
  constructor(reason: string) {
    super(`sparse: ${reason}`);
    this.name = 'SparseGraphError';
  }
}

export const CACHE_INPUT_PREFIX = 'cache:';
export const DELTA_OUTPUT_PREFIX = 'delta:';
export const FULL_OUTPUT_PREFIX = 'full:';

export class SparseBuild {
  readonly manifest: CacheEntrySpec[] = [];
  readonly deltas: DeltaSpec[] = [];
  readonly pyramidInputs: string[] = [];
  readonly groupNormMode: 'cached' | 'exact';
  readonly cacheDType: CacheDType;
  private readonly emitDeltas: boolean;
  private readonly emitFull: boolean;
  private readonly declared = new Map<string, string>();
  private batch?: string;
  private readonly zeroRows = new Map<number, string>();

  constructor(readonly g: GraphBuilder, readonly levels: number, opts: SparseBuildOptions = {}) {
    this.groupNormMode = opts.groupNorm ?? 'cached';
    this.cacheDType = opts.cacheDType ?? 'float16';
    this.emitDeltas = opts.emitDeltas ?? true;
    this.emitFull = opts.emitFull ?? false;
  }

  /** int32 pyramid table input, declared on first use. */
  table(kind: PyramidInputKind, level: number): string {
    const name = pyramidInputName(kind, level);
    let v = this.declared.get(name);
    if (!v) {
      const n = `n${level}`; // active pixels at this level
      const dims = kind === 'convNeighbors' || kind === 'downNeighbors' ? [n, 9] : kind === 'upsample' ? [n] : kind === 'overlay' ? [`hw${level}`] : [`${kind}${level}`];
      v = this.g.input(name, 'int32', dims);
      this.declared.set(name, v);
      this.pyramidInputs.push(name);
    }
    return v;
  }

  /** float32 [N_level, 2] (x, y) of the active pixels (pyramid input 'coords'), declared on first use. */
  coords(level: number): string {
    const name = pyramidInputName('coords', level);
    let v = this.declared.get(name);
    if (!v) {
      v = this.g.input(name, 'float32', [`n${level}`, 2]);
      this.declared.set(name, v);
      this.pyramidInputs.push(name);
    }
    return v;
  }

  /** Cache entry graph input (cacheDType; toF32() converts): rows [B, h_l·w_l, C] or statistics [B, G]. Declared on first use. */
  cached(path: string, kind: CacheEntryKind, level: number, width: number): string {
    const name = entryName(path, kind);
    const key = CACHE_INPUT_PREFIX + name;
    let v = this.declared.get(key);
    if (!v) {
      const dims = isRowEntry(kind) ? ['batch', `hw${level}`, width] : ['batch', width];
      v = this.g.input(key, this.cacheDType, dims);
      this.declared.set(key, v);
      this.manifest.push({ name, kind, level, width });
    }
    return v;
  }

  /** fp16 (or f32) → f32; a no-op for float32 caches. */
  toF32(v: string): string {
    return this.cacheDType === 'float16' ? this.g.op('Cast', [v], { to: OnnxDataType.FLOAT }, { hint: 'cache_f32' }) : v;
  }

  /** Declare the new rows x [B, N_l, C] of a row entry as output "delta:<name>". */
  delta(path: string, kind: CacheEntryKind, level: number, width: number, x: string): void {
    if (!this.emitDeltas && !this.emitFull) return;
    const name = entryName(path, kind);
    const out = this.cacheDType === 'float16' ? this.g.op('Cast', [x], { to: OnnxDataType.FLOAT16 }, { hint: 'delta_f16' }) : x;
    if (this.emitDeltas) {
      this.g.output(DELTA_OUTPUT_PREFIX + name, out, this.cacheDType, ['batch', `n${level}`, width]);
      this.deltas.push({ name, level, width });
    }
    if (this.emitFull) {
      // One Gather over concat(parent entry; new rows) by the level's overlay table: the child's entry.
      const stacked = this.g.op('Concat', [this.cached(path, kind, level, width), out], { axis: 1 }, { hint: 'overlay_stack' });
      const full = this.g.op('Gather', [stacked, this.table('overlay', level)], { axis: 1 }, { hint: 'overlay' });
      this.g.output(FULL_OUTPUT_PREFIX + name, full, this.cacheDType, ['batch', `hw${level}`, width]);
    }
  }

  /** The batch size [1] (int64) of a rows value; computed once per graph. */
  batchDim(rows: string): string {
    if (!this.batch) {
      const shape = this.g.op('Shape', [rows]);
      this.batch = this.g.op('Slice', [shape, this.g.constI64([0], 'starts'), this.g.constI64([1], 'ends')], {}, { hint: 'batch_dim' });
    }
    return this.batch;
  }

  /** Zeros [B, 1, C] (the conv's zero padding row), one per channel count. */
  zeroRow(rows: string, channels: number): string {
    let z = this.zeroRows.get(channels);
    if (!z) {
      const shape = this.g.op('Concat', [this.batchDim(rows), this.g.constI64([1, channels])], { axis: 0 });
      z = this.g.op('ConstantOfShape', [shape], {}, { hint: `zero_row_${channels}` }); // float32 0 by default
      this.zeroRows.set(channels, z);
    }
    return z;
  }
}

export interface SparseConvSpec {
  /** [Cout, Cin, 3, 3] */
  shape: readonly number[];
  /** 'same': stride 1 at `level`; 'down': stride 2 from level − 1 into `level`. */
  table: 'same' | 'down';
  /** Output level. */
  level: number;
}

/**
 * Pixel-wise sparse 3×3 conv (pad 1). x [B, N_in, Cin] are the NEW rows of the conv input at its active
 * pixels; the halo comes from the parent's recorded input of the same conv. → [B, N_out, Cout].
 *   stack = concat(x ; Gather(cache, halo) ; 0)   [B, N_in+M+1, Cin]
 *   cols  = Gather(stack, neighbours)              [B, N_out, 9, Cin] → [B, N_out, 9·Cin]
 *   y     = cols · W' + b,  W' = W [Cout,Cin,3,3] permuted to [3,3,Cin,Cout] = [9·Cin, Cout]
 * (tap order (dy+1)·3 + (dx+1) as pyramid.ts; the permutation is a folded constant).
 */
export function sparseConv3x3(s: SparseBuild, ctx: ArchContext, x: string, name: string, spec: SparseConvSpec): string {
  const { g } = ctx;
  const [cout, cin, kh, kw] = spec.shape;
  const w = ctx.w.get(`${name}.weight`, spec.shape);
  const b = ctx.w.get(`${name}.bias`, [cout]);
  if (kh !== 3 || kw !== 3) throw new SparseGraphError(`${ctx.w.path(name)} is ${kh}x${kw}; sparseConv3x3 needs 3x3`);
  const path = ctx.w.path(name);
  const inLevel = spec.table === 'down' ? spec.level - 1 : spec.level;
  s.delta(path, 'convInput', inLevel, cin, x);
  const cacheRows = s.cached(path, 'convInput', inLevel, cin); // [B, HW_in, Cin]
  return g.scope(name, () => {
    const haloIdx = s.table(spec.table === 'down' ? 'downHalo' : 'convHalo', spec.level);
    const nbr = s.table(spec.table === 'down' ? 'downNeighbors' : 'convNeighbors', spec.level);
    const halo = s.toF32(g.op('Gather', [cacheRows, haloIdx], { axis: 1 }, { hint: 'halo' })); // [B,M,Cin]
    const stack = g.op('Concat', [x, halo, s.zeroRow(x, cin)], { axis: 1 }, { hint: 'stack' }); // [B,N+M+1,Cin]
    const cols = g.op('Reshape', [g.op('Gather', [stack, nbr], { axis: 1 }, { hint: 'im2col' }), g.constI64([0, 0, 9 * cin])]); // [B,N,9Cin]
    // int8 weights: the taps (ky, kx, cin) are the rows matMulInt8 quantises, in the columns' order.
    const y = g.weightFormat === 'int8' && isQuantizable(w)
      ? matMulInt8(g, cols, w, 'conv')
      : g.op('MatMul', [cols, g.op('Reshape', [g.op('Transpose', [g.weight(w)], { perm: [2, 3, 1, 0] }), g.constI64([9 * cin, cout])], {}, { hint: 'w_9c' })], {}, { hint: 'conv_mm' });
    return g.op('Add', [y, g.weight(b)], {}, { hint: 'conv_bias' }); // [B,N,Cout]
  });
}

/**
 * Nearest ×2 upsample of coarse rows x [B, N_{l+1}, C] into the active rows of `level` [B, N_l, C], then
 * that level's 3×3 conv (module `upsamplers.0`, child `conv`). A fine pixel whose coarse parent is
 * inactive (coarseCover 'half', mask/pyramid.ts) takes the parent node's upsampled map there, which is
 * the conv's own cached input: stack = concat(x ; Gather(cache, upsampleFallback)), rows by `upsample`.
 */
export function sparseUpsample(s: SparseBuild, ctx: ArchContext, x: string, channels: number, level: number): string {
  const { g } = ctx;
  return inModule(ctx, 'upsamplers.0', (u) => {
    const cacheRows = s.cached(u.w.path('conv'), 'convInput', level, channels); // [B, HW_l, C]
    const fallback = s.toF32(g.op('Gather', [cacheRows, s.table('upsampleFallback', level)], { axis: 1 }, { hint: 'upsample_fallback' })); // [B,F,C]
    const stack = g.op('Concat', [x, fallback], { axis: 1 }, { hint: 'upsample_stack' });
    const up = g.op('Gather', [stack, s.table('upsample', level)], { axis: 1 }, { hint: 'upsample' }); // [B,N_l,C]
    return sparseConv3x3(s, u, up, 'conv', { shape: [channels, channels, 3, 3], table: 'same', level });
  });
}

/**
 * GroupNorm on rows x [B, N, C]: groups of C/G contiguous channels. Cached mode folds the parent's
 * statistics into one per-(batch, channel) scale and shift:
 *   scale = γ / √(std² + eps),  shift = β − mean·scale,  y = x·scale + shift.
 */
export function sparseGroupNorm(s: SparseBuild, ctx: ArchContext, x: string, name: string, channels: number, groups: number, eps: number, level: number): string {
  const { g } = ctx;
  const gamma = g.weight(ctx.w.get(`${name}.weight`, [channels]));
  const beta = g.weight(ctx.w.get(`${name}.bias`, [channels]));
  const path = ctx.w.path(name);
  const per = channels / groups;
  if (!Number.isInteger(per)) throw new SparseGraphError(`${path}: ${channels} channels not divisible by ${groups} groups`);
  return g.scope(name, () => {
    if (s.groupNormMode === 'exact') {
      const grouped = g.op('Reshape', [x, g.constI64([0, 0, groups, per])]); // [B,N,G,C/G]
      const mean = g.op('ReduceMean', [grouped], { axes: [1, 3], keepdims: 1 }); // [B,1,G,1]
      const centered = g.op('Sub', [grouped, mean]);
      const variance = g.op('ReduceMean', [g.op('Mul', [centered, centered])], { axes: [1, 3], keepdims: 1 });
      const rstd = g.op('Reciprocal', [g.op('Sqrt', [g.op('Add', [variance, g.constF32([eps], [], 'eps')])])]);
      const n = g.op('Reshape', [g.op('Mul', [centered, rstd]), g.constI64([0, 0, channels])]); // [B,N,C]
      return g.op('Add', [g.op('Mul', [n, gamma]), beta], {}, { hint: 'gn_exact' });
    }
    const toChannels = (v: string) => {
      // [B,G] → [B,G,1] → [B,G,C/G] → [B,1,C]
      const e = g.op('Expand', [g.op('Unsqueeze', [v, g.constI64([2], 'axes')]), g.constI64([1, groups, per])]);
      return g.op('Reshape', [e, g.constI64([0, 1, channels])]);
    };
    const mean = s.toF32(s.cached(path, 'groupNormMean', level, groups)); // [B,G]
    const std = s.toF32(s.cached(path, 'groupNormStd', level, groups)); // [B,G]
    const rstd = g.op('Reciprocal', [g.op('Sqrt', [g.op('Add', [g.op('Mul', [std, std]), g.constF32([eps], [], 'eps')])])]);
    const scale = g.op('Mul', [toChannels(rstd), gamma], {}, { hint: 'gn_scale' }); // [B,1,C]
    const shift = g.op('Sub', [beta, g.op('Mul', [toChannels(mean), scale])], {}, { hint: 'gn_shift' }); // [B,1,C]
    return g.op('Add', [g.op('Mul', [x, scale]), shift], {}, { hint: 'gn_cached' });
  });
}

/**
 * Self-attention (diffusers Attention, no q/k/v bias) with queries from the active rows x [B, N, C] and
 * keys/values = new rows at the active pixels ∪ the parent's cached K/V at the inactive ones:
 * K = concat(x·Wk ; Gather(cachedK, inactive)) [B, h·w, C] (softmax does not care about key order).
 * → [B, N, C] after to_out.
 */
export function sparseSelfAttention(s: SparseBuild, actx: ArchContext, x: string, channels: number, heads: number, level: number): string {
  const { g, w } = actx;
  const path = w.prefix;
  const q = g.scope('to_q', () => linear(g, x, w.get('to_q.weight', [channels, channels]))); // [B,N,C]
  const k = g.scope('to_k', () => linear(g, x, w.get('to_k.weight', [channels, channels]))); // [B,N,C]
  const v = g.scope('to_v', () => linear(g, x, w.get('to_v.weight', [channels, channels]))); // [B,N,C]
  s.delta(path, 'selfAttnK', level, channels, k);
  s.delta(path, 'selfAttnV', level, channels, v);
  const inactive = s.table('inactive', level);
  const merge = (fresh: string, kind: 'selfAttnK' | 'selfAttnV') => {
    const old = s.toF32(g.op('Gather', [s.cached(path, kind, level, channels), inactive], { axis: 1 }, { hint: 'cached_kv' })); // [B,HW−N,C]
    return g.op('Concat', [fresh, old], { axis: 1 }, { hint: 'merged_kv' }); // [B,HW,C]
  };
  const o = attention(g, q, merge(k, 'selfAttnK'), merge(v, 'selfAttnV'), channels, heads); // [B,N,C]
  return g.scope('to_out.0', () => linear(g, o, w.get('to_out.0.weight', [channels, channels]), w.get('to_out.0.bias', [channels])));
}
