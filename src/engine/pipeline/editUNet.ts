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

import { loadModelFolder } from '../model/modelFolder';
import type { ActivationCache } from '../cache/activationCache';
import type { PyramidLevel } from '../mask/pyramid';
import type { CacheEntrySpec } from '../sparse/cacheManifest';
import type { SparsePyramidFeed } from '../sparse/pyramidInputs';
import { SparseUNetRunner } from '../sparse/sparseUNetRunner';
import { RegionDecoder } from './regionDecoder';
import type { DiffusionModels } from './models';
import type { OrtModelSession } from '../runtime/ortSession';

export interface RecordedEntry {
  shape: number[];
  data: Uint16Array;
}

export interface RecordedUNetStep {
  /** ε [B, C, h, w]. */
  noise: Float32Array;
  entries: Map<string, RecordedEntry>;
}

export interface DeltaEntry {
  /** Full entry shape [B, h_l·w_l, C] (rowAxis 1). */
  shape: number[];
  /** Level l's active pixels, ascending. */
  rows: Int32Array;
  /** [B, rows.length, C]. */
  data: Uint16Array;
}

export interface SparseUNetStep {
  /** ε rows [B, N0, Cout], row r = level 0's active pixel r. */
  noise: Float32Array;
  /** New rows of the row entries (the child's delta). */
  deltas: Map<string, DeltaEntry>;
}

export interface EditUNet {
  /** A session that also runs dense steps (the recording graph), for DiffusionEngine.adoptUNet. */
  readonly denseSession?: OrtModelSession | null;
  /** What recordStep records (names, kinds, levels). */
  readonly manifest: readonly CacheEntrySpec[];
  recordStep(sample: Float32Array, height: number, width: number, timestep: number, text: Float32Array): Promise<RecordedUNetStep>;
  /** An edit's pyramid as sparse graph inputs; built once per edit. */
  preparePyramid(levels: readonly PyramidLevel[]): SparsePyramidFeed;
  sparseStep(
    feed: SparsePyramidFeed,
    sampleRows: Float32Array,
    timestep: number,
    text: Float32Array,
    readCached: (name: string) => Uint16Array | Promise<Uint16Array>,
  ): Promise<SparseUNetStep>;
  /** Free the recording session only (nothing more will be recorded); sparse steps go on. */
  releaseRecording?(): Promise<void>;
  /** False once the recording session is gone (or was never created): recordStep would fail. */
  readonly canRecord?: boolean;
  release(): Promise<void>;
}

/** The recording + sparse UNet of a model folder (both sessions built and loaded once). */
export async function loadEditUNet(
  modelDir: string,
  opts: { intraOpNumThreads?: number; variant?: string; sessions?: { recording?: boolean; sparse?: boolean } } = {},
): Promise<EditUNet> {
  const folder = loadModelFolder(modelDir, { variant: opts.variant });
  return SparseUNetRunner.create(folder.unet.config, folder.unet.weights, { intraOpNumThreads: opts.intraOpNumThreads, sessions: opts.sessions });
}

/** What an edit pipeline loads beside the engine: the recording/sparse UNet and the region decoder. */
export interface EditComponents {
  unet: EditUNet;
  /** null when not asked for (opts.decoder false). */
  decoder: RegionDecoder | null;
}

/** loadEditUNet plus the RegionDecoder, from one read of the folder. */
export async function loadEditComponents(
  modelDir: string,
  opts: { intraOpNumThreads?: number; variant?: string; sessions?: { recording?: boolean; sparse?: boolean }; decoder?: boolean } = {},
): Promise<EditComponents> {
  const folder = loadModelFolder(modelDir, { variant: opts.variant });
  const unet = await SparseUNetRunner.create(folder.unet.config, folder.unet.weights, { intraOpNumThreads: opts.intraOpNumThreads, sessions: opts.sessions });
  try {
    const decoder = opts.decoder === false ? null : await RegionDecoder.create(folder.vae.config, folder.vae.weights, { intraOpNumThreads: opts.intraOpNumThreads });
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
export async function putRecordedStep(cache: ActivationCache, node: string, step: number, unet: EditUNet, entries: Map<string, RecordedEntry>): Promise<number> {
  let bytes = 0;
  for (const spec of unet.manifest) {
    const e = entries.get(spec.name);
    if (!e) throw new Error(`recordStep did not return cache entry "${spec.name}" (step ${step})`);
    await cache.putFull(node, step, spec.name, { shape: e.shape, rowAxis: isRowSpec(spec) ? 1 : 0, data: e.data });
    bytes += e.data.byteLength;
  }
  return bytes;
}

/**
 * Store a sparse step's new rows as deltas of `node` over its base. Only row entries change; the
 * GroupNorm statistics stay the parent's (the sparse step used them). Returns the bytes added, or
 * null when a row entry has no delta (the child's cache would then be incomplete).
 */
export async function putSparseStep(cache: ActivationCache, node: string, step: number, unet: EditUNet, deltas: Map<string, DeltaEntry>): Promise<number | null> {
  let bytes = 0;
  for (const spec of unet.manifest) {
    if (!isRowSpec(spec)) continue;
    const d = deltas.get(spec.name);
    if (!d) return null;
    await cache.putDelta(node, step, spec.name, { shape: d.shape, rowAxis: 1, rows: d.rows, data: d.data });
    bytes += d.data.byteLength + 4 * d.rows.length;
  }
  return bytes;
}

/**
 * A DiffusionModels whose UNet calls go through recordStep: generate() then records every step
 * (onRecord gets the step index and the entries) while computing exactly what it always does.
 */
export function recordingModels(models: DiffusionModels, unet: EditUNet, onRecord: (step: number, entries: Map<string, RecordedEntry>) => Promise<void>): DiffusionModels {
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
