// The ONE file that imports onnxruntime-node. Everything else in the engine talks to ONNX Runtime
// through OrtModelSession and plain typed arrays (EngineTensor), so a worker thread or a child
// process can host the engine: no module-level state here beyond the imported binding.
//
// Native surface used (all on the CPU execution provider):
//   InferenceSession.create(bytes, options)  async: parses, optimises and prepacks the graph
//   session.run(feeds)                       async wrapper, but the native call holds the JS thread
//                                            for the whole run (measured: see DESIGN.md) — run the
//                                            engine off the API thread.
//   session.release()                        async: frees native memory.
// Data conversion between EngineTensor and ort.Tensor happens here, next to those declarations.

import * as os from 'os';
import * as ort from 'onnxruntime-node';
import type { BuiltModel } from '../graph/graphBuilder';

export type EngineDType = 'float32' | 'float16' | 'int64' | 'int32' | 'uint8' | 'bool';

/** A dense tensor as plain typed data. float16 travels as raw IEEE half bits in a Uint16Array. */
export type EngineTensor =
  | { dtype: 'float32'; dims: number[]; data: Float32Array }
  | { dtype: 'float16'; dims: number[]; data: Uint16Array }
  | { dtype: 'int64'; dims: number[]; data: BigInt64Array }
  | { dtype: 'int32'; dims: number[]; data: Int32Array }
  | { dtype: 'uint8'; dims: number[]; data: Uint8Array }
  | { dtype: 'bool'; dims: number[]; data: Uint8Array };

export class OrtSessionError extends Error {
  constructor(reason: string, options?: { cause?: unknown }) {
    super(`runtime/ortSession.ts: ${reason}`, options);
    this.name = 'OrtSessionError';
  }
}

export interface SessionOptions {
  /** Intra-op threads (default os.availableParallelism()). */
  intraOpNumThreads?: number;
  /** Default 'all' (includes NCHWc conv layout and fusions). */
  graphOptimizationLevel?: 'disabled' | 'basic' | 'extended' | 'layout' | 'all';
  /** Write the optimised model here (debugging; ORT cannot write it when external data lives in memory). */
  optimizedModelFilePath?: string;
  /** ORT's CPU memory arena (default true). Without it intermediates are malloc'd and freed per run. */
  enableCpuMemArena?: boolean;
  /** ORT's memory pattern: one pre-planned block per input shape (default true). */
  enableMemPattern?: boolean;
  /** ORT session config entries (onnxruntime_session_options_config_keys.h), e.g. {'session.disable_prepacking': '1'}. */
  sessionConfig?: Record<string, string>;
  logSeverityLevel?: 0 | 1 | 2 | 3 | 4;
  /** Write an ORT JSON profile (chrome trace) with this prefix; call endProfiling() to flush it. */
  profileFilePrefix?: string;
}

export function float32Tensor(data: Float32Array, dims: readonly number[]): EngineTensor {
  return { dtype: 'float32', dims: [...dims], data };
}
export function int64Tensor(data: BigInt64Array | readonly number[], dims: readonly number[]): EngineTensor {
  const d = data instanceof BigInt64Array ? data : BigInt64Array.from(data.map((v) => BigInt(v)));
  return { dtype: 'int64', dims: [...dims], data: d };
}
export function float16Tensor(data: Uint16Array, dims: readonly number[]): EngineTensor {
  return { dtype: 'float16', dims: [...dims], data };
}

function checkTensor(name: string, t: EngineTensor): void {
  const n = t.dims.reduce((a, b) => a * b, 1);
  if (t.data.length !== n) {
    throw new OrtSessionError(`input "${name}": ${t.data.length} elements for dims [${t.dims.join(',')}] (want ${n})`);
  }
}

function toOrt(name: string, t: EngineTensor): ort.Tensor {
  checkTensor(name, t);
  return new ort.Tensor(t.dtype, t.data, t.dims);
}

function fromOrt(name: string, v: ort.OnnxValue): EngineTensor {
  const t = v as ort.Tensor;
  const dims = [...t.dims];
  switch (t.type) {
    case 'float32':
      return { dtype: 'float32', dims, data: t.data as Float32Array };
    case 'float16':
      return { dtype: 'float16', dims, data: t.data as Uint16Array };
    case 'int64':
      return { dtype: 'int64', dims, data: t.data as BigInt64Array };
    case 'int32':
      return { dtype: 'int32', dims, data: t.data as Int32Array };
    case 'uint8':
      return { dtype: 'uint8', dims, data: t.data as Uint8Array };
    case 'bool':
      return { dtype: 'bool', dims, data: t.data as Uint8Array };
    default:
      throw new OrtSessionError(`output "${name}" has unsupported type ${t.type}`);
  }
}

/** A loaded model. Not safe for concurrent run() calls from several async tasks; await each run. */
export class OrtModelSession {
  private released = false;

  private constructor(
    private readonly session: ort.InferenceSession,
    readonly intraOpNumThreads: number,
  ) {}

  static async create(built: BuiltModel, opts: SessionOptions = {}): Promise<OrtModelSession> {
    const threads = opts.intraOpNumThreads ?? os.availableParallelism();
    const options: ort.InferenceSession.SessionOptions = {
      executionProviders: ['cpu'],
      graphOptimizationLevel: opts.graphOptimizationLevel ?? 'all',
      intraOpNumThreads: threads,
      // One graph at a time runs per session; inter-op parallelism only fights intra-op threads.
      interOpNumThreads: 1,
      executionMode: 'sequential',
      logSeverityLevel: opts.logSeverityLevel ?? 3,
    };
    if (opts.enableCpuMemArena !== undefined) options.enableCpuMemArena = opts.enableCpuMemArena;
    if (opts.enableMemPattern !== undefined) options.enableMemPattern = opts.enableMemPattern;
    if (opts.optimizedModelFilePath) options.optimizedModelFilePath = opts.optimizedModelFilePath;
    if (opts.sessionConfig) options.extra = { ...opts.sessionConfig };
    if (opts.profileFilePrefix) {
      options.enableProfiling = true;
      options.profileFilePrefix = opts.profileFilePrefix;
    }
    if (built.externalData?.length) {
      options.externalData = built.externalData.map((e) => ({ path: e.path, data: e.data }));
    }
    let session: ort.InferenceSession;
    try {
      session = await ort.InferenceSession.create(built.model, options);
    } catch (e) {
      throw new OrtSessionError(`onnxruntime could not load the graph: ${(e as Error).message}`, { cause: e });
    }
    // ORT copies in-memory external data while creating the session (pinned by ortSession.test.ts), so
    // the caller may drop the weight buffers afterwards.
    return new OrtModelSession(session, threads);
  }

  get inputNames(): readonly string[] {
    return this.session.inputNames;
  }
  get outputNames(): readonly string[] {
    return this.session.outputNames;
  }

  /** Run the graph. All graph inputs must be fed; returns the requested outputs (default all). */
  async run(feeds: Record<string, EngineTensor>, outputs?: readonly string[]): Promise<Record<string, EngineTensor>> {
    if (this.released) throw new OrtSessionError('run() after release()');
    for (const name of this.session.inputNames) {
      if (!(name in feeds)) throw new OrtSessionError(`missing input "${name}" (graph inputs: ${this.session.inputNames.join(', ')})`);
    }
    const ortFeeds: Record<string, ort.Tensor> = {};
    for (const [name, t] of Object.entries(feeds)) {
      if (!this.session.inputNames.includes(name)) throw new OrtSessionError(`unknown input "${name}"`);
      ortFeeds[name] = toOrt(name, t);
    }
    let result: ort.InferenceSession.OnnxValueMapType;
    try {
      result = outputs ? await this.session.run(ortFeeds, [...outputs]) : await this.session.run(ortFeeds);
    } catch (e) {
      throw new OrtSessionError(`run failed: ${(e as Error).message}`, { cause: e });
    }
    const out: Record<string, EngineTensor> = {};
    for (const [name, v] of Object.entries(result)) out[name] = fromOrt(name, v);
    return out;
  }

  /** Flush the profile started by SessionOptions.profileFilePrefix. */
  endProfiling(): void {
    this.session.endProfiling();
  }

  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    await this.session.release();
  }
}

/** Convenience: build output → session. */
export function createSession(built: BuiltModel, opts?: SessionOptions): Promise<OrtModelSession> {
  return OrtModelSession.create(built, opts);
}
