// The native addon (native/, src/engine/native/index.ts) against the TypeScript functions it mirrors:
// bit for bit on random inputs. Skipped, with a note, when the addon is not built (no C++ toolchain).

import { floatsToHalves, halvesToFloats } from '../../../src/engine/cache/fp16';
import { RowGeometry, scatterRows } from '../../../src/engine/cache/rows';
import { buildConvTable } from '../../../src/engine/mask/pyramid';
import { NATIVE_ADDON_PATH, nativeAddon } from '../../../src/engine/native';

const addon = nativeAddon();
if (!addon) console.warn(`native tests skipped: ${NATIVE_ADDON_PATH} is not built (run \`node native/build.js\`)`);
const describeNative = addon ? describe : describe.skip;

function lcg(seed: number): () => number {
  let x = seed >>> 0;
  return () => (x = (Math.imul(x, 1664525) + 1013904223) >>> 0) / 2 ** 32;
}

/** Exact equality of the underlying bytes (NaN bit patterns included). */
function sameBytes(a: ArrayBufferView, b: ArrayBufferView): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}

describeNative(`native addon (${addon ? addon.info().build : 'not built'})`, () => {
  const a = addon!;

  test('floatsToHalves: random bit patterns, rounding ties, specials and subarrays match the TS bits', () => {
    const rnd = lcg(1);
    const n = 200_000;
    const bits = new Uint32Array(n);
    for (let i = 0; i < n; i++) bits[i] = Math.floor(rnd() * 2 ** 32) >>> 0; // every exponent, NaNs, subnormals
    // half-way cases and the boundaries named in fp16.ts (65504, 65520, 2^-14, 2^-24, 2^-25)
    const edges = [65504, 65519.99, 65520, 6.1035156e-5, 5.9604645e-8, 2.9802322e-8, 2.98023259e-8, 1 + 2 ** -11, 1 + 3 * 2 ** -11, -0, Infinity, -Infinity, NaN];
    const f = new Float32Array(bits.buffer);
    edges.forEach((v, i) => (f[i] = v));
    for (let i = 100; i < 20_000; i++) {
      // exact ties: a half value plus half an ulp (set the 13th mantissa bit exactly)
      bits[i] = (bits[i] & 0xffffe000) | 0x1000;
    }
    expect(sameBytes(a.floatsToHalves(f), floatsToHalves(f))).toBe(true);
    const sub = f.subarray(7, 50_007);
    const dst = new Uint16Array(60_000);
    expect(a.floatsToHalves(sub, dst)).toBe(dst);
    expect(sameBytes(dst.subarray(0, 50_000), floatsToHalves(sub))).toBe(true);
  });

  test('halvesToFloats: all 65536 half bit patterns match the TS floats bit for bit', () => {
    const h = Uint16Array.from({ length: 65536 }, (_, i) => i);
    expect(sameBytes(a.halvesToFloats(h), halvesToFloats(h))).toBe(true);
    const dst = new Float32Array(65536);
    expect(a.halvesToFloats(h, dst)).toBe(dst);
    expect(sameBytes(dst, halvesToFloats(h))).toBe(true);
  });

  function randomDelta(rnd: () => number, g: RowGeometry, fraction: number) {
    const picked: number[] = [];
    for (let r = 0; r < g.rows; r++) if (rnd() < fraction) picked.push(r);
    const rows = Int32Array.from(picked);
    const data = Uint16Array.from({ length: g.outer * rows.length * g.inner }, () => Math.floor(rnd() * 65536));
    return { rows, data };
  }

  test('scatterRows and overlayChain equal the TS overlay (inner 1, 3, 320; chains of 0–3 deltas)', () => {
    const rnd = lcg(2);
    for (const g of [
      { outer: 2, rows: 4096, inner: 1 },
      { outer: 1, rows: 97, inner: 3 },
      { outer: 2, rows: 1024, inner: 320 },
    ]) {
      const base = Uint16Array.from({ length: g.outer * g.rows * g.inner }, () => Math.floor(rnd() * 65536));
      for (let chain = 0; chain <= 3; chain++) {
        const deltas = Array.from({ length: chain }, () => randomDelta(rnd, g, 0.05 + 0.3 * rnd()));
        const ts = base.slice();
        const nat = base.slice();
        for (const d of deltas) {
          scatterRows(ts, g, d.rows, d.data);
          a.scatterRows(nat, g, d.rows, d.data);
        }
        expect(sameBytes(nat, ts)).toBe(true);
        expect(sameBytes(a.overlayChain(base, g, deltas), ts)).toBe(true);
        const into = new Uint16Array(base.length);
        expect(a.overlayChain(base, g, deltas, into)).toBe(into);
        expect(sameBytes(into, ts)).toBe(true);
      }
      expect(chainChanged(base, g)).toBe(true);
    }
    function chainChanged(base: Uint16Array, g: RowGeometry): boolean {
      const d = randomDelta(rnd, g, 0.5); // guard: the comparison above can see a difference
      return d.rows.length > 0 && !sameBytes(a.overlayChain(base, g, [d]), base);
    }
  });

  test('scatterRows rejects out-of-range rows and wrong lengths without touching the target', () => {
    const g = { outer: 2, rows: 8, inner: 4 };
    const target = new Uint16Array(64).fill(7);
    expect(() => a.scatterRows(target, g, Int32Array.from([1, 8]), new Uint16Array(16))).toThrow(/native\/rows\.cc.*row index 8/);
    expect(() => a.scatterRows(target, g, Int32Array.from([1]), new Uint16Array(16))).toThrow(/delta has 16 values/);
    expect(() => a.overlayChain(target, g, [{ rows: Int32Array.from([-1]), data: new Uint16Array(8) }])).toThrow(/overlayChain: row index -1/); // (RangeError from the main realm: match the message)
    expect(() => a.scatterRows(target, g, new Uint32Array(1) as unknown as Int32Array, new Uint16Array(8))).toThrow(/rows must be a Int32Array/);
    expect(target.every((v) => v === 7)).toBe(true);
  });

  test('buildConvTable equals mask/pyramid.ts on random masks (sizes 1×1 … 64×64, 0–100 % active)', () => {
    const rnd = lcg(3);
    const sizes: Array<[number, number]> = [[1, 1], [1, 7], [5, 3], [8, 8], [17, 9], [32, 32], [64, 64]];
    let cases = 0;
    for (const [w, h] of sizes) {
      for (const p of [0, 0.02, 0.1, 0.25, 0.6, 1]) {
        const mask = { width: w, height: h, data: Uint8Array.from({ length: w * h }, () => (rnd() < p ? 1 : 0)) };
        const ts = buildConvTable(mask);
        const nat = a.buildConvTable(mask);
        expect(nat.zeroRow).toBe(ts.zeroRow);
        expect(sameBytes(nat.halo, ts.halo)).toBe(true);
        expect(sameBytes(nat.neighbors, ts.neighbors)).toBe(true);
        cases++;
      }
    }
    expect(cases).toBe(42);
    expect(() => a.buildConvTable({ width: 2, height: 2, data: Uint8Array.from([0, 2, 0, 0]) })).toThrow(/mask value 2 at index 1/);
    expect(() => a.buildConvTable({ width: 3, height: 2, data: new Uint8Array(4) })).toThrow(/not width \* height/);
  });
});
