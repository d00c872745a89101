// A diffusers-layout model folder with seeded random weights, written on the spot: the GPU machine has no
// network and the working tree that travels there is capped at 64 MiB, so SD 1.5's 3.4 GB UNet cannot be
// carried. Random weights time exactly like trained ones (same shapes, same graphs); they draw noise.
//
// Presets: 'sd15' is SD 1.5's UNet, CLIP text encoder and VAE decoder at full width (4.1 GB of F32);
// 'narrow' is the same topology at 1/10 of the width for runs on a CPU (bench --quick, tests).
// Tensor lists come from the engine's expected-tensor functions, so the loader accepts the folder by
// construction; values follow PyTorch's default init scale (uniform ±1/√fan_in, norms 1 and 0) so
// activations stay finite through 860 M parameters.

import * as fs from 'fs';
import * as path from 'path';
import { parseClipTextConfig, parseUNetConfig, parseVaeConfig } from '../../src/engine/model/configs';
import { expectedClipTensors, expectedUNetTensors, expectedVaeDecoderTensors, ExpectedTensors } from '../../src/engine/model/expectedTensors';
import { SD15_CLIP, SD15_UNET, SD15_VAE } from '../../test/helpers/sd15Configs';

export type RandomModelPreset = 'sd15' | 'narrow';

const SCHEDULER_CONFIG = {
  _class_name: 'PNDMScheduler', beta_start: 0.00085, beta_end: 0.012, beta_schedule: 'scaled_linear', num_train_timesteps: 1000,
  set_alpha_to_one: false, skip_prk_steps: true, steps_offset: 1, trained_betas: null, clip_sample: false,
};

export function presetConfigs(preset: RandomModelPreset): { unet: Record<string, unknown>; clip: Record<string, unknown>; vae: Record<string, unknown> } {
  if (preset === 'sd15') return { unet: SD15_UNET, clip: SD15_CLIP, vae: SD15_VAE };
  return {
    unet: { ...SD15_UNET, block_out_channels: [32, 64, 64, 64], cross_attention_dim: 64, attention_head_dim: 2 },
    clip: { ...SD15_CLIP, hidden_size: 64, intermediate_size: 128, num_hidden_layers: 2, num_attention_heads: 2, projection_dim: 64 },
    vae: { ...SD15_VAE, block_out_channels: [32, 32, 64, 64], layers_per_block: 1, norm_num_groups: 16 },
  };
}

/** CLIP's specials sit at the top of its 49408-entry vocabulary; a handful of words is enough to tokenize. */
function tokenizerFiles(vocabSize: number): { vocab: Record<string, number>; merges: string } {
  const words = ['a', 'red', 'green', 'blue', 'circle', 'square', 'on', 'the', 'left', 'right', ','];
  const vocab: Record<string, number> = {};
  words.forEach((w, i) => (vocab[`${w}</w>`] = i));
  vocab['<|startoftext|>'] = vocabSize - 2;
  vocab['<|endoftext|>'] = vocabSize - 1;
  return { vocab, merges: '#version: 0.2\n' };
}

/** xorshift32 → uniform in [-1, 1). */
function fillUniform(out: Float32Array, seed: number, scale: number): void {
  let x = seed >>> 0 || 1;
  for (let i = 0; i < out.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = ((x >>> 0) / 2 ** 31 - 1) * scale;
  }
}

function nameSeed(name: string, seed: number): number {
  let h = (2166136261 ^ seed) >>> 0;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 16777619) >>> 0;
  return h;
}

/** PyTorch's default init scale: norm weights 1 / biases 0, others uniform ±1/√fan_in (biases: the layer's). */
export function initScale(name: string, shape: readonly number[], shapes: ExpectedTensors): { constant: number } | { uniform: number } {
  const isNorm = /(^|\.)(norm\w*|layer_norm\d*|final_layer_norm|group_norm|conv_norm_out)\.(weight|bias)$/.test(name);
  if (isNorm && shape.length === 1) return { constant: name.endsWith('.weight') ? 1 : 0 };
  if (name.endsWith('embedding.weight')) return { uniform: 0.02 * Math.sqrt(3) }; // CLIP: N(0, 0.02)
  const weightShape = name.endsWith('.bias') ? shapes.get(name.replace(/\.bias$/, '.weight')) : shape;
  const fanIn = weightShape && weightShape.length > 1 ? weightShape.slice(1).reduce((a, b) => a * b, 1) : 1;
  return { uniform: 1 / Math.sqrt(fanIn) };
}

/** Streams one F32 safetensors file: header first (offsets from the shapes), then each tensor as it is drawn. */
export function writeRandomSafetensors(file: string, shapes: ExpectedTensors, seed: number): number {
  const header: Record<string, unknown> = {};
  let pos = 0;
  for (const [name, shape] of shapes) {
    const bytes = 4 * shape.reduce((a, b) => a * b, 1);
    header[name] = { dtype: 'F32', shape, data_offsets: [pos, pos + bytes] };
    pos += bytes;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - ((8 + json.length) % 8)) % 8); // data starts 8-byte aligned
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const fd = fs.openSync(file, 'w');
  try {
    fs.writeSync(fd, len);
    fs.writeSync(fd, json);
    for (const [name, shape] of shapes) {
      const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
      const init = initScale(name, shape, shapes);
      if ('constant' in init) data.fill(init.constant);
      else fillUniform(data, nameSeed(name, seed), init.uniform);
      fs.writeSync(fd, new Uint8Array(data.buffer));
    }
  } finally {
    fs.closeSync(fd);
  }
  return 8 + json.length + pos;
}

function writeJson(file: string, v: unknown): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, `${JSON.stringify(v, null, 2)}\n`);
}

const MARKER = 'fisedit-random-model.json';

/**
 * Writes (or reuses, when the marker says the same preset and seed) a loadable model folder.
 * Returns the bytes of weights written (0 when reused).
 */
export function writeRandomModelFolder(dir: string, preset: RandomModelPreset, seed = 0): { bytes: number; reused: boolean } {
  const marker = path.join(dir, MARKER);
  const want = { preset, seed, version: 1 };
  if (fs.existsSync(marker)) {
    try {
      if (JSON.stringify(JSON.parse(fs.readFileSync(marker, 'utf8'))) === JSON.stringify(want)) return { bytes: 0, reused: true };
    } catch {
      // rewrite below
    }
  }
  fs.rmSync(dir, { recursive: true, force: true });
  const cfg = presetConfigs(preset);
  writeJson(path.join(dir, 'model_index.json'), {
    _class_name: 'StableDiffusionPipeline', scheduler: ['diffusers', 'PNDMScheduler'], text_encoder: ['transformers', 'CLIPTextModel'],
    tokenizer: ['transformers', 'CLIPTokenizer'], unet: ['diffusers', 'UNet2DConditionModel'], vae: ['diffusers', 'AutoencoderKL'],
  });
  let bytes = 0;
  writeJson(path.join(dir, 'unet/config.json'), cfg.unet);
  bytes += writeRandomSafetensors(path.join(dir, 'unet/diffusion_pytorch_model.safetensors'), expectedUNetTensors(parseUNetConfig(cfg.unet, 'unet/config.json')), seed);
  writeJson(path.join(dir, 'text_encoder/config.json'), cfg.clip);
  const clip = parseClipTextConfig(cfg.clip, 'text_encoder/config.json');
  bytes += writeRandomSafetensors(path.join(dir, 'text_encoder/model.safetensors'), expectedClipTensors(clip), seed + 1);
  writeJson(path.join(dir, 'vae/config.json'), cfg.vae);
  bytes += writeRandomSafetensors(path.join(dir, 'vae/diffusion_pytorch_model.safetensors'), expectedVaeDecoderTensors(parseVaeConfig(cfg.vae, 'vae/config.json')), seed + 2);
  const tok = tokenizerFiles(clip.vocabSize);
  writeJson(path.join(dir, 'tokenizer/vocab.json'), tok.vocab);
  fs.writeFileSync(path.join(dir, 'tokenizer/merges.txt'), tok.merges);
  writeJson(path.join(dir, 'tokenizer/tokenizer_config.json'), {
    model_max_length: 77, bos_token: '<|startoftext|>', eos_token: '<|endoftext|>', unk_token: '<|endoftext|>', pad_token: '<|endoftext|>',
  });
  writeJson(path.join(dir, 'scheduler/scheduler_config.json'), SCHEDULER_CONFIG);
  writeJson(marker, want);
  return { bytes, reused: false };
}
