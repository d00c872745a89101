// Reusable neural-network layers on GraphBuilder. Layouts: images NCHW, token sequences [B, N, C].
// Weights come in PyTorch layout (Conv2d [out,in,kh,kw], Linear [out,in]) as WeightTensors.
//
// Op choices (onnxruntime-node 1.30, CPU EP, graphOptimizationLevel 'all'; numerics in
// test/engine/graph/nn.test.ts):
// - Linear = MatMul(x, Wᵀ) (+ Add bias). Wᵀ is a folded constant (see graphBuilder weight()), so ORT
//   prepacks it and fuses MatMul+Add; no Transpose runs per step.
// - GroupNorm = Reshape [B,G,-1] → InstanceNormalization (unit scale, zero bias) → Reshape → Mul γ →
//   Add β, the same pattern torch.onnx.export emits. GroupNormalization-21 gave the same numbers
//   and no consistent speed-up in microbenchmarks, and would force opset 21 (ReduceMean etc. change
//   signature). groupNormStats() is the ReduceMean form that exposes the statistics.
// - SiLU = x·σ(x), GELU = x·½·(1+erf(x/√2)), QuickGELU = x·σ(1.702x): ORT rewrites these exact
//   patterns into its QuickGelu/Gelu kernels (checked in the optimised graph).
// - Attention = com.microsoft.MultiHeadAttention on [B,N,C] (no head-split transposes): on a
//   142M-param SD-shaped UNet at 32×32 latents it used 3–10% less CPU time per step than the
//   written-out MatMul/Softmax form (impl 'matmul', kept for graphs that need the probabilities, and
//   for the WebGPU EP, whose MultiHeadAttention is wrong at ≥32 queries on lavapipe: its FlashAttention
//   kernel; runtime/deviceGraphs.ts). 'chunked' and 'mha-unfused' are WebGPU candidates (AttentionOptions).
// - LayerNormalization (opset 17) is a native kernel.

import { GraphBuilder, f, type AttentionImpl } from './graphBuilder';
import { dequantizedConvWeight, isQuantizable, matMulInt8 } from './quantizedWeights';
import { toFloat32, WeightTensor } from '../model/tensor';

export class LayerShapeError extends Error {
  constructor(reason: string) {
    super(`graph/nn.ts: ${reason}`);
    this.name = 'LayerShapeError';
  }
}

export interface Conv2dOptions {
  stride?: number;
  /** Symmetric padding, or [top, left, bottom, right] (ONNX pads order is begin..., end...). */
  pad?: number | [number, number, number, number];
}

/** y = conv(x, W) + b. x [B,Cin,H,W], W [Cout,Cin,kh,kw] → [B,Cout,H',W']. */
export function conv2d(g: GraphBuilder, x: string, weight: WeightTensor, bias: WeightTensor | undefined, opts: Conv2dOptions = {}): string {
  if (weight.shape.length !== 4) throw new LayerShapeError(`conv weight ${weight.name} must be 4-D, got [${weight.shape}]`);
  const [, , kh, kw] = weight.shape;
  const p = opts.pad ?? 0;
  const pads = typeof p === 'number' ? [p, p, p, p] : [p[0], p[1], p[2], p[3]];
  const s = opts.stride ?? 1;
  const int8 = g.weightFormat === 'int8' && isQuantizable(weight);
  const [cout, cin] = weight.shape;
  const m = g.convChannelMultiple;
  let w: string;
  if (m > 1 && cin % m !== 0) {
    // Zero input channels up to a multiple of m (an EP whose Conv kernel is wrong otherwise: deviceGraphs.ts).
    const cp = Math.ceil(cin / m) * m;
    const base = int8 ? dequantizedConvWeight(weight) : toFloat32(weight);
    const padded = new Float32Array(cout * cp * kh * kw);
    for (let o = 0; o < cout; o++) padded.set(base.subarray(o * cin * kh * kw, (o + 1) * cin * kh * kw), o * cp * kh * kw);
    w = g.initializer(`${weight.name}.pad${cp}`, 'float32', [cout, cp, kh, kw], new Uint8Array(padded.buffer));
    x = g.op('Pad', [x, g.constI64([0, 0, 0, 0, 0, cp - cin, 0, 0])], { mode: 'constant' }, { hint: 'pad_channels' });
  } else {
    // int8 weights: the Conv runs in fp32 on the dequantised int8 values, the ones a sparse step's MatMul uses.
    w = int8
      ? g.initializer(`${weight.name}.dq8`, 'float32', weight.shape, new Uint8Array(dequantizedConvWeight(weight).buffer))
      : g.weight(weight);
  }
  const inputs = [x, w];
  if (bias) inputs.push(g.weight(bias));
  return g.op('Conv', inputs, { kernel_shape: [kh, kw], strides: [s, s], pads, dilations: [1, 1], group: 1 }, { hint: 'conv' });
}

/** y = x·Wᵀ + b over the last axis. x [..., in], W [out,in] → [..., out]. */
export function linear(g: GraphBuilder, x: string, weight: WeightTensor, bias?: WeightTensor): string {
  if (g.weightFormat === 'int8' && isQuantizable(weight) && (weight.shape.length === 2 || (weight.shape.length === 4 && weight.shape[2] === 1 && weight.shape[3] === 1))) {
    const y = matMulInt8(g, x, weight, 'linear');
    return bias ? g.op('Add', [y, g.weight(bias)], {}, { hint: 'bias' }) : y;
  }
  let wt: string;
  if (weight.shape.length === 4 && weight.shape[2] === 1 && weight.shape[3] === 1) {
    // A 1×1 conv applied to tokens is a Linear with the weight squeezed.
    wt = g.weight(weight, { reshape: [weight.shape[0], weight.shape[1]], transpose: true });
  } else if (weight.shape.length === 2) {
    wt = g.weight(weight, { transpose: true });
  } else {
    throw new LayerShapeError(`linear weight ${weight.name} must be [out,in] or [out,in,1,1], got [${weight.shape}]`);
  }
  const y = g.op('MatMul', [x, wt], {}, { hint: 'matmul' });
  return bias ? g.op('Add', [y, g.weight(bias)], {}, { hint: 'bias' }) : y;
}

/** Per-channel [C] weight broadcast against NCHW: reshaped to [C,1,1]. */
function channelParam(g: GraphBuilder, w: WeightTensor): string {
  return g.weight(w, { reshape: [w.shape[0], 1, 1] });
}

/**
 * GroupNorm over NCHW: groups of C/G contiguous channels, statistics over (C/G, H, W), biased
 * variance, then a per-channel affine. x [B,C,H,W] → [B,C,H,W].
 */
export function groupNorm(g: GraphBuilder, x: string, groups: number, eps: number, gamma: WeightTensor, beta: WeightTensor): string {
  const c = gamma.shape[0];
  if (c % groups !== 0) throw new LayerShapeError(`groupNorm ${gamma.name}: ${c} channels not divisible by ${groups} groups`);
  const xs = g.op('Shape', [x]);
  const grouped = g.op('Reshape', [x, g.constI64([0, groups, -1])]); // [B,G,C/G·H·W]
  const ones = g.constF32(new Float32Array(groups).fill(1), [groups], 'gn_ones');
  const zeros = g.constF32(new Float32Array(groups), [groups], 'gn_zeros');
  const n = g.op('InstanceNormalization', [grouped, ones, zeros], { epsilon: f(eps) }, { hint: 'groupnorm' });
  const back = g.op('Reshape', [n, xs]); // [B,C,H,W]
  return g.op('Add', [g.op('Mul', [back, channelParam(g, gamma)]), channelParam(g, beta)]);
}

export interface GroupNormWithStats {
  y: string;
  /** [B,G,1] group means and biased variances (the statistics a sparse step reuses). */
  mean: string;
  variance: string;
}

/** Group means and biased variances [B,G,1] of x [B,C,H,W], as groupNormStats computes them. */
export function groupMoments(g: GraphBuilder, x: string, groups: number): { mean: string; variance: string } {
  const grouped = g.op('Reshape', [x, g.constI64([0, groups, -1])]); // [B,G,M]
  const mean = g.op('ReduceMean', [grouped], { axes: [2], keepdims: 1 }, { hint: 'gn_mean' });
  const centered = g.op('Sub', [grouped, mean]);
  const variance = g.op('ReduceMean', [g.op('Mul', [centered, centered])], { axes: [2], keepdims: 1 }, { hint: 'gn_var' });
  return { mean, variance };
}

/** GroupNorm written out with ReduceMean so the statistics are graph values (recording graphs). */
export function groupNormStats(g: GraphBuilder, x: string, groups: number, eps: number, gamma: WeightTensor, beta: WeightTensor): GroupNormWithStats {
  const xs = g.op('Shape', [x]);
  const grouped = g.op('Reshape', [x, g.constI64([0, groups, -1])]); // [B,G,M]
  const mean = g.op('ReduceMean', [grouped], { axes: [2], keepdims: 1 }, { hint: 'gn_mean' }); // [B,G,1]
  const centered = g.op('Sub', [grouped, mean]);
  const variance = g.op('ReduceMean', [g.op('Mul', [centered, centered])], { axes: [2], keepdims: 1 }, { hint: 'gn_var' });
  const inv = g.op('Reciprocal', [g.op('Sqrt', [g.op('Add', [variance, g.constF32([eps], [], 'eps')])])]);
  const n = g.op('Reshape', [g.op('Mul', [centered, inv]), xs]);
  const y = g.op('Add', [g.op('Mul', [n, channelParam(g, gamma)]), channelParam(g, beta)]);
  return { y, mean, variance };
}

/**
 * GroupNorm with given statistics mean, variance (broadcastable to [B,G,1], e.g. [G,1]) instead of x's
 * own: a region decoded on its own then normalises like the whole image it belongs to.
 */
export function groupNormGiven(g: GraphBuilder, x: string, groups: number, eps: number, gamma: WeightTensor, beta: WeightTensor, mean: string, variance: string): string {
  const xs = g.op('Shape', [x]);
  const grouped = g.op('Reshape', [x, g.constI64([0, groups, -1])]); // [B,G,M]
  const inv = g.op('Reciprocal', [g.op('Sqrt', [g.op('Add', [variance, g.constF32([eps], [], 'eps')])])]);
  const n = g.op('Reshape', [g.op('Mul', [g.op('Sub', [grouped, mean]), inv]), xs]);
  return g.op('Add', [g.op('Mul', [n, channelParam(g, gamma)]), channelParam(g, beta)]);
}

/** LayerNorm over the last axis. x [..., C] → [..., C]. */
export function layerNorm(g: GraphBuilder, x: string, gamma: WeightTensor, beta: WeightTensor, eps: number): string {
  return g.op('LayerNormalization', [x, g.weight(gamma), g.weight(beta)], { axis: -1, epsilon: f(eps) }, { hint: 'layernorm' });
}

/** x·σ(x). */
export function silu(g: GraphBuilder, x: string): string {
  return g.op('Mul', [x, g.op('Sigmoid', [x])], {}, { hint: 'silu' });
}

/** Exact (erf) GELU: x·½·(1+erf(x/√2)). */
export function gelu(g: GraphBuilder, x: string): string {
  const e = g.op('Erf', [g.op('Div', [x, g.constF32([Math.SQRT2], [], 'sqrt2')])]);
  const onePlus = g.op('Add', [e, g.constF32([1], [], 'one')]);
  return g.op('Mul', [g.op('Mul', [x, onePlus]), g.constF32([0.5], [], 'half')], {}, { hint: 'gelu' });
}

/** CLIP's quick_gelu: x·σ(1.702x). */
export function quickGelu(g: GraphBuilder, x: string): string {
  const s = g.op('Sigmoid', [g.op('Mul', [x, g.constF32([1.702], [], 'qg_alpha')])]);
  return g.op('Mul', [x, s], {}, { hint: 'quick_gelu' });
}

/** NCHW → tokens [B, H·W, C] (token index = y·W + x). */
export function toTokens(g: GraphBuilder, x: string, channels: number): string {
  const flat = g.op('Reshape', [x, g.constI64([0, channels, -1])]); // [B,C,HW]
  return g.op('Transpose', [flat], { perm: [0, 2, 1] }, { hint: 'to_tokens' }); // [B,HW,C]
}

/** tokens [B, H·W, C] → NCHW with the shape of `like` (a [B,C,H,W] value with the same C). */
export function fromTokens(g: GraphBuilder, t: string, like: string): string {
  const chw = g.op('Transpose', [t], { perm: [0, 2, 1] }, { hint: 'from_tokens' }); // [B,C,HW]
  return g.op('Reshape', [chw, g.op('Shape', [like])]);
}

export interface AttentionOptions {
  /** Additive bias [N,M] on the scores (e.g. a causal mask), broadcast over batch and heads. */
  bias?: string;
  /**
   * Default: the builder's (GraphBuilderOptions.attention, itself 'mha' by default).
   * 'mha': one com.microsoft.MultiHeadAttention node (ORT CPU kernel; takes [B,N,C] as is,
   * so no head-split transposes). 'matmul': Reshape/Transpose/MatMul/Softmax/MatMul written out, for
   * graphs that need the probabilities or run without the contrib ops.
   * Two candidates for the WebGPU EP (runtime/deviceGraphs.ts, measured by bench/gpu/attentionForms.ts):
   * 'chunked': the 'matmul' form over `chunks` slices of the queries in turn, so each score matrix is
   * [B,h,N/chunks,M] (a cache-sized working set at SD's 4096 tokens) instead of one [B,h,N,M];
   * 'mha-unfused': MultiHeadAttention with q and k padded by one zero channel per head, a head size
   * that is not a multiple of 4, which makes the WebGPU EP run its unfused kernels (AttentionProbs,
   * InPlaceSoftmax, VxAttentionScore) instead of its FlashAttention kernel: same scores (the zero
   * channel adds nothing to q·k), v and the output keep head size d.
   * With a bias, 'chunked' builds the 'matmul' form (the bias would need slicing per chunk).
   */
  impl?: AttentionImpl;
  /** Query chunks of the 'chunked' form (default: the builder's attentionChunks, 16). */
  chunks?: number;
}

/**
 * Scaled dot-product multi-head attention on projected q [B,N,C], k [B,M,C], v [B,M,C] → [B,N,C].
 * Heads are contiguous channel blocks (channel = head·d + i), scale d^-0.5, softmax over keys.
 */
export function attention(g: GraphBuilder, q: string, k: string, v: string, channels: number, heads: number, opts: AttentionOptions = {}): string {
  if (channels % heads !== 0) throw new LayerShapeError(`attention: ${channels} channels not divisible by ${heads} heads`);
  const d = channels / heads;
  const impl = opts.impl ?? g.attention;
  if (impl === 'mha' || impl === 'mha-unfused') {
    // com.microsoft.MultiHeadAttention inputs: query, key, value, bias, key_padding_mask, attention_bias [1|B,1|h,N,M].
    let [qi, ki] = [q, k];
    if (impl === 'mha-unfused') {
      // One zero channel per head on q and k: head size d+1 (q·k unchanged; scale stays d^-0.5).
      const perHead = g.constI64([0, 0, heads, d]);
      const pads = g.constI64([0, 0, 0, 0, 0, 0, 0, 1], 'pads');
      const widened = g.constI64([0, 0, heads * (d + 1)]);
      const pad = (x: string) => g.op('Reshape', [g.op('Pad', [g.op('Reshape', [x, perHead]), pads]), widened]);
      [qi, ki] = [pad(q), pad(k)];
    }
    const ins = [qi, ki, v];
    if (opts.bias) ins.push('', '', g.op('Unsqueeze', [opts.bias, g.constI64([0, 1], 'axes')]));
    return g.op('MultiHeadAttention', ins, { num_heads: heads, scale: f(d ** -0.5) }, { domain: 'com.microsoft', hint: 'mha' });
  }
  const split = g.constI64([0, 0, heads, d]);
  const qs = g.op('Mul', [q, g.constF32([d ** -0.5], [], 'attn_scale')]);
  const qh = g.op('Transpose', [g.op('Reshape', [qs, split])], { perm: [0, 2, 1, 3] }); // [B,h,N,d]
  const kh = g.op('Transpose', [g.op('Reshape', [k, split])], { perm: [0, 2, 3, 1] }); // [B,h,d,M]
  const vh = g.op('Transpose', [g.op('Reshape', [v, split])], { perm: [0, 2, 1, 3] }); // [B,h,M,d]
  const chunks = Math.max(1, Math.floor(opts.chunks ?? g.attentionChunks));
  let o: string;
  if (impl === 'chunked' && !opts.bias && chunks > 1) {
    // Pad the queries to a multiple of `chunks` (N is dynamic), slice them evenly, attend chunk by chunk,
    // concatenate and drop the padded rows (zero queries: finite, discarded).
    const n = g.op('Shape', [qh], { start: 2, end: 3 }); // [1] = N
    const kc = g.constI64([chunks], 'chunks');
    const padRows = g.op('Mod', [g.op('Sub', [kc, g.op('Mod', [n, kc])]), kc]);
    // Pad's pads for [B,h,N,d]: begins 0,0,0,0; ends 0,0,padRows,0.
    const pads = g.op('Concat', [g.constI64([0, 0, 0, 0, 0, 0], 'pads_head'), padRows, g.constI64([0], 'pads_tail')], { axis: 0 });
    const padded = g.op('Pad', [qh, pads]);
    // Slices, not one Split: a WebGPU shader binds at most 16 storage buffers, so Split stops at 15 outputs.
    const rows = g.op('Div', [g.op('Add', [n, padRows]), kc]); // [1] = queries per chunk
    const axis2 = g.constI64([2], 'axes');
    const parts = Array.from({ length: chunks }, (_, i) =>
      g.op('Slice', [padded, g.op('Mul', [rows, g.constI64([i], 'chunk_i')]), g.op('Mul', [rows, g.constI64([i + 1], 'chunk_i')]), axis2], {}, { hint: 'q_chunk' }),
    );
    const outs = parts.map((part) => {
      const p = g.op('Softmax', [g.op('MatMul', [part, kh], {}, { hint: 'scores' })], { axis: -1 });
      return g.op('MatMul', [p, vh], {}, { hint: 'attn_out' }); // [B,h,N/chunks,d]
    });
    const all = g.op('Concat', outs, { axis: 2 });
    o = g.op('Slice', [all, g.constI64([0], 'starts'), n, axis2]); // [B,h,N,d]
  } else {
    let s = g.op('MatMul', [qh, kh], {}, { hint: 'scores' }); // [B,h,N,M]
    if (opts.bias) s = g.op('Add', [s, opts.bias]);
    const p = g.op('Softmax', [s], { axis: -1 });
    o = g.op('MatMul', [p, vh], {}, { hint: 'attn_out' }); // [B,h,N,d]
  }
  const merged = g.op('Transpose', [o], { perm: [0, 2, 1, 3] }); // [B,N,h,d]
  return g.op('Reshape', [merged, g.constI64([0, 0, channels])]); // [B,N,C]
}

/** Nearest-neighbour ×2: out[y,x] = in[⌊y/2⌋,⌊x/2⌋]. x [B,C,H,W] → [B,C,2H,2W]. */
export function upsampleNearest2x(g: GraphBuilder, x: string): string {
  const scales = g.constF32([1, 1, 2, 2], [4], 'up_scales');
  return g.op('Resize', [x, '', scales], { mode: 'nearest', coordinate_transformation_mode: 'asymmetric', nearest_mode: 'floor' }, { hint: 'upsample' });
}
