// Bulk IEEE-754 binary16 ↔ binary32 conversion for cache rows (onnxruntime-node passes float16 tensors as
// Uint16Array). Bit-identical to the scalar floatToHalf/halfToFloat in model/tensor.ts:
// round to nearest, ties to even; overflow → ±Inf; values at or below 2^-25 → ±0; subnormal halves
// kept; NaN → quiet NaN 0x7e00 (sign and payload of NaNs are not preserved: JS canonicalises NaN). The loops work on raw bits (no per-element calls) so V8
// keeps them in registers; half → float is one 256 KiB table lookup.

import { halfToFloat } from '../model/tensor';

let table: Float32Array | undefined;
function halfTable(): Float32Array {
  if (!table) {
    table = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) table[h] = halfToFloat(h);
  }
  return table;
}

/** float32 → float16 bits. dst may be given to avoid an allocation; returns dst. */
export function floatsToHalves(src: Float32Array, dst: Uint16Array = new Uint16Array(src.length)): Uint16Array {
  if (dst.length < src.length) throw new RangeError(`floatsToHalves: dst has ${dst.length} elements, src ${src.length}`);
  const bits = new Uint32Array(src.buffer, src.byteOffset, src.length);
  const n = src.length;
  for (let i = 0; i < n; i++) {
    const x = bits[i];
    const sign = (x >>> 16) & 0x8000;
    const a = x & 0x7fffffff;
    let h: number;
    if (a >= 0x47800000) {
      // |v| ≥ 65536, Inf or NaN
      h = a > 0x7f800000 ? 0x7e00 : 0x7c00;
    } else if (a >= 0x38800000) {
      // normal half: rebias the exponent (127 → 15), keep 10 mantissa bits, round half to even;
      // a carry out of the mantissa correctly bumps the exponent (up to Inf at 65520).
      h = (a - 0x38000000) >>> 13;
      const rem = a & 0x1fff;
      if (rem > 0x1000 || (rem === 0x1000 && h & 1)) h++;
    } else if (a > 0x33000000) {
      // subnormal half: (1.m) · 2^(e) shifted into 2^-24 units, round half to even
      const shift = 126 - (a >>> 23);
      const m = (a & 0x7fffff) | 0x800000;
      h = m >>> shift;
      const rem = m & ((1 << shift) - 1);
      const mid = 1 << (shift - 1);
      if (rem > mid || (rem === mid && h & 1)) h++;
    } else {
      h = 0; // ≤ 2^-25 rounds to zero (the tie at 2^-25 goes to the even 0)
    }
    dst[i] = sign | h;
  }
  return dst;
}

/** float16 bits → float32. dst may be given to avoid an allocation; returns dst. */
export function halvesToFloats(src: Uint16Array, dst: Float32Array = new Float32Array(src.length)): Float32Array {
  if (dst.length < src.length) throw new RangeError(`halvesToFloats: dst has ${dst.length} elements, src ${src.length}`);
  const t = halfTable();
  const n = src.length;
  for (let i = 0; i < n; i++) dst[i] = t[src[i]];
  return dst;
}
