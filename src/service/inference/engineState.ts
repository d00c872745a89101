// The engine worker's side of FISEdit edits: the engine's node store (src/engine/state/nodeStore.ts) under
// the service's data dir. Roots are generated with recording (generateNode), so their latents and UNet
// activations are kept; an edit runs editNode from its parent's record (sparse where the mask allows,
// dense where the engine says so; evicted activations are re-recorded from the stored latents). A parent
// with no record here (never recorded, its folder lost) is rebuilt first from the edit's lineage: the
// nearest recorded ancestor (or the root, regenerated from its seed) and the edits below it replayed.
// An edit never silently becomes a plain generation: it keeps its mask, and whatever ran otherwise than
// asked is said in fallbackReason. Runs here call the models directly: the worker runs one job at a time.

import type { DiffusionEngine } from '../../engine/pipeline/engine';
import { editNode } from '../../engine/pipeline/edit';
import { generateNode } from '../../engine/pipeline/editRecord';
import { EditInputError, type EditStepProgress, type MaskStrategy, type StateContext } from '../../engine/pipeline/editTypes';
import { loadEditComponents, releaseEditComponents } from '../../engine/pipeline/editUNet';
import type { GraphCache } from '../../engine/runtime/graphCache';
import type { GenerateResult, StepProgress } from '../../engine/pipeline/generate';
import { downsampleAny, upsampleNearest, type BinaryMask } from '../../engine/mask/binaryMask';
import type { NodeRecord } from '../../engine/state/nodeRecord';
import { NodeStore, UnknownNodeError } from '../../engine/state/nodeStore';
import type { EditRequest, GenerateRequest, InferenceResult, LineageNode } from './backend';
import type { DenseCostModel } from './denseCost';

/** Default resident activation-cache bytes when the service gives none (2 GiB). */
export const DEFAULT_ENGINE_CACHE_BYTES = 2 * 2 ** 30;

/**
 * FISEDIT_DEVICE_CACHE_BYTES: device memory (WebGPU) for recent nodes' activations, so edits of them
 * skip the host→device upload of their parent's cache (default DEFAULT_DEVICE_TIER_BYTES, 0: off).
 */
export function deviceCacheBytesFromEnv(env: NodeJS.ProcessEnv = process.env): number | undefined {
  const v = env.FISEDIT_DEVICE_CACHE_BYTES;
  if (v === undefined || v.trim() === '') return undefined;
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 0) throw new Error(`FISEDIT_DEVICE_CACHE_BYTES must be a non-negative integer number of bytes (got ${JSON.stringify(v)})`);
  return n;
}

/** Open (creating when missing) the node store, its activation cache, the recording/sparse UNet and the region decoder. */
export async function openEngineState(
  engine: DiffusionEngine,
  stateDir: string,
  opts: { cacheBytes?: number; intraOpNumThreads?: number; deviceCacheBytes?: number; graphCache?: GraphCache },
): Promise<StateContext> {
  const store = await NodeStore.open(stateDir, { create: true });
  const deviceTierBytes = opts.deviceCacheBytes ?? deviceCacheBytesFromEnv();
  const parts = await loadEditComponents(engine.info.dir, { variant: engine.info.variant ?? undefined, intraOpNumThreads: opts.intraOpNumThreads, device: engine.device, sessions: { recording: true, sparse: true }, deviceTierBytes, graphCache: opts.graphCache });
  const { unet, decoder } = parts;
  try {
    const cache = await store.openCache(opts.cacheBytes ?? DEFAULT_ENGINE_CACHE_BYTES);
    // The recording graph runs the engine's dense steps too: one UNet copy in memory, not two.
    if (unet.denseSession) await engine.adoptUNet(unet.denseSession);
    return { models: engine, store, cache, unet, decoder };
  } catch (e) {
    await releaseEditComponents(parts);
    throw e;
  }
}

/**
 * Frees deleted nodes' engine state: their folders (latents, image) and their activations. The service
 * deletes whole subtrees, so no surviving node builds on them (NodeStore.delete refuses otherwise).
 */
export async function forgetNodes(ctx: StateContext, engineNodeIds: readonly string[]): Promise<string[]> {
  const deleted = ctx.store.delete(engineNodeIds);
  if (ctx.cache) for (const id of engineNodeIds) await ctx.cache.deleteNode(id);
  for (const id of engineNodeIds) ctx.unet?.dropDevice?.(id);
  return deleted;
}

/**
 * Drops the activation caches of these nodes and of every node whose cache is a delta over them (the disk
 * budget's eviction, src/service/inference/stateBudget.ts). Records, latents and images stay: an edit of
 * such a node re-records its parent's activations from the stored latents. Returns the caches dropped.
 */
export async function evictCaches(ctx: StateContext, engineNodeIds: readonly string[]): Promise<string[]> {
  const dropped: string[] = [];
  if (!ctx.cache) return dropped;
  for (const id of engineNodeIds) if (ctx.cache.hasNode(id)) dropped.push(...(await ctx.cache.deleteNode(id)));
  for (const id of dropped) ctx.unet?.dropDevice?.(id);
  return dropped;
}

/** The engine's generate request for a service request (without guidance the negative prompt is unused). */
export function engineRequest(req: GenerateRequest) {
  return {
    prompt: req.prompt,
    negativePrompt: req.guidance > 1 ? req.negativePrompt : '',
    seed: req.seed,
    steps: req.steps,
    guidance: req.guidance,
    scheduler: req.scheduler,
    width: req.width,
    height: req.height,
  };
}

/** A dense generation recorded into the store (a root, or an edit that cannot run from its parent's state). */
export async function generateRecorded(
  ctx: StateContext,
  req: GenerateRequest,
  opts: { onStep: (s: StepProgress) => Promise<void>; signal: AbortSignal },
): Promise<InferenceResult> {
  const { record, result } = await generateNode(ctx, engineRequest(req), opts);
  return { ...denseResult(result), engineNodeId: record.id };
}

/** Feeds a finished dense generation to the cost model (speedup and dense estimates of later edits). */
export function recordDenseCost(costs: DenseCostModel, req: GenerateRequest, r: InferenceResult): void {
  costs.record({ width: req.width, height: req.height, guidance: req.guidance, steps: req.steps, denoiseMs: r.timings.denoise ?? 0, totalMs: r.wallMs });
}

/** A dense generation as the service's result: its own time is the dense estimate. */
export function denseResult(r: GenerateResult): InferenceResult {
  return {
    rgb: r.rgb,
    width: r.width,
    height: r.height,
    mode: 'DENSE',
    wallMs: r.totalMs,
    denseEstimateMs: r.totalMs,
    maskedFraction: null,
    mask: null,
    timings: { ...r.timings },
  };
}

/**
 * editNode keeps the parent's seed, steps, guidance, scheduler and size: an edit whose request differs in
 * any of them cannot run from this parent (the service never sends one; refused rather than regenerated).
 */
export function checkEditSettings(parent: NodeRecord, req: EditRequest): void {
  const differs: string[] = [];
  if (parent.seed !== String(req.seed)) differs.push('seed');
  if (parent.steps !== req.steps) differs.push('steps');
  if (parent.guidance !== req.guidance) differs.push('guidance');
  if (parent.scheduler !== req.scheduler) differs.push('scheduler');
  if (parent.width !== req.width || parent.height !== req.height) differs.push('size');
  if (differs.length) throw new EditInputError('parentId', `the edit changes the parent's ${differs.join(', ')}: an edit keeps them`);
}

/** The service's strategy and mask as the engine's. A user mask is image-sized grey, > 0 = may change. */
export function engineMask(req: EditRequest, factor: number): { strategy: MaskStrategy; mask: BinaryMask | null } {
  if (req.strategy === 'DENSE') return { strategy: 'dense', mask: null };
  return maskFor(req.strategy, req.mask, factor);
}

function maskFor(strategy: EditRequest['strategy'], userMask: EditRequest['mask'], factor: number): { strategy: MaskStrategy; mask: BinaryMask | null } {
  if (strategy === 'DENSE') return { strategy: 'dense', mask: null };
  if (strategy === 'ATTENTION') return { strategy: 'attention', mask: null };
  if (!userMask) return { strategy: 'latent', mask: null };
  const { data, width, height } = userMask;
  if (data.length !== width * height) throw new EditInputError('mask', `has ${data.length} bytes for ${width}x${height}`);
  const full: BinaryMask = { width, height, data: data.map((v) => (v > 0 ? 1 : 0)) };
  return { strategy: 'mask', mask: downsampleAny(full, factor) };
}

/** Cache fallbacks of the engine as the service's words. */
function cacheFallbackReason(r: { cacheFallback: 'RERECORDED' | 'DENSE' | null; rerecordSteps: number; cacheMisses: string[] }): string | null {
  if (r.cacheFallback === 'RERECORDED') return `the parent's cached activations were gone (evicted or lost): re-recorded ${r.rerecordSteps} steps of the parent from its stored latents`;
  if (r.cacheFallback === 'DENSE') return `the parent's cached activations were gone${r.cacheMisses[0] ? ` (${r.cacheMisses[0]})` : ''}: ran the steps dense`;
  return null;
}

/** editNode from the stored parent; the result's mask is the latent mask scaled up to the image. */
export async function editSparse(
  ctx: StateContext,
  parent: NodeRecord,
  req: EditRequest,
  opts: { onStep: (p: EditStepProgress) => Promise<void>; signal: AbortSignal; costs?: DenseCostModel },
): Promise<InferenceResult> {
  const f = ctx.models.info.vaeScaleFactor;
  const { strategy, mask } = engineMask(req, f);
  // SPARSE and ATTENTION ask for sparse steps whatever the masked fraction (AUTO lets the engine go dense
  // above 0.6); DENSE recomputes every pixel.
  const denseAboveFraction = req.strategy === 'SPARSE' || req.strategy === 'ATTENTION' ? 1 : undefined;
  const r = await editNode(ctx, { parentId: parent.id, prompt: req.prompt, negativePrompt: parent.guidance > 1 ? req.negativePrompt : '', strategy, mask, denseAboveFraction }, opts);
  const big = upsampleNearest(r.mask, f);
  // An edit that recomputed every pixel has no area to show (Node.mask is null then).
  const everywhere = r.mask.data.every((v) => v !== 0);
  const fallback = [cacheFallbackReason(r), r.mode === 'DENSE' && (req.strategy === 'SPARSE' || req.strategy === 'ATTENTION') ? `ran dense: ${r.reason}` : null].filter((x) => x !== null);
  return {
    rgb: r.rgb,
    width: r.width,
    height: r.height,
    mode: r.mode,
    wallMs: r.totalMs,
    denseEstimateMs: opts.costs?.estimate(req.width, req.height, parent.guidance, parent.steps) ?? null,
    maskedFraction: r.maskedFraction,
    mask: r.mode === 'PARENT' || everywhere ? null : { data: big.data.map((v) => v * 255), width: big.width, height: big.height },
    timings: { ...r.timings, saveNode: r.saveMs },
    engineNodeId: r.node.id,
    fallbackReason: fallback.length ? fallback.join('; ') : null,
  };
}

/** The engine record of a lineage node, or the reason there is none. */
function recordOf(ctx: StateContext, n: Pick<LineageNode, 'nodeId' | 'engineNodeId'>): { rec: NodeRecord | null; why: string } {
  if (!n.engineNodeId) return { rec: null, why: `node ${n.nodeId} was never recorded by the engine` };
  try {
    return { rec: ctx.store.get(n.engineNodeId), why: '' };
  } catch (e) {
    if (e instanceof UnknownNodeError) return { rec: null, why: `the engine state of node ${n.nodeId} is gone from the server` };
    throw e;
  }
}

/**
 * The parent's engine record, rebuilt when it has none: from the nearest ancestor that still has one (or
 * the root, regenerated from its seed: the same image), each edit of the lineage is replayed with its own
 * prompt, strategy and mask, recorded as it goes. `rebuilt` lists the new records for the service.
 */
export async function parentRecord(
  ctx: StateContext,
  req: EditRequest,
  opts: { onRebuildStep: (done: number, total: number) => Promise<void>; signal: AbortSignal; costs?: DenseCostModel },
): Promise<{ parent: NodeRecord; reason: string | null; rebuilt: { nodeId: string; engineNodeId: string }[] }> {
  const lineage: LineageNode[] = req.lineage?.length
    ? req.lineage
    : [{ nodeId: req.parentNodeId, engineNodeId: req.parentEngineNodeId ?? null, prompt: req.parentPrompt, negativePrompt: req.negativePrompt, strategy: null, mask: null }];
  const last = lineage.length - 1;
  const own = recordOf(ctx, lineage[last]);
  if (own.rec) return { parent: own.rec, reason: null, rebuilt: [] };
  let from = -1;
  let cur: NodeRecord | null = null;
  for (let i = last - 1; i >= 0 && !cur; i--) {
    cur = recordOf(ctx, lineage[i]).rec;
    if (cur) from = i;
  }
  const rebuilt: { nodeId: string; engineNodeId: string }[] = [];
  // Progress of the rebuild in steps: a generation and each replayed edit count the request's steps.
  const total = ((cur ? 0 : 1) + (last - Math.max(from, 0))) * req.steps;
  let done = 0;
  const step = () => opts.onRebuildStep(Math.min(++done, total), total);
  if (!cur) {
    if (lineage[0].strategy !== null) throw new EditInputError('parentId', `${own.why}, and the edit's lineage does not reach its root: cannot rebuild it`);
    const root = lineage[0];
    const { record, result } = await generateNode(ctx, engineRequest({ ...req, prompt: root.prompt, negativePrompt: root.negativePrompt }), { signal: opts.signal, onStep: step });
    if (opts.costs) opts.costs.record({ width: req.width, height: req.height, guidance: req.guidance, steps: req.steps, denoiseMs: result.timings.denoise, totalMs: result.totalMs });
    cur = record;
    from = 0;
    rebuilt.push({ nodeId: root.nodeId, engineNodeId: record.id });
  }
  const f = ctx.models.info.vaeScaleFactor;
  for (let i = from + 1; i <= last; i++) {
    const n = lineage[i];
    const { strategy, mask } = maskFor(n.strategy ?? 'AUTO', n.mask, f);
    const denseAboveFraction = n.strategy === 'SPARSE' || n.strategy === 'ATTENTION' ? 1 : undefined;
    const r = await editNode(ctx, { parentId: cur.id, prompt: n.prompt, negativePrompt: cur.guidance > 1 ? n.negativePrompt : '', strategy, mask, denseAboveFraction }, { signal: opts.signal, onStep: step });
    cur = r.node;
    rebuilt.push({ nodeId: n.nodeId, engineNodeId: r.node.id });
  }
  const how = from === 0 && rebuilt[0]?.nodeId === lineage[0].nodeId ? 'regenerated the root from its seed' : `started from the recorded ancestor ${lineage[from].nodeId}`;
  const replayed = last - from;
  return { parent: cur, reason: `${own.why}: rebuilt it (${how}${replayed ? `, replayed ${replayed} edit${replayed > 1 ? 's' : ''}` : ''}) before this edit`, rebuilt };
}
