// The ONE file that imports onnxruntime-node. Everything else in the engine talks to ONNX Runtime
// through OrtModelSession and plain typed arrays (EngineTensor), so a worker thread or a child
// process can host the engine: no module-level state here beyond the imported binding.
//
// Native surface used (CPU execution provider by default; WebGPU or CUDA with SessionOptions.device):
//   InferenceSession.create(bytes, options)  async: parses, optimises and prepacks the graph
//   session.run(feeds)                       async wrapper, but the native call holds the JS thread
//                                            for the whole run (measured: see DESIGN.md) — run the
//                                            engine off the API thread.
//   session.release()                        async: frees native memory.
// Data conversion between EngineTensor and ort.Tensor happens here, next to those declarations.

import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as ort from 'onnxruntime-node';
import { GraphBuilder, type BuiltModel } from '../graph/graphBuilder';
import { graphCacheKey, type GraphCache, type GraphCacheFacts } from './graphCache';

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

/**
 * Where a session's graph runs. 'cpu': ORT's CPU EP. 'webgpu': the WebGPU EP bundled with
 * onnxruntime-node (Dawn over Vulkan/Metal/D3D12; ops it lacks fall back to the CPU EP). 'cuda': the CUDA
 * EP, whose provider libraries onnxruntime-node's install script fetches only when asked to.
 */
export type EngineDevice = 'cpu' | 'webgpu' | 'cuda';
export const ENGINE_DEVICES: readonly EngineDevice[] = ['cpu', 'webgpu', 'cuda'];

export function isEngineDevice(s: string): s is EngineDevice {
  return (ENGINE_DEVICES as readonly string[]).includes(s);
}

/** The chosen device cannot run here (missing provider libraries, no adapter). */
export class DeviceUnavailableError extends Error {
  constructor(readonly device: EngineDevice, reason: string, options?: { cause?: unknown }) {
    super(reason, options);
    this.name = 'DeviceUnavailableError';
  }
}

/** The folder holding onnxruntime-node's native binding and libonnxruntime (provider libraries go beside it). */
export function ortBindingDir(): string {
  const pkg = require.resolve('onnxruntime-node/package.json');
  return path.join(path.dirname(pkg), 'bin', 'napi-v6', process.platform, process.arch);
}

const CUDA_PROVIDER_LIBS = ['libonnxruntime_providers_shared.so', 'libonnxruntime_providers_cuda.so'];

function cudaInstallHint(dir: string, missing: string[]): string {
  return (
    `--device cuda needs onnxruntime's CUDA provider libraries beside its binding, and ${missing.join(', ')} ` +
    `${missing.length === 1 ? 'is' : 'are'} not in ${dir}. Install them (network access to NuGet needed): ` +
    '`ONNXRUNTIME_NODE_INSTALL=cuda12 npm ci`, or in an existing checkout `ONNXRUNTIME_NODE_INSTALL=cuda12 npm rebuild onnxruntime-node`. ' +
    'The CUDA 12 EP also needs libcudart 12, cuBLAS 12 and cuDNN 9 on the library path. Or run with --device webgpu (bundled).'
  );
}

/** Synchronous part of the check: the CUDA provider libraries are files beside the binding. */
export function checkCudaLibraries(): void {
  const dir = ortBindingDir();
  const missing = CUDA_PROVIDER_LIBS.filter((f) => !fs.existsSync(path.join(dir, f)));
  if (missing.length) throw new DeviceUnavailableError('cuda', cudaInstallHint(dir, missing));
}

/**
 * Throws DeviceUnavailableError when `device` cannot run here. cpu: always fine. cuda: the provider
 * libraries must be installed. webgpu (and cuda once its libraries are there): a one-node graph is
 * created and run on it, which is what finds out whether Dawn has an adapter (Vulkan driver) at all.
 */
export async function checkDeviceAvailable(device: EngineDevice): Promise<void> {
  if (device === 'cpu') return;
  if (device === 'cuda') checkCudaLibraries();
  // The binding lists what it was built with; 'webgpu' is bundled on Linux x64, Windows and macOS.
  const backends = ort.listSupportedBackends().map((b) => b.name);
  if (!backends.includes(device)) {
    throw new DeviceUnavailableError(device, `this onnxruntime-node build has no ${device} execution provider (it has: ${backends.join(', ')})`);
  }
  try {
    const s = await ort.InferenceSession.create(probeModel(), { executionProviders: [device], logSeverityLevel: 4 });
    await s.run({ x: new ort.Tensor('float32', new Float32Array([1]), [1]) });
    await s.release();
  } catch (e) {
    const hint = device === 'webgpu' ? ' (WebGPU needs a Vulkan driver here: a GPU driver, or Mesa lavapipe 25+ to run it on the CPU)' : '';
    throw new DeviceUnavailableError(device, `the ${device} execution provider could not run a graph${hint}: ${(e as Error).message}`, { cause: e });
  }
}

/** y = Relu(x) on float[1]: the smallest graph that makes the EP pick an adapter and compile a kernel. */
function probeModel(): Uint8Array {
  const g = new GraphBuilder('device_probe');
  g.output('y', g.op('Relu', [g.input('x', 'float32', [1])]), 'float32', [1]);
  return g.build().model;
}

function executionProviders(device: EngineDevice, webgpu: WebGpuProviderOptions = {}): ort.InferenceSession.ExecutionProviderConfig[] {
  switch (device) {
    case 'cpu':
      return ['cpu'];
    case 'webgpu':
      // The CPU EP is appended by ORT for ops the WebGPU EP lacks (shape arithmetic mostly).
      return [{ name: 'webgpu', ...webgpu }];
    case 'cuda':
      return [{ name: 'cuda', deviceId: 0 }];
  }
}

/**
 * WebGPU EP options (onnxruntime-node's WebGpuExecutionProviderOption), for measurements (bench/gpu):
 * the layout its layout-sensitive kernels (Conv, …) run in, and its validation. ORT shares one Dawn device
 * per process and takes validationMode from the session that creates it: it applies only while no other
 * WebGPU session is alive.
 */
export interface WebGpuProviderOptions {
  preferredLayout?: 'NCHW' | 'NHWC';
  validationMode?: 'disabled' | 'wgpuOnly' | 'basic' | 'full';
}

/**
 * When a session's intra-op threads spin for more work instead of sleeping. On 2 cores a session whose
 * threads spin after its run takes the cores from whatever runs next: another session (the next UNet
 * steps, a decode) or the event loop.
 *   always — ORT's default: they spin during a run and for a while (~50 ms) after it returns;
 *   in-run — they spin during a run and stop when it returns (session.force_spinning_stop);
 *   never  — they never spin (session.intra_op.allow_spinning 0).
 */
export type SpinMode = 'always' | 'in-run' | 'never';

/**
 * Every session's mode unless asked otherwise. An edit switches UNet sessions (capture steps on one, sparse
 * or recording steps on another) and every job ends with a decode. On 2 cores, after ORT's default spinning
 * the first steps on the next UNet session took 22 / 21 / 17 ms against 12 (bundled model,
 * bench/edit/sessionSwitch.ts --part unet), the steps after a decode 20.5 / 18.5 / 19.8 against 11.9,
 * and a decode after the UNet's steps 13–15 ms against 10 (bench/edit/bundledCost.ts, fresh processes).
 * In-run spinning keeps the spin between the ops of a run, where it pays (never spinning: 14.7 against
 * 11.7 ms a UNet step; a decode 8.2 against 6.9 ms). Its cost: the threads are woken at each run, 0.2 ms a
 * UNet step in a warm process and ~0.5 ms in a fresh one (a 20-step generation's steps 262 → 272 ms there;
 * its decode saves 4 of them).
 */
export const DEFAULT_SPINNING: SpinMode = 'in-run';
/**
 * The text encoder runs once, before the first UNet step, in a few ms: spinning never helped it, and in-run
 * made it 3.3 → 9.0 ms in a fresh process (the first run wakes threads that had never run).
 */
export const TEXT_ENCODER_SPINNING: SpinMode = 'never';

export interface SessionOptions {
  /** Execution provider (default 'cpu'). See checkDeviceAvailable for the start-up check. */
  device?: EngineDevice;
  /** WebGPU EP options (default: the EP's own); ignored on other devices. */
  webgpu?: WebGpuProviderOptions;
  /**
   * Outputs that stay in device memory (runWithDevice returns them as DeviceTensors, which run() takes
   * as feeds of any session on the same device). WebGPU only: onnxruntime-node keeps no other EP's
   * memory between runs (a CUDA output is always copied to the host); elsewhere they come back to the host.
   */
  deviceOutputs?: readonly string[];
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
  /**
   * When the intra-op threads spin for more work instead of sleeping (SpinMode; default DEFAULT_SPINNING).
   * Not part of the graph cache's key (it changes no optimised graph).
   */
  spinning?: SpinMode;
  logSeverityLevel?: 0 | 1 | 2 | 3 | 4;
  /** Write an ORT JSON profile (chrome trace) with this prefix; call endProfiling() to flush it. */
  profileFilePrefix?: string;
  /**
   * Keep the optimised graph on disk and load it from there next time (runtime/graphCache.ts): CPU only
   * (other EPs may compile nodes into the saved graph) and not with optimizedModelFilePath.
   */
  graphCache?: GraphCache;
}

/** How a session's graph was made: built and optimised here, loaded from the graph cache, or built and written to it. */
export type GraphSource = 'built' | 'cache-hit' | 'cache-write';

/**
 * A tensor in device memory (a WebGPU buffer) between run() calls. onnxruntime-node 1.30 cannot read it
 * back (Tensor.getData() on a gpu-buffer aborts the process), so a graph that needs the values on the
 * host as well outputs them twice (see DiffusionEngine's text encoder). release() frees the buffer.
 * Release it BEFORE the session that made it: onnxruntime-node 1.30 frees the buffer through that
 * session's allocator, so a release afterwards crashes the process (it can still be fed meanwhile).
 */
export class DeviceTensor {
  private released = false;
  /** @internal */
  constructor(readonly dims: readonly number[], readonly dtype: EngineDType, private readonly tensor: ort.Tensor) {}
  /** @internal the tensor to feed. */
  feed(): ort.Tensor {
    if (this.released) throw new OrtSessionError('a released DeviceTensor was fed to run()');
    return this.tensor;
  }
  release(): void {
    if (this.released) return;
    this.released = true;
    this.tensor.dispose();
  }
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

function toOrt(name: string, t: EngineTensor | DeviceTensor): ort.Tensor {
  if (t instanceof DeviceTensor) return t.feed();
  checkTensor(name, t);
  return new ort.Tensor(t.dtype, t.data, t.dims);
}

function fromOrt(name: string, v: ort.OnnxValue): EngineTensor {
  const t = v as ort.Tensor;
  if (t.location !== 'cpu') throw new OrtSessionError(`output "${name}" is in device memory (${t.location}): fetch it with runWithDevice()`);
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
    readonly device: EngineDevice,
    /** Outputs that come back as DeviceTensors (SessionOptions.deviceOutputs, on webgpu). */
    readonly deviceOutputs: readonly string[],
    readonly graphSource: GraphSource,
    /** Wall time of create(), ms (with a cache: key, lookup or write included). */
    readonly createMs: number,
  ) {}

  static async create(built: BuiltModel, opts: SessionOptions = {}): Promise<OrtModelSession> {
    const t0 = performance.now();
    const threads = opts.intraOpNumThreads ?? os.availableParallelism();
    const device = opts.device ?? 'cpu';
    // Without its libraries ORT's own error says only "Failed to load shared library".
    if (device === 'cuda') checkCudaLibraries();
    const level = opts.graphOptimizationLevel ?? 'all';
    const options: ort.InferenceSession.SessionOptions = {
      executionProviders: executionProviders(device, opts.webgpu),
      graphOptimizationLevel: level,
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
    const spinning = opts.spinning ?? DEFAULT_SPINNING;
    if (spinning === 'never') options.extra = { ...(options.extra ?? {}), 'session.intra_op.allow_spinning': '0' };
    if (spinning === 'in-run') options.extra = { ...(options.extra ?? {}), 'session.force_spinning_stop': '1' };
    const deviceOutputs = device === 'webgpu' ? [...(opts.deviceOutputs ?? [])] : [];
    if (deviceOutputs.length) options.preferredOutputLocation = Object.fromEntries(deviceOutputs.map((n) => [n, 'gpu-buffer' as const]));
    if (opts.profileFilePrefix) {
      options.enableProfiling = true;
      options.profileFilePrefix = opts.profileFilePrefix;
    }
    const fromBuilt = (o: ort.InferenceSession.SessionOptions): Promise<ort.InferenceSession> => {
      if (built.externalData?.length) o.externalData = built.externalData.map((e) => ({ path: e.path, data: e.data }));
      return ort.InferenceSession.create(built.model, o);
    };
    const cache = opts.graphCache && device === 'cpu' && level !== 'disabled' && !opts.optimizedModelFilePath ? opts.graphCache : null;
    let session: ort.InferenceSession;
    let source: GraphSource = 'built';
    try {
      session = cache ? await createThroughCache(cache, built, options, { ortVersion: ORT_VERSION, device, optimizationLevel: level, sessionConfig: opts.sessionConfig ?? {} }, fromBuilt, (s) => (source = s)) : await fromBuilt(options);
    } catch (e) {
      throw new OrtSessionError(`onnxruntime could not load the graph on ${device}: ${(e as Error).message}`, { cause: e });
    }
    // ORT copies in-memory external data while creating the session (pinned by ortSession.test.ts), so
    // the caller may drop the weight buffers afterwards.
    return new OrtModelSession(session, threads, device, deviceOutputs, source, performance.now() - t0);
  }

  get inputNames(): readonly string[] {
    return this.session.inputNames;
  }
  get outputNames(): readonly string[] {
    return this.session.outputNames;
  }

  /** Run the graph. All graph inputs must be fed; returns the requested outputs (default all). */
  async run(feeds: Record<string, EngineTensor | DeviceTensor>, outputs?: readonly string[]): Promise<Record<string, EngineTensor>> {
    const result = await this.runOrt(feeds, outputs);
    const out: Record<string, EngineTensor> = {};
    for (const [name, v] of Object.entries(result)) out[name] = fromOrt(name, v);
    return out;
  }

  /** run(), with the outputs named in SessionOptions.deviceOutputs returned as DeviceTensors (the caller releases them). */
  async runWithDevice(
    feeds: Record<string, EngineTensor | DeviceTensor>,
    outputs?: readonly string[],
  ): Promise<{ host: Record<string, EngineTensor>; device: Record<string, DeviceTensor> }> {
    const result = await this.runOrt(feeds, outputs);
    const host: Record<string, EngineTensor> = {};
    const device: Record<string, DeviceTensor> = {};
    for (const [name, v] of Object.entries(result)) {
      const t = v as ort.Tensor;
      if (t.location === 'gpu-buffer') device[name] = new DeviceTensor([...t.dims], t.type as EngineDType, t);
      else host[name] = fromOrt(name, v);
    }
    return { host, device };
  }

  private async runOrt(feeds: Record<string, EngineTensor | DeviceTensor>, outputs?: readonly string[]): Promise<ort.InferenceSession.OnnxValueMapType> {
    if (this.released) throw new OrtSessionError('run() after release()');
    for (const name of this.session.inputNames) {
      if (!(name in feeds)) throw new OrtSessionError(`missing input "${name}" (graph inputs: ${this.session.inputNames.join(', ')})`);
    }
    const ortFeeds: Record<string, ort.Tensor> = {};
    for (const [name, t] of Object.entries(feeds)) {
      if (!this.session.inputNames.includes(name)) throw new OrtSessionError(`unknown input "${name}"`);
      ortFeeds[name] = toOrt(name, t);
    }
    try {
      return outputs ? await this.session.run(ortFeeds, [...outputs]) : await this.session.run(ortFeeds);
    } catch (e) {
      throw new OrtSessionError(`run failed: ${(e as Error).message}`, { cause: e });
    }
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

const ORT_VERSION: string = require('onnxruntime-node/package.json').version;

/**
 * A cache hit loads ORT's optimised model from the entry with optimisation disabled (it is already
 * optimised, exactly as a fresh session would optimise it). A miss builds the session as usual while ORT
 * writes its optimised model into a new entry; a failure to write the cache never fails the session.
 */
async function createThroughCache(
  cache: GraphCache,
  built: BuiltModel,
  options: ort.InferenceSession.SessionOptions,
  facts: GraphCacheFacts,
  fromBuilt: (o: ort.InferenceSession.SessionOptions) => Promise<ort.InferenceSession>,
  setSource: (s: GraphSource) => void,
): Promise<ort.InferenceSession> {
  const key = graphCacheKey(built, facts);
  const found = cache.lookup(key, facts);
  if (found.hit) {
    try {
      const s = await ort.InferenceSession.create(found.modelPath, { ...options, graphOptimizationLevel: 'disabled' });
      setSource('cache-hit');
      cache.report(`hit ${key}`);
      return s;
    } catch (e) {
      cache.report(`entry ${key} did not load (${(e as Error).message}); rebuilding it`);
      fs.rmSync(path.dirname(found.modelPath), { recursive: true, force: true });
    }
  }
  let pending;
  try {
    pending = cache.begin(key, facts);
  } catch (e) {
    cache.report(`cannot write entry ${key} (${(e as Error).message}); building without the cache`);
    return fromBuilt(options);
  }
  let session: ort.InferenceSession;
  try {
    session = await fromBuilt({ ...options, optimizedModelFilePath: pending.modelPath, extra: { ...(options.extra ?? {}), ...pending.sessionConfig } });
  } catch (e) {
    pending.discard();
    throw e;
  }
  try {
    pending.commit();
    setSource('cache-write');
    cache.report(`wrote ${key}`);
  } catch (e) {
    pending.discard();
    cache.report(`cannot write entry ${key} (${(e as Error).message}); the session runs, the next one builds again`);
  }
  return session;
}

/** Convenience: build output → session. */
export function createSession(built: BuiltModel, opts?: SessionOptions): Promise<OrtModelSession> {
  return OrtModelSession.create(built, opts);
}
