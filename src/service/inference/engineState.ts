// The engine worker's side of FISEdit edits: the engine's node store (src/engine/state/nodeStore.ts) under
// the service's data dir. Roots are generated with recording (generateNode), so their latents and UNet
// activations are kept; an edit of a recorded node runs editNode (sparse where the mask allows, dense or
// re-recorded where the engine says so). An edit the engine cannot run from its store (parent never
// recorded, state folder wiped, settings changed from the parent's) is generated densely — and recorded,
// so edits of it can run sparse. Runs here call the models directly: the worker runs one job at a time.

import type { DiffusionEngine } from '../../engine/pipeline/engine';
import { editNode } from '../../engine/pipeline/edit';
import { generateNode } from '../../engine/pipeline/editRecord';
import { EditInputError, type EditStepProgress, type MaskStrategy, type StateContext } from '../../engine/pipeline/editTypes';
import { loadEditComponents, releaseEditComponents } from '../../engine/pipeline/editUNet';
import type { GenerateResult, StepProgress } from '../../engine/pipeline/generate';
import { downsampleAny, upsampleNearest, type BinaryMask } from '../../engine/mask/binaryMask';
import type { NodeRecord } from '../../engine/state/nodeRecord';
import { NodeStore, UnknownNodeError } from '../../engine/state/nodeStore';
import type { EditRequest, GenerateRequest, InferenceResult } from './backend';

/** Default resident activation-cache bytes when the service gives none (2 GiB). */
export const DEFAULT_ENGINE_CACHE_BYTES = 2 * 2 ** 30;

/** Open (creating when missing) the node store, its activation cache, the recording/sparse UNet and the region decoder. */
export async function openEngineState(engine: DiffusionEngine, stateDir: string, opts: { cacheBytes?: number; intraOpNumThreads?: number }): Promise<StateContext> {
  const store = await NodeStore.open(stateDir, { create: true });
  const parts = await loadEditComponents(engine.info.dir, { variant: engine.info.variant ?? undefined, intraOpNumThreads: opts.intraOpNumThreads, device: engine.device, sessions: { recording: true, sparse: true } });
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
  return deleted;
}

function engineRequest(req: GenerateRequest) {
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
 * The stored parent an edit can start from, or null (with the reason) when it must run dense: editNode
 * keeps the parent's seed, steps, guidance, scheduler and size, so an edit that overrides any of them is
 * a new generation.
 */
export function sparseParent(ctx: StateContext, req: EditRequest): { parent: NodeRecord | null; reason: string } {
  if (!req.parentEngineNodeId) return { parent: null, reason: `parent ${req.parentNodeId} has no engine state` };
  let parent: NodeRecord;
  try {
    parent = ctx.store.get(req.parentEngineNodeId);
  } catch (e) {
    if (e instanceof UnknownNodeError) return { parent: null, reason: `engine node ${req.parentEngineNodeId} is gone from ${ctx.store.dir}` };
    throw e;
  }
  const differs: string[] = [];
  if (parent.seed !== String(req.seed)) differs.push('seed');
  if (parent.steps !== req.steps) differs.push('steps');
  if (parent.guidance !== req.guidance) differs.push('guidance');
  if (parent.scheduler !== req.scheduler) differs.push('scheduler');
  if (parent.width !== req.width || parent.height !== req.height) differs.push('size');
  if (parent.guidance > 1 && parent.negativePrompt !== req.negativePrompt) differs.push('negative prompt');
  if (differs.length) return { parent: null, reason: `the edit changes the parent's ${differs.join(', ')}` };
  return { parent, reason: '' };
}

/** The service's strategy and mask as the engine's. A user mask is image-sized grey, > 0 = may change. */
export function engineMask(req: EditRequest, factor: number): { strategy: MaskStrategy; mask: BinaryMask | null } {
  if (req.strategy === 'DENSE') return { strategy: 'dense', mask: null };
  if (req.strategy === 'ATTENTION') return { strategy: 'attention', mask: null };
  if (!req.mask) return { strategy: 'latent', mask: null };
  const { data, width, height } = req.mask;
  if (data.length !== width * height) throw new EditInputError('mask', `has ${data.length} bytes for ${width}x${height}`);
  const full: BinaryMask = { width, height, data: data.map((v) => (v > 0 ? 1 : 0)) };
  return { strategy: 'mask', mask: downsampleAny(full, factor) };
}

/** What a dense generation at the parent's settings costs: the nearest dense ancestor's measured time, ms. */
function denseEstimate(ctx: StateContext, parent: NodeRecord): number | null {
  let n: NodeRecord | null = parent;
  for (let hops = 0; n && hops < 64; hops++) {
    if (n.mode === 'DENSE') return n.totalMs;
    try {
      n = n.parentId ? ctx.store.get(n.parentId) : null;
    } catch {
      return null;
    }
  }
  return null;
}

/** editNode from the stored parent; the result's mask is the latent mask scaled up to the image. */
export async function editSparse(
  ctx: StateContext,
  parent: NodeRecord,
  req: EditRequest,
  opts: { onStep: (p: EditStepProgress) => Promise<void>; signal: AbortSignal },
): Promise<InferenceResult> {
  const f = ctx.models.info.vaeScaleFactor;
  const { strategy, mask } = engineMask(req, f);
  // SPARSE asks for a sparse run whatever the masked fraction (AUTO lets the engine go dense above 0.6).
  const denseAboveFraction = req.strategy === 'SPARSE' ? 1 : undefined;
  const r = await editNode(ctx, { parentId: parent.id, prompt: req.prompt, negativePrompt: parent.guidance > 1 ? req.negativePrompt : '', strategy, mask, denseAboveFraction }, opts);
  const big = upsampleNearest(r.mask, f);
  return {
    rgb: r.rgb,
    width: r.width,
    height: r.height,
    mode: r.mode,
    wallMs: r.totalMs,
    denseEstimateMs: denseEstimate(ctx, parent),
    maskedFraction: r.maskedFraction,
    mask: { data: big.data.map((v) => v * 255), width: big.width, height: big.height },
    timings: { ...r.timings, saveNode: r.saveMs },
    engineNodeId: r.node.id,
  };
}
