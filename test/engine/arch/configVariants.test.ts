/** @jest-environment ./test/engine/runtime/ortTestEnvironment.js */
// UNet/VAE config paths the shared fixtures do not cover, against PyTorch goldens made by
// fixtures/make_config_variants.py: downsample_padding 0, flip_sin_to_cos false, freq_shift 1,
// per-block head counts, DownBlock2D first / UpBlock2D last, non-square latents, a 5-token context;
// a VAE without post_quant_conv and mid attention, layers_per_block 2, odd latent size.

import * as fs from 'fs';
import * as path from 'path';
import { buildUNetGraph } from '../../../src/engine/arch/unet';
import { buildVaeDecoderGraph } from '../../../src/engine/arch/vaeDecoder';
import { parseUNetConfig, parseVaeConfig } from '../../../src/engine/model/configs';
import { readSafetensors } from '../../../src/engine/model/safetensors';
import { readNpy } from '../../../src/engine/io/npy';
import { createSession, float32Tensor } from '../../../src/engine/runtime/ortSession';
import { relErr } from '../graph/reference';

const DIR = path.join(__dirname, 'fixtures', 'variants');
const npy = (sub: string, name: string) => {
  const a = readNpy(path.join(DIR, sub, `${name}.npy`));
  return float32Tensor(a.data as Float32Array, a.shape);
};
const config = (sub: string) => JSON.parse(fs.readFileSync(path.join(DIR, sub, 'config.json'), 'utf8'));

it('UNet config variants match the PyTorch reference', async () => {
  const cfg = parseUNetConfig(config('unet'), 'variants/unet/config.json');
  expect(cfg.numAttentionHeads).toEqual([1, 2, 3]);
  const built = buildUNetGraph(cfg, readSafetensors(path.join(DIR, 'unet', 'diffusion_pytorch_model.safetensors')).tensors);
  expect(built.unusedWeights).toEqual([]);
  const s = await createSession(built.g.build(), { intraOpNumThreads: 1 });
  const out = await s.run({ sample: npy('unet', 'sample'), timestep: npy('unet', 'timestep'), encoder_hidden_states: npy('unet', 'context') });
  await s.release();
  const ref = npy('unet', 'out');
  expect(out.noise_pred.dims).toEqual(ref.dims);
  const err = relErr(out.noise_pred.data as Float32Array, ref.data as Float32Array);
  console.log(`UNet variant rel err ${err.toExponential(2)}`);
  expect(err).toBeLessThan(1e-4);
});

it('VAE decoder config variants match the PyTorch reference', async () => {
  const cfg = parseVaeConfig(config('vae'), 'variants/vae/config.json');
  expect(cfg.usePostQuantConv).toBe(false);
  const built = buildVaeDecoderGraph(cfg, readSafetensors(path.join(DIR, 'vae', 'diffusion_pytorch_model.safetensors')).tensors);
  expect(built.unusedWeights).toEqual([]);
  const s = await createSession(built.g.build(), { intraOpNumThreads: 1 });
  const out = await s.run({ latents: npy('vae', 'latents') });
  await s.release();
  const ref = npy('vae', 'image');
  expect(out.image.dims).toEqual(ref.dims);
  const err = relErr(out.image.data as Float32Array, ref.data as Float32Array);
  console.log(`VAE variant rel err ${err.toExponential(2)}`);
  expect(err).toBeLessThan(1e-4);
});
