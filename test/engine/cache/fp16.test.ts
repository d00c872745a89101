import { floatsToHalves, halvesToFloats } from '../../../src/engine/cache/fp16';
import { floatToHalf, halfToFloat } from '../../../src/engine/model/tensor';

// Independent oracle for float → half: the nearest of all finite halves by value, ties to the even
// bit pattern, anything at or beyond 65520 (the midpoint between 65504 and 2^16) → Inf.
const finite: Array<[number, number]> = [];
for (let h = 0; h < 0x7c00; h++) finite.push([halfToFloat(h), h]);
function oracle(v: number): number {
  if (Number.isNaN(v)) return 0x7e00;
  const sign = v < 0 || Object.is(v, -0) ? 0x8000 : 0;
  const a = Math.abs(v);
  if (a >= 65520) return sign | 0x7c00;
  let lo = 0;
  let hi = finite.length - 1;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (finite[mid][0] <= a) lo = mid;
    else hi = mid;
  }
  const [vl, hl] = finite[lo];
  const [vh, hh] = finite[hi];
  const dl = a - vl;
  const dh = vh - a;
  const h = dl < dh ? hl : dh < dl ? hh : hl & 1 ? hh : hl;
  return sign | h;
}
const f32 = (bits: number) => new Float32Array(new Uint32Array([bits]).buffer)[0];

describe('fp16 bulk conversion', () => {
  test('every half round-trips exactly through float (NaNs stay NaN)', () => {
    const all = Uint16Array.from({ length: 65536 }, (_, i) => i);
    const floats = halvesToFloats(all);
    const back = floatsToHalves(floats);
    for (let h = 0; h < 65536; h++) {
      const isNaN = (h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0;
      if (isNaN) {
        expect(Number.isNaN(floats[h])).toBe(true);
        expect(back[h] & 0x7fff).toBe(0x7e00); // NaN sign and payload are not kept (JS canonicalises NaN)
      } else if (back[h] !== h) {
        throw new Error(`half 0x${h.toString(16)} → ${floats[h]} → 0x${back[h].toString(16)}`);
      }
    }
  });

  test('round to nearest even, overflow, subnormals, signed zero: hand-picked cases', () => {
    const cases: Array<[number, number]> = [
      [1, 0x3c00],
      [1 + 2 ** -11, 0x3c00], // exact tie between 1 and 1 + 2^-10 → even (1)
      [1 + 3 * 2 ** -11, 0x3c02], // tie between 1 + 2^-10 (odd) and 1 + 2^-9 → even
      [1 + 2 ** -11 + 2 ** -20, 0x3c01], // just above the tie
      [65504, 0x7bff],
      [65519.99, 0x7bff],
      [65520, 0x7c00], // tie between 65504 and 2^16 → even → Inf
      [1e9, 0x7c00],
      [-Infinity, 0xfc00],
      [2 ** -14, 0x0400], // smallest normal
      [2 ** -24, 0x0001], // smallest subnormal
      [2 ** -25, 0x0000], // tie between 0 and 2^-24 → even (0)
      [2 ** -25 * 1.0001, 0x0001],
      [3 * 2 ** -25, 0x0002], // tie between 1 and 2 subnormal units → even (2)
      [2 ** -14 - 2 ** -25, 0x0400], // tie between largest subnormal 0x3ff and 0x400 → even (0x400)
      [-0, 0x8000],
      [-(2 ** -26), 0x8000],
    ];
    const src = Float32Array.from(cases.map(([v]) => v));
    const got = floatsToHalves(src);
    cases.forEach(([v, want], i) => {
      expect({ v, h: got[i] }).toEqual({ v, h: want });
      expect(oracle(src[i])).toBe(want);
    });
    expect(floatsToHalves(Float32Array.of(NaN))[0] & 0x7e00).toBe(0x7e00);
  });

  test('matches the oracle and the scalar floatToHalf across a sweep of all float32 bit patterns', () => {
    const n = 1 << 20;
    const bits = new Uint32Array(n);
    for (let i = 0; i < n; i++) bits[i] = Math.imul(i, 4093) >>> 0; // odd stride: covers every exponent and sign
    const src = new Float32Array(bits.buffer);
    const got = floatsToHalves(src);
    let mismatches = 0;
    for (let i = 0; i < n; i++) {
      const want = Number.isNaN(src[i]) ? (floatToHalf(src[i]) & 0x8000) | 0x7e00 : floatToHalf(src[i]);
      if (got[i] !== want) mismatches++;
    }
    expect(mismatches).toBe(0);
    // The oracle is slow; check it on every 64th value of the sweep.
    for (let i = 0; i < n; i += 64) {
      if (Number.isNaN(src[i])) continue;
      if (got[i] !== oracle(src[i])) throw new Error(`float bits 0x${bits[i].toString(16)}: got 0x${got[i].toString(16)}, oracle 0x${oracle(src[i]).toString(16)}`);
    }
  });

  test('neighbourhoods of every rounding boundary (±1 ulp of float32) agree with the oracle', () => {
    const vals: number[] = [];
    for (let h = 0; h < 0x7c00; h += 7) {
      const v = halfToFloat(h);
      const next = halfToFloat(h + 1);
      const mid = Math.fround((v + next) / 2);
      const b = new Uint32Array(new Float32Array([mid]).buffer)[0];
      vals.push(f32(b - 1), mid, f32(b + 1));
    }
    const src = Float32Array.from(vals);
    const got = floatsToHalves(src);
    src.forEach((v, i) => {
      if (got[i] !== oracle(v)) throw new Error(`${v}: got 0x${got[i].toString(16)}, oracle 0x${oracle(v).toString(16)}`);
    });
  });

  test('works on views with an offset and into a given dst; rejects short dst', () => {
    const buf = new Float32Array(10).map((_, i) => i * 0.5);
    const view = buf.subarray(3, 7);
    const dst = new Uint16Array(4);
    expect(floatsToHalves(view, dst)).toBe(dst);
    expect(Array.from(halvesToFloats(dst))).toEqual([1.5, 2, 2.5, 3]);
    expect(() => floatsToHalves(buf, new Uint16Array(2))).toThrow(RangeError);
  });
});
