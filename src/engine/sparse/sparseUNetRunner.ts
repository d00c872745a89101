// SparseUNetRunner: one model's RECORDING step session and SPARSE step session, created once per model
// (a session load takes seconds at SD width; an edit only changes graph inputs).
//
//   recordStep   dense CFG step + every cache entry of that step (fp16 rows channels-last, GroupNorm stats)
//   preparePyramid  an edit's mask pyramid → int32 feeds, built once per edit, reused every step
//   sparseStep   the same step on the active pixels only, reading the parent's entries of that step;
//                returns the noise at the active latent pixels and the child's new rows (deltas)
//
// Data stays in the cache's element type end to end: ORT returns the recorded entries as fp16
// Uint16Arrays, the cache stores them, and the sparse step takes them back as fp16 inputs.

import { buildUNetGraph } from '../arch/unet';
import type { WeightFormat } from '../graph/graphBuilder';
import { UNetConfig } from '../model/configs';
import { WeightMap } from '../model/tensor';
import { PyramidLevel } from '../mask/pyramid';
import { graphOptionsFor } from '../runtime/deviceGraphs';
import { DeviceEntryTier } from '../cache/deviceEntryTier';
import { createSession, DeviceTensor, EngineTensor, float32Tensor, OrtModelSession, SessionOptions } from '../runtime/ortSession';
import { SessionSlot } from '../runtime/lazySession';
import { CacheDType, CacheEntrySpec, entryShape, isRowEntry } from './cacheManifest';
import { buildPyramidFeed, SparseInputError, SparsePyramidFeed } from './pyramidInputs';
import { buildRecordingUNetGraph, DEVICE_COPY_PREFIX } from './recordingUNet';
import { CACHE_INPUT_PREFIX, DELTA_OUTPUT_PREFIX, FULL_OUTPUT_PREFIX, SparseGraphError } from './sparseLayers';
import { buildSparseUNetGraph } from './sparseUNet';

/** Element array of a cache entry: fp16 bits (default) or float32 (exactness tests). */
export type CacheArray<D extends CacheDType> = D extends 'float16' ? Uint16Array : Float32Array;

export interface SparseUNetRunnerOptions<D extends CacheDType = 'float16'> {
  /** onnxruntime intra-op threads per session (default: all cores). */
  intraOpNumThreads?: number;
  sessionOptions?: Omit<SessionOptions, 'intraOpNumThreads'>;
  /** Default 'float16'. 'float32' keeps caches exact (for equivalence tests; 2× the bytes). */
  cacheDType?: D;
  /** Sparse GroupNorm: 'cached' (default, FISEdit) or 'exact' (statistics from the active rows). */
  groupNorm?: 'cached' | 'exact';
  /**
   * Which sessions to create (default recording and sparse; `dense`, a plain UNet that serves dense
   * steps, by default beside a recording session whose weights are at most PLAIN_DENSE_MAX_BYTES).
   */
  sessions?: { recording?: boolean; sparse?: boolean; dense?: boolean };
  /**
   * Bytes of recorded entries kept in device memory for later sparse steps (cache/deviceEntryTier.ts);
   * WebGPU only, default DEFAULT_DEVICE_TIER_BYTES; 0 turns the tier off.
   */
  deviceTierBytes?: number;
  /** Weight storage of every UNet graph (default 'fp32'; 'int8': graph/quantizedWeights.ts). */
  weights?: WeightFormat;
}

/** Default device tier: one SD-1.5 node at 512 px and 20 steps, with room to spare on a 16 GB card. */
export const DEFAULT_DEVICE_TIER_BYTES = 6 * 2 ** 30;

export interface RecordedCacheEntry<D extends CacheDType = 'float16'> {
  /** [B, h_l·w_l, C] (row entries, rowAxis 1) or [B, G] (GroupNorm statistics). */
  shape: number[];
  data: CacheArray<D>;
  /** The same entry in device memory, for the device tier (entries the sparse step reads, on WebGPU). */
  device?: DeviceTensor;
}

export interface RecordedStep<D extends CacheDType = 'float16'> {
  /** ε [B, Cout, h, w]. */
  noise: Float32Array;
  /** Every manifest entry of this step, by entry name. */
  entries: Map<string, RecordedCacheEntry<D>>;
}

export interface DeltaRows<D extends CacheDType = 'float16'> {
  /** Shape of the full entry the rows overlay ([B, h_l·w_l, C]); rowAxis 1. */
  shape: number[];
  /** Pixel indices at the entry's level, ascending (the level's active set). */
  rows: Int32Array;
  /** [B, rows.length, C]. */
  data: CacheArray<D>;
}

export interface SparseStepResult<D extends CacheDType = 'float16'> {
  /** ε at the active latent pixels, [B, N_0, Cout], rows in pyramid order (ascending pixel index). */
  noise: Float32Array;
  /** The child's recomputed rows of every row entry, by entry name (putDelta input). */
  deltas: Map<string, DeltaRows<D>>;
  /** With a device tier: the child's whole step in device memory (keepOnDevice input). */
  device?: ChildDeviceStep;
}

/**
 * A child's step in device memory: its new whole row entries (owned) and the parent's GroupNorm
 * statistics it reused (shared with the parent). release() frees only what the child owns.
 */
export interface ChildDeviceStep {
  entries: Map<string, DeviceTensor>;
  release(): void;
}

/** The parent's entry of the step being run: full rows [B, h_l·w_l, C] or statistics [B, G]. May be async (cache reads). */
export type ReadCachedEntry<D extends CacheDType = 'float16'> = (name: string) => CacheArray<D> | DeviceTensor | Promise<CacheArray<D> | DeviceTensor>;

/**
 * Up to this many weight bytes a plain dense UNet session is kept beside the recording one. The recording
 * graph computes its cache outputs even when only ε is fetched: on the bundled model a dense step on it
 * costs 44 ms against 31 ms on the plain UNet (capture steps and dense edit steps run there). At SD width a
 * second copy would hold 3.4 GB more, so the recording session serves dense steps there.
 */
export const PLAIN_DENSE_MAX_BYTES = 256 * 2 ** 20;

/**
 * Where the plain dense session is kept (a small model), the recording and sparse sessions are created
 * at their first use (runtime/lazySession.ts): a dense edit that records nothing never needs them, and
 * creating them made a CLI edit of the bundled model load in ~2× the time a generation does. Holding the
 * weights until then costs at most PLAIN_DENSE_MAX_BYTES. At SD width both are created up front.
 */

export class SparseUNetRunner<D extends CacheDType = 'float16'> {
  private released = false;

  private constructor(
    readonly config: UNetConfig,
    readonly cacheDType: D,
    /** Entries a recorded step holds (and a sparse step reads), in UNet order. */
    readonly manifest: readonly CacheEntrySpec[],
    private readonly recording: SessionSlot,
    private readonly sparse: SessionSlot,
    /** Cache entries the sparse graph reads (its cache inputs, in graph order); [] without a sparse graph. */
    readonly cacheReads: readonly string[],
    private readonly plainDense: OrtModelSession | null = null,
    /** How the UNet weights are stored in every graph (SparseUNetRunnerOptions.weights). */
    readonly weights: WeightFormat = 'fp32',
    /** Entries kept in device memory between steps and edits; null off WebGPU or when turned off. */
    readonly deviceTier: DeviceEntryTier | null = null,
  ) {}

  /** Builds and loads both graphs. The weights may be dropped afterwards (the sessions copy them). */
  static async create<D extends CacheDType = 'float16'>(cfg: UNetConfig, weights: WeightMap, opts: SparseUNetRunnerOptions<D> = {}): Promise<SparseUNetRunner<D>> {
    const cacheDType = (opts.cacheDType ?? 'float16') as D;
    const sessionOpts: SessionOptions = { ...opts.sessionOptions, intraOpNumThreads: opts.intraOpNumThreads };
    const want = { recording: opts.sessions?.recording ?? true, sparse: opts.sessions?.sparse ?? true };
    // One graph serialised at a time keeps peak memory at one model copy plus the sessions.
    const graph = { ...graphOptionsFor(sessionOpts.device), weights: opts.weights ?? 'fp32' };
    const tierBytes = sessionOpts.device === 'webgpu' ? (opts.deviceTierBytes ?? DEFAULT_DEVICE_TIER_BYTES) : 0;
    let weightBytes = 0;
    for (const t of weights.values()) weightBytes += t.data.byteLength;
    const wantDense = want.recording && (opts.sessions?.dense ?? weightBytes <= PLAIN_DENSE_MAX_BYTES);
    // The plain session serves dense steps at once; the others wait for their first use (small models only).
    const lazy = wantDense && weightBytes <= PLAIN_DENSE_MAX_BYTES;
    const slot = async (make: () => Promise<OrtModelSession>) => (lazy ? SessionSlot.lazy(make) : SessionSlot.ready(await make()));
    const rec = buildRecordingUNetGraph(cfg, weights, { cacheDType, graph, deviceCopies: tierBytes > 0 });
    const copies = rec.g.outputNames().filter((n) => n.startsWith(DEVICE_COPY_PREFIX));
    const recording = want.recording ? await slot(() => createSession(rec.g.build(), { ...sessionOpts, deviceOutputs: copies })) : SessionSlot.absent();
    let sparse = SessionSlot.absent();
    let cacheReads: string[] = [];
    if (want.sparse) {
      const sp = buildSparseUNetGraph(cfg, weights, { cacheDType, groupNorm: opts.groupNorm, graph, emitFull: tierBytes > 0 });
      const recorded = new Set(rec.manifest.map((e) => e.name));
      const missing = sp.manifest.filter((e) => !recorded.has(e.name)).map((e) => e.name);
      if (missing.length) throw new SparseGraphError(`the sparse graph reads entries the recording graph does not write: ${missing.join(', ')}`);
      // No memory arena (nor memory pattern, which pre-plans a block per input shape): an arena keeps the
      // high-water mark of the largest edit it ever ran (at 512 px a 50 % mask left 1.6 GB more held than a
      // 10 % one); without both a 10–50 % step is as fast here (bench/sparse/memory.ts).
      const full = sp.g.outputNames().filter((n) => n.startsWith(FULL_OUTPUT_PREFIX));
      cacheReads = sp.g.inputNames().filter((n) => n.startsWith(CACHE_INPUT_PREFIX)).map((n) => n.slice(CACHE_INPUT_PREFIX.length));
      sparse = await slot(() => createSession(sp.g.build(), { enableCpuMemArena: false, enableMemPattern: false, ...sessionOpts, deviceOutputs: full }));
    }
    const dense = wantDense ? await createSession(buildUNetGraph(cfg, weights, { graph }).g.build(), sessionOpts) : null;
    return new SparseUNetRunner(cfg, cacheDType, rec.manifest, recording, sparse, cacheReads, dense, graph.weights, tierBytes > 0 ? new DeviceEntryTier(tierBytes) : null);
  }

  /** The session that serves dense steps (DiffusionEngine.adoptUNet): the plain UNet when kept, else the recording one; null when neither was created. */
  get denseSession(): OrtModelSession | null {
    // Without a plain session the recording one is never lazy, so it exists here when it was asked for.
    return this.plainDense ?? this.recording.created;
  }

  /** Which sessions exist now (lazy ones appear at their first use). */
  get createdSessions(): { recording: boolean; sparse: boolean; dense: boolean } {
    return { recording: this.recording.created !== null, sparse: this.sparse.created !== null, dense: this.plainDense !== null };
  }

  /** Full shape of every entry for a batch and latent size. */
  entryShapes(batch: number, latentHeight: number, latentWidth: number): Map<string, number[]> {
    return new Map(this.manifest.map((e) => [e.name, entryShape(e, batch, latentHeight, latentWidth)]));
  }

  /**
   * Dense step with recording. sample [B, Cin, h, w] (B = 2 for CFG), one timestep for the batch,
   * text [B, L, D] → ε [B, Cout, h, w] and every entry of the manifest.
   */
  async recordStep(sample: Float32Array, height: number, width: number, timestep: number, text: Float32Array): Promise<RecordedStep<D>> {
    const session = await this.live(this.recording, 'recording');
    const batch = this.batchOf('recordStep sample', sample.length, this.config.inChannels * height * width);
    const { host: out, device } = await session.runWithDevice({
      sample: float32Tensor(sample, [batch, this.config.inChannels, height, width]),
      timestep: float32Tensor(new Float32Array(batch).fill(timestep), [batch]),
      encoder_hidden_states: this.textTensor(text, batch),
    });
    const entries = new Map<string, RecordedCacheEntry<D>>();
    for (const e of this.manifest) {
      const t = out[e.name];
      if (!t) throw new SparseGraphError(`recording output ${e.name} is missing`);
      entries.set(e.name, { shape: t.dims, data: t.data as CacheArray<D>, device: device[DEVICE_COPY_PREFIX + e.name] });
    }
    return { noise: out.noise_pred.data as Float32Array, entries };
  }

  /** An edit's mask pyramid (levels = len(block_out_channels)) as graph feeds; build once per edit. */
  preparePyramid(levels: readonly PyramidLevel[]): SparsePyramidFeed {
    const L = this.config.blockOutChannels.length;
    if (levels.length !== L) throw new SparseInputError(`pyramid has ${levels.length} levels, the UNet has ${L}`);
    return buildPyramidFeed(levels);
  }

  /**
   * Sparse step. sampleRows [B, N_0, Cin] are the latents at the active latent pixels (pyramid order),
   * text [B, L, D] the NEW prompt's embeddings, readCached(name) the PARENT's entry of this same step.
   */
  async sparseStep(feed: SparsePyramidFeed, sampleRows: Float32Array, timestep: number, text: Float32Array, readCached: ReadCachedEntry<D>): Promise<SparseStepResult<D>> {
    const session = await this.live(this.sparse, 'sparse');
    const cin = this.config.inChannels;
    const n0 = feed.activeCounts[0];
    const batch = this.batchOf('sparseStep sampleRows', sampleRows.length, n0 * cin);
    const feeds: Record<string, EngineTensor | DeviceTensor> = {
      sample_rows: float32Tensor(sampleRows, [batch, n0, cin]),
      timestep: float32Tensor(new Float32Array(batch).fill(timestep), [batch]),
      encoder_hidden_states: this.textTensor(text, batch),
    };
    const byName = new Map(this.manifest.map((e) => [e.name, e]));
    const reads: Promise<void>[] = [];
    const fedOnDevice = new Map<string, DeviceTensor>();
    for (const input of session.inputNames) {
      if (input in feeds) continue;
      const table = feed.tensors[input];
      if (table) {
        feeds[input] = table;
        continue;
      }
      if (!input.startsWith(CACHE_INPUT_PREFIX)) throw new SparseInputError(`no feed for sparse graph input ${input}`);
      const name = input.slice(CACHE_INPUT_PREFIX.length);
      const spec = byName.get(name);
      if (!spec) throw new SparseGraphError(`sparse graph input ${input} is not in the manifest`);
      const dims = entryShape(spec, batch, feed.height, feed.width);
      reads.push(
        Promise.resolve(readCached(name)).then((data) => {
          if (data instanceof DeviceTensor) {
            if (data.dims.join() !== dims.join()) throw new SparseInputError(`cache entry ${name} in device memory is [${data.dims.join(', ')}], expected [${dims.join(', ')}]`);
            fedOnDevice.set(name, data);
            feeds[input] = data;
          } else feeds[input] = this.cacheTensor(name, data, dims);
        }),
      );
    }
    await Promise.all(reads);
    // Every output is fetched, the child's whole entries too even when they will be dropped: onnxruntime-node
    // 1.30 cannot fetch a subset of a session's outputs once some stay in device memory ("Output count
    // mismatch", or a crash of the process in larger graphs).
    const { host: out, device } = await session.runWithDevice(feeds);
    const deltas = new Map<string, DeltaRows<D>>();
    let childOnDevice: ChildDeviceStep | undefined;
    const owned = Object.entries(device).filter(([k]) => k.startsWith(FULL_OUTPUT_PREFIX)).map(([k, t]) => [k.slice(FULL_OUTPUT_PREFIX.length), t] as const);
    const releaseOwned = () => owned.forEach(([, t]) => t.release());
    if (owned.length) {
      // The child's step: its whole row entries, and the statistics it reused (the parent's) where
      // those were fed from device memory; without them the tier cannot serve the child's steps.
      const entries = new Map<string, DeviceTensor>(owned);
      for (const name of this.cacheReads) if (!entries.has(name) && fedOnDevice.has(name)) entries.set(name, fedOnDevice.get(name)!);
      if (this.cacheReads.every((n) => entries.has(n))) childOnDevice = { entries, release: releaseOwned };
      else releaseOwned();
    }
    for (const [key, t] of Object.entries(out)) {
      if (!key.startsWith(DELTA_OUTPUT_PREFIX)) continue;
      const name = key.slice(DELTA_OUTPUT_PREFIX.length);
      const spec = byName.get(name)!;
      if (!isRowEntry(spec.kind)) continue;
      deltas.set(name, { shape: entryShape(spec, batch, feed.height, feed.width), rows: feed.levels[spec.level].active, data: t.data as CacheArray<D> });
    }
    return { noise: out.noise_rows.data as Float32Array, deltas, device: childOnDevice };
  }

  /** The device tier's entries of `node` at `step` covering every cache read, or null (then read the host cache). */
  deviceStep(node: string, step: number): Map<string, DeviceTensor> | null {
    return this.deviceTier?.get(node, step, this.cacheReads) ?? null;
  }

  /** Keep a step of `node` in the device tier (the tier then owns the tensors; without a tier they are freed). */
  keepOnDevice(node: string, step: number, entries: ReadonlyMap<string, DeviceTensor>): void {
    if (!this.deviceTier) {
      for (const t of entries.values()) t.release();
      return;
    }
    this.deviceTier.put(node, step, entries);
  }

  dropDevice(node: string): void {
    this.deviceTier?.drop(node);
  }

  /** False once the recording session is released (or was never created nor creatable). */
  get canRecord(): boolean {
    return this.recording.available;
  }

  /**
   * Free the recording session alone (its weights and arena: 3.4 GB and more at SD width) once nothing
   * will be recorded; recordStep then fails as if it had not been created. Sparse steps go on.
   */
  async releaseRecording(): Promise<void> {
    // The tier's entries include the recording session's outputs, which must be freed before it is.
    this.deviceTier?.release();
    await this.recording.release();
  }

  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    this.deviceTier?.release();
    await Promise.all([this.recording.release(), this.sparse.release(), this.plainDense?.release()]);
  }

  private cacheTensor(name: string, data: Uint16Array | Float32Array, dims: number[]): EngineTensor {
    const want = dims.reduce((a, b) => a * b, 1);
    if (data.length !== want) throw new SparseInputError(`cache entry ${name}: ${data.length} elements, expected [${dims.join(', ')}] = ${want}`);
    if (this.cacheDType === 'float16') {
      if (!(data instanceof Uint16Array)) throw new SparseInputError(`cache entry ${name} must be fp16 bits (Uint16Array)`);
      return { dtype: 'float16', dims, data };
    }
    if (!(data instanceof Float32Array)) throw new SparseInputError(`cache entry ${name} must be a Float32Array (cacheDType float32)`);
    return { dtype: 'float32', dims, data };
  }

  private textTensor(text: Float32Array, batch: number): EngineTensor {
    const D = this.config.crossAttentionDim;
    const L = text.length / (batch * D);
    if (!Number.isInteger(L) || L < 1) throw new SparseInputError(`text has ${text.length} values, not [${batch}, L, ${D}]`);
    return float32Tensor(text, [batch, L, D]);
  }

  private batchOf(what: string, length: number, perItem: number): number {
    const b = length / perItem;
    if (!Number.isInteger(b) || b < 1) throw new SparseInputError(`${what} has ${length} values, not a multiple of ${perItem}`);
    return b;
  }

  private async live(slot: SessionSlot, which: string): Promise<OrtModelSession> {
    if (this.released) throw new SparseGraphError('runner used after release()');
    const s = await slot.get();
    if (!s) throw new SparseGraphError(`the ${which} session was not created (SparseUNetRunnerOptions.sessions)`);
    return s;
  }
}
