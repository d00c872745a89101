// Requests, results and errors of the edit pipeline (edit.ts) and of recording nodes into a --state
// directory (editRecord.ts).

import type { RegionDecoder } from './regionDecoder';
import type { ActivationCache } from '../cache/activationCache';
import type { BinaryMask } from '../mask/binaryMask';
import type { CoarseCover } from '../mask/pyramid';
import type { NodeMode, NodeRecord } from '../state/nodeRecord';
import type { NodeStore } from '../state/nodeStore';
import type { EditUNet } from './editUNet';
import type { DiffusionModels } from './models';
import type { StepCostBook } from './stepCosts';

export type MaskStrategy = 'auto' | 'latent' | 'attention' | 'mask' | 'dense';
export const MASK_STRATEGIES: readonly MaskStrategy[] = ['auto', 'latent', 'attention', 'mask', 'dense'];

export type CacheFallbackPolicy = 'rerecord' | 'dense';

/** Everything an edit or a recorded generation works with. */
export interface StateContext {
  models: DiffusionModels;
  store: NodeStore;
  /** The activation cache of the store; null records and reads no activations (edits run dense). */
  cache: ActivationCache | null;
  /** Recording / sparse UNet; null records no activations (edits run dense). */
  unet: EditUNet | null;
  /** Decoder that records each node's decoder context and decodes edit boxes with the parent's; absent: plain crops. */
  decoder?: RegionDecoder | null;
  /**
   * Measured step costs that choose sparse or dense steps (stepCosts.ts). Default: the table in the
   * store's directory (measured once per model and size); null: no choice by cost (sparse as planned).
   */
  stepCosts?: StepCostBook | null;
}

export interface EditRequest {
  parentId: string;
  prompt: string;
  /** Default: the parent's negative prompt. */
  negativePrompt?: string;
  /** Default 'auto': the user mask when one is given, else 'latent'. */
  strategy?: MaskStrategy;
  /** A user mask at latent resolution, or a PNG the size of the image (white = may change). */
  mask?: BinaryMask | { file: string } | null;
  /**
   * Dense steps before the sparse part (FISEdit's k, 10 of 50 there): target-area capture for 'latent'
   * (default DEFAULT_CAPTURE_FRACTION of the steps), attention-map capture for 'attention' (default
   * ATTENTION_CAPTURE_FRACTION); at least 1.
   */
  captureSteps?: number;
  /**
   * Above this fraction of active latent pixels the edit runs dense (decideEditMode). Given, it decides
   * alone; absent, the default threshold applies and then the measured step costs (stepCosts.ts) choose.
   */
  denseAboveFraction?: number;
  /** When the parent's cache is gone: re-record it from its stored latents (default), or run dense. */
  cacheFallback?: CacheFallbackPolicy;
  /**
   * Dilation of the sparse active sets in pixels at each UNet level (mask/pyramid.ts): one value for all
   * levels or one per level. Default: a user mask none (DEFAULT_MASK_DILATION), a found mask (latent,
   * attention) 1/16 of the latent side at the finest level (foundMaskDilation); see defaultEditDilation.
   */
  dilation?: number | readonly number[];
  /** Shorthand for dilation = [maskDilation, 0, 0, …]: latent pixels the mask grows by (ignored with `dilation`). */
  maskDilation?: number;
  /**
   * Which coarse UNet pixels the sparse steps recompute (mask/pyramid.ts): 'any' (default, FISEdit's rule)
   * every one with an active child; 'half' those with at least 2 of their 4 children active, the rest of
   * the region's border reading the parent's coarse features: less work at 25 % masks, not exact there.
   */
  coarseCover?: CoarseCover;
  /**
   * Latent pixels a FOUND mask (latent, attention) grows by before its latents change, so the whole
   * changing object, soft edge included, is recomputed and decoded (default foundMaskGrowth: 1/16 of the
   * latent side). The sparse ring (dilation) comes on top. User masks are never grown.
   */
  maskGrowth?: number;
  /**
   * Region decode: 'auto' (full where decoding is cheap, see autoDecodeMode; else the sparse decoder when
   * the parent's decoder activations are cached and the region is small enough, else crop unless the crop
   * is most of the image), 'sparse' (the sparse decoder whenever the cache allows, else as 'auto'), 'crop'
   * or 'full'. Pixels outside the affected region are the parent's either way.
   */
  decode?: 'auto' | 'crop' | 'full' | 'sparse';
}

export interface EditStepProgress {
  phase: 'capture' | 'rerecord' | 'denoise';
  /** UNet evaluations done, 1…total, over all phases. */
  done: number;
  total: number;
  /**
   * The child's latents [C, h, w] after this capture or denoise step (outside the edit's area they are the
   * parent's once the area is known), for step previews; absent for re-recording steps.
   */
  latents?: Float32Array;
}

export interface EditOptions {
  onStep?: (p: EditStepProgress) => void | Promise<void>;
  signal?: AbortSignal;
}

/** Milliseconds per phase; phases that did not run are 0. */
export interface EditTimings {
  loadParent: number;
  encodeText: number;
  capture: number;
  mask: number;
  rerecordParent: number;
  denoise: number;
  decode: number;
  composite: number;
  /** Creating sessions at their first use (runtime/lazySession.ts): loading, so not in totalMs nor any phase. */
  createSessions: number;
}

export interface LevelFraction {
  level: number;
  width: number;
  height: number;
  active: number;
  fraction: number;
}

export interface EditResult {
  node: NodeRecord;
  mode: NodeMode;
  /** Why this mode (decideEditMode's sentence, or the fallback taken). */
  reason: string;
  strategy: Exclude<MaskStrategy, 'auto'>;
  /** Latent-resolution mask of the pixels whose latents the edit recomputed. */
  mask: BinaryMask;
  /** Image-resolution mask of the pixels taken from the edit's decode; every other pixel is the parent's. */
  affected: BinaryMask;
  maskedFraction: number;
  /** Active fraction per UNet level (the sparse work scales with these). */
  maskedFractionPerLevel: LevelFraction[];
  /** UNet steps run densely (capture steps included); sparseSteps + denseSteps = steps. */
  denseSteps: number;
  sparseSteps: number;
  captureSteps: number;
  /** Recording steps spent re-recording the parent (0 unless cacheFallback is RERECORDED). */
  rerecordSteps: number;
  cacheFallback: 'RERECORDED' | 'DENSE' | null;
  /** The cache misses that triggered the fallback (sentences). */
  cacheMisses: string[];
  /** Bytes the child adds to the cache (full entries or deltas). */
  cacheBytes: number;
  /** How the image was decoded: the latent box given to the decoder. */
  decodeBox: { x: number; y: number; width: number; height: number } | null;
  /**
   * Which whole-image decoder context the decode used: 'parent' (a box normalised and attended with the
   * parent's, editDecode.ts), 'own' (a full decode), 'none' (a box with its own statistics: no region
   * decoder, or the parent stored no context); null when nothing was decoded (PARENT).
   */
  decodeContext: 'parent' | 'own' | 'none' | null;
  /**
   * 'SPARSE': the affected pixels alone at every decoder level, halos from the parent's recorded decoder
   * activations (decodeBox is then null); 'BOX': a latent box; 'FULL': the whole latent; null for PARENT.
   */
  decodeMethod: 'SPARSE' | 'BOX' | 'FULL' | null;
  /** Share of a full decode's MACs a SPARSE decode ran; null otherwise. */
  decodeMacFraction: number | null;
  tokens: { removed: string[]; added: string[] };
  rgb: Uint8Array;
  width: number;
  height: number;
  timings: EditTimings;
  /** Inference wall time (model loading and writing the node excluded). */
  totalMs: number;
  /** Writing the node (image, latents, cache) into the state directory. */
  saveMs: number;
}

/** An edit request that cannot run as given; `field` names the input. Nothing was written. */
export class EditInputError extends Error {
  constructor(readonly field: string, reason: string) {
    super(`${field}: ${reason}`);
    this.name = 'EditInputError';
  }
}

/**
 * Default k / T for target-area capture. FISEdit uses 10 / 50 (0.2). On the bundled model, of the 34 of
 * 100 one-object edits whose dense regeneration shows the new attribute, the edit showed it too in
 * 85.3 % at 0.2, 91.2 % at 0.3 and 94.1 % at 0.4 (`fisedit eval --edits --capture-steps K`): 0.3 is the
 * smallest that meets the 90 % quality target. It caps a found-mask edit's UNet speedup at 1/0.3 = 3.3×
 * (a user mask needs no capture and is not capped).
 */
export const DEFAULT_CAPTURE_FRACTION = 0.3;
