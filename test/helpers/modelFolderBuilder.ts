// Writes a tiny but complete diffusers-layout model folder (random-ish weights) for loader tests.
// Tensor lists come from the engine's expected-tensor functions, which are themselves pinned to the
// independent sd15-keys reference in expectedTensors.test.ts.

import * as fs from 'fs';
import * as path from 'path';
import { parseClipTextConfig, parseUNetConfig, parseVaeConfig } from '../../src/engine/model/configs';
import { expectedClipTensors, expectedUNetTensors, expectedVaeDecoderTensors } from '../../src/engine/model/expectedTensors';
import { numel, WeightDType } from '../../src/engine/model/tensor';
import { encodeRawSafetensors, TensorSpec, writeSafetensors } from './safetensorsWriter';

export const TINY_UNET_CONFIG = {
  block_out_channels: [8, 16], down_block_types: ['CrossAttnDownBlock2D', 'DownBlock2D'], up_block_types: ['UpBlock2D', 'CrossAttnUpBlock2D'],
  layers_per_block: 1, norm_num_groups: 4, attention_head_dim: 2, cross_attention_dim: 8, in_channels: 4, out_channels: 4, sample_size: 8,
};
export const TINY_CLIP_CONFIG = {
  hidden_size: 8, intermediate_size: 16, num_hidden_layers: 1, num_attention_heads: 2, max_position_embeddings: 77, vocab_size: 12, hidden_act: 'quick_gelu',
};
export const TINY_VAE_CONFIG = { block_out_channels: [4, 8], layers_per_block: 1, norm_num_groups: 2, latent_channels: 4, in_channels: 3, out_channels: 3 };
export const SD15_SCHEDULER_CONFIG = {
  _class_name: 'PNDMScheduler', beta_start: 0.00085, beta_end: 0.012, beta_schedule: 'scaled_linear', num_train_timesteps: 1000,
  set_alpha_to_one: false, skip_prk_steps: true, steps_offset: 1, trained_betas: null, clip_sample: false,
};
/** 12 ids: a few words, their pieces, and the two specials last (as in CLIP). */
export const TINY_VOCAB: Record<string, number> = {
  'a</w>': 0, 'r': 1, 'e': 2, 'd</w>': 3, 'red</w>': 4, 're': 5, 'c': 6, 'at</w>': 7, 'cat</w>': 8, ',</w>': 9, '<|startoftext|>': 10, '<|endoftext|>': 11,
};
export const TINY_MERGES = '#version: 0.2\nr e\nre d</w>\na t</w>\nc at</w>\n';

export interface TinyFolderOptions {
  dtype?: WeightDType;
  /** Write weight files as name.<variant>.safetensors. */
  variant?: string;
  /** VAE mid attention as query/key/value/proj_attn with [C, C, 1, 1] weights (LDM-converted, 0.6.0 era). */
  oldVaeAttention?: boolean;
  /** Add CLIP's int64 position_ids buffer like older transformers exports. */
  positionIds?: boolean;
}

/** Deterministic values in about [-1, 1], different per tensor. */
function values(name: string, n: number): number[] {
  let seed = 0;
  for (const ch of name) seed = (seed * 31 + ch.charCodeAt(0)) % 1000;
  return Array.from({ length: n }, (_, i) => Math.sin(i * 0.737 + seed));
}

function specs(shapes: Map<string, number[]>, dtype: WeightDType): TensorSpec[] {
  return [...shapes].map(([name, shape]) => ({ name, shape, dtype, values: values(name, numel(shape)) }));
}

const OLD_NAME: Record<string, string> = { to_q: 'query', to_k: 'key', to_v: 'value', 'to_out.0': 'proj_attn' };

export function tinyUNetSpecs(dtype: WeightDType = 'F32'): TensorSpec[] {
  return specs(expectedUNetTensors(parseUNetConfig(TINY_UNET_CONFIG, 'unet/config.json')), dtype);
}

export function tinyVaeSpecs(dtype: WeightDType, oldAttention: boolean): TensorSpec[] {
  const decoder = specs(expectedVaeDecoderTensors(parseVaeConfig(TINY_VAE_CONFIG, 'vae/config.json')), dtype);
  const out = decoder.map((t) => {
    const m = /^(decoder\.mid_block\.attentions\.0)\.(to_q|to_k|to_v|to_out\.0)\.(weight|bias)$/.exec(t.name);
    if (!oldAttention || !m) return t;
    return { ...t, name: `${m[1]}.${OLD_NAME[m[2]]}.${m[3]}`, shape: m[3] === 'weight' ? [...t.shape, 1, 1] : t.shape };
  });
  // Encoder-side tensors a real VAE file carries: expected extras, not errors.
  out.push({ name: 'encoder.conv_in.weight', shape: [4, 3, 3, 3], dtype }, { name: 'quant_conv.weight', shape: [8, 8, 1, 1], dtype });
  return out;
}

function writeJson(file: string, v: unknown): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, JSON.stringify(v, null, 2));
}

export function weightsName(base: string, variant?: string): string {
  return `${base}${variant ? `.${variant}` : ''}.safetensors`;
}

export function writeTinyModelFolder(dir: string, opts: TinyFolderOptions = {}): void {
  const dtype = opts.dtype ?? 'F32';
  writeJson(path.join(dir, 'model_index.json'), {
    _class_name: 'StableDiffusionPipeline', scheduler: ['diffusers', 'PNDMScheduler'], text_encoder: ['transformers', 'CLIPTextModel'],
    tokenizer: ['transformers', 'CLIPTokenizer'], unet: ['diffusers', 'UNet2DConditionModel'], vae: ['diffusers', 'AutoencoderKL'],
  });
  writeJson(path.join(dir, 'unet/config.json'), TINY_UNET_CONFIG);
  writeSafetensors(path.join(dir, 'unet', weightsName('diffusion_pytorch_model', opts.variant)), tinyUNetSpecs(dtype));

  writeJson(path.join(dir, 'text_encoder/config.json'), TINY_CLIP_CONFIG);
  const clipFile = path.join(dir, 'text_encoder', weightsName('model', opts.variant));
  const clip = specs(expectedClipTensors(parseClipTextConfig(TINY_CLIP_CONFIG, '')), dtype);
  writeSafetensors(clipFile, clip);
  if (opts.positionIds) appendInt64PositionIds(clipFile);

  writeJson(path.join(dir, 'vae/config.json'), TINY_VAE_CONFIG);
  writeSafetensors(path.join(dir, 'vae', weightsName('diffusion_pytorch_model', opts.variant)), tinyVaeSpecs(dtype, opts.oldVaeAttention ?? false));

  writeJson(path.join(dir, 'tokenizer/vocab.json'), TINY_VOCAB);
  fs.writeFileSync(path.join(dir, 'tokenizer/merges.txt'), TINY_MERGES);
  writeJson(path.join(dir, 'tokenizer/tokenizer_config.json'), {
    model_max_length: 77, bos_token: '<|startoftext|>', eos_token: '<|endoftext|>', unk_token: '<|endoftext|>', pad_token: '<|endoftext|>',
  });
  writeJson(path.join(dir, 'scheduler/scheduler_config.json'), SD15_SCHEDULER_CONFIG);
}

/** Rewrite a file with an extra int64 [1, 77] position_ids tensor at the end of the data region. */
function appendInt64PositionIds(file: string): void {
  const bytes = fs.readFileSync(file);
  const n = Number(bytes.readBigUInt64LE(0));
  const header = JSON.parse(bytes.subarray(8, 8 + n).toString('utf8')) as Record<string, unknown>;
  const data = bytes.subarray(8 + n);
  const ids = Buffer.alloc(77 * 8);
  for (let i = 0; i < 77; i++) ids.writeBigInt64LE(BigInt(i), i * 8);
  header['text_model.embeddings.position_ids'] = { dtype: 'I64', shape: [1, 77], data_offsets: [data.length, data.length + ids.length] };
  fs.writeFileSync(file, encodeRawSafetensors(header, Buffer.concat([data, ids])));
}
