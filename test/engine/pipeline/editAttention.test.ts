// The attention strategy's map accumulation (src/engine/pipeline/editAttention.ts): per layer and side the
// changed words' maps are summed over the capture steps; the parent's maps come from its cache, and
// missing ones are counted, not fatal.
import { floatsToHalves } from '../../../src/engine/cache/fp16';
import { AttentionMapAccumulator } from '../../../src/engine/pipeline/editAttention';
import type { RecordedCacheEntry } from '../../../src/engine/sparse/sparseUNetRunner';
import type { CacheEntrySpec } from '../../../src/engine/sparse/cacheManifest';

const L = 4; // tokens
const spec: CacheEntrySpec = { name: 'mid_block.attentions.0.transformer_blocks.0.attn2.probs', kind: 'crossAttnProbs', level: 1, width: L };
const conv: CacheEntrySpec = { name: 'conv_in.input', kind: 'convInput', level: 0, width: 4 };

/** A [2, 2·2, L] entry (CFG batch) whose conditional row gives token t the value f(t, pixel). */
function entry(f: (t: number, p: number) => number): RecordedCacheEntry {
  const v = new Float32Array(2 * 4 * L);
  for (let p = 0; p < 4; p++) for (let t = 0; t < L; t++) v[4 * L + p * L + t] = f(t, p);
  return { shape: [2, 4, L], data: floatsToHalves(v) };
}

test('sums the child maps of the changed words over the steps, at the map resolution', () => {
  const acc = new AttentionMapAccumulator([conv, spec], 4, 4, [2], [1]);
  expect(acc.available).toBe(true);
  acc.addChildStep(new Map([[spec.name, entry((t, p) => (t === 2 ? 0.25 * p : 0))]]));
  acc.addChildStep(new Map([[spec.name, entry((t, p) => (t === 2 ? 0.5 : 0))]]));
  const [src] = acc.sources();
  expect([src.tokens, src.height, src.width]).toEqual([L, 2, 2]);
  expect(Array.from(src.probs.subarray(2 * 4, 3 * 4))).toEqual([0.5, 0.75, 1, 1.25]);
  expect(src.changed).toEqual([2]);
});

test('reads the parent maps through the callback; a missing one is counted and skipped', async () => {
  const acc = new AttentionMapAccumulator([spec], 4, 4, [], [1]);
  await acc.addParentStep(async () => entry((t, p) => (t === 1 && p === 3 ? 1 : 0)));
  await acc.addParentStep(async () => null);
  expect(acc.parentMissing).toBe(1);
  const { mask } = acc.mask();
  // token 1 lives in the bottom-right map pixel only: the 4×4 mask covers its 2×2 block (plus the default
  // 1 px dilation of the cleanup)
  expect(mask.data[3 * 4 + 3]).toBe(1);
  expect(mask.data[0]).toBe(0);
});

test('no changed word and no map: an empty mask; a manifest without maps is unavailable', () => {
  expect(new AttentionMapAccumulator([conv], 4, 4, [1], []).available).toBe(false);
  const acc = new AttentionMapAccumulator([spec], 4, 4, [], []);
  expect(Array.from(acc.mask().mask.data).every((v) => v === 0)).toBe(true);
});
