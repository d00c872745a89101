// What a recorded UNet step leaves in the activation cache for later sparse steps, and how each entry
// is named, shaped and placed in the UNet's resolution pyramid.
//
// ENTRIES (one per layer per denoising step, CFG batch B = 2, float16 unless a graph is built with
// cacheDType 'float32' for exactness tests):
//   convInput      "<conv module path>.input"  [B, h_l·w_l, Cin]  input of every spatial (3×3) conv,
//                  channels last, pixel p = y·w_l + x. The sparse step reads its HALO rows from it.
//                  Downsampler convs record their (fine) input at the fine level; upsampler convs record
//                  the nearest-upsampled map at the fine level.
//   selfAttnK/V    "<attn1 module path>.k" / ".v"  [B, h_l·w_l, C]  after to_k / to_v, before the head
//                  split. The sparse step takes the INACTIVE rows from it.
//   groupNormMean  "<norm module path>.mean"  [B, G]
//   groupNormStd   "<norm module path>.std"   [B, G]  √(biased variance), WITHOUT eps.
//                  Why std and not variance: fp16 overflows at 65504, i.e. a variance overflows as soon
//                  as a group's RMS passes 256, while std stays representable wherever the activations
//                  themselves are. The sparse graph adds the layer's own eps (1e-6 in transformers,
//                  norm_eps elsewhere), so no eps has to be guessed from a path.
//   crossAttnProbs "<attn2 module path>.probs" [B, h_l·w_l, L]  cross-attention probabilities averaged
//                  over heads, only at the coarse levels (RecordingGraphOptions.attentionMapLevels); they
//                  feed attention masks (mask/attentionMask.ts), not the sparse step.
// Row entries (convInput, selfAttnK/V) have rowAxis 1: a child edit stores only its recomputed rows as
// a delta over its parent. GroupNorm statistics are whole-image values: an edit reuses its parent's.
//
// LEVELS: level l runs at (h, w) / 2^l; level 0 is the latent. A module path alone fixes its level.

export type CacheEntryKind = 'convInput' | 'selfAttnK' | 'selfAttnV' | 'groupNormMean' | 'groupNormStd' | 'crossAttnProbs';

export type CacheDType = 'float16' | 'float32';

export interface CacheEntrySpec {
  /** Stable name: the diffusers module path + a suffix (see the header). */
  name: string;
  kind: CacheEntryKind;
  /** UNet resolution level of the entry's pixels (0 = latent resolution). */
  level: number;
  /** Channels C for row entries, groups G for GroupNorm statistics, text length L for attention maps. */
  width: number;
}

export class CacheManifestError extends Error {
  constructor(reason: string) {
    super(`sparse/cacheManifest.ts: ${reason}`);
    this.name = 'CacheManifestError';
  }
}

const SUFFIX: Record<CacheEntryKind, string> = {
  convInput: 'input',
  selfAttnK: 'k',
  selfAttnV: 'v',
  groupNormMean: 'mean',
  groupNormStd: 'std',
  crossAttnProbs: 'probs',
};

export function entryName(modulePath: string, kind: CacheEntryKind): string {
  return `${modulePath}.${SUFFIX[kind]}`;
}

/** Row entries carry one row per pixel (rowAxis 1) and can be stored as deltas. */
export function isRowEntry(kind: CacheEntryKind): boolean {
  return kind !== 'groupNormMean' && kind !== 'groupNormStd';
}

/** Entries the sparse step reads (everything but the attention maps). */
export function isSparseInput(kind: CacheEntryKind): boolean {
  return kind !== 'crossAttnProbs';
}

/**
 * Resolution level of a UNet module path (levels = len(block_out_channels)):
 * conv_in / conv_norm_out / conv_out → 0; down_blocks.i.* → i (a downsampler's input is still at i);
 * mid_block.* → levels − 1; up_blocks.k.* → levels − 1 − k, except up_blocks.k.upsamplers.* whose conv
 * runs after the ×2 upsample, at levels − 2 − k.
 */
export function levelOfPath(path: string, levels: number): number {
  if (/^conv_(in|out|norm_out)(\.|$)/.test(path)) return 0;
  if (path.startsWith('mid_block.')) return levels - 1;
  const down = /^down_blocks\.(\d+)\./.exec(path);
  if (down) return checkLevel(path, Number(down[1]), levels);
  const up = /^up_blocks\.(\d+)\.(upsamplers\.)?/.exec(path);
  if (up) return checkLevel(path, levels - 1 - Number(up[1]) - (up[2] ? 1 : 0), levels);
  throw new CacheManifestError(`no UNet resolution level for module path "${path}"`);
}

function checkLevel(path: string, level: number, levels: number): number {
  if (level < 0 || level >= levels) throw new CacheManifestError(`module path "${path}" maps to level ${level}, outside 0..${levels - 1}`);
  return level;
}

/** Full shape of an entry for a CFG batch and a latent size: [B, h_l·w_l, C] or [B, G]. */
export function entryShape(spec: CacheEntrySpec, batch: number, latentHeight: number, latentWidth: number): number[] {
  if (!isRowEntry(spec.kind)) return [batch, spec.width];
  const f = 2 ** spec.level;
  if (latentHeight % f || latentWidth % f) {
    throw new CacheManifestError(`latent ${latentWidth}x${latentHeight} is not divisible by 2^${spec.level} (entry ${spec.name})`);
  }
  return [batch, (latentHeight / f) * (latentWidth / f), spec.width];
}

/** Bytes of one recorded step (all entries) at 2 bytes per element. */
export function stepCacheBytes(manifest: readonly CacheEntrySpec[], batch: number, latentHeight: number, latentWidth: number): number {
  let n = 0;
  for (const e of manifest) n += entryShape(e, batch, latentHeight, latentWidth).reduce((a, b) => a * b, 1);
  return 2 * n;
}
