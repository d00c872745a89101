// The last step of an edit: write the child node (its cache pages first, then the node folder in one
// rename, nodeStore.ts) and assemble the report. Shared by every outcome of edit.ts (PARENT, SPARSE,
// DENSE); on failure the child's cache node is removed and the store is as before.

import { activeFraction, BinaryMask } from '../mask/binaryMask';
import { pyramidFractions, type PyramidLevel } from '../mask/pyramid';
import type { NodeRecord } from '../state/nodeRecord';
import { pngText } from './editRecord';
import type { EditResult, EditTimings, StateContext } from './editTypes';

export interface EditBase {
  parent: NodeRecord;
  childId: string;
  prompt: string;
  negative: string;
  strategy: EditResult['strategy'];
  captureSteps: number;
  mask: BinaryMask;
  levels: PyramidLevel[];
  tokens: EditResult['tokens'];
  timings: EditTimings;
  t0: number;
  /** State the edit keeps beside its node (the measured step costs), written in the save phase with it. */
  persist?: () => void;
}

export interface EditOutcome {
  mode: EditResult['mode'];
  reason: string;
  latents: Float32Array;
  rgb: Uint8Array;
  affected: BinaryMask;
  decodeBox: EditResult['decodeBox'];
  decodeContext: EditResult['decodeContext'];
  decodeMethod: EditResult['decodeMethod'];
  decodeMacFraction: EditResult['decodeMacFraction'];
  /** The child's packed decoder context (RegionDecoder.pack), or null. */
  decoderContext: Float32Array | null;
  denseSteps: number;
  sparseSteps: number;
  rerecordSteps: number;
  cacheFallback: EditResult['cacheFallback'];
  cacheMisses: string[];
  /** 'inherit': no activations of its own, reads its parent's (PARENT mode); 'none': nothing recorded. */
  cacheNode: 'inherit' | 'none' | { bytes: number; base: string | null };
}

/** 9. write the node and report. */
export async function commitEdit(ctx: StateContext, b: EditBase, o: EditOutcome): Promise<EditResult> {
  const { store, cache, unet, models } = ctx;
  const { parent } = b;
  const totalMs = performance.now() - b.t0;
  const saveStart = performance.now();
  let cacheInfo = { recorded: false, base: null as string | null, names: [] as string[], bytes: 0 };
  const names = unet ? unet.manifest.map((s) => s.name) : [];
  try {
    if (cache && o.cacheNode === 'inherit' && cache.hasNode(parent.id)) {
      await cache.createNode(b.childId, parent.id);
      cacheInfo = { recorded: parent.cache.recorded, base: parent.id, names: parent.cache.names, bytes: 0 };
    } else if (cache && typeof o.cacheNode === 'object') {
      cacheInfo = { recorded: true, base: o.cacheNode.base, names, bytes: o.cacheNode.bytes };
    }
    if (cache?.spill && (cacheInfo.base !== null || cacheInfo.recorded)) await cache.persist();
    const fractions = pyramidFractions(b.levels);
    const maskedFraction = o.mode === 'PARENT' ? 0 : activeFraction(b.mask);
    const node = await store.commit({
      id: b.childId,
      rgb: o.rgb,
      latents: o.latents,
      noise: parent.seed === null ? store.readNoise(parent) : null,
      mask: { mask: b.mask, factor: models.info.vaeScaleFactor },
      decoderContext: o.decoderContext,
      pngText: pngText(models.info.name, b.prompt, b.negative, parent.seed, parent.steps, parent.scheduler, parent.guidance, parent.width, parent.height),
      record: {
        parentId: parent.id,
        model: parent.model,
        modelDir: models.info.dir,
        ...(unet?.weights && unet.weights !== 'fp32' ? { weights: unet.weights } : {}),
        prompt: b.prompt,
        negativePrompt: parent.guidance > 1 ? b.negative : '',
        seed: parent.seed,
        steps: parent.steps,
        guidance: parent.guidance,
        scheduler: parent.scheduler,
        width: parent.width,
        height: parent.height,
        latentShape: parent.latentShape,
        timesteps: parent.timesteps,
        mode: o.mode,
        maskedFraction,
        denseSteps: o.denseSteps,
        timings: { ...b.timings },
        totalMs,
        cache: cacheInfo,
        edit: {
          strategy: b.strategy,
          captureSteps: b.captureSteps,
          reason: o.reason,
          cacheFallback: o.cacheFallback,
          maskedFractionPerLevel: o.mode === 'PARENT' ? fractions.map(() => 0) : fractions.map((l) => l.fraction),
        },
      },
    });
    b.persist?.();
    return {
      node,
      mode: o.mode,
      reason: o.reason,
      strategy: b.strategy,
      mask: b.mask,
      affected: o.affected,
      maskedFraction,
      maskedFractionPerLevel: o.mode === 'PARENT' ? fractions.map((l) => ({ ...l, active: 0, fraction: 0 })) : fractions,
      denseSteps: o.denseSteps,
      sparseSteps: o.sparseSteps,
      captureSteps: b.captureSteps,
      rerecordSteps: o.rerecordSteps,
      cacheFallback: o.cacheFallback,
      cacheMisses: o.cacheMisses,
      cacheBytes: cacheInfo.bytes,
      decodeBox: o.decodeBox,
      decodeContext: o.decodeContext,
      decodeMethod: o.decodeMethod,
      decodeMacFraction: o.decodeMacFraction,
      tokens: b.tokens,
      rgb: o.rgb,
      width: parent.width,
      height: parent.height,
      timings: b.timings,
      totalMs,
      saveMs: performance.now() - saveStart,
    };
  } catch (e) {
    if (cache) await cache.deleteNode(b.childId).catch(() => undefined);
    throw e;
  }
}
