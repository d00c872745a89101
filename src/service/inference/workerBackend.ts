// InferenceBackend that hosts the engine (engineWorker.ts) off the API thread, in
//   'process' (default): a forked child process. A crash or out-of-memory in the engine cannot take the
//                        API down, and a stuck run can be killed.
//   'thread':            a worker thread (less memory, faster start). Measured here with onnxruntime-node
//                        1.30: terminating a thread while a session runs aborts the WHOLE process
//                        ("terminate called after throwing an instance of 'Napi::Error'"), so a thread is
//                        only ever stopped by asking it to exit between runs.
// The worker loads the model once; the job runner sends one run at a time. If the worker dies, active
// runs reject with InferenceCrashedError and the next run starts a fresh worker.

import type { EngineDevice } from '../../engine/runtime/ortSession';
import { ChildProcess, fork } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { Worker } from 'worker_threads';
import {
  EditRequest,
  GenerateRequest,
  InferenceBackend,
  InferenceCancelledError,
  InferenceCrashedError,
  InferenceFailedError,
  InferenceInputError,
  InferenceResult,
  ModelInfo,
  ModelLoadError,
  ProgressListener,
} from './backend';
import { WORKER_DATA_ENV, type EngineWorkerData, type FromWorker, type ToWorker } from './workerProtocol';
import { log } from '../log';

export type WorkerMode = 'process' | 'thread';

/** Default niceness of the engine: below the API, which must answer in milliseconds while a job runs. */
export const ENGINE_NICENESS = 10;

export interface WorkerBackendOptions {
  modelDir: string;
  mode?: WorkerMode;
  intraOpNumThreads?: number;
  /** Execution provider of the engine's sessions (default cpu). */
  device?: EngineDevice;
  previewIntervalMs?: number;
  previewMaxSide?: number;
  /** Largest side = this × the model's default side (default 2). */
  maxSideFactor?: number;
  /** The engine's node store folder (see EngineWorkerData.stateDir); absent: edits run dense. */
  stateDir?: string;
  /** Resident activation-cache bytes (default 2 GiB). */
  cacheBytes?: number;
  /** The engine's OS niceness (default ENGINE_NICENESS; 0 = unchanged): see EngineWorkerData.niceness. */
  niceness?: number;
  /** Model load timeout, ms (default 10 minutes: SD-size graphs take a while to build on CPU). */
  loadTimeoutMs?: number;
  /** How long close() waits for a clean exit before killing a child process, ms (default 10 s). */
  shutdownTimeoutMs?: number;
}

interface ActiveRun {
  resolve: (r: InferenceResult) => void;
  reject: (e: Error) => void;
  onProgress: ProgressListener;
}

/** One started worker, whichever kind. */
interface Executor {
  send(msg: ToWorker, transfer?: ArrayBuffer[]): void;
  onMessage(fn: (m: FromWorker) => void): void;
  onGone(fn: (reason: string) => void): void;
  /** Hard stop (child: SIGKILL). For a thread only safe between runs. */
  kill(): Promise<void>;
  exited: Promise<void>;
}

/** The worker entry next to this file: .ts under tsx/ts-jest (loaded through tsx), .js once compiled. */
function workerEntry(): { file: string; execArgv: string[] } {
  const ts = path.join(__dirname, 'engineWorker.ts');
  if (__filename.endsWith('.ts') && fs.existsSync(ts)) return { file: ts, execArgv: ['--require', require.resolve('tsx/cjs')] };
  return { file: path.join(__dirname, 'engineWorker.js'), execArgv: [] };
}

function startThread(data: EngineWorkerData): Executor {
  const entry = workerEntry();
  const w = new Worker(entry.file, { execArgv: entry.execArgv, workerData: data });
  const exited = new Promise<void>((resolve) => w.once('exit', () => resolve()));
  return {
    send: (m, t = []) => w.postMessage(m, t),
    onMessage: (fn) => w.on('message', fn),
    onGone: (fn) => {
      w.on('error', (e) => fn(`error: ${e.message}`));
      w.on('exit', (code) => fn(`exited with code ${code}`));
    },
    kill: async () => {
      await w.terminate();
    },
    exited,
  };
}

function startProcess(data: EngineWorkerData): Executor {
  const entry = workerEntry();
  const child: ChildProcess = fork(entry.file, [], {
    execArgv: entry.execArgv,
    env: { ...process.env, [WORKER_DATA_ENV]: JSON.stringify(data) },
    // Structured clone over IPC: typed arrays (pixels, masks) arrive as typed arrays.
    serialization: 'advanced',
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return {
    send: (m) => {
      if (child.connected) child.send(m);
    },
    onMessage: (fn) => child.on('message', (m) => fn(m as FromWorker)),
    onGone: (fn) => {
      child.on('error', (e) => fn(`error: ${e.message}`));
      child.on('exit', (code, signal) => fn(signal ? `killed by ${signal}` : `exited with code ${code}`));
    },
    kill: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
    exited,
  };
}

export class WorkerInferenceBackend implements InferenceBackend {
  private executor: Executor | null = null;
  private starting: Promise<ModelInfo> | null = null;
  private info: ModelInfo | null = null;
  private readonly runs = new Map<string, ActiveRun>();
  private closed = false;
  readonly mode: WorkerMode;

  constructor(private readonly opts: WorkerBackendOptions) {
    this.mode = opts.mode ?? 'process';
  }

  start(): Promise<ModelInfo> {
    if (this.closed) return Promise.reject(new Error('WorkerInferenceBackend: closed'));
    if (this.executor && this.info) return Promise.resolve(this.info);
    if (!this.starting) {
      this.starting = this.spawn().finally(() => {
        this.starting = null;
      });
    }
    return this.starting;
  }

  generate(runId: string, request: GenerateRequest, onProgress: ProgressListener): Promise<InferenceResult> {
    return this.run({ type: 'run', runId, kind: 'generate', request }, onProgress);
  }

  edit(runId: string, request: EditRequest, onProgress: ProgressListener): Promise<InferenceResult> {
    return this.run({ type: 'run', runId, kind: 'edit', request }, onProgress);
  }

  cancel(runId: string): boolean {
    if (!this.runs.has(runId) || !this.executor) return false;
    this.executor.send({ type: 'cancel', runId });
    return true;
  }

  forget(engineNodeIds: string[]): void {
    // A worker that is not running holds nothing in memory; the next one opens the store from disk, so a
    // missed forget leaves files (never read: only ids in the database are) but loses nothing.
    if (engineNodeIds.length > 0 && this.executor) this.executor.send({ type: 'forget', engineNodeIds });
  }

  evictCaches(engineNodeIds: string[]): void {
    if (engineNodeIds.length > 0 && this.executor) this.executor.send({ type: 'evictCaches', engineNodeIds });
  }

  /** Tests of crash handling: kills the worker process as a crash would (process mode only; see the header). */
  async crashForTest(): Promise<void> {
    if (this.mode !== 'process') throw new Error('crashForTest: only a child process can be killed mid-run safely');
    await this.executor?.kill();
  }

  /** Active runs are cancelled, then the worker exits cleanly (killed after shutdownTimeoutMs if it must). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.starting) await this.starting.catch(() => undefined);
    const ex = this.executor;
    if (!ex) return;
    for (const runId of this.runs.keys()) ex.send({ type: 'cancel', runId });
    ex.send({ type: 'shutdown' });
    const timeout = new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), this.opts.shutdownTimeoutMs ?? 10_000).unref());
    if ((await Promise.race([ex.exited.then(() => 'exited' as const), timeout])) === 'timeout') {
      if (this.mode === 'process') await ex.kill();
      else log.error('WorkerInferenceBackend: the engine thread did not exit; leaving it (terminating a busy thread aborts the process)');
    }
    this.executor = null;
  }

  private async run(msg: ToWorker & { type: 'run' }, onProgress: ProgressListener): Promise<InferenceResult> {
    await this.start();
    if (this.runs.has(msg.runId)) throw new Error(`WorkerInferenceBackend: run ${msg.runId} is already active`);
    return new Promise<InferenceResult>((resolve, reject) => {
      this.runs.set(msg.runId, { resolve, reject, onProgress });
      // A copy of the mask is moved to a thread, so the caller's buffer stays usable.
      let transfer: ArrayBuffer[] = [];
      if (msg.kind === 'edit' && msg.request.mask && this.mode === 'thread') {
        const data = msg.request.mask.data.slice();
        transfer = [data.buffer as ArrayBuffer];
        msg = { ...msg, request: { ...msg.request, mask: { ...msg.request.mask, data } } };
      }
      this.executor!.send(msg, transfer);
    });
  }

  private spawn(): Promise<ModelInfo> {
    const data: EngineWorkerData = {
      modelDir: this.opts.modelDir,
      intraOpNumThreads: this.opts.intraOpNumThreads,
      device: this.opts.device,
      previewIntervalMs: this.opts.previewIntervalMs ?? 250,
      previewMaxSide: this.opts.previewMaxSide ?? 256,
      maxSideFactor: this.opts.maxSideFactor ?? 2,
      stateDir: this.opts.stateDir,
      cacheBytes: this.opts.cacheBytes,
      niceness: this.opts.niceness ?? ENGINE_NICENESS,
    };
    const ex = this.mode === 'thread' ? startThread(data) : startProcess(data);
    this.executor = ex;
    const loadTimeoutMs = this.opts.loadTimeoutMs ?? 600_000;
    return new Promise<ModelInfo>((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(new ModelLoadError(this.opts.modelDir, `no answer from the engine worker within ${loadTimeoutMs} ms`));
        void ex.kill();
      }, loadTimeoutMs);
      timer.unref();
      ex.onMessage((m) => {
        switch (m.type) {
          case 'ready':
            clearTimeout(timer);
            this.info = m.info;
            resolve(m.info);
            return;
          case 'loadError':
            clearTimeout(timer);
            reject(new ModelLoadError(this.opts.modelDir, m.message));
            ex.send({ type: 'shutdown' });
            return;
          default:
            this.onRunMessage(m);
        }
      });
      ex.onGone((reason) => {
        clearTimeout(timer);
        // Expected once close() asked it to; anything else is a crash.
        if (this.closed || this.executor !== ex) log.info({ engine: this.mode, reason }, 'engine worker exited');
        else log.error({ engine: this.mode, reason, runs: [...this.runs.keys()] }, 'engine worker gone');
        this.onWorkerGone(ex, reason, reject);
      });
    });
  }

  private onRunMessage(m: Exclude<FromWorker, { type: 'ready' } | { type: 'loadError' }>): void {
    const run = this.runs.get(m.runId);
    if (!run) return;
    switch (m.type) {
      case 'progress':
        run.onProgress(m.progress);
        return;
      case 'result':
        this.runs.delete(m.runId);
        run.resolve(m.result);
        return;
      case 'cancelled':
        this.runs.delete(m.runId);
        run.reject(new InferenceCancelledError(m.runId, m.completedSteps));
        return;
      case 'error':
        this.runs.delete(m.runId);
        run.reject(m.kind === 'input' ? new InferenceInputError(m.runId, m.field ?? 'request', m.message) : new InferenceFailedError(m.runId, m.message));
        return;
    }
  }

  private onWorkerGone(ex: Executor, reason: string, rejectStart: (e: Error) => void): void {
    if (this.executor !== ex) return;
    this.executor = null;
    this.info = null;
    rejectStart(new ModelLoadError(this.opts.modelDir, `engine worker ${reason} while loading`));
    for (const [runId, run] of this.runs) run.reject(new InferenceCrashedError(runId, reason));
    this.runs.clear();
  }
}
