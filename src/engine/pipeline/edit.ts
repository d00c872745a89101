// The FISEdit edit as named phases (DESIGN: docs/architecture.md "Edits"; fisedit-and-anchors.md §1.1–1.2).
// A child of a stored node: same seed, steps, guidance, scheduler and size, new prompt.
//
//   checkInputs → loadParent → encodePrompts → capture → findMask → planCache → denoiseRest → decode → commit
//
// Every UNet step goes through denoiseLoop.ts. The sparse steps answer `miss` when a page of the
// parent's cache vanished after planCache checked it; the loop then switches to dense steps explicitly.
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
import { buildMaskPyramid, COARSE_COVERS, isCoarseCover, type PyramidLevel } from '../mask/pyramid';
import { createScheduler, type Scheduler } from '../scheduler';
import type { NodeRecord } from '../state/nodeRecord';
import { diffTokens } from '../tokenizer/tokenDiff';
import { DEFAULT_MASK_DILATION, defaultEditDilation, foundMaskDilation, foundMaskGrowth, growMask, loadUserMask, resolveStrategy, unetLevels } from './editMask';
import { AttentionMapAccumulator } from './editAttention';
import { encodeCfgText, rerecordNode } from './editRecord';
import { firstNonFinite, parentOutsideCopier } from './editSteps';
import { EditInputError, type CacheFallbackPolicy, type EditOptions, type EditRequest, type EditResult, type EditTimings, type StateContext } from './editTypes';
import { putRecordedStep, putSparseStep, recordingUNetCall, sparseUNetCall } from './editUNet';
import { denoiseLoop, denseUNetCall, type UNetCall } from './denoiseLoop';
import { GenerationAbortedError, InferenceError } from './pipelineErrors';
import { commitEdit, type EditBase } from './editCommit';
import { calibrateStepCosts, chooseEditSteps, measureKeepPageDecode, StepCostBook, stepCostsFor, type StepChoice, type StepCosts } from './stepCosts';
import { decodeEditRegion, decodeReadsParentContext, readParentContext } from './editDecode';
import { lazyCreationMs } from '../runtime/lazySession';
import { autoDecodeMode } from './regionDecode';

export { DEFAULT_MASK_DILATION, defaultEditDilation, FOUND_MASK_RING_SHARE, foundMaskDilation, foundMaskGrowth } from './editMask';

const range = (a: number, b: number) => Array.from({ length: Math.max(0, b - a) }, (_, i) => a + i);

/** The request, checked (nothing is written before it passes). */
interface CheckedEdit {
  parent: NodeRecord;
  channels: number;
  height: number;
  width: number;
  negative: string;
  steps: number;
  strategy: EditResult['strategy'];
  captureSteps: number;
  userMask: BinaryMask | null;
  policy: CacheFallbackPolicy;
}

/** What every phase after the checks shares. */
interface EditRun {
  ctx: StateContext;
  request: EditRequest;
  options: EditOptions;
  input: CheckedEdit;
  /** C·h·w. */
  n: number;
  parentLatents: Float32Array;
  parentAt(i: number): Float32Array;
  scheduler: Scheduler;
  /** The child's latents of every step, [(T + 1), C, h, w]. */
  child: Float32Array;
  text: Float32Array;
  batch: number;
  timings: EditTimings;
  /** Start of the edit; moved forward by once-per-model work that is not the edit's (cost calibration). */
  t0: number;
  lap(phase: keyof EditTimings): void;
  /** Leaves the last `ms` out of the edit's timings and total. */
  exclude(ms: number): void;
  /** latents: the child's current latents after a capture or denoise step (for previews). */
  progress(phase: 'capture' | 'rerecord' | 'denoise', latents?: Float32Array): Promise<void>;
  /** UNet evaluations this edit reports progress against (grows when the parent is re-recorded). */
  progressTotal: number;
  /** ms of each dense capture step on the plain session: the dense time measured beside the edit's other steps. */
  captureStepMs: number[];
}

/** 1. check inputs. */
async function checkInputs(ctx: StateContext, request: EditRequest): Promise<CheckedEdit> {
  const { models, store } = ctx;
  const { info } = models;
  if (typeof request.prompt !== 'string' || request.prompt.trim() === '') throw new EditInputError('prompt', 'must not be empty: an edit is a new prompt for the parent');
  const parent = store.get(request.parentId); // UnknownNodeError / StateDirError
  const [C, h, w] = parent.latentShape;
  const f = info.vaeScaleFactor;
  if (parent.model !== info.name) throw new EditInputError('parentId', `node ${parent.id} was made with model "${parent.model}"; the loaded model is "${info.name}"`);
  if (C !== info.latentChannels || h * f !== parent.height || w * f !== parent.width) {
    throw new EditInputError('parentId', `node ${parent.id} has latents [${C}, ${h}, ${w}] for ${parent.width}×${parent.height}, which model "${info.name}" cannot produce`);
  }
  // Its sparse steps read the parent's activations, which are those of the parent's weights.
  const weights = ctx.unet?.weights ?? 'fp32';
  if ((parent.weights ?? 'fp32') !== weights) {
    throw new EditInputError('parentId', `node ${parent.id} was made with ${parent.weights ?? 'fp32'} weights and this engine runs ${weights}; edit it with the weights it was made with`);
  }
  const negative = request.negativePrompt ?? parent.negativePrompt;
  if (typeof negative !== 'string') throw new EditInputError('negativePrompt', 'must be a string');
  if (parent.guidance <= 1 && negative !== '') throw new EditInputError('negativePrompt', `has no effect: node ${parent.id} runs without classifier-free guidance (guidance ${parent.guidance})`);
  const { strategy, captureSteps } = resolveStrategy(request, parent.steps);
  const userMask = strategy === 'mask' ? await loadUserMask(request.mask!, parent, info) : null;
  const policy = request.cacheFallback ?? 'rerecord';
  if (policy !== 'rerecord' && policy !== 'dense') throw new EditInputError('cacheFallback', `must be rerecord or dense (got ${JSON.stringify(policy)})`);
  if (request.coarseCover !== undefined && !isCoarseCover(request.coarseCover)) throw new EditInputError('coarseCover', `must be one of ${COARSE_COVERS.join(', ')} (got ${JSON.stringify(request.coarseCover)})`);
  return { parent, channels: C, height: h, width: w, negative, steps: parent.steps, strategy, captureSteps, userMask, policy };
}

/** 3. the new prompt's embeddings and which tokens changed. */
async function encodePrompts(ctx: StateContext, input: CheckedEdit, prompt: string) {
  const { models } = ctx;
  const { parent, negative } = input;
  const childTokens = models.tokenize(prompt);
  const parentTokens = models.tokenize(parent.prompt);
  const diff = diffTokens(parentTokens.tokens, childTokens.tokens);
  const tokens = { removed: diff.changedA.map((i) => parentTokens.tokens[i]), added: diff.changedB.map((i) => childTokens.tokens[i]) };
  const sameNegative = parent.guidance <= 1 || models.tokenize(negative).ids.join() === models.tokenize(parent.negativePrompt).ids.join();
  const unchanged = childTokens.ids.join() === parentTokens.ids.join() && sameNegative;
  const { text, batch } = await encodeCfgText(models, prompt, negative, parent.guidance);
  return { diff, tokens, unchanged, text, batch };
}

/**
 * 4. capture: k dense steps with the new prompt from the parent's noise. The latent strategy compares
 * their latents with the parent's, the attention strategy records where the changed words look.
 */
async function capture(run: EditRun, diff: { changedA: number[]; changedB: number[] }): Promise<{ differenceMap: Uint8Array | null; maps: AttentionMapAccumulator | null }> {
  const { ctx, input, n } = run;
  const { models, unet, cache } = ctx;
  const { channels: C, height: h, width: w, parent, strategy, captureSteps: k } = input;
  const latent = strategy === 'latent' ? new TargetAreaCapture({ channels: C, height: h, width: w }) : null;
  let maps: AttentionMapAccumulator | null = null;
  let call: UNetCall;
  if (strategy === 'attention') {
    if (!unet) throw new EditInputError('strategy', 'attention needs the recording UNet, which this engine did not load; use latent or mask');
    // Sequence positions: BOS is position 0, so token index j sits at j + 1.
    const acc = new AttentionMapAccumulator(unet.manifest, h, w, diff.changedB.map((j) => j + 1), diff.changedA.map((j) => j + 1));
    if (!acc.available) throw new EditInputError('strategy', `model "${models.info.name}" has no cross-attention at the recorded levels; use latent or mask`);
    maps = acc;
    call = recordingUNetCall(unet, h, w, run.text, async (i, entries) => {
      acc.addChildStep(entries);
      await acc.addParentStep(async (name) => {
        if (!cache) return null;
        const got = await cache.readRows(parent.id, i, name);
        return got.ok ? { shape: got.shape, data: got.data } : null;
      });
    });
  } else {
    const plain = denseUNetCall((...a) => models.predictNoise(...a), h, w, run.text);
    call = async (step) => {
      const t = performance.now();
      const out = await plain(step);
      run.captureStepMs.push(performance.now() - t);
      return out;
    };
  }
  await denoiseLoop(run.parentAt(0).slice(), {
    ...loopShape(run),
    steps: range(0, k),
    unet: call,
    afterStep: async (i, x) => {
      latent?.addStep(x, run.parentAt(i + 1));
      run.child.set(x, (i + 1) * n);
      await run.progress('capture', x);
    },
  });
  return { differenceMap: latent ? latent.differenceMap() : null, maps };
}

/** The loop settings every phase shares. */
function loopShape(run: EditRun) {
  const { input } = run;
  return {
    scheduler: run.scheduler,
    guidance: input.parent.guidance,
    batch: run.batch,
    channels: input.channels,
    pixels: input.height * input.width,
    totalSteps: input.steps,
    signal: run.options.signal,
  };
}

/** 5. the mask (found, the user's, or everything), its pyramid and the mode it calls for. */
function findMask(
  run: EditRun,
  unchanged: boolean,
  captured: { differenceMap: Uint8Array | null; maps: AttentionMapAccumulator | null } | null,
  diff: { changedA: number[]; changedB: number[] },
): { mask: BinaryMask; levels: PyramidLevel[]; decision: EditDecision } {
  const { input, request, ctx } = run;
  const { height: h, width: w, strategy, captureSteps: k } = input;
  let mask: BinaryMask;
  let note = '';
  if (unchanged) {
    mask = { width: w, height: h, data: new Uint8Array(w * h) };
  } else if (captured?.maps) {
    const { maps } = captured;
    mask = maps.mask().mask;
    if (maps.parentMissing > 0) note = `; the parent's attention maps were not cached for ${maps.parentMissing} of ${k} capture steps: the mask follows the new words only there`;
    if (diff.changedA.length + diff.changedB.length === 0) {
      // Only the negative prompt changed: no word to follow, so every pixel may change.
      mask = { width: w, height: h, data: new Uint8Array(w * h).fill(1) };
      note = '; no word of the prompt changed (only the negative prompt): attention cannot localise the edit';
    }
  } else if (captured?.differenceMap) {
    mask = targetAreaMask(captured.differenceMap, w, h).mask;
  } else if (strategy === 'mask') {
    mask = input.userMask!;
  } else {
    mask = { width: w, height: h, data: new Uint8Array(w * h).fill(1) };
  }
  const nLevels = unetLevels(ctx.models.info);
  const found = strategy === 'latent' || strategy === 'attention';
  // A found mask is the changing object's core: grow it over the object's soft edge, so that the
  // latents, the recomputed ring and the decoded region cover the whole object (no ring of the old one).
  if (found && !unchanged) mask = growMask(mask, request.maskGrowth ?? foundMaskGrowth(h, w));
  const levels = buildMaskPyramid(mask, { levels: nLevels, coarseCover: request.coarseCover, dilation: request.dilation ?? defaultEditDilation(nLevels, request.maskDilation ?? (found ? foundMaskDilation(h, w) : DEFAULT_MASK_DILATION)) });
  let decision: EditDecision = decideEditMode(levels[0].mask, { denseAboveFraction: request.denseAboveFraction });
  if (unchanged) decision = { mode: 'PARENT', fraction: 0, reason: 'the prompt is unchanged: the result is the parent' };
  else if (strategy === 'dense') decision = { mode: 'DENSE', fraction: 1, reason: 'strategy dense: every pixel is regenerated' };
  return { mask, levels, decision: { ...decision, reason: decision.reason + note } };
}

/** How the steps after capture run, and why. */
interface StepPlan {
  mode: 'SPARSE' | 'DENSE';
  reason: string;
  cacheFallback: EditResult['cacheFallback'];
  cacheMisses: string[];
  rerecordSteps: number;
  /** Releases the pin on the parent's cache node (null when none was taken). */
  unpin: (() => void) | null;
  /** Whether dense steps record the child's activations (measured nearly free, or not measured: as before). */
  recordDense: boolean;
  /** Where the edit's own step times refine the measured costs (null: no table). */
  costs: { book: StepCostBook; key: string } | null;
}

/**
 * Sparse or dense steps after capture, from the measured costs of this model at this size (stepCosts.ts):
 * measured once (not counted in the edit's time) when a sparse edit needs them. Null when the context
 * keeps no table (StateContext.stepCosts null) or the request sets its own denseAboveFraction.
 */
async function chooseByCost(run: EditRun, plan: StepPlan, levels: PyramidLevel[]): Promise<StepChoice | null> {
  const { ctx, input } = run;
  const { parent, channels: C, height: h, width: w } = input;
  const table = stepCostsFor(ctx, parent.width, parent.height, run.batch);
  // A caller's own dense threshold decides alone.
  if (!table || run.request.denseAboveFraction !== undefined) return null;
  const { book, key } = table;
  plan.costs = table;
  let costs = book.get(key);
  const x = () => run.child.slice(input.captureSteps * run.n, (input.captureSteps + 1) * run.n);
  const decodesFull = autoDecodeMode(ctx.models.info.vaeDecoderWidth, parent.width, parent.height) === 'full';
  const size = `${parent.width}×${parent.height}`;
  // Measured once per table entry, kept, and left out of the edit's time.
  const measureOnce = async (what: string, measure: () => Promise<StepCosts>): Promise<StepCosts> => {
    const t = performance.now();
    const measured = await measure();
    book.set(key, measured);
    const ms = performance.now() - t;
    run.exclude(ms);
    plan.reason += `; measured ${what} (${Math.round(ms)} ms, not counted)`;
    return measured;
  };
  if (!costs && plan.mode === 'SPARSE') {
    costs = await measureOnce(`the step costs of this model at ${size} once`, () =>
      calibrateStepCosts({ models: ctx.models, unet: ctx.unet, levels: levels.length, decoder: ctx.decoder ?? null, decodesFull }, run.scheduler, input.captureSteps, x(), run.text, run.batch, { channels: C, height: h, width: w }),
    );
  } else if (costs && costs.keepPageDecodeMs === undefined && decodesFull && ctx.decoder?.hasSparse && plan.mode === 'SPARSE') {
    // A table written before the decode was counted: measure that part once.
    const { decoder } = ctx;
    const old = costs;
    costs = await measureOnce(`once what keeping the child's decoder page costs at ${size}`, async () => ({ ...old, keepPageDecodeMs: await measureKeepPageDecode(ctx.models, decoder, x(), h, w) }));
  }
  const after = input.steps - input.captureSteps;
  // A parent that was not recorded (stepCosts.rootRecording) must be re-recorded before sparse steps.
  return costs ? chooseEditSteps(costs, levels[0].active.length / (h * w), after, parent.cache.recorded ? 0 : after) : null;
}

/** 6. cache plan: sparse steps need a sparse UNet and the parent's cache for steps k..T−1 (re-recorded when gone). */
async function planCache(run: EditRun, decision: EditDecision, levels: PyramidLevel[]): Promise<StepPlan> {
  const { ctx, input } = run;
  const { unet, cache } = ctx;
  const { parent } = input;
  const plan: StepPlan = { mode: decision.mode === 'SPARSE' ? 'SPARSE' : 'DENSE', reason: decision.reason, cacheFallback: null, cacheMisses: [], rerecordSteps: 0, unpin: null, recordDense: true, costs: null };
  const choice = await chooseByCost(run, plan, levels);
  if (choice) plan.recordDense = choice.recordDense;
  if (choice?.steps === 'DENSE' && plan.mode === 'SPARSE') {
    plan.mode = 'DENSE';
    plan.reason += `; ${choice.reason}`;
  }
  if (plan.mode !== 'SPARSE') return plan;
  if (!unet || !cache) {
    plan.mode = 'DENSE';
    plan.reason += unet ? '; no activation cache is open: ran dense' : '; no sparse UNet is loaded: ran dense';
    return plan;
  }
  const steps = range(input.captureSteps, input.steps);
  const check = cache.check(parent.id, steps, unet.manifest.map((s) => s.name));
  if (check.ok) {
    plan.unpin = cache.pin(parent.id);
    return plan;
  }
  plan.cacheMisses.push(...check.misses.slice(0, 4).map((m) => m.message));
  if (input.policy === 'rerecord') {
    // Pinned first, so that a tight budget cannot evict what we are about to read.
    if (!cache.hasNode(parent.id)) await cache.createNode(parent.id, null);
    plan.unpin = cache.pin(parent.id);
    run.progressTotal += steps.length;
    plan.rerecordSteps = steps.length;
    await rerecordNode(ctx, parent, steps, { latents: run.parentLatents, signal: run.options.signal, onStep: () => run.progress('rerecord') });
    plan.cacheFallback = 'RERECORDED';
    plan.reason += `; the parent's cache was incomplete (${check.misses[0].reason}): re-recorded ${steps.length} steps of node ${parent.id} from its stored latents`;
  } else {
    plan.mode = 'DENSE';
    plan.cacheFallback = 'DENSE';
    plan.reason += `; the parent's cache was incomplete (${check.misses[0].reason}): ran dense`;
  }
  run.lap('rerecordParent');
  return plan;
}

/** What the child's own activation cache holds after its steps. */
interface ChildCache {
  /** The child records at all (a cache and a recording UNet are open). */
  record: boolean;
  /** Every step after capture left its entries (sparse deltas or dense full entries). */
  complete: boolean;
  bytes: number;
}

/**
 * 7. steps k..T−1: sparse rows from the parent's cache (switching to dense at a miss), or dense; after
 * each, the parent's latents outside M. Returns the final latents and the dense steps run.
 */
async function denoiseRest(run: EditRun, plan: StepPlan, takeOutside: (x: Float32Array, parent: Float32Array) => void, levels: PyramidLevel[], childId: string, own: ChildCache): Promise<{ x: Float32Array; denseSteps: number }> {
  const { ctx, input, n } = run;
  const { models, unet, cache } = ctx;
  const { channels: C, height: h, width: w, parent, captureSteps } = input;
  let denseSteps = 0;
  const took = { plain: [] as number[], record: [] as number[], sparse: [] as number[] };
  const timed = (call: UNetCall, into: number[]): UNetCall => async (step) => {
    const t = performance.now();
    const out = await call(step);
    if (out.kind !== 'miss') into.push(performance.now() - t);
    return out;
  };
  const plain = timed(denseUNetCall((...a) => models.predictNoise(...a), h, w, run.text), took.plain);
  const recording = own.record ? timed(recordingUNetCall(unet!, h, w, run.text, async (i, entries) => void (own.bytes += await putRecordedStep(cache!, childId, i, unet!, entries))), took.record) : null;
  // Dense steps record the child only where that was measured nearly free: an edit must not cost more
  // than regenerating. A child without a cache is re-recorded (or edited dense) when it is edited.
  if (plan.mode === 'DENSE' && !plan.recordDense) own.complete = false;
  const dense: UNetCall = async (step) => {
    denseSteps++;
    // Without a recording session (released to save memory) a dense step cannot extend the child's
    // cache: the child then keeps none, and edits of it re-record it or run dense.
    if (own.complete && unet?.canRecord === false) own.complete = false;
    return recording && own.complete ? recording(step) : plain(step);
  };
  const sparse: UNetCall | null =
    plan.mode === 'SPARSE'
      ? timed(
          sparseUNetCall(unet!, unet!.preparePyramid(levels), cache!, parent.id, run.text, C, async (i, deltas, device) => {
            if (!own.complete) {
              device?.release();
              return;
            }
            const b = await putSparseStep(cache!, childId, i, unet!, deltas, device);
            if (b === null) own.complete = false;
            else own.bytes += b;
          }),
          took.sparse,
        )
      : null;
  const x = await denoiseLoop(run.child.slice(captureSteps * n, (captureSteps + 1) * n), {
    ...loopShape(run),
    steps: range(captureSteps, input.steps),
    unet: sparse ?? dense,
    // The check passed but a page vanished since (another process, a damaged file): finish dense.
    onMiss: (miss, i) => {
      plan.mode = 'DENSE';
      plan.cacheFallback = 'DENSE';
      plan.cacheMisses.push(miss.message);
      plan.reason += `; the parent's cache failed at step ${i} (${miss.reason}): ran the remaining steps dense`;
      return dense;
    },
    afterStep: async (i, x) => {
      takeOutside(x, run.parentAt(i + 1));
      run.child.set(x, (i + 1) * n);
      await run.progress('denoise', x);
    },
  });
  const bad = firstNonFinite(x);
  if (bad >= 0) throw new InferenceError(`final latents contain ${x[bad]} at index ${bad}`);
  // This edit's own step times refine the measured costs its successors choose by.
  if (plan.costs) {
    const median = (v: number[]) => (v.length ? [...v].sort((a, b) => a - b)[v.length >> 1] : undefined);
    // Sparse and recording steps as their mean: they run on another session than the capture steps, and
    // their first steps pay the switch and the mask's new shapes (on the bundled model 9–15 ms against 5–6
    // later, in a warm process). That is a cost of choosing them; a median hid it, and edits chose sparse
    // steps that made them 10 % slower than regenerating (fisedit eval --edits).
    const mean = (v: number[]) => (v.length ? v.reduce((a, b) => a + b, 0) / v.length : undefined);
    const sparseMs = mean(took.sparse);
    // The capture steps are dense steps of this same edit, beside its sparse or recording ones (the first
    // of them pays the process's warm-up: left out where there are others); dense steps after them run on
    // the same session, so their median is what one more costs.
    const capture = run.captureStepMs.length > 2 ? run.captureStepMs.slice(1) : run.captureStepMs;
    plan.costs.book.observe(plan.costs.key, {
      denseMs: median([...capture, ...took.plain]),
      recordMs: mean(took.record),
      sparse: sparseMs === undefined ? undefined : { fraction: levels[0].active.length / (h * w), ms: sparseMs },
    });
  }
  return { x, denseSteps };
}

export async function editNode(ctx: StateContext, request: EditRequest, options: EditOptions = {}): Promise<EditResult> {
  const t0 = performance.now();
  const { models, store, cache, unet } = ctx;
  const timings: EditTimings = { loadParent: 0, encodeText: 0, capture: 0, mask: 0, rerecordParent: 0, denoise: 0, decode: 0, composite: 0, createSessions: 0 };
  let mark = t0;
  let created = lazyCreationMs();
  const lap = (phase: keyof EditTimings) => {
    const now = performance.now();
    // Sessions created at their first use are loading, as a generation's are: out of the phase and the total.
    const c = lazyCreationMs() - created;
    created += c;
    timings.createSessions += c;
    timings[phase] += now - mark - c;
    mark = now;
  };

  // 1. check inputs (nothing is written before they pass)
  const input = await checkInputs(ctx, request);
  const { parent, channels: C, height: h, width: w, steps: T } = input;
  if (options.signal?.aborted) throw new GenerationAbortedError(0, T);

  // 2. load the parent: latents of every step and its image
  const n = C * h * w;
  const parentLatents = store.readLatents(parent);
  const parentImage = await store.readImage(parent);
  lap('loadParent');

  // 3. encode the new prompt; which tokens changed
  const prompts = await encodePrompts(ctx, input, request.prompt);
  lap('encodeText');

  const scheduler = createScheduler(parent.scheduler, models.schedulerConfig);
  scheduler.setTimesteps(T);
  let done = 0;
  const run: EditRun = {
    ctx,
    request,
    options,
    input,
    n,
    parentLatents,
    parentAt: (i) => parentLatents.subarray(i * n, (i + 1) * n),
    scheduler,
    child: new Float32Array((T + 1) * n),
    text: prompts.text,
    batch: prompts.batch,
    timings,
    t0,
    lap,
    exclude(ms) {
      mark += ms;
      run.t0 += ms;
      created = lazyCreationMs(); // sessions created within the excluded span are excluded with it
    },
    progressTotal: T,
    captureStepMs: [],
    async progress(phase, latents) {
      done++;
      if (options.onStep) await options.onStep({ phase, done, total: run.progressTotal, ...(latents ? { latents } : {}) });
    },
  };
  run.child.set(run.parentAt(0), 0);

  // 4. capture (latent and attention strategies)
  const captures = !prompts.unchanged && (input.strategy === 'latent' || input.strategy === 'attention');
  const captured = captures ? await capture(run, prompts.diff) : null;
  const captureSteps = captures ? input.captureSteps : 0;
  if (captures) lap('capture');

  // 5. mask: found, the user's, or everything
  const { mask, levels, decision } = findMask(run, prompts.unchanged, captured, prompts.diff);
  lap('mask');

  const childId = store.newId();
  const base: EditBase = { parent, childId, prompt: request.prompt, negative: input.negative, strategy: input.strategy, captureSteps, mask, levels, tokens: prompts.tokens, timings, t0 };

  // An empty mask returns the parent.
  if (decision.mode === 'PARENT') {
    return commitEdit(ctx, base, {
      mode: 'PARENT', reason: decision.reason, latents: parentLatents, rgb: parentImage.rgb, affected: { width: parent.width, height: parent.height, data: new Uint8Array(parent.width * parent.height) },
      decodeBox: null, decodeContext: null, decodeMethod: null, decodeMacFraction: null, decoderContext: ctx.decoder ? readParentContext(store, ctx.decoder, parent).packed : null, denseSteps: captureSteps, sparseSteps: 0, rerecordSteps: 0, cacheFallback: null, cacheMisses: [], cacheNode: 'inherit',
    });
  }
  // From here on the child's stored latents keep the parent's values outside M at every step,
  // including the capture steps (the stored trajectory is the one later edits read).
  const takeOutside = parentOutsideCopier(mask.data);
  for (let i = 1; i <= captureSteps; i++) takeOutside(run.child.subarray(i * n, (i + 1) * n), run.parentAt(i));

  // 6. plan the cache: sparse steps read the parent's, re-recorded when gone
  const plan = await planCache(run, decision, levels);
  // A dense child whose steps are not recorded keeps no cache: no node is made for it (creating and
  // deleting one cost 6–30 ms of an edit a regeneration does not pay).
  const own: ChildCache = { record: cache !== null && unet !== null && (plan.mode === 'SPARSE' || plan.recordDense), complete: false, bytes: 0 };
  own.complete = own.record;
  if (own.record) await cache!.createNode(childId, cache!.hasNode(parent.id) ? parent.id : null);

  try {
    // 7. the steps after capture
    const { x, denseSteps: denseAfterCapture } = await denoiseRest(run, plan, takeOutside, levels, childId, own);
    lap('denoise');

    // 8. decode the affected region only; every other pixel is the parent's
    let reason = plan.reason;
    // The child's decoder page goes beside its UNet deltas (only while those are complete).
    const decoderIO = cache ? { cache, parentId: parent.id, childId: own.record && own.complete ? childId : null } : null;
    const parentContext = ctx.decoder && decodeReadsParentContext(models, parent, request, decoderIO) ? readParentContext(store, ctx.decoder, parent) : { context: null, note: null };
    if (parentContext.note) reason += `; ${parentContext.note}`;
    const decoded = await decodeEditRegion(models, ctx.decoder ?? null, parentContext.context, parentImage.rgb, parent, x, mask, request, decoderIO);
    if (decoded.sparseNote && request.decode === 'sparse') reason += `; the sparse decoder did not run: ${decoded.sparseNote}`;
    own.bytes += decoded.cacheBytes;
    lap('decode');
    timings.decode -= decoded.compositeMs;
    timings.composite += decoded.compositeMs;
    // A child whose sparse rows were not returned must not resolve to its parent's rows inside M.
    if (own.record && !own.complete) await cache!.deleteNode(childId);

    // 9. commit: write the node and report
    const denseSteps = captureSteps + denseAfterCapture;
    const book = plan.costs?.book;
    return await commitEdit(ctx, { ...base, t0: run.t0 + timings.createSessions, persist: book && (() => book.flush()) }, {
      mode: plan.mode, reason, latents: run.child, rgb: decoded.rgb, affected: decoded.affected, decodeBox: decoded.method === 'SPARSE' ? null : decoded.box, decodeContext: decoded.context, decodeMethod: decoded.method, decodeMacFraction: decoded.macFraction, decoderContext: decoded.childContext, denseSteps, sparseSteps: T - denseSteps, rerecordSteps: plan.rerecordSteps, cacheFallback: plan.cacheFallback, cacheMisses: plan.cacheMisses,
      cacheNode: own.record && own.complete ? { bytes: own.bytes, base: cache!.chain(childId)[1] ?? null } : 'none',
    });
  } catch (e) {
    if (own.record) await cache!.deleteNode(childId).catch(() => undefined);
    throw e;
  } finally {
    plan.unpin?.();
  }
}
