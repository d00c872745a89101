/** @jest-environment ./test/engine/runtime/ortTestEnvironment.js */
// Edits decoded with the parent's decoder context (src/engine/pipeline/editDecode.ts), on the
// tiny-2level fixture with the real recording/sparse UNet and RegionDecoder: roots store their context
// and the same image; a cropped edit uses the parent's context, keeps every pixel outside the affected
// region, lands closer to the full decode than the old crop, stores the child's context for edits of
// edits; a damaged or missing context falls back to the old crop and says so, losing nothing.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ActivationCache } from '../../../src/engine/cache/activationCache';
import { editNode } from '../../../src/engine/pipeline/edit';
import { DECODER_CACHE_STEP, decodeEditRegion, readParentContext } from '../../../src/engine/pipeline/editDecode';
import { autoDecodeMode } from '../../../src/engine/pipeline/regionDecode';
import { generateNode } from '../../../src/engine/pipeline/editRecord';
import type { StateContext } from '../../../src/engine/pipeline/editTypes';
import { loadEditComponents, releaseEditComponents, type EditComponents } from '../../../src/engine/pipeline/editUNet';
import { DiffusionEngine } from '../../../src/engine/pipeline/engine';
import { NodeStore } from '../../../src/engine/state/nodeStore';
import { fingerprint, pixelDiffs, rectMask, tempDir, TINY } from './editFixtures';

const STEPS = 6;
const PROMPT = 'a red circle on the left';
const EDIT = 'a blue circle on the left';
const H = 16;
let engine: DiffusionEngine;
let parts: EditComponents;
const dirs: string[] = [];

beforeAll(async () => {
  engine = await DiffusionEngine.load(TINY, { intraOpNumThreads: 1 });
  parts = await loadEditComponents(TINY, { intraOpNumThreads: 1 });
});
afterAll(async () => {
  await releaseEditComponents(parts);
  await engine?.dispose();
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

async function state(withDecoder = true): Promise<StateContext> {
  const dir = tempDir('fisedit-editdecode-');
  dirs.push(dir);
  const store = await NodeStore.open(path.join(dir, 'state'), { create: true });
  return { models: engine, store, cache: await store.openCache(Infinity), unet: parts.unet, decoder: withDecoder ? parts.decoder : null };
}

const mask = rectMask(H, H, 3, 4, 7, 8); // 16 latent px

/** Mean |a − b| over the affected pixels, in 8-bit levels. */
function meanDiff(a: Uint8Array, b: Uint8Array, region: { data: Uint8Array }): number {
  let s = 0;
  let n = 0;
  region.data.forEach((on, p) => {
    if (!on) return;
    for (let c = 0; c < 3; c++) s += Math.abs(a[3 * p + c] - b[3 * p + c]);
    n += 3;
  });
  return s / n;
}

test('a root stores its decoder context; its image is the plain generate()\'s, bit for bit', async () => {
  const ctx = await state();
  const plain = await engine.generate({ prompt: PROMPT, seed: 3, steps: STEPS });
  const { record, result } = await generateNode(ctx, { prompt: PROMPT, seed: 3, steps: STEPS });
  expect(record.files.decoder).toBe('decoder.npy');
  const packed = ctx.store.readDecoderContext(record)!;
  expect(packed.length).toBe(2 * (parts.decoder!.norms * parts.decoder!.groups + H * H * parts.decoder!.attentionChannels));
  expect(result.rgb).toEqual(plain.rgb);
  // without a region decoder nothing is stored
  const bare = await generateNode(await state(false), { prompt: PROMPT, seed: 3, steps: STEPS });
  expect(bare.record.files.decoder).toBeNull();
});

test("a cropped edit decodes with the parent's context: the parent's pixels outside, closer to the full decode than the old crop inside; edits of edits read the child's", async () => {
  const ctx = await state();
  const root = await generateNode(ctx, { prompt: PROMPT, seed: 3, steps: STEPS });
  const req = { parentId: root.record.id, prompt: EDIT, mask, strategy: 'mask' as const };
  const withCtx = await editNode(ctx, { ...req, decode: 'crop' });
  expect(withCtx.decodeContext).toBe('parent');
  expect(withCtx.decodeBox).toEqual({ x: 0, y: 0, width: 14, height: 15 }); // M + 1 + 6 px, clipped
  expect(pixelDiffs(withCtx.rgb, (await ctx.store.readImage(root.record)).rgb, withCtx.affected).outside).toBe(0);
  expect(withCtx.node.files.decoder).toBe('decoder.npy');

  const full = await editNode(ctx, { ...req, decode: 'full' });
  expect(full.decodeContext).toBe('own');
  const oldCrop = await editNode({ ...ctx, decoder: null }, { ...req, decode: 'crop' });
  expect(oldCrop.decodeContext).toBe('none');
  expect(oldCrop.node.files.decoder).toBeNull();
  // Same latents in all three (the decode is the only difference).
  expect(ctx.store.readLatents(withCtx.node)).toEqual(ctx.store.readLatents(full.node));
  const errCtx = meanDiff(withCtx.rgb, full.rgb, withCtx.affected);
  const errOld = meanDiff(oldCrop.rgb, full.rgb, withCtx.affected);
  expect(errCtx).toBeLessThan(errOld / 2);

  const grandchild = await editNode(ctx, { parentId: withCtx.node.id, prompt: 'a green circle on the left', mask, strategy: 'mask', decode: 'crop' });
  expect(grandchild.decodeContext).toBe('parent');
  expect(pixelDiffs(grandchild.rgb, withCtx.rgb, grandchild.affected).outside).toBe(0);
});

test("a full decode writes the child's decoder page only when the child keeps a cache; without one it fetches none and decodes the same pixels and context", async () => {
  const ctx = await state();
  const root = await generateNode(ctx, { prompt: PROMPT, seed: 3, steps: STEPS });
  const parent = root.record;
  const [C, h, w] = parent.latentShape;
  const latents = ctx.store.readLatents(parent).slice(-C * h * w);
  const parentRgb = (await ctx.store.readImage(parent)).rgb;
  const parentCtx = readParentContext(ctx.store, parts.decoder!, parent).context;
  const names = parts.decoder!.convInputs.map((e) => e.name);
  const cache = ctx.cache!;
  await cache.createNode('keeps', parent.id);
  const kept = await decodeEditRegion(engine, parts.decoder, parentCtx, parentRgb, parent, latents, mask, { decode: 'full' }, { cache, parentId: parent.id, childId: 'keeps' });
  const none = await decodeEditRegion(engine, parts.decoder, parentCtx, parentRgb, parent, latents, mask, { decode: 'full' }, { cache, parentId: parent.id, childId: null });
  expect(kept.method).toBe('FULL');
  expect(none.method).toBe('FULL');
  expect(kept.cacheBytes).toBeGreaterThan(0);
  expect(cache.check('keeps', [DECODER_CACHE_STEP], names)).toEqual({ ok: true });
  expect(none.cacheBytes).toBe(0);
  expect(none.rgb).toEqual(kept.rgb);
  expect(none.childContext).toEqual(kept.childContext);
  expect(pixelDiffs(none.rgb, parentRgb, none.affected).outside).toBe(0);
});

test("where 'auto' always decodes in full, a child that keeps no decoder page decodes on the plain decoder: the same pixels, no context stored (issue 15 item 2)", async () => {
  const ctx = await state();
  const root = await generateNode(ctx, { prompt: PROMPT, seed: 3, steps: STEPS });
  const parent = root.record;
  const [C, h, w] = parent.latentShape;
  expect(autoDecodeMode(engine.info.vaeDecoderWidth, parent.width, parent.height)).toBe('full');
  const latents = ctx.store.readLatents(parent).slice(-C * h * w);
  const parentRgb = (await ctx.store.readImage(parent)).rgb;
  const parentCtx = readParentContext(ctx.store, parts.decoder!, parent).context;
  const cache = ctx.cache!;
  const plain = jest.spyOn(engine, 'decodeLatents');
  try {
    const recorded = await decodeEditRegion(engine, parts.decoder, parentCtx, parentRgb, parent, latents, mask, { decode: 'full' }, { cache, parentId: parent.id, childId: null });
    expect(plain).not.toHaveBeenCalled();
    const auto = await decodeEditRegion(engine, parts.decoder, parentCtx, parentRgb, parent, latents, mask, { decode: 'auto' }, { cache, parentId: parent.id, childId: null });
    expect(plain).toHaveBeenCalledTimes(1);
    expect(auto.method).toBe('FULL');
    expect(auto.context).toBe('own');
    expect(auto.childContext).toBeNull();
    expect(auto.rgb).toEqual(recorded.rgb);
    expect(pixelDiffs(auto.rgb, parentRgb, auto.affected).outside).toBe(0);
    // A child that keeps a page still records it (and its context) for its own children's sparse decodes.
    await cache.createNode('keeps', parent.id);
    const kept = await decodeEditRegion(engine, parts.decoder, parentCtx, parentRgb, parent, latents, mask, { decode: 'auto' }, { cache, parentId: parent.id, childId: 'keeps' });
    expect(plain).toHaveBeenCalledTimes(1);
    expect(kept.childContext).not.toBeNull();
    expect(kept.rgb).toEqual(recorded.rgb);
  } finally {
    plain.mockRestore();
  }
  // Through editNode: a child without an activation cache keeps no page, so it stores no context; an
  // edit of it decodes in full as before.
  const noCache = { ...ctx, cache: null };
  const reads = jest.spyOn(ctx.store, 'readDecoderContext');
  const child = await editNode(noCache, { parentId: parent.id, prompt: EDIT, mask, strategy: 'mask' });
  expect(reads).not.toHaveBeenCalled(); // nothing would use the parent's context
  reads.mockRestore();
  expect(child.mode).toBe('DENSE');
  expect(child.decodeMethod).toBe('FULL');
  expect(child.node.files.decoder).toBeNull();
  expect(pixelDiffs(child.rgb, parentRgb, child.affected).outside).toBe(0);
  const grandchild = await editNode(noCache, { parentId: child.node.id, prompt: 'a green circle on the left', mask, strategy: 'mask' });
  expect(grandchild.decodeMethod).toBe('FULL');
  expect(pixelDiffs(grandchild.rgb, child.rgb, grandchild.affected).outside).toBe(0);
});

test("a damaged decoder.npy: the edit crops with its own statistics, says why, and leaves the store as it was", async () => {
  const ctx = await state();
  const root = await generateNode(ctx, { prompt: PROMPT, seed: 3, steps: STEPS });
  const file = path.join(ctx.store.nodeDir(root.record.id), 'decoder.npy');
  fs.writeFileSync(file, fs.readFileSync(file).subarray(0, 100));
  const before = fingerprint(ctx.store.nodeDir(root.record.id));
  const r = await editNode(ctx, { parentId: root.record.id, prompt: EDIT, mask, strategy: 'mask', decode: 'crop' });
  expect(r.decodeContext).toBe('none');
  expect(r.reason).toMatch(/decoder context was not usable .*decoder\.npy/);
  expect(fingerprint(ctx.store.nodeDir(root.record.id))).toEqual(before);
  expect(pixelDiffs(r.rgb, (await ctx.store.readImage(root.record)).rgb, r.affected).outside).toBe(0);
});

describe('the sparse decoder (sparse/sparseVaeDecoder.ts) in edits', () => {
  test("a root records its decoder activations; a sparse-decoded edit keeps the parent's pixels outside, matches the full decode inside as well as the crop does, and stores deltas its own children decode from", async () => {
    const ctx = await state();
    const root = await generateNode(ctx, { prompt: PROMPT, seed: 3, steps: STEPS });
    const names = parts.decoder!.convInputs.map((e) => e.name);
    expect(names.length).toBeGreaterThan(10);
    expect(ctx.cache!.check(root.record.id, [DECODER_CACHE_STEP], names)).toEqual({ ok: true });
    const req = { parentId: root.record.id, prompt: EDIT, mask, strategy: 'mask' as const };
    const sparse = await editNode(ctx, { ...req, decode: 'sparse' });
    expect(sparse.decodeMethod).toBe('SPARSE');
    expect(sparse.decodeBox).toBeNull();
    expect(sparse.decodeMacFraction).toBeGreaterThan(0);
    expect(sparse.decodeMacFraction).toBeLessThan(1); // 0.71: a 6-px image ring is wide on a 32-px image
    const parentRgb = (await ctx.store.readImage(root.record)).rgb;
    expect(pixelDiffs(sparse.rgb, parentRgb, sparse.affected).outside).toBe(0);
    expect(pixelDiffs(sparse.rgb, parentRgb, sparse.affected).inside).toBeGreaterThan(0);
    const crop = await editNode(ctx, { ...req, decode: 'crop' });
    const full = await editNode(ctx, { ...req, decode: 'full' });
    expect(full.decodeMethod).toBe('FULL');
    expect(crop.decodeMethod).toBe('BOX');
    const errSparse = meanDiff(sparse.rgb, full.rgb, sparse.affected);
    const errCrop = meanDiff(crop.rgb, full.rgb, sparse.affected);
    expect(errSparse).toBeLessThan(2);
    expect(errSparse).toBeLessThanOrEqual(errCrop + 0.5);
    // the child holds deltas over its parent's decoder page (fewer bytes than a full page)
    const childPage = ctx.cache!.stats().nodes.find((n) => n.node === sparse.node.id);
    expect(ctx.cache!.check(sparse.node.id, [DECODER_CACHE_STEP], names)).toEqual({ ok: true });
    expect(childPage).toBeDefined();
    // its own children decode sparsely from those deltas
    const grandchild = await editNode(ctx, { parentId: sparse.node.id, prompt: 'a green circle on the left', mask, strategy: 'mask', decode: 'sparse' });
    expect(grandchild.decodeMethod).toBe('SPARSE');
    expect(pixelDiffs(grandchild.rgb, sparse.rgb, grandchild.affected).outside).toBe(0);
    // a child decoded in full stores a full decoder page
    expect(ctx.cache!.check(full.node.id, [DECODER_CACHE_STEP], names)).toEqual({ ok: true });
  });

  test("without the parent's decoder page (a cache that lost the parent) the edit re-records its UNet steps, decodes as 'auto' would and says why", async () => {
    const ctx = await state();
    const root = await generateNode(ctx, { prompt: PROMPT, seed: 3, steps: STEPS });
    // e.g. a service restarted without a spill directory: an empty memory-only cache
    const r = await editNode({ ...ctx, cache: new ActivationCache({ budgetBytes: Infinity }) }, { parentId: root.record.id, prompt: EDIT, mask, strategy: 'mask', decode: 'sparse' });
    expect(r.cacheFallback).toBe('RERECORDED'); // the UNet steps are re-recorded; the decoder page is not (a full decode)
    // falls back to 'auto': the box around the mask plus 6 px of context is over 3/4 of this 16² latent
    expect(r.decodeMethod).toBe('FULL');
    expect(r.reason).toMatch(/sparse decoder did not run: the parent's decoder activations are not cached \(not-recorded\)/);
    expect(pixelDiffs(r.rgb, (await ctx.store.readImage(root.record)).rgb, r.affected).outside).toBe(0);
  });
});
