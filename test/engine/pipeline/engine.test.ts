/** @jest-environment ./test/engine/runtime/ortTestEnvironment.js */
// DiffusionEngine on the fixture models against the PyTorch reference goldens
// (tools/reference/make_fixtures.py; contract in test/fixtures): text embeddings, one UNet call, the
// full sampling loop per scheduler from the golden initial noise, and the VAE decode.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { readNpy } from '../../../src/engine/io/npy';
import { DiffusionEngine, EngineStateError } from '../../../src/engine/pipeline/engine';
import type { SchedulerName } from '../../../src/engine/scheduler';

const FIXTURES = path.resolve(__dirname, '../../fixtures');

interface Meta {
  prompt: string;
  negative: string;
  steps: number;
  guidance: number;
  height: number;
  width: number;
  unet_timestep: number;
  schedulers: SchedulerName[];
}

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

describe.each(['tiny-2level', 'sd-narrow'])('DiffusionEngine on %s', (model) => {
  const golden = (f: string) => readNpy(path.join(FIXTURES, 'golden', model, f)).data as Float32Array;
  const meta = JSON.parse(fs.readFileSync(path.join(FIXTURES, 'golden', model, 'meta.json'), 'utf8')) as Meta;
  let engine: DiffusionEngine;

  beforeAll(async () => {
    engine = await DiffusionEngine.load(path.join(FIXTURES, 'models', model), { intraOpNumThreads: 1 });
  });
  afterAll(() => engine?.dispose());

  test('text embeddings for [negative, prompt] match the reference', async () => {
    const ids = [engine.tokenize(meta.negative).ids, engine.tokenize(meta.prompt).ids];
    expect(maxDiff(await engine.encodeText(ids), golden('text_embeds.npy'))).toBeLessThan(1e-4);
  });

  test('one UNet call matches the reference', async () => {
    const sample = golden('unet_sample.npy');
    const [h, w] = [meta.height / engine.info.vaeScaleFactor, meta.width / engine.info.vaeScaleFactor];
    const eps = await engine.predictNoise(sample, 2, h, w, meta.unet_timestep, golden('text_embeds.npy'));
    expect(maxDiff(eps, golden('unet_out.npy'))).toBeLessThan(1e-4);
  });

  test.each(['ddim', 'dpmpp-2m', 'euler'] as const)('%s: final latents from the golden noise match the reference (1e-3)', async (scheduler) => {
    expect(meta.schedulers).toContain(scheduler);
    const r = await engine.generate({
      prompt: meta.prompt, negativePrompt: meta.negative, steps: meta.steps, guidance: meta.guidance, scheduler,
      width: meta.width, height: meta.height, initLatents: golden('init_noise.npy'),
    });
    const ref = golden(`latents_${scheduler}.npy`);
    expect(maxDiff(r.latents, ref)).toBeLessThan(1e-3);
    // not vacuous: the latents moved far from the starting noise
    expect(maxDiff(r.latents, golden('init_noise.npy'))).toBeGreaterThan(1);
  });

  test('decode of the golden latents matches the reference image', async () => {
    const z = golden('vae_latents.npy').map((v) => Math.fround(v / engine.info.scalingFactor));
    const img = await engine.decodeLatents(z, meta.height / engine.info.vaeScaleFactor, meta.width / engine.info.vaeScaleFactor);
    expect(maxDiff(img, golden('image.npy'))).toBeLessThan(1e-4);
  });
});

describe('DiffusionEngine lifecycle', () => {
  const dir = path.join(FIXTURES, 'models', 'tiny-2level');

  test('the same seed gives the same image; another seed does not; progress arrives per step', async () => {
    const engine = await DiffusionEngine.load(dir, { intraOpNumThreads: 1 });
    try {
      const steps: number[] = [];
      const a = await engine.generate({ prompt: 'a red cat', seed: 11, steps: 3 }, { onStep: (p) => void steps.push(p.step) });
      const b = await engine.generate({ prompt: 'a red cat', seed: 11, steps: 3 });
      const c = await engine.generate({ prompt: 'a red cat', seed: 12, steps: 3 });
      expect(steps).toEqual([1, 2, 3]);
      expect(b.rgb).toEqual(a.rgb);
      expect(b.latents).toEqual(a.latents);
      expect(maxDiff(c.latents, a.latents)).toBeGreaterThan(0.1);
      expect([a.width, a.height]).toEqual([32, 32]); // unet sample_size 16 × VAE 2
    } finally {
      await engine.dispose();
    }
  });

  test('concurrent generate() calls are serialised and both succeed', async () => {
    const engine = await DiffusionEngine.load(dir, { intraOpNumThreads: 1 });
    try {
      const [a, b] = await Promise.all([
        engine.generate({ prompt: 'x', seed: 1, steps: 2 }),
        engine.generate({ prompt: 'x', seed: 1, steps: 2 }),
      ]);
      expect(a.latents).toEqual(b.latents);
    } finally {
      await engine.dispose();
    }
  });

  test('a text-encoder-only engine encodes prompts and refuses to denoise; use after dispose is refused', async () => {
    const engine = await DiffusionEngine.load(dir, { components: ['textEncoder'] });
    const { encoded, hidden } = await engine.encodePrompt('a red cat');
    expect(hidden.length).toBe(77 * 32);
    expect(encoded.truncated).toBe(false);
    await expect(engine.generate({ prompt: 'x', seed: 1 })).rejects.toThrow(/unet session was not loaded/);
    await engine.dispose();
    await expect(engine.encodePrompt('x')).rejects.toThrow(EngineStateError);
  });

  test('a bad folder fails at load with the folder named', async () => {
    await expect(DiffusionEngine.load(path.join(FIXTURES, 'models', 'no-such-model'))).rejects.toThrow(/no-such-model: missing model folder/);
  });
});
