// Typed diffusers configs with the constructor defaults that SD 1.5's config.json files leave out
// (see shared/reference/sd-architecture.md §1.3–1.5). Parsing validates what the graph builders rely on.

import { COORD_CHANNELS } from '../arch/coordChannels';

/** Input channels of conv_in: the latent channels plus any coordinate planes. */
export function convInChannels(cfg: Pick<UNetConfig, 'inChannels' | 'coordChannels'>): number {
  return cfg.inChannels + cfg.coordChannels;
}

export class ModelConfigError extends Error {
  constructor(readonly file: string, readonly reason: string) {
    super(`${file}: ${reason}`);
    this.name = 'ModelConfigError';
  }
}

export type DownBlockType = 'CrossAttnDownBlock2D' | 'DownBlock2D';
export type UpBlockType = 'CrossAttnUpBlock2D' | 'UpBlock2D';

export interface UNetConfig {
  /** Latent channels of the sample. */
  inChannels: number;
  /** Coordinate planes conv_in also sees (`coord_channels`, FISEdit's extension: 0 or 2; arch/coordChannels.ts). */
  coordChannels: number;
  outChannels: number;
  blockOutChannels: number[];
  downBlockTypes: DownBlockType[];
  upBlockTypes: UpBlockType[];
  layersPerBlock: number;
  /** Number of heads per transformer, one per block (diffusers' attention_head_dim naming trap). */
  numAttentionHeads: number[];
  crossAttentionDim: number;
  normNumGroups: number;
  normEps: number;
  useLinearProjection: boolean;
  flipSinToCos: boolean;
  freqShift: number;
  downsamplePadding: number;
  sampleSize: number;
  transformerLayersPerBlock: number;
}

export interface ClipTextConfig {
  vocabSize: number;
  hiddenSize: number;
  intermediateSize: number;
  numHiddenLayers: number;
  numAttentionHeads: number;
  maxPositionEmbeddings: number;
  hiddenAct: 'quick_gelu' | 'gelu';
  layerNormEps: number;
}

export interface VaeConfig {
  inChannels: number;
  outChannels: number;
  latentChannels: number;
  blockOutChannels: number[];
  layersPerBlock: number;
  normNumGroups: number;
  scalingFactor: number;
  shiftFactor: number | null;
  sampleSize: number;
  useQuantConv: boolean;
  usePostQuantConv: boolean;
  midBlockAddAttention: boolean;
}

type Json = Record<string, unknown>;

function num(c: Json, key: string, file: string, dflt?: number): number {
  const v = c[key] ?? dflt;
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new ModelConfigError(file, `"${key}" must be a number (got ${JSON.stringify(c[key])})`);
  return v;
}
function numArr(c: Json, key: string, file: string): number[] {
  const v = c[key];
  if (!Array.isArray(v) || v.length === 0 || v.some((x) => typeof x !== 'number' || !Number.isInteger(x) || x <= 0)) {
    throw new ModelConfigError(file, `"${key}" must be a non-empty list of positive integers`);
  }
  return v as number[];
}
function bool(c: Json, key: string, file: string, dflt: boolean): boolean {
  const v = c[key] ?? dflt;
  if (typeof v !== 'boolean') throw new ModelConfigError(file, `"${key}" must be a boolean`);
  return v;
}
function strArr<T extends string>(c: Json, key: string, file: string, allowed: readonly T[]): T[] {
  const v = c[key];
  if (!Array.isArray(v) || v.some((x) => !allowed.includes(x as T))) {
    throw new ModelConfigError(file, `"${key}" must list only ${allowed.join(', ')} (got ${JSON.stringify(v)})`);
  }
  return v as T[];
}

export function parseUNetConfig(c: Json, file: string): UNetConfig {
  const blockOutChannels = numArr(c, 'block_out_channels', file);
  const downBlockTypes = strArr(c, 'down_block_types', file, ['CrossAttnDownBlock2D', 'DownBlock2D'] as const);
  const upBlockTypes = strArr(c, 'up_block_types', file, ['CrossAttnUpBlock2D', 'UpBlock2D'] as const);
  if (downBlockTypes.length !== blockOutChannels.length || upBlockTypes.length !== blockOutChannels.length) {
    throw new ModelConfigError(file, 'down_block_types, up_block_types and block_out_channels must have the same length');
  }
  const midType = c['mid_block_type'] ?? 'UNetMidBlock2DCrossAttn';
  if (midType !== 'UNetMidBlock2DCrossAttn') throw new ModelConfigError(file, `unsupported mid_block_type ${String(midType)}`);
  for (const [k, want] of [['time_embedding_type', 'positional'], ['resnet_time_scale_shift', 'default'], ['act_fn', 'silu']] as const) {
    if (c[k] !== undefined && c[k] !== want) throw new ModelConfigError(file, `unsupported ${k} ${JSON.stringify(c[k])}`);
  }
  for (const k of ['class_embed_type', 'addition_embed_type', 'encoder_hid_dim', 'time_cond_proj_dim']) {
    if (c[k] !== undefined && c[k] !== null) throw new ModelConfigError(file, `unsupported ${k} ${JSON.stringify(c[k])}`);
  }
  // num_attention_heads = num_attention_heads or attention_head_dim (diffusers naming trap).
  const heads = c['num_attention_heads'] ?? c['attention_head_dim'] ?? 8;
  const numAttentionHeads = Array.isArray(heads) ? (heads as number[]) : blockOutChannels.map(() => heads as number);
  if (numAttentionHeads.length !== blockOutChannels.length || numAttentionHeads.some((h) => typeof h !== 'number' || h <= 0)) {
    throw new ModelConfigError(file, 'attention_head_dim / num_attention_heads must be a positive number or one per block');
  }
  const tlpb = c['transformer_layers_per_block'] ?? 1;
  if (tlpb !== 1) throw new ModelConfigError(file, 'only transformer_layers_per_block = 1 is supported');
  const cfg: UNetConfig = {
    inChannels: num(c, 'in_channels', file, 4),
    coordChannels: num(c, 'coord_channels', file, 0),
    outChannels: num(c, 'out_channels', file, 4),
    blockOutChannels,
    downBlockTypes,
    upBlockTypes,
    layersPerBlock: num(c, 'layers_per_block', file, 2),
    numAttentionHeads,
    crossAttentionDim: num(c, 'cross_attention_dim', file, 1280),
    normNumGroups: num(c, 'norm_num_groups', file, 32),
    normEps: num(c, 'norm_eps', file, 1e-5),
    useLinearProjection: bool(c, 'use_linear_projection', file, false),
    flipSinToCos: bool(c, 'flip_sin_to_cos', file, true),
    freqShift: num(c, 'freq_shift', file, 0),
    downsamplePadding: num(c, 'downsample_padding', file, 1),
    sampleSize: num(c, 'sample_size', file, 64),
    transformerLayersPerBlock: 1,
  };
  if (cfg.coordChannels !== 0 && cfg.coordChannels !== COORD_CHANNELS) {
    throw new ModelConfigError(file, `coord_channels ${cfg.coordChannels}: only 0 or ${COORD_CHANNELS} (x, y) is defined`);
  }
  for (const ch of blockOutChannels) {
    if (ch % cfg.normNumGroups !== 0) throw new ModelConfigError(file, `block channel ${ch} is not divisible by norm_num_groups ${cfg.normNumGroups}`);
  }
  return cfg;
}

export function parseClipTextConfig(c: Json, file: string): ClipTextConfig {
  const act = c['hidden_act'] ?? 'quick_gelu';
  if (act !== 'quick_gelu' && act !== 'gelu') throw new ModelConfigError(file, `unsupported hidden_act ${JSON.stringify(act)}`);
  const cfg: ClipTextConfig = {
    vocabSize: num(c, 'vocab_size', file, 49408),
    hiddenSize: num(c, 'hidden_size', file, 512),
    intermediateSize: num(c, 'intermediate_size', file, 2048),
    numHiddenLayers: num(c, 'num_hidden_layers', file, 12),
    numAttentionHeads: num(c, 'num_attention_heads', file, 8),
    maxPositionEmbeddings: num(c, 'max_position_embeddings', file, 77),
    hiddenAct: act,
    layerNormEps: num(c, 'layer_norm_eps', file, 1e-5),
  };
  if (cfg.hiddenSize % cfg.numAttentionHeads !== 0) throw new ModelConfigError(file, 'hidden_size must be divisible by num_attention_heads');
  return cfg;
}

export function parseVaeConfig(c: Json, file: string): VaeConfig {
  const blockOutChannels = numArr(c, 'block_out_channels', file);
  const shift = c['shift_factor'];
  return {
    inChannels: num(c, 'in_channels', file, 3),
    outChannels: num(c, 'out_channels', file, 3),
    latentChannels: num(c, 'latent_channels', file, 4),
    blockOutChannels,
    layersPerBlock: num(c, 'layers_per_block', file, 1),
    normNumGroups: num(c, 'norm_num_groups', file, 32),
    scalingFactor: num(c, 'scaling_factor', file, 0.18215),
    shiftFactor: typeof shift === 'number' ? shift : null,
    sampleSize: num(c, 'sample_size', file, 512),
    useQuantConv: bool(c, 'use_quant_conv', file, true),
    usePostQuantConv: bool(c, 'use_post_quant_conv', file, true),
    midBlockAddAttention: bool(c, 'mid_block_add_attention', file, true),
  };
}
