/** @jest-environment ./test/engine/runtime/ortTestEnvironment.js */
// UNet/VAE config paths the shared fixtures do not cover, against PyTorch goldens made by
// fixtures/make_config_variants.py: downsample_padding 0, flip_sin_to_cos false, freq_shift 1,
// per-block head counts, DownBlock2D first / UpBlock2D last, non-square latents, a 5-token context;
// a VAE without post_quant_conv and mid attention, layers_per_block 2, odd latent size; coordinate input
// channels (coord_channels 2).

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

it('a UNet with coordinate input channels (coord_channels 2) matches the PyTorch reference on a non-square latent', async () => {
  const cfg = parseUNetConfig(config('unet-coord'), 'variants/unet-coord/config.json');
  expect(cfg.coordChannels).toBe(2);
  const weights = readSafetensors(path.join(DIR, 'unet-coord', 'diffusion_pytorch_model.safetensors')).tensors;
  expect(weights.get('conv_in.weight')!.shape).toEqual([8, 6, 3, 3]);
  const feeds = { sample: npy('unet-coord', 'sample'), timestep: npy('unet-coord', 'timestep'), encoder_hidden_states: npy('unet-coord', 'context') };
  expect(feeds.sample.dims).toEqual([2, 4, 8, 12]); // callers feed plain latents; the graph appends the planes
  const run = async (w: typeof weights) => {
    const built = buildUNetGraph(cfg, w);
    expect(built.unusedWeights).toEqual([]);
    const s = await createSession(built.g.build(), { intraOpNumThreads: 1 });
    const out = await s.run(feeds);
    await s.release();
    return out.noise_pred.data as Float32Array;
  };
  const ref = npy('unet-coord', 'out').data as Float32Array;
  const err = relErr(await run(weights), ref);
  // Control: the same weights with the coordinate taps zeroed are far from the reference, so the planes matter.
  const convIn = weights.get('conv_in.weight')!;
  const taps = new Float32Array(convIn.data.slice().buffer);
  for (let o = 0; o < 8; o++) taps.fill(0, (o * 6 + 4) * 9, (o * 6 + 6) * 9);
  const blind = relErr(await run(new Map([...weights, ['conv_in.weight', { ...convIn, data: new Uint8Array(taps.buffer) }]])), ref);
  console.log(`UNet coord variant rel err ${err.toExponential(2)} (coordinate taps zeroed: ${blind.toExponential(2)})`);
  expect(err).toBeLessThan(1e-4);
  expect(blind).toBeGreaterThan(1e-2);
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
