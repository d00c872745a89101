// Int8 and int4 weights (GraphBuilderOptions.weights 'int8' | 'int4'): on a CPU a sparse UNet step streams
// every weight once whatever its mask (3.4 GB at SD-1.5 width, fp32), so its floor is memory bandwidth;
// int8 blocks stream a quarter of that, int4 an eighth. Each weight matrix, as rows [N, K] in the order its
// MatMul contracts over, is quantised symmetrically in blocks of QUANT_BLOCK along K (one fp32 scale per
// block, q = round(w/s) + z, s = max|w|/(z − 1), z = 2^(bits−1): 128 for int8, 8 for int4), and runs as
// com.microsoft.MatMulNBits (accuracy_level 4: the activations are quantised per block too and the dot
// products are int8, which is what makes it faster; bench/.cache-free microbench on 2 AMD EPYC cores:
// int8 1.5–2.5× a fp32 MatMul at 64–2048 rows). Int4 values are packed two to a byte, the first in the
// low nibble (MatMulNBits' layout).
//
// Convolutions that stay Conv ops (the dense UNet's) get the SAME quantised weights, dequantised to fp32
// here, so a dense step and a sparse step use identical weight values; a conv's rows are its taps in
// (ky, kx, cin) order, the order of the sparse conv's gathered columns (sparse/sparseLayers.ts).
// Small matrices (conv_in, conv_out: under MIN_QUANTIZED_ELEMENTS) stay fp32.

import { GraphBuilder } from './graphBuilder';
import { widenToF32 } from './graphBuilder';
import type { WeightTensor } from '../model/tensor';
import type { WeightFormat } from './graphBuilder';

export const QUANT_BLOCK = 128;
/** Matrices smaller than this stay fp32 (the first and last convs; they carry no bandwidth). */
export const MIN_QUANTIZED_ELEMENTS = 16384;
export type QuantBits = 4 | 8;

/** MatMulNBits' default zero point (no zero_points input): values are q − 128 (8 bits) or q − 8 (4 bits). */
const zeroPoint = (bits: QuantBits) => 1 << (bits - 1);

export type WeightRowsLayout = 'linear' | 'conv';

export interface QuantizedRows {
  /** Output features N and contraction length K (a conv: kh·kw·Cin). */
  n: number;
  k: number;
  block: number;
  kBlocks: number;
  bits: QuantBits;
  /** [N, kBlocks, block · bits / 8] uint8: q + zero point (K padded with it), two to a byte for 4 bits. */
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

export function quantizeRows(rows: Float32Array, n: number, k: number, block = QUANT_BLOCK, bits: QuantBits = 8): QuantizedRows {
  const kBlocks = Math.ceil(k / block);
  const z = zeroPoint(bits);
  const top = z - 1;
  const values = new Uint8Array(n * kBlocks * block).fill(z);
  const scales = new Float32Array(n * kBlocks);
  for (let r = 0; r < n; r++) {
    for (let b = 0; b < kBlocks; b++) {
      const from = r * k + b * block;
      const to = r * k + Math.min(k, (b + 1) * block);
      let max = 0;
      for (let i = from; i < to; i++) max = Math.max(max, Math.abs(rows[i]));
      const s = Math.fround(max / top) || 1;
      scales[r * kBlocks + b] = s;
      const out = (r * kBlocks + b) * block;
      for (let i = from; i < to; i++) values[out + i - from] = Math.max(-top, Math.min(top, Math.round(rows[i] / s))) + z;
    }
  }
  return { n, k, block, kBlocks, bits, q: bits === 8 ? values : packNibbles(values), scales };
}

/** Pairs of 4-bit values → bytes, the first of each pair in the low nibble. */
function packNibbles(values: Uint8Array): Uint8Array {
  const out = new Uint8Array(values.length >> 1);
  for (let i = 0; i < out.length; i++) out[i] = values[2 * i] | (values[2 * i + 1] << 4);
  return out;
}

/** The stored value (q + zero point) of element i of the flat [N, kBlocks, block] layout. */
function storedAt(qr: QuantizedRows, i: number): number {
  return qr.bits === 8 ? qr.q[i] : (qr.q[i >> 1] >> ((i & 1) << 2)) & 15;
}

/** The fp32 values MatMulNBits computes with: (q − zero point)·s, as rows [N, K]. */
export function dequantizeRows(qr: QuantizedRows): Float32Array {
  const { n, k, block, kBlocks, scales } = qr;
  const z = zeroPoint(qr.bits);
  const out = new Float32Array(n * k);
  for (let r = 0; r < n; r++) {
    for (let i = 0; i < k; i++) {
      const b = Math.floor(i / block);
      out[r * k + i] = (storedAt(qr, (r * kBlocks + b) * block + (i % block)) - z) * scales[r * kBlocks + b];
    }
  }
  return out;
}

// The recording and the sparse UNet graphs quantise the same weights: once per weight tensor, layout and width.
const quantized = new WeakMap<WeightTensor, Map<string, QuantizedRows>>();

export function quantizedWeight(w: WeightTensor, layout: WeightRowsLayout, bits: QuantBits = 8): QuantizedRows {
  // A 1×1 conv's rows are the same either way: one quantisation for the dense Conv and the sparse MatMul.
  if (w.shape.length === 4 && w.shape[2] === 1 && w.shape[3] === 1) layout = 'linear';
  const byLayout = quantized.get(w) ?? new Map<string, QuantizedRows>();
  let qr = byLayout.get(`${layout}/${bits}`);
  if (!qr) {
    const { rows, n, k } = weightRows(w, layout);
    qr = quantizeRows(rows, n, k, QUANT_BLOCK, bits);
    byLayout.set(`${layout}/${bits}`, qr);
    quantized.set(w, byLayout);
  }
  return qr;
}

/** Bits of a quantised weight format. */
export function quantBits(format: WeightFormat): QuantBits {
  if (format === 'fp32') throw new RangeError('fp32 weights are not quantised');
  return format === 'int4' ? 4 : 8;
}

/** y = x · Wᵀ with W quantised as the graph's weight format says (MatMulNBits). x [..., K] → [..., N]. */
export function matMulQuantized(g: GraphBuilder, x: string, w: WeightTensor, layout: WeightRowsLayout): string {
  const bits = quantBits(g.weightFormat);
  const qr = quantizedWeight(w, layout, bits);
  const tag = `q${bits}`;
  const q = g.initializer(`${w.name}.${tag}`, 'uint8', [qr.n, qr.kBlocks, (qr.block * bits) / 8], qr.q);
  const s = g.initializer(`${w.name}.${tag}_scale`, 'float32', [qr.n * qr.kBlocks], new Uint8Array(qr.scales.buffer, qr.scales.byteOffset, qr.scales.byteLength));
  return g.op('MatMulNBits', [x, q, s], { K: qr.k, N: qr.n, bits, block_size: qr.block, accuracy_level: 4 }, { domain: 'com.microsoft', hint: `matmul_${tag}` });
}

/** A conv weight [out, in, kh, kw] with the quantised values matMulQuantized uses, dequantised to fp32 (dense Conv ops). */
export function dequantizedConvWeight(w: WeightTensor, bits: QuantBits = 8): Float32Array {
  const qr = quantizedWeight(w, 'conv', bits);
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
