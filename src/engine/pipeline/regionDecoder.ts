// Region decoding with the whole image's decoder context (arch/vaeDecoderContext.ts says why).
//
// A node generated with a RegionDecoder stores its context (decoder.npy): the statistics of every
// decoder GroupNorm and the mid-attention keys/values of every latent token. An edit then decodes only
// its box, normalising with the parent's statistics and attending to the box's tokens plus the parent's
// tokens outside it; the child's context is the parent's with the tokens it changed replaced (its
// statistics stay the parent's: an edit moves the whole-image averages little, and computing them
// exactly would take the full decode the box avoids).

import { buildBoxVaeDecoderGraph, buildRecordingVaeDecoderGraph } from '../arch/vaeDecoderContext';
import type { BinaryMask } from '../mask/binaryMask';
import type { PyramidLevel } from '../mask/pyramid';
import type { WeightFormat } from '../graph/graphBuilder';
import type { VaeConfig } from '../model/configs';
import type { WeightMap } from '../model/tensor';
import { graphOptionsFor } from '../runtime/deviceGraphs';
import type { GraphCache } from '../runtime/graphCache';
import { createSession, float32Tensor, type EngineDevice, type EngineTensor, type OrtModelSession } from '../runtime/ortSession';
import { SessionSlot } from '../runtime/lazySession';
import { buildPyramidFeed, type SparsePyramidFeed } from '../sparse/pyramidInputs';
import { CACHE_INPUT_PREFIX, DELTA_OUTPUT_PREFIX } from '../sparse/sparseLayers';
import { buildSparseVaeDecoderGraph, decoderLevelMacs, decoderLevelOfPath } from '../sparse/sparseVaeDecoder';
import type { LatentBox } from './regionDecode';

export class DecoderContextError extends Error {
  constructor(reason: string) {
    super(`decoder context: ${reason}`);
    this.name = 'DecoderContextError';
  }
}

/** The decoder's whole-image context at one latent size. */
export interface DecoderContext {
  height: number;
  width: number;
  /** [S, G] GroupNorm means and biased variances, in the decoder's build order. */
  mean: Float32Array;
  variance: Float32Array;
  /** [h·w, C] mid-attention keys and values per latent token (row y·w + x); empty without mid attention. */
  k: Float32Array;
  v: Float32Array;
}

/** A recorded decoder conv input: channels-last rows [1, h_l·w_l, Cin], fp16 bits. */
export interface DecoderEntry {
  shape: number[];
  data: Uint16Array;
}

/** What a sparse decode returns. */
export interface SparseDecodeResult {
  /** Decoder output at the level-0 (image) active pixels, [N_0, 3] row-major, before postprocessing. */
  rows: Float32Array;
  /** The child's context: the parent's with the changed latent tokens' keys/values replaced. */
  context: DecoderContext;
  /** The child's new rows of every conv input (ActivationCache.putDelta input). */
  deltas: Map<string, { shape: number[]; rows: Int32Array; data: Uint16Array }>;
}

/**
 * VAE weights up to which RegionDecoder keeps a second, context-only recording session (no conv-input
 * outputs) for full decodes that store no decoder page. With those outputs the recording session's first
 * two runs took 86–104 ms on the bundled model against 28–39 ms for the plain decoder (the context-only
 * graph: 35–40 ms), and a CLI edit decodes once. An SD-size VAE (335 MB) would double its memory for it.
 */
export const CONTEXT_DECODER_MAX_BYTES = 64 * 2 ** 20;

/**
 * The sparse decoder keeps onnxruntime's CPU memory arena (the box decoder and the sparse UNet do not).
 * Without it every intermediate is a fresh allocation: a level-0 im2col is 58–117 MiB at 256 px, above
 * glibc's mmap threshold, so each conv maps new pages and faults them in, and on the VMs these benches
 * run on a page fault is dear (a 117 MiB Gather: ~400 ms without an arena, ~10 ms with one). With the
 * arena the blocks of one run serve the next: SD's VAE at 256 px (bench/sparse/decoderArena.ts, one
 * process, interleaved, same bits, load ~1.7) decoded a 10 % disc in 684 ms against 1266 ms, 25 % in
 * 1.13 against 2.47 s, 50 % in 2.00 against 4.71 s (the system CPU time of a run without it: 0.6–2.6 s).
 * Inside whole edits the gain was smaller and uneven (bench/README.md, issue 20). The price: the largest
 * decode's blocks stay held until the session is released (0.3–0.55 GiB more resident after 10–25 %
 * discs at 256 px; not measured at 512 px, where the tensors are 4× larger).
 */
export const SPARSE_DECODER_ARENA = true;

export class RegionDecoder {
  private constructor(
    private readonly recording: SessionSlot,
    /** The recording graph without conv-input outputs (absent when not kept): decodes that store no page. */
    private readonly contextOnly: SessionSlot,
    private readonly box: SessionSlot,
    /** The sparse decoder session (absent when not asked for); the recording graph then also records conv inputs. */
    private readonly sparse: SessionSlot,
    /** Conv-input entries the recording graph writes (empty without the sparse decoder). */
    readonly convInputs: readonly { name: string; level: number; width: number }[],
    readonly levels: number,
    /** The decoder's 3×3-conv MACs per level per image pixel (level 0 = image): planSparseDecode's weights. */
    readonly levelMacs: readonly number[],
    readonly latentChannels: number,
    /** GroupNorms S and groups G of the statistics. */
    readonly norms: number,
    readonly groups: number,
    /** Mid-attention width C (0 without mid attention). */
    readonly attentionChannels: number,
  ) {}

  /**
   * opts.sparse (default true): also load the sparse decoder, and record every decoder conv input in
   * decodeRecording (the halos a child's sparse decode reads). opts.contextDecoderMaxBytes (default
   * CONTEXT_DECODER_MAX_BYTES): VAE weights up to which the context-only session is kept beside it.
   * opts.weights (default 'fp32'): 'int8' stores the decoder's conv and linear weights block-quantised
   * (graph/quantizedWeights.ts) in every graph: the sparse decoder's gathered-column MatMuls run as int8
   * MatMulNBits, the recording and box graphs' Convs fp32 on the same dequantised values, so a child's
   * sparse decode reads halos its parent's full decode computed with identical weights. Not a speed-up:
   * at SD width, 256 px, the int8 sparse decode took 0.96–0.99× the fp32 one's time and moved its pixels
   * by 3.3/255 on average (bench/sparse/decoderWeights.ts); only that bench passes it, the engine never does.
   * opts.sparseArena (default true): the sparse decoder session keeps onnxruntime's CPU memory arena (see
   * SPARSE_DECODER_ARENA).
   */
  static async create(
    cfg: VaeConfig,
    weights: WeightMap,
    opts: { intraOpNumThreads?: number; device?: EngineDevice; graphCache?: GraphCache; sparse?: boolean; contextDecoderMaxBytes?: number; weights?: WeightFormat; sparseArena?: boolean } = {},
  ): Promise<RegionDecoder> {
    const L = cfg.blockOutChannels.length;
    const withSparse = opts.sparse ?? true;
    const graph = { ...graphOptionsFor(opts.device), weights: opts.weights ?? 'fp32' };
    const rec = buildRecordingVaeDecoderGraph(cfg, weights, withSparse ? { convInputs: true, levelOf: (p) => decoderLevelOfPath(p, L), graph } : { graph });
    const plain = { intraOpNumThreads: opts.intraOpNumThreads, device: opts.device, graphCache: opts.graphCache };
    let weightBytes = 0;
    for (const t of weights.values()) weightBytes += t.data.byteLength;
    // A small VAE's sessions are created at their first use (runtime/lazySession.ts): where 'auto' decodes
    // every image in full, an edit that keeps no page decodes on the engine's plain decoder and needs none
    // of them. An SD-size VAE's are created up front, so that its weights can be let go.
    const lazy = weightBytes <= (opts.contextDecoderMaxBytes ?? CONTEXT_DECODER_MAX_BYTES);
    const slot = async (make: () => Promise<OrtModelSession>) => (lazy ? SessionSlot.lazy(make) : SessionSlot.ready(await make()));
    const recording = await slot(() => createSession(rec.g.build(), plain));
    const boxGraph = buildBoxVaeDecoderGraph(cfg, weights, { graph });
    if (boxGraph.norms.join() !== rec.norms.join()) throw new DecoderContextError('the recording and box decoder graphs disagree on their GroupNorms');
    // Box sizes vary per edit: no arena, so one large box does not stay allocated (sparseUNetRunner.ts).
    const noArena = { ...plain, enableCpuMemArena: false, enableMemPattern: false };
    const box = await slot(() => createSession(boxGraph.g.build(), noArena));
    let sparse = SessionSlot.absent();
    if (withSparse) {
      const sp = buildSparseVaeDecoderGraph(cfg, weights, { graph });
      if (sp.norms.join() !== rec.norms.join()) throw new DecoderContextError('the recording and sparse decoder graphs disagree on their GroupNorms');
      const recorded = new Set(rec.convInputs.map((e) => e.name));
      const missing = sp.manifest.filter((e) => !recorded.has(e.name)).map((e) => e.name);
      if (missing.length) throw new DecoderContextError(`the sparse decoder reads conv inputs the recording decoder does not write: ${missing.join(', ')}`);
      const sparseMem = { ...plain, enableCpuMemArena: opts.sparseArena ?? SPARSE_DECODER_ARENA, enableMemPattern: false };
      sparse = await slot(() => createSession(sp.g.build(), sparseMem));
    }
    // Without the sparse decoder the recording graph already records no conv inputs.
    const contextOnly = withSparse && lazy ? SessionSlot.lazy(() => createSession(buildRecordingVaeDecoderGraph(cfg, weights, { graph }).g.build(), plain)) : SessionSlot.absent();
    const channels = rec.attention === null ? 0 : cfg.blockOutChannels[L - 1];
    return new RegionDecoder(recording, contextOnly, box, sparse, rec.convInputs, L, decoderLevelMacs(cfg, 1), cfg.latentChannels, rec.norms.length, cfg.normNumGroups, channels);
  }

  /** True when decodeRecording without entries runs the context-only session. */
  get hasContextDecoder(): boolean {
    return this.contextOnly.available;
  }

  /** True when the sparse decoder is loaded (and decodeRecording records conv inputs). */
  get hasSparse(): boolean {
    return this.sparse.available;
  }

  /** Which sessions exist now (a small VAE's appear at their first use). */
  get createdSessions(): { recording: boolean; contextOnly: boolean; box: boolean; sparse: boolean } {
    return { recording: this.recording.created !== null, contextOnly: this.contextOnly.created !== null, box: this.box.created !== null, sparse: this.sparse.created !== null };
  }

  private async live(slot: SessionSlot, which: string): Promise<OrtModelSession> {
    const s = await slot.get();
    if (!s) throw new DecoderContextError(`the ${which} decoder was not loaded (RegionDecoder.create) or was released`);
    return s;
  }

  /**
   * Full decode of scaled latents z [1, C, h, w] → image [1, 3, H, W] and the image's context.
   * opts.entries (default true): also fetch every decoder conv input. A caller that stores no decoder
   * page passes false: it runs the context-only session where there is one, else fetches the image and
   * context alone (their outputs' copies made the decode 2–4× the plain decoder's on the bundled model).
   */
  async decodeRecording(z: Float32Array, height: number, width: number, opts: { entries?: boolean } = {}): Promise<{ image: Float32Array; context: DecoderContext; entries: Map<string, DecoderEntry> }> {
    const withEntries = (opts.entries ?? true) && this.convInputs.length > 0;
    const fetch = withEntries ? undefined : ['image', 'gn_mean', 'gn_var', ...(this.attentionChannels ? ['mid_k', 'mid_v'] : [])];
    const session = await this.live(!withEntries && this.contextOnly.available ? this.contextOnly : this.recording, 'recording');
    const out = await session.run({ latents: float32Tensor(z, [1, this.latentChannels, height, width]) }, fetch);
    const empty = new Float32Array(0);
    const entries = new Map<string, DecoderEntry>();
    if (withEntries) for (const e of this.convInputs) entries.set(e.name, { shape: out[e.name].dims, data: out[e.name].data as Uint16Array });
    return {
      entries,
      image: out.image.data as Float32Array,
      context: {
        height,
        width,
        mean: Float32Array.from(out.gn_mean.data as Float32Array),
        variance: Float32Array.from(out.gn_var.data as Float32Array),
        k: this.attentionChannels ? (out.mid_k.data as Float32Array) : empty,
        v: this.attentionChannels ? (out.mid_v.data as Float32Array) : empty,
      },
    };
  }

  /**
   * Decode scaled latents zBox [1, C, box.height, box.width] of `box` with the parent's context.
   * Returns the box's image and the child's context: the parent's, with the keys/values of the latent
   * pixels in `changed` (inside the box) replaced by the box decode's.
   */
  async decodeBox(zBox: Float32Array, box: LatentBox, parent: DecoderContext, changed: BinaryMask): Promise<{ image: Float32Array; context: DecoderContext }> {
    this.check(parent);
    const { height: h, width: w } = parent;
    if (box.x < 0 || box.y < 0 || box.x + box.width > w || box.y + box.height > h) throw new RangeError(`box ${JSON.stringify(box)} outside the ${w}×${h} latent`);
    if (changed.width !== w || changed.height !== h) throw new RangeError(`changed mask ${changed.width}×${changed.height} does not match the ${w}×${h} latent`);
    const C = this.attentionChannels;
    const inBox = (x: number, y: number) => x >= box.x && x < box.x + box.width && y >= box.y && y < box.y + box.height;
    const outside: number[] = [];
    for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) if (!inBox(x, y)) outside.push(y * w + x);
    const ok = new Float32Array(outside.length * C);
    const ov = new Float32Array(outside.length * C);
    outside.forEach((t, r) => {
      ok.set(parent.k.subarray(t * C, (t + 1) * C), r * C);
      ov.set(parent.v.subarray(t * C, (t + 1) * C), r * C);
    });
    const S = this.norms;
    const G = this.groups;
    const feeds = {
      latents: float32Tensor(zBox, [1, this.latentChannels, box.height, box.width]),
      gn_mean: float32Tensor(parent.mean, [S, G, 1]),
      gn_var: float32Tensor(parent.variance, [S, G, 1]),
      ...(C ? { outside_k: float32Tensor(ok, [1, outside.length, C]), outside_v: float32Tensor(ov, [1, outside.length, C]) } : {}),
    };
    const out = await (await this.live(this.box, 'box')).run(feeds);
    const k = Float32Array.from(parent.k);
    const v = Float32Array.from(parent.v);
    if (C) {
      const bk = out.mid_k.data as Float32Array;
      const bv = out.mid_v.data as Float32Array;
      for (let y = 0; y < box.height; y++) {
        for (let x = 0; x < box.width; x++) {
          const t = (box.y + y) * w + box.x + x;
          if (!changed.data[t]) continue;
          const r = y * box.width + x;
          k.set(bk.subarray(r * C, (r + 1) * C), t * C);
          v.set(bv.subarray(r * C, (r + 1) * C), t * C);
        }
      }
    }
    return { image: out.image.data as Float32Array, context: { height: h, width: w, mean: parent.mean, variance: parent.variance, k, v } };
  }

  /**
   * The decoder's mask pyramid at image resolution (level 0 = image, levels − 1 = latent) as graph feeds:
   * mask/pyramid.ts's levels for the image-resolution mask of the pixels to recompute.
   */
  preparePyramid(levels: readonly PyramidLevel[]): SparsePyramidFeed {
    if (levels.length !== this.levels) throw new DecoderContextError(`the decoder pyramid has ${levels.length} levels, the decoder ${this.levels}`);
    return buildPyramidFeed(levels);
  }

  /**
   * Sparse decode: latentRows [1, N_{L−1}, Cl] are the scaled latents z at the active latent pixels
   * (pyramid order); readCached(name) the PARENT's recorded conv input [1, h_l·w_l, Cin] (fp16 bits).
   * `changed` (latent size) marks the tokens whose keys/values the child's context takes from this decode.
   */
  async decodeSparse(feed: SparsePyramidFeed, latentRows: Float32Array, parent: DecoderContext, changed: BinaryMask, readCached: (name: string) => Promise<Uint16Array>): Promise<SparseDecodeResult> {
    if (!this.sparse.available) throw new DecoderContextError('the sparse decoder was not loaded (RegionDecoder.create sparse: false)');
    const session = await this.live(this.sparse, 'sparse');
    this.check(parent);
    const L = this.levels;
    const top = feed.levels[L - 1];
    const { height: h, width: w } = parent;
    if (top.width !== w || top.height !== h) throw new DecoderContextError(`the pyramid's latent level is ${top.width}×${top.height}, the parent's context ${w}×${h}`);
    const nTop = feed.activeCounts[L - 1];
    if (latentRows.length !== nTop * this.latentChannels) throw new RangeError(`latentRows holds ${latentRows.length} values, expected ${nTop}·${this.latentChannels}`);
    const S = this.norms;
    const G = this.groups;
    const C = this.attentionChannels;
    const byName = new Map(this.convInputs.map((e) => [e.name, e]));
    const feeds: Record<string, EngineTensor> = {
      latent_rows: float32Tensor(latentRows, [1, nTop, this.latentChannels]),
      gn_mean: float32Tensor(parent.mean, [S, G, 1]),
      gn_var: float32Tensor(parent.variance, [S, G, 1]),
    };
    if (C) {
      feeds.mid_k = float32Tensor(parent.k, [1, h * w, C]);
      feeds.mid_v = float32Tensor(parent.v, [1, h * w, C]);
    }
    const dims = (level: number, c: number) => [1, (feed.height >> level) * (feed.width >> level), c];
    for (const input of session.inputNames) {
      if (input in feeds) continue;
      const table = feed.tensors[input];
      if (table) {
        feeds[input] = table;
        continue;
      }
      const spec = input.startsWith(CACHE_INPUT_PREFIX) ? byName.get(input.slice(CACHE_INPUT_PREFIX.length)) : undefined;
      if (!spec) throw new DecoderContextError(`no feed for sparse decoder input ${input}`);
      const data = await readCached(spec.name);
      const d = dims(spec.level, spec.width);
      if (data.length !== d[1] * d[2]) throw new DecoderContextError(`cached ${spec.name} holds ${data.length} values, expected [${d.join(', ')}]`);
      feeds[input] = { dtype: 'float16', dims: d, data };
    }
    const out = await session.run(feeds);
    const deltas: SparseDecodeResult['deltas'] = new Map();
    for (const [key, t] of Object.entries(out)) {
      if (!key.startsWith(DELTA_OUTPUT_PREFIX)) continue;
      const spec = byName.get(key.slice(DELTA_OUTPUT_PREFIX.length))!;
      deltas.set(spec.name, { shape: dims(spec.level, spec.width), rows: feed.levels[spec.level].active, data: t.data as Uint16Array });
    }
    const k = Float32Array.from(parent.k);
    const v = Float32Array.from(parent.v);
    if (C) {
      const bk = out.mid_k_rows.data as Float32Array;
      const bv = out.mid_v_rows.data as Float32Array;
      top.active.forEach((t, r) => {
        if (!changed.data[t]) return;
        k.set(bk.subarray(r * C, (r + 1) * C), t * C);
        v.set(bv.subarray(r * C, (r + 1) * C), t * C);
      });
    }
    return { rows: out.image_rows.data as Float32Array, context: { height: h, width: w, mean: parent.mean, variance: parent.variance, k, v }, deltas };
  }

  /** [2, L]: row 0 = means then keys, row 1 = variances then values (NodeStore's decoder.npy). */
  pack(c: DecoderContext): Float32Array {
    this.check(c);
    const half = c.mean.length + c.k.length;
    const out = new Float32Array(2 * half);
    out.set(c.mean, 0);
    out.set(c.k, c.mean.length);
    out.set(c.variance, half);
    out.set(c.v, half + c.variance.length);
    return out;
  }

  /** Inverse of pack() for a latent of h × w; a context of another model or size is refused. */
  unpack(packed: Float32Array, height: number, width: number): DecoderContext {
    const sg = this.norms * this.groups;
    const kv = height * width * this.attentionChannels;
    if (packed.length !== 2 * (sg + kv)) {
      throw new DecoderContextError(`holds ${packed.length} values; this decoder at ${width}×${height} latents needs 2 × (${this.norms}·${this.groups} + ${height * width}·${this.attentionChannels})`);
    }
    const half = sg + kv;
    return {
      height,
      width,
      mean: packed.slice(0, sg),
      k: packed.slice(sg, half),
      variance: packed.slice(half, half + sg),
      v: packed.slice(half + sg),
    };
  }

  async release(): Promise<void> {
    await Promise.all([this.recording.release(), this.contextOnly.release(), this.box.release(), this.sparse.release()]);
  }

  private check(c: DecoderContext): void {
    const sg = this.norms * this.groups;
    const kv = c.height * c.width * this.attentionChannels;
    if (c.mean.length !== sg || c.variance.length !== sg || c.k.length !== kv || c.v.length !== kv) {
      throw new DecoderContextError(`does not fit this decoder (${this.norms} GroupNorms × ${this.groups} groups, ${this.attentionChannels} attention channels at ${c.width}×${c.height})`);
    }
  }
}
