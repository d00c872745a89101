// The seam between the job runner and whatever runs the model. The API thread never runs a model:
// the real implementation (workerBackend.ts) hosts the engine in a worker thread and talks by messages.
// Every implementation passes test/service/inference/backendConformance.ts.
import type { EngineDevice } from '../../engine/runtime/ortSession';

export type SchedulerName = 'ddim' | 'dpmpp-2m' | 'euler';
export type EditStrategy = 'AUTO' | 'DENSE' | 'SPARSE' | 'ATTENTION';
/** PARENT: an edit whose prompt did not change, so the result is the parent's image. */
export type RunMode = 'DENSE' | 'SPARSE' | 'PARENT';
/** What the engine is doing; DONE is only sent by the service, never by a backend. */
export type ProgressPhase = 'QUEUED' | 'ENCODING' | 'REBUILDING' | 'CAPTURING' | 'DENOISING' | 'DECODING' | 'DONE';

export interface GenerateRequest {
  prompt: string;
  negativePrompt: string;
  seed: number;
  steps: number;
  guidance: number;
  scheduler: SchedulerName;
  width: number;
  height: number;
}

export interface EditRequest extends GenerateRequest {
  /** The parent node; its settings are the edit's unless the edit overrides them. */
  parentNodeId: string;
  parentPrompt: string;
  /** The parent's id in the engine's node store (InferenceResult.engineNodeId), when it has one; without it the edit runs dense. */
  parentEngineNodeId?: string | null;
  strategy: EditStrategy;
  /** A user-drawn mask at image size (0 = keep, >0 = may change), 8-bit grey, or null to let the engine find the area. */
  mask: { data: Uint8Array; width: number; height: number } | null;
  /**
   * The parent's ancestry, root first and the parent last: what the engine needs to rebuild the parent's
   * state when it is gone (never recorded, evicted, lost) by regenerating the root and replaying the edits
   * below the nearest ancestor it still has. Without it a parent with no state cannot be rebuilt.
   */
  lineage?: LineageNode[];
}

/** One node of an edit's ancestry (EditRequest.lineage). */
export interface LineageNode {
  nodeId: string;
  engineNodeId: string | null;
  prompt: string;
  negativePrompt: string;
  /** How the node's edit ran; null for the root. */
  strategy: EditStrategy | null;
  /** The mask its user drew, as EditRequest.mask. */
  mask: { data: Uint8Array; width: number; height: number } | null;
}

export interface InferenceProgress {
  /** Denoising steps completed (0 before the first). */
  step: number;
  totalSteps: number;
  phase: ProgressPhase;
  /** Wall time since the run started, ms. */
  elapsedMs: number;
  /** data:image/webp;base64,… of the current latents (linear approximation), or null when throttled. */
  preview: string | null;
  /** Fraction of latent pixels an edit recomputes, once known. */
  maskedFraction: number | null;
}

export interface InferenceResult {
  /** Interleaved RGB, height × width × 3. */
  rgb: Uint8Array;
  width: number;
  height: number;
  mode: RunMode;
  /** Inference wall time without queueing or model loading, ms. */
  wallMs: number;
  /** What a dense generation of the same request costs (measured or estimated), ms. */
  denseEstimateMs: number | null;
  maskedFraction: number | null;
  /** The area an edit changed, 8-bit grey at image size, when there is one. */
  mask: { data: Uint8Array; width: number; height: number } | null;
  /** ms per phase, as the engine reports them. */
  timings: Record<string, number>;
  /** The node's id in the engine's node store when the engine recorded it there (edits of it can run sparse). */
  engineNodeId?: string | null;
  /** Why an edit ran otherwise than asked (its parent rebuilt, steps run dense, ...); null when it ran as asked. */
  fallbackReason?: string | null;
  /** Ancestors whose engine state this run rebuilt (EditRequest.lineage): their new engine node ids. */
  rebuilt?: { nodeId: string; engineNodeId: string }[];
  /** The engine could not apply the edit's mask (it had no node store): the service keeps the parent outside it. */
  maskNotApplied?: boolean;
}

export interface ModelInfo {
  name: string;
  dir: string;
  defaultWidth: number;
  defaultHeight: number;
  /** Width and height must be multiples of this (8, or more when the model's latent pyramid needs it). */
  sizeMultiple: number;
  maxWidth: number;
  maxHeight: number;
  /** Content tokens the text encoder reads (75 for CLIP). */
  maxPromptTokens: number;
  latentChannels: number;
  loadMs: number;
  /** Where the engine's graphs run (fisedit serve --device). */
  device: EngineDevice;
  /** The attention form its WebGPU graphs build, and why (DiffusionEngine.attention); null off WebGPU. */
  attention: { form: string; reason: string } | null;
}

export type ProgressListener = (p: InferenceProgress) => void;

export interface InferenceBackend {
  /** Loads the model (once); resolves with what the service needs to validate requests. */
  start(): Promise<ModelInfo>;
  /** Runs one generation; `runId` names it for cancel(). Rejects with the errors below. */
  generate(runId: string, request: GenerateRequest, onProgress: ProgressListener): Promise<InferenceResult>;
  edit(runId: string, request: EditRequest, onProgress: ProgressListener): Promise<InferenceResult>;
  /** Asks a run to stop at its next step; false if no such run is active. */
  cancel(runId: string): boolean;
  /** Frees the engine state of deleted nodes (InferenceResult.engineNodeId), after the current run. */
  forget(engineNodeIds: string[]): void;
  /**
   * Drops the activation caches of these engine nodes (and of nodes whose caches build on them), after the
   * current run; their records and images stay, and a later edit re-records what it needs.
   */
  evictCaches(engineNodeIds: string[]): void;
  close(): Promise<void>;
}

/** The run stopped because cancel() asked it to. */
export class InferenceCancelledError extends Error {
  constructor(readonly runId: string, readonly completedSteps: number | null) {
    super(`run ${runId} cancelled${completedSteps === null ? '' : ` after ${completedSteps} steps`}`);
    this.name = 'InferenceCancelledError';
  }
}

/** The engine refused the request (bad input the service did not catch); retrying will not help. */
export class InferenceInputError extends Error {
  constructor(readonly runId: string, readonly field: string, message: string) {
    super(message);
    this.name = 'InferenceInputError';
  }
}

/** The engine failed (numerics, model, runtime). `message` is safe to show to the node's users. */
export class InferenceFailedError extends Error {
  constructor(readonly runId: string, message: string) {
    super(message);
    this.name = 'InferenceFailedError';
  }
}

/** The worker died (crash, out of memory, terminated); the run may be retried on a fresh worker. */
export class InferenceCrashedError extends Error {
  constructor(readonly runId: string, reason: string) {
    super(`inference worker stopped during run ${runId}: ${reason}`);
    this.name = 'InferenceCrashedError';
  }
}

/** The model could not be loaded at all. */
export class ModelLoadError extends Error {
  constructor(readonly modelDir: string, reason: string) {
    super(`cannot load model ${modelDir}: ${reason}`);
    this.name = 'ModelLoadError';
  }
}
