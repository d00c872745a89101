// Step 8 of an edit: decode the affected region and composite it over the parent's image.
//
// First choice (SIGE's sparse decoder, sparse/sparseVaeDecoder.ts): when the parent's decoder conv inputs
// are in the activation cache (recorded by its own full decode, or a delta from its sparse one), decode
// the affected pixels alone at every decoder level, with halos from the parent's activations; the child
// stores its new rows as a delta. It runs while its share of the decoder's MACs is under
// SPARSE_DECODE_MAX_MACS; else, or without that cache, the box decode below.
//
// With a RegionDecoder and a parent that stored its decoder context, the box is decoded with the
// parent's GroupNorm statistics and outside tokens (0.3/255 from the full decode on the bundled model,
// against 5/255 for a crop with its own statistics), so boxes up to CONTEXT_FULL_ABOVE of the latent
// are worth cropping. Without one, the old crop (its own statistics) up to half the latent. A full
// decode with a RegionDecoder records the child's own context; a box decode derives it from the parent's.

import type { ActivationCache } from '../cache/activationCache';
import type { BinaryMask } from '../mask/binaryMask';
import { DecoderContextError, type DecoderContext, type DecoderEntry, type RegionDecoder } from './regionDecoder';
import { autoDecodeMode, boxImageToRgb, compositeRegion, compositeRows, decodeBox, planRegionDecode, planSparseDecode, scaledLatentBox, scaledLatentRows, type LatentBox } from './regionDecode';
import type { DiffusionModels } from './models';
import type { NodeRecord } from '../state/nodeRecord';
import { StateDirError, type NodeStore } from '../state/nodeStore';

/** Box share of the latent above which a decode with the parent's context decodes everything instead. */
export const CONTEXT_FULL_ABOVE = 0.75;

/**
 * The decoder's page of a node in the activation cache: the step index past any denoising step, so it
 * is evicted, spilled and chained (a child's delta over its parent) like a step's page.
 */
export const DECODER_CACHE_STEP = 1_000_000;

/**
 * Share of the full decode's MACs above which a sparse decode is not worth its gathers; the box or full
 * decode runs instead. Measured at SD width (bench/sparse/decodeChoice.ts, one process, 2 cores): a sparse
 * decode with the child's deltas costs 1.0–1.25× its MAC share of the full decode an edit runs instead
 * (the recording decoder, which also keeps the child's page): 256 px 0.19 / 0.31 / 0.53 / 0.90 of it at
 * 17 / 27 / 47 / 75 % of the MACs, 512 px 0.16 / 0.40 / 0.78 at 16 / 35 / 62 %. So it pays up to ~80 %
 * (0.6 before, which sent a 50 % disc at 512 px, 62 % of the MACs, to a 9.1 s full decode instead of 7.0 s).
 */
export const SPARSE_DECODE_MAX_MACS = 0.8;

/** Where the decoder's conv inputs live: the parent's to read, the child's to write (childId null: none). */
export interface DecoderCacheIO {
  cache: ActivationCache;
  parentId: string;
  childId: string | null;
}

/** Store a full decode's conv inputs as node's decoder page; returns the bytes. */
export async function putDecoderEntries(cache: ActivationCache, node: string, entries: Map<string, DecoderEntry>): Promise<number> {
  let bytes = 0;
  for (const [name, e] of entries) {
    await cache.putFull(node, DECODER_CACHE_STEP, name, { shape: e.shape, rowAxis: 1, data: e.data });
    bytes += e.data.byteLength;
  }
  return bytes;
}

/** How the edit's pixels were decoded: 'parent' (box with the parent's context), 'own' (full decode), 'none' (box with its own statistics). */
export type DecodeContextUse = 'parent' | 'own' | 'none';

export interface EditDecodeResult {
  rgb: Uint8Array;
  affected: BinaryMask;
  box: LatentBox;
  context: DecodeContextUse;
  /** The child's packed decoder context to store, or null. */
  childContext: Float32Array | null;
  /** Of the decode phase, the composite's ms. */
  compositeMs: number;
  /** 'SPARSE' (affected pixels only), 'BOX' (a latent box), 'FULL' (the whole latent). */
  method: 'SPARSE' | 'BOX' | 'FULL';
  /** Share of the full decode's MACs the sparse decode ran (null for a box or full decode). */
  macFraction: number | null;
  /** Bytes of decoder conv inputs the child added to the activation cache. */
  cacheBytes: number;
  /** Why the sparse decoder was not used, when it was loaded (null otherwise). */
  sparseNote: string | null;
}

/** The parent's decoder context, or null with the reason (none stored, another size, unreadable). */
export function readParentContext(store: NodeStore, decoder: RegionDecoder, parent: NodeRecord): { context: DecoderContext | null; packed: Float32Array | null; note: string | null } {
  const [, h, w] = parent.latentShape;
  try {
    const packed = store.readDecoderContext(parent);
    if (!packed) return { context: null, packed: null, note: null };
    return { context: decoder.unpack(packed, h, w), packed, note: null };
  } catch (e) {
    if (e instanceof DecoderContextError || e instanceof StateDirError) {
      return { context: null, packed: null, note: `node ${parent.id}'s decoder context was not usable (${(e as Error).message}): decoded the box with its own statistics` };
    }
    throw e;
  }
}

/**
 * Whether decodeEditRegion can read the parent's decoder context for this request: not where 'auto' decodes
 * every image of this model and size in full and the child keeps no decoder page (the plain decoder runs),
 * so an edit need not read and unpack it (a file of up to megabytes at SD size).
 */
export function decodeReadsParentContext(models: DiffusionModels, parent: NodeRecord, request: { decode?: 'auto' | 'crop' | 'full' | 'sparse' }, io: DecoderCacheIO | null): boolean {
  const asked = request.decode ?? 'auto';
  return !(asked === 'auto' && autoDecodeMode(models.info.vaeDecoderWidth, parent.width, parent.height) === 'full' && !io?.childId);
}

export async function decodeEditRegion(
  models: DiffusionModels,
  decoder: RegionDecoder | null,
  parentContext: DecoderContext | null,
  parentRgb: Uint8Array,
  parent: NodeRecord,
  latents: Float32Array,
  mask: BinaryMask,
  request: { decode?: 'auto' | 'crop' | 'full' | 'sparse' },
  io: DecoderCacheIO | null = null,
): Promise<EditDecodeResult> {
  const { info } = models;
  const [C, h, w] = parent.latentShape;
  const f = info.vaeScaleFactor;
  const asked = request.decode ?? 'auto';
  let sparseNote: string | null = null;
  // 'auto' decodes sparsely only where decoding is costly (autoDecodeMode); 'sparse' wherever it can.
  if (decoder?.hasSparse && (asked === 'sparse' || (asked === 'auto' && autoDecodeMode(info.vaeDecoderWidth, parent.width, parent.height) === 'auto'))) {
    const r = await decodeSparse(models, decoder, parentContext, parentRgb, parent, latents, mask, asked === 'auto', io);
    if (typeof r !== 'string') return r;
    sparseNote = r;
  }
  const mode = asked === 'auto' || asked === 'sparse' ? autoDecodeMode(info.vaeDecoderWidth, parent.width, parent.height) : asked;
  const plan = planRegionDecode(mask, f, { mode, dilate: 1, fullAbove: parentContext ? CONTEXT_FULL_ABOVE : undefined });
  let compositeMs = 0;
  const composite = (boxRgb: Uint8Array) => {
    const t = performance.now();
    const rgb = compositeRegion(parentRgb, parent.width, parent.height, boxRgb, plan.box, f, plan.affected);
    compositeMs = performance.now() - t;
    return rgb;
  };
  const rest = { macFraction: null, sparseNote };
  // Where 'auto' decodes every image of this model and size in full, no later decode reads a decoder
  // context (box and sparse decodes never run), so a child that keeps no decoder page decodes on the
  // plain decoder: the same pixels (the recording graph's are bit-identical), without the context
  // outputs that made the decode 34 ms against 22 ms on the bundled model (issue 15 item 2).
  const contextUnused = !decodeReadsParentContext(models, parent, request, io);
  if (decoder && plan.full && !contextUnused) {
    // A child decoded in full keeps its own conv inputs, so that its children decode sparsely; a child
    // that keeps no cache fetches none of them (they cost more than the decode itself).
    const keepPage = Boolean(io?.childId);
    const { image, context, entries } = await decoder.decodeRecording(scaledLatentBox(info, latents, C, h, w, plan.box), h, w, { entries: keepPage });
    const cacheBytes = keepPage && entries.size ? await putDecoderEntries(io!.cache, io!.childId!, entries) : 0;
    return { rgb: composite(boxImageToRgb(image, plan.box, f)), affected: plan.affected, box: plan.box, context: 'own', childContext: decoder.pack(context), compositeMs, method: 'FULL', cacheBytes, ...rest };
  }
  if (decoder && parentContext && !plan.full) {
    const r = await decoder.decodeBox(scaledLatentBox(info, latents, C, h, w, plan.box), plan.box, parentContext, plan.changed);
    return { rgb: composite(boxImageToRgb(r.image, plan.box, f)), affected: plan.affected, box: plan.box, context: 'parent', childContext: decoder.pack(r.context), compositeMs, method: 'BOX', cacheBytes: 0, ...rest };
  }
  const rgb = composite(await decodeBox(models, latents, C, h, w, plan.box));
  return { rgb, affected: plan.affected, box: plan.box, context: plan.full ? 'own' : 'none', childContext: null, compositeMs, method: plan.full ? 'FULL' : 'BOX', cacheBytes: 0, ...rest };
}

/**
 * The sparse decoder's attempt: its result, or why it cannot run (no parent context, no cache or no
 * decoder page of the parent; with `capped`, a region above SPARSE_DECODE_MAX_MACS of the decoder's work).
 */
async function decodeSparse(
  models: DiffusionModels,
  decoder: RegionDecoder,
  parentContext: DecoderContext | null,
  parentRgb: Uint8Array,
  parent: NodeRecord,
  latents: Float32Array,
  mask: BinaryMask,
  capped: boolean,
  io: DecoderCacheIO | null,
): Promise<EditDecodeResult | string> {
  if (!parentContext) return 'the parent stored no decoder context';
  if (!io) return 'no activation cache is open';
  const { cache } = io;
  const check = cache.check(io.parentId, [DECODER_CACHE_STEP], decoder.convInputs.map((e) => e.name));
  if (!check.ok) return `the parent's decoder activations are not cached (${check.misses[0].reason})`;
  const { info } = models;
  const [C, h, w] = parent.latentShape;
  const plan = planSparseDecode(mask, info.vaeScaleFactor, decoder.levelMacs, { dilate: 1 });
  if (capped && plan.macFraction > SPARSE_DECODE_MAX_MACS) return `the affected region is ${(100 * plan.macFraction).toFixed(0)} % of the decoder's work (sparse up to ${100 * SPARSE_DECODE_MAX_MACS} %)`;
  const feed = decoder.preparePyramid(plan.levels);
  const top = plan.levels[plan.levels.length - 1];
  const readCached = async (name: string): Promise<Uint16Array> => {
    const r = await cache.readRows(io.parentId, DECODER_CACHE_STEP, name);
    if (!r.ok) throw new DecoderContextError(r.miss.message);
    return r.data;
  };
  const r = await decoder.decodeSparse(feed, scaledLatentRows(info, latents, C, h, w, top.active), parentContext, plan.changed, readCached);
  const t = performance.now();
  const rgb = compositeRows(parentRgb, parent.width, parent.height, r.rows, plan.levels[0], plan.affected);
  const compositeMs = performance.now() - t;
  let cacheBytes = 0;
  if (io.childId) {
    for (const [name, d] of r.deltas) {
      await cache.putDelta(io.childId, DECODER_CACHE_STEP, name, { shape: d.shape, rowAxis: 1, rows: d.rows, data: d.data });
      cacheBytes += d.data.byteLength + 4 * d.rows.length;
    }
  }
  return { rgb, affected: plan.affected, box: { x: 0, y: 0, width: w, height: h }, context: 'parent', childContext: decoder.pack(r.context), compositeMs, method: 'SPARSE', macFraction: plan.macFraction, cacheBytes, sparseNote: null };
}
