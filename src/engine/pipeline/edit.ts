// The FISEdit edit as a numbered recipe (DESIGN.md "Edit pipeline"; fisedit-and-anchors.md §1.1–1.2).
// A child of a stored node: same seed, steps, guidance, scheduler and size, new prompt.
//
// INVARIANT: outside the mask M the child's latents are the parent's stored latents, bit for bit, at
// every step (the scheduler is elementwise, so the full latent is stepped and the parent's values are
// copied back over the inactive pixels), and outside the affected region (M dilated, ×VAE factor) the
// child's image is the parent's stored image, bit for bit.
//
// The child's activation cache is a delta over the parent's: the rows each sparse step recomputed. Steps
// before k are not recorded: they resolve to the parent's entries (the approximation every sparse step
// makes outside the mask), which keeps a child's cache at the size of its mask. A dense child (mode
// DENSE) records full entries for the steps it ran after k.

import type { BinaryMask } from '../mask/binaryMask';
import { decideEditMode, type EditDecision } from '../mask/decide';
import { TargetAreaCapture, targetAreaMask } from '../mask/latentDifference';
import { buildMaskPyramid } from '../mask/pyramid';
import { createScheduler } from '../scheduler';
import type { CacheMiss } from '../cache/cacheTypes';
import { diffTokens } from '../tokenizer/tokenDiff';
import { loadUserMask, resolveStrategy, unetLevels } from './editMask';
import { AttentionMapAccumulator } from './editAttention';
import { encodeCfgText, rerecordNode } from './editRecord';
import { firstNonFinite, gatherActiveRows, guideNoise, scatterGuidedRows, takeParentOutside } from './editSteps';
import { EditInputError, type EditOptions, type EditRequest, type EditResult, type EditTimings, type StateContext } from './editTypes';
import { putRecordedStep, putSparseStep, type SparseUNetStep } from './editUNet';
import { GenerationAbortedError, InferenceError } from './generate';
import { commitEdit, type EditBase } from './editCommit';
import { decodeEditRegion, readParentContext } from './editDecode';

/** Thrown through the sparse step when the parent's cache misses mid-edit. */
class CacheMissError extends Error {
  constructor(readonly miss: CacheMiss) {
    super(miss.message);
    this.name = 'CacheMissError';
  }
}

const range = (a: number, b: number) => Array.from({ length: Math.max(0, b - a) }, (_, i) => a + i);


/**
 * No dilation at any level by default, as FISEdit. The sparse steps recompute exactly the mask's pixels
 * (and, below, the coarse pixels it touches); the halo just outside reads the parent's features, which is
 * what the unedited surroundings should contribute. The pixels taken from the decode are the mask plus
 * a 1-px latent ring either way (regionDecode), so a UNet ring changes no footprint, only work: on SD-1.5
 * width at 256 px a 10.9 % mask costs 1/6.10 of a dense step's MACs without it and 1/4.49 with
 * 1 px (bench/sparse/macBound.ts), and on the bundled model 30 held-out edits scored no worse without it
 * (new attribute 20.0 vs 16.7 %, others kept 93.9 vs 90.9 %, `fisedit eval --edits --dilation 0|1`).
 * With 1 px at EVERY level (SIGE) a 10 % mask made the coarsest two SD levels 56 and 100 % active.
 */
export const DEFAULT_MASK_DILATION = 0;

/**
 * Masks the edit FOUND (latent and attention strategies) get a ring of recomputed context at the finest
 * level, 1/16 of the latent's shorter side (2 px on the bundled model's 32², 4 px at SD's 64²: the
 * same share of the picture); a user's mask stays exact. A found mask is where the latents differed after k of T
 * steps, and the object's border is still forming there: with the ring, the region's border rows see the
 * new prompt's features instead of the parent's. On the bundled model (60 held-out edits, step-11129
 * snapshot, `fisedit eval --edits --limit 60 --dilation 0|2`) edits whose parent drew the object right
 * showed the new attribute in 81.0 % of cases against 66.7 % (shape edits 81.8 vs 54.5 %, colour 80 vs
 * 80 %), all edits 43.3 vs 36.7 %, 0 pixels outside the region either way, at 1.73× instead of 2.21×
 * the dense generation's speed. The latents outside the mask stay the parent's (takeParentOutside).
 */
export const FOUND_MASK_RING_SHARE = 1 / 16;

/** The found-mask ring in latent pixels for a latent of h × w (at least 1). */
export function foundMaskDilation(h: number, w: number): number {
  return Math.max(1, Math.round(FOUND_MASK_RING_SHARE * Math.min(h, w)));
}

export function defaultEditDilation(levels: number, maskDilation = DEFAULT_MASK_DILATION): number[] {
  if (!Number.isInteger(maskDilation) || maskDilation < 0) throw new EditInputError('maskDilation', `must be a non-negative integer, got ${maskDilation}`);
  return Array.from({ length: levels }, (_, i) => (i === 0 ? maskDilation : 0));
}

export async function editNode(ctx: StateContext, request: EditRequest, options: EditOptions = {}): Promise<EditResult> {
  const t0 = performance.now();
  const { models, store, cache, unet } = ctx;
  const { info } = models;
  const { signal } = options;
  const timings: EditTimings = { loadParent: 0, encodeText: 0, capture: 0, mask: 0, rerecordParent: 0, denoise: 0, decode: 0, composite: 0 };
  let mark = t0;
  const lap = (phase: keyof EditTimings) => {
    const now = performance.now();
    timings[phase] += now - mark;
    mark = now;
  };

  // 1. check inputs (nothing is written before they pass)
  if (typeof request.prompt !== 'string' || request.prompt.trim() === '') throw new EditInputError('prompt', 'must not be empty: an edit is a new prompt for the parent');
  const parent = store.get(request.parentId); // UnknownNodeError / StateDirError
  const [C, h, w] = parent.latentShape;
  const f = info.vaeScaleFactor;
  if (parent.model !== info.name) throw new EditInputError('parentId', `node ${parent.id} was made with model "${parent.model}"; the loaded model is "${info.name}"`);
  if (C !== info.latentChannels || h * f !== parent.height || w * f !== parent.width) {
    throw new EditInputError('parentId', `node ${parent.id} has latents [${C}, ${h}, ${w}] for ${parent.width}×${parent.height}, which model "${info.name}" cannot produce`);
  }
  const negative = request.negativePrompt ?? parent.negativePrompt;
  if (typeof negative !== 'string') throw new EditInputError('negativePrompt', 'must be a string');
  if (parent.guidance <= 1 && negative !== '') throw new EditInputError('negativePrompt', `has no effect: node ${parent.id} runs without classifier-free guidance (guidance ${parent.guidance})`);
  const T = parent.steps;
  const { strategy, captureSteps: k } = resolveStrategy(request, T);
  const userMask = strategy === 'mask' ? await loadUserMask(request.mask!, parent, info) : null;
  const policy = request.cacheFallback ?? 'rerecord';
  if (policy !== 'rerecord' && policy !== 'dense') throw new EditInputError('cacheFallback', `must be rerecord or dense (got ${JSON.stringify(policy)})`);
  if (signal?.aborted) throw new GenerationAbortedError(0, T);

  // 2. the parent's state: latents of every step and its image
  const n = C * h * w;
  const parentLatents = store.readLatents(parent);
  const parentAt = (i: number) => parentLatents.subarray(i * n, (i + 1) * n);
  const parentImage = await store.readImage(parent);
  lap('loadParent');

  // 3. encode the new prompt; which tokens changed
  const childTokens = models.tokenize(request.prompt);
  const parentTokens = models.tokenize(parent.prompt);
  const diff = diffTokens(parentTokens.tokens, childTokens.tokens);
  const tokens = { removed: diff.changedA.map((i) => parentTokens.tokens[i]), added: diff.changedB.map((i) => childTokens.tokens[i]) };
  const sameNegative = parent.guidance <= 1 || models.tokenize(negative).ids.join() === models.tokenize(parent.negativePrompt).ids.join();
  const unchanged = childTokens.ids.join() === parentTokens.ids.join() && sameNegative;
  const { text, batch } = await encodeCfgText(models, request.prompt, negative, parent.guidance);
  lap('encodeText');

  const scheduler = createScheduler(parent.scheduler, models.schedulerConfig);
  scheduler.setTimesteps(T);
  const child = new Float32Array((T + 1) * n);
  child.set(parentAt(0), 0);
  let x: Float32Array = parentAt(0).slice();
  const progressTotal = { value: T };
  let done = 0;
  const progress = async (phase: 'capture' | 'rerecord' | 'denoise') => {
    done++;
    if (options.onStep) await options.onStep({ phase, done, total: progressTotal.value });
  };

  // 4. the mask: target-area capture (k dense steps with the new prompt from the parent's noise), the
  //    user's mask, or everything
  let mask: BinaryMask;
  let captureSteps = 0;
  let attentionNote = '';
  if (unchanged) {
    mask = { width: w, height: h, data: new Uint8Array(w * h) };
  } else if (strategy === 'latent' || strategy === 'attention') {
    // k dense steps with the new prompt from the parent's noise; the latent strategy compares their
    // latents with the parent's, the attention strategy records where the changed words look.
    const capture = strategy === 'latent' ? new TargetAreaCapture({ channels: C, height: h, width: w }) : null;
    let maps: AttentionMapAccumulator | null = null;
    if (strategy === 'attention') {
      if (!unet) throw new EditInputError('strategy', 'attention needs the recording UNet, which this engine did not load; use latent or mask');
      // Sequence positions: BOS is position 0, so token index j sits at j + 1.
      maps = new AttentionMapAccumulator(unet.manifest, h, w, diff.changedB.map((j) => j + 1), diff.changedA.map((j) => j + 1));
      if (!maps.available) throw new EditInputError('strategy', `model "${info.name}" has no cross-attention at the recorded levels; use latent or mask`);
    }
    const input = new Float32Array(batch * n);
    for (let i = 0; i < k; i++) {
      if (signal?.aborted) throw new GenerationAbortedError(i, T);
      const scaled = scheduler.scaleModelInput(x, i);
      for (let b = 0; b < batch; b++) input.set(scaled, b * n);
      let eps: Float32Array;
      if (maps) {
        const r = await unet!.recordStep(input, h, w, scheduler.timesteps[i], text);
        maps.addChildStep(r.entries);
        await maps.addParentStep(async (name) => {
          if (!cache) return null;
          const got = await cache.readRows(parent.id, i, name);
          return got.ok ? { shape: got.shape, data: got.data } : null;
        });
        eps = r.noise;
      } else {
        eps = await models.predictNoise(input, batch, h, w, scheduler.timesteps[i], text);
      }
      x = scheduler.step(guideNoise(eps, batch, parent.guidance, n), i, x);
      capture?.addStep(x, parentAt(i + 1));
      child.set(x, (i + 1) * n);
      await progress('capture');
    }
    captureSteps = k;
    lap('capture');
    if (maps) {
      mask = maps.mask().mask;
      if (maps.parentMissing > 0) attentionNote = `; the parent's attention maps were not cached for ${maps.parentMissing} of ${k} capture steps: the mask follows the new words only there`;
      if (diff.changedA.length + diff.changedB.length === 0) {
        // Only the negative prompt changed: no word to follow, so every pixel may change.
        mask = { width: w, height: h, data: new Uint8Array(w * h).fill(1) };
        attentionNote = '; no word of the prompt changed (only the negative prompt): attention cannot localise the edit';
      }
    } else {
      mask = targetAreaMask(capture!.differenceMap(), w, h).mask;
    }
  } else if (strategy === 'mask') {
    mask = userMask!;
  } else {
    mask = { width: w, height: h, data: new Uint8Array(w * h).fill(1) };
  }
  const nLevels = unetLevels(info);
  const found = strategy === 'latent' || strategy === 'attention';
  const levels = buildMaskPyramid(mask, { levels: nLevels, dilation: request.dilation ?? defaultEditDilation(nLevels, request.maskDilation ?? (found ? foundMaskDilation(h, w) : DEFAULT_MASK_DILATION)) });
  let decision: EditDecision = decideEditMode(levels[0].mask, { denseAboveFraction: request.denseAboveFraction });
  if (unchanged) decision = { mode: 'PARENT', fraction: 0, reason: 'the prompt is unchanged: the result is the parent' };
  else if (strategy === 'dense') decision = { mode: 'DENSE', fraction: 1, reason: 'strategy dense: every pixel is regenerated' };
  decision = { ...decision, reason: decision.reason + attentionNote };
  lap('mask');

  const childId = store.newId();
  const base: EditBase = {
    parent,
    childId,
    prompt: request.prompt,
    negative,
    strategy,
    captureSteps,
    mask,
    levels,
    tokens,
    timings,
    t0,
  };

  // 5. an empty mask returns the parent
  if (decision.mode === 'PARENT') {
    return commitEdit(ctx, base, {
      mode: 'PARENT', reason: decision.reason, latents: parentLatents, rgb: parentImage.rgb, affected: { width: parent.width, height: parent.height, data: new Uint8Array(parent.width * parent.height) },
      decodeBox: null, decodeContext: null, decodeMethod: null, decodeMacFraction: null, decoderContext: ctx.decoder ? readParentContext(store, ctx.decoder, parent).packed : null, denseSteps: captureSteps, sparseSteps: 0, rerecordSteps: 0, cacheFallback: null, cacheMisses: [], cacheNode: 'inherit',
    });
  }
  // From here on the child's stored latents keep the parent's values outside M at every step,
  // including the capture steps (the stored trajectory is the one later edits read).
  for (let i = 1; i <= captureSteps; i++) takeParentOutside(child.subarray(i * n, (i + 1) * n), parentAt(i), mask.data);
  x = child.slice(captureSteps * n, (captureSteps + 1) * n);

  // 6. cache plan: sparse needs a sparse UNet and the parent's cache for steps k..T−1
  let mode: 'SPARSE' | 'DENSE' = decision.mode;
  let reason = decision.reason;
  let cacheFallback: EditResult['cacheFallback'] = null;
  const cacheMisses: string[] = [];
  let rerecordSteps = 0;
  const sparseSteps = range(captureSteps, T);
  if (mode === 'SPARSE' && !(unet && cache)) {
    mode = 'DENSE';
    reason += unet ? '; no activation cache is open: ran dense' : '; no sparse UNet is loaded: ran dense';
  }
  let unpin: (() => void) | null = null;
  if (mode === 'SPARSE') {
    const check = cache!.check(parent.id, sparseSteps, unet!.manifest.map((s) => s.name));
    if (!check.ok) {
      cacheMisses.push(...check.misses.slice(0, 4).map((m) => m.message));
      if (policy === 'rerecord') {
        // Pinned first, so that a tight budget cannot evict what we are about to read.
        if (!cache!.hasNode(parent.id)) await cache!.createNode(parent.id, null);
        unpin = cache!.pin(parent.id);
        progressTotal.value += sparseSteps.length;
        rerecordSteps = sparseSteps.length;
        await rerecordNode(ctx, parent, sparseSteps, { latents: parentLatents, signal, onStep: () => progress('rerecord') });
        cacheFallback = 'RERECORDED';
        reason += `; the parent's cache was incomplete (${check.misses[0].reason}): re-recorded ${sparseSteps.length} steps of node ${parent.id} from its stored latents`;
      } else {
        mode = 'DENSE';
        cacheFallback = 'DENSE';
        reason += `; the parent's cache was incomplete (${check.misses[0].reason}): ran dense`;
      }
      lap('rerecordParent');
    } else {
      unpin = cache!.pin(parent.id);
    }
  }
  const record = cache !== null && unet !== null;
  if (record) await cache.createNode(childId, cache.hasNode(parent.id) ? parent.id : null);
  let childCacheComplete = record;
  let cacheBytes = 0;
  let denseAfterCapture = 0;

  try {
    // 7. denoise steps k..T−1: sparse rows from the parent's cache, or dense; then the parent's latents
    //    outside M
    const feed = mode === 'SPARSE' ? unet!.preparePyramid(levels) : null;
    const active0 = levels[0].active;
    const input = new Float32Array(batch * n);
    for (const i of sparseSteps) {
      if (signal?.aborted) throw new GenerationAbortedError(i, T);
      const t = scheduler.timesteps[i];
      const scaled = scheduler.scaleModelInput(x, i);
      let guided: Float32Array | null = null;
      if (mode === 'SPARSE') {
        const rows = gatherActiveRows(scaled, C, active0, batch);
        let miss: CacheMiss | null = null;
        const readCached = async (name: string): Promise<Uint16Array> => {
          const r = await cache!.readRows(parent.id, i, name);
          if (r.ok) return r.data;
          miss = r.miss;
          throw new CacheMissError(r.miss);
        };
        let step: SparseUNetStep | null = null;
        try {
          step = await unet!.sparseStep(feed!, rows, t, text, readCached);
        } catch (e) {
          if (!(e instanceof CacheMissError)) throw e;
        }
        if (step) {
          guided = scatterGuidedRows(step.noise, batch, parent.guidance, C, active0, h * w);
          if (childCacheComplete) {
            const b = await putSparseStep(cache!, childId, i, unet!, step.deltas);
            if (b === null) childCacheComplete = false;
            else cacheBytes += b;
          }
        } else {
          // The check passed but a page vanished since (another process, a damaged file): finish dense.
          const m = miss as CacheMiss | null;
          mode = 'DENSE';
          cacheFallback = 'DENSE';
          if (m) cacheMisses.push(m.message);
          reason += `; the parent's cache failed at step ${i} (${m?.reason ?? 'unknown'}): ran the remaining steps dense`;
        }
      }
      if (!guided) {
        denseAfterCapture++;
        for (let b = 0; b < batch; b++) input.set(scaled, b * n);
        let eps: Float32Array;
        // Without a recording session (released to save memory) a dense step cannot extend the child's
        // cache: the child then keeps none, and edits of it re-record it or run dense.
        if (record && childCacheComplete && unet!.canRecord === false) childCacheComplete = false;
        if (record && childCacheComplete) {
          const r = await unet!.recordStep(input, h, w, t, text);
          cacheBytes += await putRecordedStep(cache!, childId, i, unet!, r.entries);
          eps = r.noise;
        } else {
          eps = await models.predictNoise(input, batch, h, w, t, text);
        }
        guided = guideNoise(eps, batch, parent.guidance, n);
      }
      x = scheduler.step(guided, i, x);
      takeParentOutside(x, parentAt(i + 1), mask.data);
      child.set(x, (i + 1) * n);
      await progress('denoise');
    }
    const bad = firstNonFinite(x);
    if (bad >= 0) throw new InferenceError(`final latents contain ${x[bad]} at index ${bad}`);
    lap('denoise');

    // 8. decode the affected region only; every other pixel is the parent's
    const parentContext = ctx.decoder ? readParentContext(store, ctx.decoder, parent) : { context: null, note: null };
    if (parentContext.note) reason += `; ${parentContext.note}`;
    // The child's decoder page goes beside its UNet deltas (only while those are complete).
    const decoderIO = cache ? { cache, parentId: parent.id, childId: record && childCacheComplete ? childId : null } : null;
    const decoded = await decodeEditRegion(models, ctx.decoder ?? null, parentContext.context, parentImage.rgb, parent, x, mask, request, decoderIO);
    if (decoded.sparseNote && request.decode === 'sparse') reason += `; the sparse decoder did not run: ${decoded.sparseNote}`;
    cacheBytes += decoded.cacheBytes;
    lap('decode');
    timings.decode -= decoded.compositeMs;
    timings.composite += decoded.compositeMs;
    if (record && !childCacheComplete) {
      // A child whose sparse rows were not returned must not resolve to its parent's rows inside M.
      await cache.deleteNode(childId);
    }
    const denseSteps = captureSteps + denseAfterCapture;
    return await commitEdit(ctx, base, {
      mode, reason, latents: child, rgb: decoded.rgb, affected: decoded.affected, decodeBox: decoded.method === 'SPARSE' ? null : decoded.box, decodeContext: decoded.context, decodeMethod: decoded.method, decodeMacFraction: decoded.macFraction, decoderContext: decoded.childContext, denseSteps, sparseSteps: T - denseSteps, rerecordSteps, cacheFallback, cacheMisses,
      cacheNode: record && childCacheComplete ? { bytes: cacheBytes, base: cache.chain(childId)[1] ?? null } : 'none',
    });
  } catch (e) {
    if (record) await cache.deleteNode(childId).catch(() => undefined);
    throw e;
  } finally {
    unpin?.();
  }
}
