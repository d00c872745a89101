// takeParentOutside / parentOutsideCopier (src/engine/pipeline/editSteps.ts) against the per-pixel rule
// written out: x[c, p] = parent[c, p] wherever keep[p] is 0, bit for bit, on random and edge masks.
import { parentOutsideCopier, takeParentOutside } from '../../../src/engine/pipeline/editSteps';

function reference(x: Float32Array, parent: Float32Array, keep: Uint8Array): Float32Array {
  const out = Float32Array.from(x);
  for (let i = 0; i < x.length; i++) if (!keep[i % keep.length]) out[i] = parent[i];
  return out;
}

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
}

test('copies exactly the parent values outside the mask, for every channel, on random and edge masks', () => {
  const r = rng(7);
  const hw = 37;
  const masks = [
    new Uint8Array(hw), // nothing kept: all parent
    new Uint8Array(hw).fill(1), // all kept: x unchanged
    Uint8Array.from({ length: hw }, (_, i) => (i === 0 || i === hw - 1 ? 0 : 1)), // runs at both ends
    ...Array.from({ length: 20 }, () => Uint8Array.from({ length: hw }, () => (r() < 0.5 ? 1 : 0))),
  ];
  for (const keep of masks) {
    const x = Float32Array.from({ length: 3 * hw }, () => r() - 0.5);
    const parent = Float32Array.from({ length: 3 * hw }, () => r() + 1);
    const want = reference(x, parent, keep);
    const a = Float32Array.from(x);
    parentOutsideCopier(keep)(a, parent);
    expect(a).toEqual(want);
    const b = Float32Array.from(x);
    takeParentOutside(b, parent, keep);
    expect(b).toEqual(want);
  }
});

test('refuses latents that do not fit the mask', () => {
  expect(() => parentOutsideCopier(new Uint8Array(4))(new Float32Array(6), new Float32Array(6))).toThrow(RangeError);
  expect(() => parentOutsideCopier(new Uint8Array(4))(new Float32Array(8), new Float32Array(4))).toThrow(RangeError);
});
