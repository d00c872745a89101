// The seam between the edit pipeline and the sparse UNet (src/engine/sparse/sparseUNetRunner.ts, which
// implements it): what a recording step and a sparse step give and take, and how their tensors go in
// and out of the activation cache.
//
//   recordStep(sample [B,C,h,w] f32, h, w, t, text [B,L,D]) → ε [B,C,h,w] and one fp16 entry per
//     manifest entry: rows [B, h_l·w_l, C] (rowAxis 1) or GroupNorm statistics [B, G] (whole image)
//   sparseStep(feed, sample rows [B,N0,C] f32, t, text, readCached(name) → the parent's full entry)
//     → ε rows [B,N0,Cout] at level 0's active pixels, and the new rows of every row entry
//     [B,N_l,C] at level l's active pixels: the child's delta over its parent.
// The pipeline keeps the CFG batch B (2 with guidance, else 1) and the channels-last row layout.

import { loadModelFolder, type ModelFolder } from '../model/modelFolder';
import type { ActivationCache } from '../cache/activationCache';
import type { CacheMiss } from '../cache/cacheTypes';
import type { PyramidLevel } from '../mask/pyramid';
import type { CacheEntrySpec } from '../sparse/cacheManifest';
import type { SparsePyramidFeed } from '../sparse/pyramidInputs';
import { SparseUNetRunner, type ChildDeviceStep, type DeltaRows, type RecordedCacheEntry, type RecordedStep, type SparseStepResult } from '../sparse/sparseUNetRunner';
import { gatherActiveRows } from '../sparse/activeRows';
import type { UNetCall } from './denoiseLoop';
import { RegionDecoder } from './regionDecoder';
import type { DiffusionModels } from './models';
import type { WeightFormat } from '../graph/graphBuilder';
import type { GraphCache } from '../runtime/graphCache';
import type { DeviceTensor, EngineDevice, OrtModelSession } from '../runtime/ortSession';

export interface EditUNet {
  /** The session that serves dense steps for DiffusionEngine.adoptUNet: a plain UNet where the model is small, else the recording graph. */
  readonly denseSession?: OrtModelSession | null;
  /** UNet weight storage of its graphs (absent: fp32). */
  readonly weights?: WeightFormat;
  /** What recordStep records (names, kinds, levels). */
  readonly manifest: readonly CacheEntrySpec[];
  recordStep(sample: Float32Array, height: number, width: number, timestep: number, text: Float32Array): Promise<RecordedStep>;
  /** An edit's pyramid as sparse graph inputs; built once per edit. */
  preparePyramid(levels: readonly PyramidLevel[]): SparsePyramidFeed;
  sparseStep(
    feed: SparsePyramidFeed,
    sampleRows: Float32Array,
    timestep: number,
    text: Float32Array,
    readCached: (name: string) => Uint16Array | DeviceTensor | Promise<Uint16Array | DeviceTensor>,
  ): Promise<SparseStepResult>;
  /** Cache entries sparseStep reads from the parent (a subset of the manifest). */
  readonly cacheReads: readonly string[];
  /** The parent's entries of a step in device memory (every cacheRead), or null: then the host cache serves them. */
  deviceStep?(node: string, step: number): Map<string, DeviceTensor> | null;
  /** Keep a step's device entries for later sparse steps (recordStep's and sparseStep's `device`). */
  keepOnDevice?(node: string, step: number, entries: ReadonlyMap<string, DeviceTensor>): void;
  /** Forget a node's device entries (its cache was deleted). */
  dropDevice?(node: string): void;
  /** Free the recording session only (nothing more will be recorded); sparse steps go on. */
  releaseRecording?(): Promise<void>;
  /** False once the recording session is gone (or was never created): recordStep would fail. */
  readonly canRecord?: boolean;
  release(): Promise<void>;
}

export interface EditUNetLoadOptions {
  intraOpNumThreads?: number;
  device?: EngineDevice;
  variant?: string;
  sessions?: { recording?: boolean; sparse?: boolean };
  /** Optimised graphs kept on disk (runtime/graphCache.ts); without it every session is optimised anew. */
  graphCache?: GraphCache;
  /** Device memory for recorded entries on WebGPU (SparseUNetRunnerOptions.deviceTierBytes; 0: off). */
  deviceTierBytes?: number;
  /** UNet weight storage (default 'fp32'; 'int8': graph/quantizedWeights.ts). */
  weights?: WeightFormat;
}

/** The recording + sparse UNet of a model folder (both sessions built and loaded once). */
export async function loadEditUNet(modelDir: string, opts: EditUNetLoadOptions = {}): Promise<EditUNet> {
  const folder = loadModelFolder(modelDir, { variant: opts.variant });
  return SparseUNetRunner.create(folder.unet.config, folder.unet.weights, { intraOpNumThreads: opts.intraOpNumThreads, sessionOptions: { device: opts.device, graphCache: opts.graphCache }, sessions: opts.sessions, weights: opts.weights, deviceTierBytes: opts.deviceTierBytes });
}

/** What an edit pipeline loads beside the engine: the recording/sparse UNet and the region decoder. */
export interface EditComponents {
  unet: EditUNet;
  /** null when not asked for (opts.decoder false). */
  decoder: RegionDecoder | null;
}

/** loadEditUNet plus the RegionDecoder, from one read of the folder. */
export async function loadEditComponents(modelDir: string, opts: EditUNetLoadOptions & { decoder?: boolean; folder?: ModelFolder; sparseDecoderArena?: boolean } = {}): Promise<EditComponents> {
  // A caller that already read the folder (the CLI, for its engine too) passes it: one read of the weights.
  const folder = opts.folder ?? loadModelFolder(modelDir, { variant: opts.variant });
  const unet = await SparseUNetRunner.create(folder.unet.config, folder.unet.weights, { intraOpNumThreads: opts.intraOpNumThreads, sessionOptions: { device: opts.device, graphCache: opts.graphCache }, sessions: opts.sessions, weights: opts.weights, deviceTierBytes: opts.deviceTierBytes });
  try {
    const decoder = opts.decoder === false ? null : await RegionDecoder.create(folder.vae.config, folder.vae.weights, { intraOpNumThreads: opts.intraOpNumThreads, device: opts.device, graphCache: opts.graphCache, sparseArena: opts.sparseDecoderArena });
    return { unet, decoder };
  } catch (e) {
    await unet.release();
    throw e;
  }
}

/** Release what loadEditComponents loaded (either may be absent). */
export async function releaseEditComponents(c: { unet?: EditUNet | null; decoder?: RegionDecoder | null } | null | undefined): Promise<void> {
  await Promise.all([c?.unet?.release(), c?.decoder?.release()]);
}

const isRowSpec = (s: CacheEntrySpec) => s.kind === 'convInput' || s.kind === 'selfAttnK' || s.kind === 'selfAttnV';

/** Store a recorded step as full entries of `node`. Returns the bytes added. */
export async function putRecordedStep(cache: ActivationCache, node: string, step: number, unet: EditUNet, entries: Map<string, RecordedCacheEntry>): Promise<number> {
  let bytes = 0;
  for (const spec of unet.manifest) {
    const e = entries.get(spec.name);
    if (!e) throw new Error(`recordStep did not return cache entry "${spec.name}" (step ${step})`);
    await cache.putFull(node, step, spec.name, { shape: e.shape, rowAxis: isRowSpec(spec) ? 1 : 0, data: e.data });
    bytes += e.data.byteLength;
  }
  // After the host cache holds the step: the device tier only mirrors what the record has.
  const onDevice = new Map([...entries].filter(([, e]) => e.device).map(([name, e]) => [name, e.device!]));
  if (onDevice.size) unet.keepOnDevice?.(node, step, onDevice);
  return bytes;
}

/**
 * Store a sparse step's new rows as deltas of `node` over its base. Only row entries change; the
 * GroupNorm statistics stay the parent's (the sparse step used them). Returns the bytes added, or
 * null when a row entry has no delta (the child's cache would then be incomplete).
 */
export async function putSparseStep(cache: ActivationCache, node: string, step: number, unet: EditUNet, deltas: Map<string, DeltaRows>, device?: ChildDeviceStep): Promise<number | null> {
  let bytes = 0;
  for (const spec of unet.manifest) {
    if (!isRowSpec(spec)) continue;
    const d = deltas.get(spec.name);
    if (!d) {
      device?.release();
      return null;
    }
    await cache.putDelta(node, step, spec.name, { shape: d.shape, rowAxis: 1, rows: d.rows, data: d.data });
    bytes += d.data.byteLength + 4 * d.rows.length;
  }
  if (device) {
    if (unet.keepOnDevice) unet.keepOnDevice(node, step, device.entries);
    else device.release();
  }
  return bytes;
}

/**
 * A DiffusionModels whose UNet calls go through recordStep: generate() then records every step
 * (onRecord gets the step index and the entries) while computing exactly what it always does.
 */
export function recordingModels(models: DiffusionModels, unet: EditUNet, onRecord: (step: number, entries: Map<string, RecordedCacheEntry>) => Promise<void>): DiffusionModels {
  let step = 0;
  return {
    info: models.info,
    schedulerConfig: models.schedulerConfig,
    tokenize: (text) => models.tokenize(text),
    encodeText: (ids) => models.encodeText(ids),
    decodeLatents: (z, h, w) => models.decodeLatents(z, h, w),
    async predictNoise(sample, _batch, h, w, t, text) {
      const r = await unet.recordStep(sample, h, w, t, text);
      await onRecord(step++, r.entries);
      return r.noise;
    },
  };
}

/** The recording UNet as a step call (dense ε); onEntries gets the step index and what it recorded. */
export function recordingUNetCall(unet: EditUNet, height: number, width: number, text: Float32Array, onEntries: (step: number, entries: Map<string, RecordedCacheEntry>) => Promise<void>): UNetCall {
  return async (input) => {
    const r = await unet.recordStep(input.batched, height, width, input.timestep, text);
    await onEntries(input.step, r.entries);
    return { kind: 'dense', noise: r.noise };
  };
}

/**
 * The sparse UNet as a step call: reads the parent's entries of the step first (a miss is returned,
 * nothing run), then runs the active rows of level 0; onDeltas gets the child's new rows.
 */
export function sparseUNetCall(
  unet: EditUNet,
  feed: SparsePyramidFeed,
  cache: ActivationCache,
  parentId: string,
  text: Float32Array,
  channels: number,
  onDeltas: (step: number, deltas: Map<string, DeltaRows>, device?: ChildDeviceStep) => Promise<void>,
): UNetCall {
  const active = feed.levels[0].active;
  const pixels = feed.height * feed.width;
  return async (input) => {
    // The device tier first (no host assembly, no upload); the host cache when it lacks the step.
    const onDevice = unet.deviceStep?.(parentId, input.step) ?? null;
    const read = onDevice ? ({ ok: true, entries: onDevice } as const) : await readStepEntries(cache, parentId, input.step, unet.cacheReads);
    if (!read.ok) return { kind: 'miss', miss: read.miss };
    const rows = repeatBatch(gatherActiveRows(input.scaled, 1, channels, pixels, active), input.batch);
    const entries: ReadonlyMap<string, Uint16Array | DeviceTensor> = read.entries;
    const step = await unet.sparseStep(feed, rows, input.timestep, text, (name) => {
      const data = entries.get(name);
      if (!data) throw new Error(`sparse step read cache entry "${name}", which is not in the runner's cacheReads`);
      return data;
    });
    await onDeltas(input.step, step.deltas, step.device);
    return { kind: 'rows', noise: step.noise, active };
  };
}

/** Every named entry of `node` at `step`, or the first miss. */
async function readStepEntries(cache: ActivationCache, node: string, step: number, names: readonly string[]): Promise<{ ok: true; entries: Map<string, Uint16Array> } | { ok: false; miss: CacheMiss }> {
  const reads = await Promise.all(names.map((name) => cache.readRows(node, step, name)));
  const entries = new Map<string, Uint16Array>();
  for (const [i, r] of reads.entries()) {
    if (!r.ok) return { ok: false, miss: r.miss };
    entries.set(names[i], r.data);
  }
  return { ok: true, entries };
}

/** rows [N, C] → [B, N, C], the same rows in every batch element. */
function repeatBatch(rows: Float32Array, batch: number): Float32Array {
  if (batch === 1) return rows;
  const out = new Float32Array(batch * rows.length);
  for (let b = 0; b < batch; b++) out.set(rows, b * rows.length);
  return out;
}
