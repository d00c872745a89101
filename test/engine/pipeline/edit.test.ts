/** @jest-environment ./test/engine/runtime/ortTestEnvironment.js */
// The edit pipeline (src/engine/pipeline/edit.ts) on the tiny-2level fixture model, with the real
// recording/sparse UNet: recorded roots, the parent on an empty mask, bit-exact pixels outside the
// affected region, sparse = dense when every pixel is active and the approximations are off, edits of
// edits through deltas, and the cache fallbacks.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ActivationCache } from '../../../src/engine/cache/activationCache';
import { loadModelFolder } from '../../../src/engine/model/modelFolder';
import { editNode, foundMaskDilation } from '../../../src/engine/pipeline/edit';
import { generateNode } from '../../../src/engine/pipeline/editRecord';
import type { StateContext } from '../../../src/engine/pipeline/editTypes';
import { loadEditUNet, type EditUNet } from '../../../src/engine/pipeline/editUNet';
import { DiffusionEngine, RECORDING_ENGINE_COMPONENTS } from '../../../src/engine/pipeline/engine';
import { gaussianFloat32 } from '../../../src/engine/random/gaussian';
import { createScheduler } from '../../../src/engine/scheduler';
import { SparseUNetRunner } from '../../../src/engine/sparse/sparseUNetRunner';
import { NodeStore } from '../../../src/engine/state/nodeStore';
import { RegionDecoder } from '../../../src/engine/pipeline/regionDecoder';
import { StepCostBook, stepCostKey } from '../../../src/engine/pipeline/stepCosts';
import { latentDiffsOutside, maxAbsDiff, pixelDiffs, rectMask, tempDir, TINY } from './editFixtures';

const STEPS = 8;
const SEED = 3;
const PROMPT = 'a red circle on the left';
const H = 16; // latent side of the 32×32 fixture images
let engine: DiffusionEngine;
let unet: EditUNet;
const dirs: string[] = [];

beforeAll(async () => {
  engine = await DiffusionEngine.load(TINY, { intraOpNumThreads: 1 });
  unet = await loadEditUNet(TINY, { intraOpNumThreads: 1 });
});
afterAll(async () => {
  await unet?.release();
  await engine?.dispose();
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

async function state(opts: { record?: boolean; cache?: ActivationCache; unet?: EditUNet } = {}): Promise<StateContext> {
  const dir = tempDir('fisedit-edit-');
  dirs.push(dir);
  const store = await NodeStore.open(path.join(dir, 'state'), { create: true });
  if (opts.record === false) return { models: engine, store, cache: null, unet: null };
  return { models: engine, store, cache: opts.cache ?? (await store.openCache(Infinity)), unet: opts.unet ?? unet };
}

const root = (ctx: StateContext, prompt = PROMPT) => generateNode(ctx, { prompt, seed: SEED, steps: STEPS });

describe('recording a root (generate --state)', () => {
  test('stores the latents of every step, the image and a full cache of every step', async () => {
    const ctx = await state();
    const { record, result, cacheBytes } = await root(ctx);
    expect(record).toMatchObject({ parentId: null, mode: 'DENSE', prompt: PROMPT, seed: String(SEED), steps: STEPS, denseSteps: STEPS, latentShape: [4, H, H] });
    const n = 4 * H * H;
    const latents = ctx.store.readLatents(record);
    expect(latents.length).toBe((STEPS + 1) * n);
    // entry 0 = unit noise × init sigma (DPM++: 1); entry T = the final latents generate returned
    const sched = createScheduler('dpmpp-2m', engine.schedulerConfig);
    sched.setTimesteps(STEPS);
    expect(latents.subarray(0, n)).toEqual(gaussianFloat32(SEED, n).map((v) => Math.fround(v * sched.initNoiseSigma)));
    expect(latents.subarray(STEPS * n)).toEqual(result.latents);
    expect((await ctx.store.readImage(record)).rgb).toEqual(result.rgb);
    expect(cacheBytes).toBeGreaterThan(0);
    expect(record.cache).toMatchObject({ recorded: true, base: null, bytes: cacheBytes });
    expect(ctx.cache!.check(record.id, Array.from({ length: STEPS }, (_, i) => i), unet.manifest.map((s) => s.name))).toEqual({ ok: true });
    // the cache is on disk: a new process (a fresh cache over the directory) sees every step
    const reopened = await ctx.store.openCache(Infinity);
    expect(reopened.check(record.id, [0, STEPS - 1], unet.manifest.map((s) => s.name))).toEqual({ ok: true });
  });

  test('without a recording UNet the root is generate() bit for bit, and strategy dense is generate() of the new prompt', async () => {
    const ctx = await state({ record: false });
    const { record, result } = await root(ctx);
    const ref = await engine.generate({ prompt: PROMPT, seed: SEED, steps: STEPS });
    expect(result.rgb).toEqual(ref.rgb);
    expect(result.latents).toEqual(ref.latents);
    expect(record.cache.recorded).toBe(false);
    const e = await editNode(ctx, { parentId: record.id, prompt: 'a green circle on the left', strategy: 'dense' });
    const dense = await engine.generate({ prompt: 'a green circle on the left', seed: SEED, steps: STEPS });
    expect(e.mode).toBe('DENSE');
    expect(e.denseSteps).toBe(STEPS);
    expect(e.rgb).toEqual(dense.rgb);
    expect(ctx.store.readLatents(e.node).subarray(STEPS * 4 * H * H)).toEqual(dense.latents);
  });
});

describe('an engine without its own UNet (adoptUNet)', () => {
  test('runs dense steps on the recording session: same generation as its own UNet; the session stays the owner\'s', async () => {
    const lean = await DiffusionEngine.load(TINY, { intraOpNumThreads: 1, components: RECORDING_ENGINE_COMPONENTS });
    const request = { prompt: PROMPT, seed: SEED, steps: STEPS };
    await expect(lean.generate(request)).rejects.toThrow(/unet session was not loaded/);
    await expect(lean.adoptUNet(engine['textEncoder'] as never)).rejects.toThrow(/lacks sample, timestep, encoder_hidden_states, noise_pred/);
    await lean.adoptUNet(unet.denseSession!);
    const [mine, theirs] = [await lean.generate(request), await engine.generate(request)];
    expect(maxAbsDiff(mine.latents, theirs.latents)).toBeLessThan(1e-4);
    let rgbDiff = 0;
    for (let i = 0; i < mine.rgb.length; i++) rgbDiff = Math.max(rgbDiff, Math.abs(mine.rgb[i] - theirs.rgb[i]));
    expect(rgbDiff).toBeLessThanOrEqual(1);
    await lean.dispose();
    // disposing the engine left the shared session alive for its owner
    const ctx = await state();
    expect((await root(ctx)).record.mode).toBe('DENSE');
  });
});

describe('edit', () => {
  test('an empty mask returns the parent, bit for bit; so does an unchanged prompt, without running the UNet', async () => {
    const ctx = await state();
    const { record } = await root(ctx);
    const parentImage = await ctx.store.readImage(record);
    const e = await editNode(ctx, { parentId: record.id, prompt: 'a blue circle on the left', mask: rectMask(H, H, 0, 0, 0, 0) });
    expect(e.mode).toBe('PARENT');
    expect(e.node).toMatchObject({ parentId: record.id, mode: 'PARENT', maskedFraction: 0, denseSteps: 0 });
    expect(e.rgb).toEqual(parentImage.rgb);
    expect((await ctx.store.readImage(e.node)).rgb).toEqual(parentImage.rgb);
    expect(ctx.store.readLatents(e.node)).toEqual(ctx.store.readLatents(record));

    let unetCalls = 0;
    const counting: StateContext = { ...ctx, models: Object.create(engine, { predictNoise: { value: (...a: Parameters<DiffusionEngine['predictNoise']>) => (unetCalls++, engine.predictNoise(...a)) } }) };
    const same = await editNode(counting, { parentId: record.id, prompt: PROMPT });
    expect([same.mode, same.captureSteps, unetCalls]).toEqual(['PARENT', 0, 0]);
    expect(same.rgb).toEqual(parentImage.rgb);
  });

  test.each(['mask', 'latent', 'attention'] as const)('strategy %s: every pixel outside the affected region is the parent\'s, bit for bit', async (strategy) => {
    const ctx = await state();
    const { record } = await root(ctx);
    const parentImage = await ctx.store.readImage(record);
    const mask = strategy === 'mask' ? rectMask(H, H, 2, 3, 8, 10) : undefined;
    // the tiny random model moves most latents for any prompt change, and its near-uniform attention maps
    // give masks of 85 % (99 % after dilation): keep these edits sparse anyway
    const e = await editNode(ctx, { parentId: record.id, prompt: 'a blue circle on the left', mask, strategy, denseAboveFraction: strategy === 'attention' ? 1 : 0.95 });
    expect(e.mode).toBe('SPARSE');
    expect(e.cacheFallback).toBeNull();
    expect(e.maskedFraction).toBeGreaterThan(0);
    expect(e.sparseSteps + e.denseSteps).toBe(STEPS);
    // default k: 20 % of 8 steps for latent, 10 % (at least 1) for attention, none for a user mask
    expect(e.captureSteps).toBe({ latent: 2, attention: 1, mask: 0 }[strategy]);
    const d = pixelDiffs(e.rgb, parentImage.rgb, e.affected);
    expect(d.outside).toBe(0);
    expect(d.inside).toBeGreaterThan(0); // the edit did change something
    expect((await ctx.store.readImage(e.node)).rgb).toEqual(e.rgb);
    // the latents outside M are the parent's at every step
    expect(latentDiffsOutside(ctx.store.readLatents(e.node), ctx.store.readLatents(record), e.mask, 4)).toBe(0);
    // the child's cache is a delta: smaller than the root's full cache
    expect(e.cacheBytes).toBeGreaterThan(0);
    expect(e.cacheBytes).toBeLessThan(record.cache.bytes);
    expect(ctx.cache!.chain(e.node.id)).toEqual([e.node.id, record.id]);
  });

  test('every pixel active with the approximations off (exact GroupNorm) = dense regeneration of the new prompt', async () => {
    const folder = loadModelFolder(TINY);
    const exact = await SparseUNetRunner.create(folder.unet.config, folder.unet.weights, { intraOpNumThreads: 1, groupNorm: 'exact' });
    try {
      const ctx = await state({ unet: exact });
      const { record } = await root(ctx);
      const prompt = 'a green square on the right';
      const sparse = await editNode(ctx, { parentId: record.id, prompt, mask: rectMask(H, H, 0, 0, H, H), denseAboveFraction: 1 });
      expect([sparse.mode, sparse.sparseSteps]).toEqual(['SPARSE', STEPS]);
      const dense = await engine.generate({ prompt, seed: SEED, steps: STEPS });
      const z = ctx.store.readLatents(sparse.node).subarray(STEPS * 4 * H * H);
      // float32 graphs with a different op order: agreement to ~1e-5 of the latent scale after 8 steps
      expect(maxAbsDiff(z, dense.latents)).toBeLessThan(2e-4);
      expect(maxAbsDiff(sparse.rgb, dense.rgb)).toBeLessThanOrEqual(1);
    } finally {
      await exact.release();
    }
  });

  test('releaseRecording frees the recording session only: sparse edits go on, with the same result, dense ones keep no cache; recording then fails clearly', async () => {
    const folder = loadModelFolder(TINY);
    const own = await SparseUNetRunner.create(folder.unet.config, folder.unet.weights, { intraOpNumThreads: 1 });
    try {
      const ctx = await state({ unet: own });
      const { record } = await root(ctx);
      const req = { parentId: record.id, prompt: 'a blue circle on the left', mask: rectMask(H, H, 2, 3, 8, 10), strategy: 'mask' as const };
      const before = await editNode(ctx, req);
      await own.releaseRecording();
      const after = await editNode(ctx, req);
      expect(after.mode).toBe('SPARSE');
      expect(after.rgb).toEqual(before.rgb);
      // an edit whose mask is too large runs its steps dense: it succeeds without recording, keeps no
      // cache, and an edit of it still works (the child's cache is re-derived or the edit runs dense)
      const dense = await editNode(ctx, { ...req, denseAboveFraction: 0.01 });
      expect([dense.mode, dense.cacheBytes]).toEqual(['DENSE', 0]);
      expect(ctx.cache!.hasNode(dense.node.id)).toBe(false);
      await expect(root(ctx)).rejects.toThrow(/the recording session was not created/);
    } finally {
      await own.release();
    }
  });

  test('maskDilation: 0 recomputes exactly the user mask, 1 adds a 1-px latent ring; the pixels that may change are the same', async () => {
    const ctx = await state();
    const { record, result } = await root(ctx);
    const user = rectMask(H, H, 2, 3, 8, 10); // 6 × 7 latent pixels
    const prompt = 'a blue circle on the left';
    const [tight, ringed] = [await editNode(ctx, { parentId: record.id, prompt, mask: user, maskDilation: 0 }), await editNode(ctx, { parentId: record.id, prompt, mask: user, maskDilation: 1 })];
    expect(tight.mask.data).toEqual(user.data);
    // maskedFraction is the mask's own; the recomputed (dilated) set is level 0 of the pyramid
    expect(tight.maskedFractionPerLevel[0].fraction).toBeCloseTo(42 / (H * H), 10);
    expect(ringed.maskedFractionPerLevel[0].fraction).toBeCloseTo(72 / (H * H), 10); // 8 × 9
    // the pixels taken from the decode are the MASK plus the decoder's 1-px latent ring (regionDecode), with
    // or without the UNet's ring: that ring only changes what the decoder sees just outside the mask
    const factor = result.width / H;
    const count = (m: { data: Uint8Array }) => m.data.reduce((a, v) => a + v, 0);
    expect(count(tight.affected)).toBe(8 * 9 * factor * factor);
    expect(ringed.affected.data).toEqual(tight.affected.data);
    expect(pixelDiffs(tight.rgb, result.rgb, tight.affected)).toMatchObject({ outside: 0 });
    expect(pixelDiffs(tight.rgb, result.rgb, tight.affected).inside).toBeGreaterThan(0);
    await expect(editNode(ctx, { parentId: record.id, prompt, mask: user, maskDilation: -1 })).rejects.toThrow(/maskDilation/);
  });

  test("coarseCover 'half' recomputes fewer coarse pixels than 'any', runs sparse, and keeps every pixel outside the region the parent's", async () => {
    const ctx = await state();
    const { record, result } = await root(ctx);
    const user = rectMask(H, H, 3, 3, 10, 8); // odd edges: the border cells at level 1 hold 1 or 2 of their 4 children
    const prompt = 'a blue circle on the left';
    const any = await editNode(ctx, { parentId: record.id, prompt, mask: user });
    const half = await editNode(ctx, { parentId: record.id, prompt, mask: user, coarseCover: 'half' });
    expect([any.mode, half.mode]).toEqual(['SPARSE', 'SPARSE']);
    expect(half.maskedFractionPerLevel[0].fraction).toBe(any.maskedFractionPerLevel[0].fraction);
    expect(half.maskedFractionPerLevel[1].fraction).toBeLessThan(any.maskedFractionPerLevel[1].fraction);
    expect(half.affected.data).toEqual(any.affected.data);
    expect(pixelDiffs(half.rgb, result.rgb, half.affected)).toMatchObject({ outside: 0 });
    expect(pixelDiffs(half.rgb, result.rgb, half.affected).inside).toBeGreaterThan(0);
    await expect(editNode(ctx, { parentId: record.id, prompt, mask: user, coarseCover: 'most' as never })).rejects.toThrow(/coarseCover/);
  });

  test('a found mask (latent strategy) is recomputed with a ring of 1/16 of the latent side by default; a user mask stays exact', async () => {
    expect([foundMaskDilation(16, 16), foundMaskDilation(32, 32), foundMaskDilation(64, 96), foundMaskDilation(8, 8)]).toEqual([1, 2, 4, 1]);
    const r = foundMaskDilation(H, H);
    const ctx = await state();
    const { record, result } = await root(ctx);
    const prompt = 'a blue circle on the left';
    const found = await editNode(ctx, { parentId: record.id, prompt, strategy: 'latent', denseAboveFraction: 1 });
    const count = (m: { data: Uint8Array }) => m.data.reduce((a, v) => a + v, 0);
    expect(found.mode).toBe('SPARSE');
    // level 0 is the found mask dilated by a (2r+1)² square: more rows, all of them within r px
    const ringRows = Math.round(found.maskedFractionPerLevel[0].fraction * H * H);
    expect(ringRows).toBeGreaterThan(count(found.mask));
    const grown = new Uint8Array(H * H);
    for (let y = 0; y < H; y++) {
      for (let x = 0; x < H; x++) {
        if (!found.mask.data[y * H + x]) continue;
        for (let dy = -r; dy <= r; dy++) for (let dx = -r; dx <= r; dx++) if (y + dy >= 0 && y + dy < H && x + dx >= 0 && x + dx < H) grown[(y + dy) * H + x + dx] = 1;
      }
    }
    expect(ringRows).toBe(count({ data: grown }));
    // asking for 0 recomputes the found mask exactly; either way nothing outside the affected region moves
    const exact = await editNode(ctx, { parentId: record.id, prompt, strategy: 'latent', maskDilation: 0, denseAboveFraction: 1 });
    expect(exact.mask.data).toEqual(found.mask.data);
    expect(Math.round(exact.maskedFractionPerLevel[0].fraction * H * H)).toBe(count(found.mask));
    expect(pixelDiffs(found.rgb, result.rgb, found.affected)).toMatchObject({ outside: 0 });
    expect(pixelDiffs(exact.rgb, result.rgb, exact.affected)).toMatchObject({ outside: 0 });
  });

  test('an edit of an edit works from the deltas of its parent', async () => {
    const ctx = await state();
    const { record } = await root(ctx);
    const child = await editNode(ctx, { parentId: record.id, prompt: 'a blue circle on the left', mask: rectMask(H, H, 2, 3, 8, 10) });
    const grand = await editNode(ctx, { parentId: child.node.id, prompt: 'a blue circle on the right', mask: rectMask(H, H, 9, 2, 15, 9) });
    expect([child.mode, grand.mode, grand.cacheFallback]).toEqual(['SPARSE', 'SPARSE', null]);
    expect(ctx.cache!.chain(grand.node.id)).toEqual([grand.node.id, child.node.id, record.id]);
    expect(pixelDiffs(grand.rgb, child.rgb, grand.affected).outside).toBe(0);
    expect(latentDiffsOutside(ctx.store.readLatents(grand.node), ctx.store.readLatents(child.node), grand.mask, 4)).toBe(0);
    // what the grandchild read from its parent at a step: the root's rows with the child's rows on top
    const name = unet.manifest.find((s) => s.kind === 'convInput' && s.level === 0)!.name;
    const [viaChild, ofRoot] = await Promise.all([ctx.cache!.readRows(child.node.id, 3, name), ctx.cache!.readRows(record.id, 3, name)]);
    if (!viaChild.ok || !ofRoot.ok) throw new Error('cache read failed');
    expect(viaChild.chain).toEqual([child.node.id, record.id]);
    const C = viaChild.shape[2];
    const active = new Set(Array.from({ length: H * H }, (_, p) => p).filter((p) => child.mask.data[p]));
    let differs = 0;
    for (let p = 0; p < H * H; p++) {
      const same = viaChild.data.subarray(p * C, (p + 1) * C).every((v, c) => v === ofRoot.data[p * C + c]);
      if (!same) {
        differs++;
        expect(active.has(p) || isNeighbourOf(p, active)).toBe(true); // only the child's (dilated) active rows changed
      }
    }
    expect(differs).toBeGreaterThan(0);
  });
});

function isNeighbourOf(p: number, set: Set<number>): boolean {
  const y = Math.floor(p / H);
  const x = p % H;
  for (let dy = -1; dy <= 1; dy++) for (let dx = -1; dx <= 1; dx++) if (set.has((y + dy) * H + x + dx)) return true;
  return false;
}

describe('when the parent\'s cache is gone', () => {
  const mask = rectMask(H, H, 4, 4, 10, 12);
  const prompt = 'a blue circle on the left';

  test('spilled pages deleted: re-record from the stored latents (same result as with the cache), or run dense', async () => {
    const ctx = await state();
    const { record } = await root(ctx);
    const withCache = await editNode(ctx, { parentId: record.id, prompt, mask });
    expect(withCache.cacheFallback).toBeNull();

    fs.rmSync(path.join(ctx.store.cacheDir, record.id), { recursive: true });
    const rerecorded = await editNode({ ...ctx, cache: await ctx.store.openCache(Infinity) }, { parentId: record.id, prompt, mask });
    expect([rerecorded.mode, rerecorded.cacheFallback, rerecorded.rerecordSteps]).toEqual(['SPARSE', 'RERECORDED', STEPS]);
    expect(rerecorded.cacheMisses.join(' ')).toContain(record.id);
    expect(rerecorded.reason).toContain('re-recorded');
    expect(rerecorded.rgb).toEqual(withCache.rgb); // the recording is deterministic: the re-recorded cache is the original
    expect(rerecorded.node.edit?.cacheFallback).toBe('RERECORDED');

    fs.rmSync(path.join(ctx.store.cacheDir, record.id), { recursive: true });
    const dense = await editNode({ ...ctx, cache: await ctx.store.openCache(Infinity) }, { parentId: record.id, prompt, mask, cacheFallback: 'dense' });
    expect([dense.mode, dense.cacheFallback, dense.rerecordSteps, dense.denseSteps]).toEqual(['DENSE', 'DENSE', 0, STEPS]);
    expect(pixelDiffs(dense.rgb, (await ctx.store.readImage(record)).rgb, dense.affected).outside).toBe(0);
  });

  test('pages evicted from a memory-only cache over its budget: reported and re-recorded', async () => {
    const cache = new ActivationCache({ budgetBytes: 2 ** 20 }); // about one recorded step of this model
    const ctx = await state({ cache });
    const { record } = await root(ctx);
    expect(cache.stats().evictions).toBeGreaterThan(0);
    const e = await editNode(ctx, { parentId: record.id, prompt, mask });
    expect(e.cacheFallback).toBe('RERECORDED');
    expect(e.cacheMisses[0]).toMatch(/evicted/);
    expect(e.mode).toBe('SPARSE');
  });
});

describe('when a page of the parent\'s cache vanishes mid-edit', () => {
  test('the sparse step answers miss and the remaining steps run dense; outside the affected region the image stays the parent\'s', async () => {
    const ctx = await state();
    const { record } = await root(ctx);
    const cache = ctx.cache!;
    const GONE = 3;
    // The plan's check passes (every page is there); the reads of steps ≥ GONE fail as if the page had
    // been deleted by another process after the check.
    const vanishing = Object.create(cache) as ActivationCache;
    vanishing.readRows = async (node, step, name, opts) => {
      if (node === record.id && step >= GONE) {
        return { ok: false, miss: { node, step, name, reason: 'evicted', missingNode: node, message: `"${name}" of node ${node} at step ${step} was evicted` } };
      }
      return cache.readRows(node, step, name, opts);
    };
    const mask = rectMask(H, H, 4, 4, 10, 12);
    const e = await editNode({ ...ctx, cache: vanishing }, { parentId: record.id, prompt: 'a blue circle on the left', mask });
    expect([e.mode, e.cacheFallback, e.sparseSteps, e.denseSteps]).toEqual(['DENSE', 'DENSE', GONE, STEPS - GONE]);
    expect(e.reason).toContain(`failed at step ${GONE} (evicted)`);
    expect(e.cacheMisses.join(' ')).toContain(`at step ${GONE}`);
    expect(pixelDiffs(e.rgb, (await ctx.store.readImage(record)).rgb, e.affected).outside).toBe(0);
    expect(latentDiffsOutside(ctx.store.readLatents(e.node), ctx.store.readLatents(record), e.mask, 4)).toBe(0);
  });
});

describe('sparse or dense steps by measured cost (injected step costs)', () => {
  const mask = rectMask(H, H, 4, 4, 10, 12);
  const prompt = 'a blue circle on the left';
  const key = () => stepCostKey(engine.info, 2 * H, 2 * H, 2);

  test('a sparse step measured dearer than a dense one runs the edit dense, without recording when recording costs more', async () => {
    const book = new StepCostBook();
    book.set(key(), { denseMs: 10, recordMs: 20, sparse: [{ fraction: 0.1, ms: 12 }, { fraction: 0.3, ms: 15 }] });
    const ctx = { ...(await state()), stepCosts: book };
    const { record, result } = await root(ctx);
    // no cache node is made (and deleted) for a child that records nothing
    const created = jest.spyOn(ctx.cache!, 'createNode');
    const e = await editNode(ctx, { parentId: record.id, prompt, mask });
    expect(created).not.toHaveBeenCalled();
    created.mockRestore();
    expect(ctx.cache!.hasNode(e.node.id)).toBe(false);
    expect([e.mode, e.denseSteps, e.sparseSteps]).toEqual(['DENSE', STEPS, 0]);
    expect(e.reason).toMatch(/a sparse step at \d+\.\d % costs 1\d\.\d ms against 10\.0 ms for a dense one/);
    expect(e.node.cache.recorded).toBe(false);
    expect(pixelDiffs(e.rgb, result.rgb, e.affected).outside).toBe(0);
    // the edit's own dense step times refined the table
    expect(book.get(key())!.denseMs).not.toBe(10);
  });

  test('a root records nothing where its measured recording costs more than a sparse edit of it saves; its edit runs dense, not re-recording it', async () => {
    const book = new StepCostBook();
    // recording 20 ms a step against 10 dense; sparse 8 ms at 10 %: one edit would save far less than recording costs
    book.set(key(), { denseMs: 10, recordMs: 20, sparse: [{ fraction: 0.1, ms: 8 }, { fraction: 0.3, ms: 9 }] });
    const ctx = { ...(await state()), stepCosts: book };
    const created = jest.spyOn(ctx.cache!, 'createNode');
    const r = await root(ctx);
    expect(created).not.toHaveBeenCalled();
    created.mockRestore();
    expect(r.cacheBytes).toBe(0);
    expect(r.record.cache.recorded).toBe(false);
    expect(r.recording).toMatch(/^not recorded: recording its 8 steps costs 80 ms and a sparse 10 % edit of it saves 12 ms /);
    // the same image as a recorded root's
    const recorded = await root(await state());
    expect(recorded.recording).toBe('recorded: its step costs are not measured yet');
    expect(maxAbsDiff(r.result.rgb, recorded.result.rgb)).toBe(0);
    const e = await editNode(ctx, { parentId: r.record.id, prompt, mask });
    expect([e.mode, e.rerecordSteps, e.cacheFallback]).toEqual(['DENSE', 0, null]);
    expect(e.reason).toContain('its parent was not recorded: re-recording');
    expect(pixelDiffs(e.rgb, r.result.rgb, e.affected).outside).toBe(0);
  });

  test("sessions created at their first use are loading: reported as createSessions, in no phase and not in totalMs", async () => {
    const cheap = new StepCostBook();
    cheap.set(key(), { denseMs: 1000, recordMs: 1000, sparse: [{ fraction: 0.1, ms: 1 }, { fraction: 0.3, ms: 2 }] });
    const base = { ...(await state()), stepCosts: cheap };
    const { record } = await root(base);
    const fresh = await loadEditUNet(TINY, { intraOpNumThreads: 1 });
    try {
      const ctx = { ...base, unet: fresh };
      const phases = (e: { timings: object }) => Object.entries(e.timings as Record<string, number>).filter(([k]) => k !== 'createSessions').reduce((a, [, v]) => a + v, 0);
      const first = await editNode(ctx, { parentId: record.id, prompt, mask });
      expect([first.mode, first.sparseSteps]).toEqual(['SPARSE', STEPS]);
      expect(first.timings.createSessions).toBeGreaterThan(0); // the sparse and recording sessions
      expect(Object.values(first.timings).every((v) => v >= 0)).toBe(true);
      expect(first.totalMs).toBeGreaterThanOrEqual(phases(first) - 1);
      expect(first.totalMs).toBeLessThan(phases(first) + first.timings.createSessions);
      const second = await editNode(ctx, { parentId: record.id, prompt: 'a green circle on the left', mask });
      expect(second.timings.createSessions).toBe(0);
    } finally {
      await fresh.release();
    }
  });

  test("an edit's dense capture steps are observed beside its other steps (ratios measured side by side)", async () => {
    const book = new StepCostBook();
    book.set(key(), { denseMs: 1000, recordMs: 1000, sparse: [{ fraction: 0.1, ms: 2000 }, { fraction: 0.3, ms: 2000 }] });
    const ctx = { ...(await state()), stepCosts: book };
    const { record } = await root(ctx);
    const seen = jest.spyOn(book, 'observe');
    const flushed = jest.spyOn(book, 'flush');
    const e = await editNode(ctx, { parentId: record.id, prompt, strategy: 'latent' });
    // dense steps after capture, recorded (recording measured as cheap as not)
    expect(e.mode).toBe('DENSE');
    expect(e.captureSteps).toBeGreaterThan(0);
    expect(e.node.cache.recorded).toBe(true);
    expect(seen).toHaveBeenCalledTimes(1);
    const [, obs] = seen.mock.calls[0];
    expect(obs.denseMs).toBeGreaterThan(0); // from the capture steps: no plain dense step ran after them
    expect(obs.recordMs).toBeGreaterThan(0);
    // written with the node (its save phase), after the observation
    expect(flushed).toHaveBeenCalledTimes(1);
    expect(flushed.mock.invocationCallOrder[0]).toBeGreaterThan(seen.mock.invocationCallOrder[0]);
    seen.mockRestore();
    flushed.mockRestore();
  });

  test('cheaper sparse steps run sparse; an empty table is measured once, then used', async () => {
    const cheap = new StepCostBook();
    cheap.set(key(), { denseMs: 1000, recordMs: 1000, sparse: [{ fraction: 0.1, ms: 1 }, { fraction: 0.3, ms: 2 }] });
    const ctx = { ...(await state()), stepCosts: cheap };
    const { record } = await root(ctx);
    const e = await editNode(ctx, { parentId: record.id, prompt, mask });
    expect([e.mode, e.sparseSteps]).toEqual(['SPARSE', STEPS]);

    const empty = new StepCostBook();
    const first = await editNode({ ...ctx, stepCosts: empty }, { parentId: record.id, prompt, mask });
    expect(first.reason).toContain('measured the step costs of this model at 32×32 once');
    const measured = empty.get(key())!;
    expect(measured.denseMs).toBeGreaterThan(0);
    expect(measured.recordMs).toBeGreaterThan(0);
    expect(measured.sparse.map((p) => p.fraction).length).toBeGreaterThanOrEqual(2);
    const second = await editNode({ ...ctx, stepCosts: empty }, { parentId: record.id, prompt, mask });
    expect(second.reason).not.toContain('measured the step costs');
  });

  test("where decodes are full, the calibration measures what keeping the child's decoder page adds, and sparse steps pay it", async () => {
    const folder = loadModelFolder(TINY);
    const decoder = await RegionDecoder.create(folder.vae.config, folder.vae.weights, { intraOpNumThreads: 1 });
    try {
      const empty = new StepCostBook();
      const ctx = { ...(await state()), decoder, stepCosts: empty };
      const { record } = await root(ctx);
      await editNode(ctx, { parentId: record.id, prompt, mask });
      expect(empty.get(key())!.keepPageDecodeMs).toBeGreaterThanOrEqual(0);
      // a table written before the decode was counted gets that part measured once
      const old = new StepCostBook();
      old.set(key(), { denseMs: 1000, recordMs: 1000, sparse: [{ fraction: 0.1, ms: 1 }, { fraction: 0.5, ms: 2 }] });
      const first = await editNode({ ...ctx, stepCosts: old }, { parentId: record.id, prompt, mask });
      expect(first.reason).toContain("measured once what keeping the child's decoder page costs");
      expect(old.get(key())!.keepPageDecodeMs).toBeGreaterThanOrEqual(0);
      const again = await editNode({ ...ctx, stepCosts: old }, { parentId: record.id, prompt, mask });
      expect(again.reason).not.toContain('measured once');
      // sparse steps 1 ms cheaper each, a page that costs more than the 8 steps save: dense, and no cache kept
      const dear = new StepCostBook();
      dear.set(key(), { denseMs: 10, recordMs: 20, sparse: [{ fraction: 0.1, ms: 9 }, { fraction: 0.5, ms: 9 }], keepPageDecodeMs: 50 });
      const e = await editNode({ ...ctx, stepCosts: dear }, { parentId: record.id, prompt, mask });
      expect(e.mode).toBe('DENSE');
      expect(e.reason).toContain("keeping the child's cache adds 50.0 ms to its decode");
      expect(e.node.cache.recorded).toBe(false);
    } finally {
      await decoder.release();
    }
  });
});
