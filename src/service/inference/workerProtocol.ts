// Messages between the service (main thread) and the engine worker (engineWorker.ts).
// Pixel buffers travel as transferred ArrayBuffers, never copied through JSON.
import type { EngineDevice } from '../../engine/runtime/ortSession';
import type { EditRequest, GenerateRequest, InferenceProgress, InferenceResult, ModelInfo } from './backend';

/** The child-process variant reads its EngineWorkerData from this environment variable (JSON). */
export const WORKER_DATA_ENV = 'FISEDIT_ENGINE_WORKER_DATA';

export interface EngineWorkerData {
  modelDir: string;
  /** onnxruntime intra-op threads (default: all cores). */
  intraOpNumThreads?: number;
  /** Execution provider of every engine session (default cpu). */
  device?: EngineDevice;
  /** Minimum time between two preview images of one run, ms (the first and last step always get one). */
  previewIntervalMs: number;
  previewMaxSide: number;
  /** Longest side allowed, as a multiple of the model's default size (the service's limit). */
  maxSideFactor: number;
  /**
   * The engine's node store (src/engine/state/nodeStore.ts): roots are recorded there with their
   * activations, and edits of recorded nodes run sparse (FISEdit). Absent: edits run dense.
   */
  stateDir?: string;
  /** Resident bytes of the activation cache; the rest spills to stateDir/cache on disk. */
  cacheBytes?: number;
  /**
   * OS niceness the engine sets on itself before it creates its inference threads (they inherit it), so
   * the API answers ahead of a busy engine on the same cores. 0 leaves the priority alone.
   */
  niceness?: number;
}

export type ToWorker =
  | { type: 'run'; runId: string; kind: 'generate'; request: GenerateRequest }
  | { type: 'run'; runId: string; kind: 'edit'; request: EditRequest }
  | { type: 'cancel'; runId: string }
  /** Free the engine state of deleted nodes (between runs; nothing is answered). */
  | { type: 'forget'; engineNodeIds: string[] }
  /** Drop these nodes' activation caches (and those built on them); their folders and images stay (between runs). */
  | { type: 'evictCaches'; engineNodeIds: string[] }
  /** Dispose the engine and exit cleanly (terminating a thread mid-run aborts the process: see workerBackend.ts). */
  | { type: 'shutdown' };

export type FromWorker =
  | { type: 'ready'; info: ModelInfo }
  | { type: 'loadError'; message: string }
  | { type: 'progress'; runId: string; progress: InferenceProgress }
  | { type: 'result'; runId: string; result: InferenceResult }
  | { type: 'cancelled'; runId: string; completedSteps: number | null }
  | { type: 'error'; runId: string; kind: 'input' | 'engine'; field?: string; message: string };
