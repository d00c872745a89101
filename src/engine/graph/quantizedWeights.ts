// Int8 weights (GraphBuilderOptions.weights 'int8'): on a CPU a sparse UNet step streams every weight
// once whatever its mask (3.4 GB at SD-1.5 width, fp32), so its floor is memory bandwidth; int8 blocks
// stream a quarter of that. Each weight matrix, as rows [N, K] in the order its MatMul contracts over,
// is quantised symmetrically in blocks of QUANT_BLOCK along K (one fp32 scale per block, q = round(w/s)
// + 128, s = max|w|/127), and runs as com.microsoft.MatMulNBits (bits 8, accuracy_level 4: the
// activations are quantised per block too and the dot products are int8, which is what makes it faster;
// bench/.cache-free microbench on 2 AMD EPYC cores: 1.5–2.5× a fp32 MatMul at 64–2048 rows).
//
// Convolutions that stay Conv ops (the dense UNet's) get the SAME quantised weights, dequantised to fp32
// here, so a dense step and a sparse step use identical weight values; a conv's rows are its taps in
// (ky, kx, cin) order, the order of the sparse conv's gathered columns (sparse/sparseLayers.ts).
// Small matrices (conv_in, conv_out: under MIN_QUANTIZED_ELEMENTS) stay fp32.

import { GraphBuilder } from './graphBuilder';
import { widenToF32 } from './graphBuilder';
import type { WeightTensor } from '../model/tensor';

export const QUANT_BLOCK = 128;
/** Matrices smaller than this stay fp32 (the first and last convs; they carry no bandwidth). */
export const MIN_QUANTIZED_ELEMENTS = 16384;
/** MatMulNBits' default zero point for 8 bits (no zero_points input): values are q − 128. */
const ZERO_POINT = 128;

export type WeightRowsLayout = 'linear' | 'conv';

export interface QuantizedRows {
  /** Output features N and contraction length K (a conv: kh·kw·Cin). */
  n: number;
  k: number;
  block: number;
  kBlocks: number;
  /** [N, kBlocks, block] uint8 (q + 128; K padded with the zero point). */
  q: Uint8Array;
  /** [N · kBlocks] fp32. */
  scales: Float32Array;
}

export function isQuantizable(w: WeightTensor): boolean {
  return w.shape.reduce((a, b) => a * b, 1) >= MIN_QUANTIZED_ELEMENTS;
}

/** W as rows [N, K]: a Linear [out, in] (or 1×1 conv) as is; a conv [out, in, kh, kw] as taps (ky, kx, cin). */
export function weightRows(w: WeightTensor, layout: WeightRowsLayout): { rows: Float32Array; n: number; k: number } {
  const src = new Float32Array(widenToF32(w).buffer);
  const [n, cin, kh = 1, kw = 1] = w.shape;
  const k = cin * kh * kw;
  if (layout === 'linear' || (kh === 1 && kw === 1)) return { rows: src, n, k };
  const rows = new Float32Array(n * k);
  for (let o = 0; o < n; o++) {
    for (let c = 0; c < cin; c++) {
      for (let t = 0; t < kh * kw; t++) rows[o * k + t * cin + c] = src[(o * cin + c) * kh * kw + t];
    }
  }
  return { rows, n, k };
}

export function quantizeRows(rows: Float32Array, n: number, k: number, block = QUANT_BLOCK): QuantizedRows {
  const kBlocks = Math.ceil(k / block);
  const q = new Uint8Array(n * kBlocks * block).fill(ZERO_POINT);
  const scales = new Float32Array(n * kBlocks);
  for (let r = 0; r < n; r++) {
    for (let b = 0; b < kBlocks; b++) {
      const from = r * k + b * block;
      const to = r * k + Math.min(k, (b + 1) * block);
      let max = 0;
      for (let i = from; i < to; i++) max = Math.max(max, Math.abs(rows[i]));
      const s = Math.fround(max / 127) || 1;
      scales[r * kBlocks + b] = s;
      const out = (r * kBlocks + b) * block;
      for (let i = from; i < to; i++) q[out + i - from] = Math.max(-127, Math.min(127, Math.round(rows[i] / s))) + ZERO_POINT;
    }
  }
  return { n, k, block, kBlocks, q, scales };
}

/** The fp32 values MatMulNBits computes with: (q − 128)·s, as rows [N, K]. */
export function dequantizeRows(qr: QuantizedRows): Float32Array {
  const { n, k, block, kBlocks, q, scales } = qr;
  const out = new Float32Array(n * k);
  for (let r = 0; r < n; r++) {
    for (let i = 0; i < k; i++) {
      const b = Math.floor(i / block);
      out[r * k + i] = (q[(r * kBlocks + b) * block + (i % block)] - ZERO_POINT) * scales[r * kBlocks + b];
    }
  }
  return out;
}

// The recording and the sparse UNet graphs quantise the same weights: once per weight tensor.
const quantized = new WeakMap<WeightTensor, Map<WeightRowsLayout, QuantizedRows>>();

export function quantizedWeight(w: WeightTensor, layout: WeightRowsLayout): QuantizedRows {
  // A 1×1 conv's rows are the same either way: one quantisation for the dense Conv and the sparse MatMul.
  if (w.shape.length === 4 && w.shape[2] === 1 && w.shape[3] === 1) layout = 'linear';
  const byLayout = quantized.get(w) ?? new Map<WeightRowsLayout, QuantizedRows>();
  let qr = byLayout.get(layout);
  if (!qr) {
    const { rows, n, k } = weightRows(w, layout);
    qr = quantizeRows(rows, n, k);
    byLayout.set(layout, qr);
    quantized.set(w, byLayout);
  }
  return qr;
}

/** y = x · Wᵀ with W int8 (MatMulNBits). x [..., K] → [..., N]. */
export function matMulInt8(g: GraphBuilder, x: string, w: WeightTensor, layout: WeightRowsLayout): string {
  const qr = quantizedWeight(w, layout);
  const q = g.initializer(`${w.name}.q8`, 'uint8', [qr.n, qr.kBlocks, qr.block], qr.q);
  const s = g.initializer(`${w.name}.q8_scale`, 'float32', [qr.n * qr.kBlocks], new Uint8Array(qr.scales.buffer, qr.scales.byteOffset, qr.scales.byteLength));
  return g.op('MatMulNBits', [x, q, s], { K: qr.k, N: qr.n, bits: 8, block_size: qr.block, accuracy_level: 4 }, { domain: 'com.microsoft', hint: 'matmul_q8' });
}

/** A conv weight [out, in, kh, kw] with the int8 values matMulInt8 uses, dequantised to fp32 (dense Conv ops). */
export function dequantizedConvWeight(w: WeightTensor): Float32Array {
  const qr = quantizedWeight(w, 'conv');
  const rows = dequantizeRows(qr);
  const [n, cin, kh, kw] = w.shape;
  if (kh === 1 && kw === 1) return rows;
  const out = new Float32Array(rows.length);
  const k = qr.k;
  for (let o = 0; o < n; o++) {
    for (let c = 0; c < cin; c++) {
      for (let t = 0; t < kh * kw; t++) out[(o * cin + c) * kh * kw + t] = rows[o * k + t * cin + c];
    }
  }
  return out;
}
