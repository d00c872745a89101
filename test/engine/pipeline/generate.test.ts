import { generate, GenerateInputError, GenerationAbortedError, InferenceError, type StepProgress } from '../../../src/engine/pipeline/generate';
import type { DiffusionModels, ModelInfo } from '../../../src/engine/pipeline/models';
import { gaussianFloat32 } from '../../../src/engine/random/gaussian';
import { createScheduler } from '../../../src/engine/scheduler';
import { SD15_SCHEDULER_CONFIG } from '../scheduler/reference';

// A pure-TS stand-in for the three graphs: records every call; ε is a fixed function of the input and of
// which text row (negative or prompt) the batch element was conditioned on.
const INFO: ModelInfo = {
  name: 'fake', dir: '/fake', variant: null, latentChannels: 4, vaeScaleFactor: 2, vaeDecoderWidth: 8, unetDownscale: 2, defaultWidth: 16, defaultHeight: 16,
  scalingFactor: 0.5, shiftFactor: null, textHiddenSize: 3, textLength: 77,
};

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

interface Calls {
  encode: number[][][];
  unet: { sample: Float32Array; batch: number; t: number; text: Float32Array }[];
  decode: Float32Array[];
}

function fakeModels(overrides: Partial<DiffusionModels> = {}): { models: DiffusionModels; calls: Calls } {
  const calls: Calls = { encode: [], unet: [], decode: [] };
  const models: DiffusionModels = {
    info: INFO,
    schedulerConfig: SD15_SCHEDULER_CONFIG,
    tokenize: (text) => ({ ids: Array.from({ length: 77 }, (_, i) => (i === 0 ? 100 : text.length)), truncated: text.length > 60, droppedTokens: 0, tokens: [] }),
    async encodeText(ids) {
      calls.encode.push(ids);
      // row value = its second id (the text length) so the UNet can tell negative from prompt
      const out = new Float32Array(ids.length * 77 * 3);
      ids.forEach((row, b) => out.fill(row[1], b * 231, (b + 1) * 231));
      return out;
    },
    async predictNoise(sample, batch, h, w, t, text) {
      calls.unet.push({ sample: sample.slice(), batch, t, text });
      const n = 4 * h * w;
      const eps = new Float32Array(batch * n);
      for (let b = 0; b < batch; b++) for (let k = 0; k < n; k++) eps[b * n + k] = 0.1 * sample[b * n + k] + 0.01 * text[b * 231];
      return eps;
    },
    async decodeLatents(z, h, w) {
      calls.decode.push(z.slice());
      const img = new Float32Array(3 * 4 * h * w);
      for (let c = 0; c < 3; c++) for (let p = 0; p < 4 * h * w; p++) img[c * 4 * h * w + p] = Math.tanh(z[p % (h * w)]) * (c === 1 ? -1 : 1);
      return img;
    },
    ...overrides,
  };
  return { models, calls };
}

describe('generate (numbered recipe) with fake graphs', () => {
  test('CFG: [negative, prompt] text batch, duplicated latents, ε_u + s·(ε_c − ε_u), DDIM steps', async () => {
    const { models, calls } = fakeModels();
    const r = await generate(models, { prompt: 'a cat', negativePrompt: 'blurry dog', seed: 5, steps: 3, guidance: 4, scheduler: 'ddim' });
    expect(calls.encode).toHaveLength(1);
    expect(calls.encode[0].map((row) => row[1])).toEqual(['blurry dog'.length, 'a cat'.length]);
    expect(calls.unet.map((c) => [c.batch, c.t])).toEqual([[2, 667], [2, 334], [2, 1]]);

    // replay independently: same noise, same scheduler, guidance combined in float64
    const sch = createScheduler('ddim', SD15_SCHEDULER_CONFIG);
    sch.setTimesteps(3);
    let x = gaussianFloat32(5n, 4 * 8 * 8);
    for (let i = 0; i < 3; i++) {
      const u = calls.unet[i].sample;
      // both halves are the (unscaled, DDIM) latents; the replay combines ε in float64, so allow float32 noise
      expect(maxDiff(u.subarray(0, 256), x)).toBeLessThan(1e-5);
      expect(u.subarray(256)).toEqual(u.subarray(0, 256));
      const guided = Float32Array.from(x, (v) => {
        const eu = 0.1 * v + 0.01 * 10;
        const ec = 0.1 * v + 0.01 * 5;
        return eu + 4 * (ec - eu);
      });
      x = sch.step(guided, i, x);
    }
    expect(maxDiff(r.latents, x)).toBeLessThan(1e-5);
    expect(r.latentShape).toEqual([1, 4, 8, 8]);
    expect(r.timesteps).toEqual([667, 334, 1]);
    expect(r.seed).toBe(5n);
  });

  test('decode gets latents / scaling_factor and the RGB is the postprocessed decoder output', async () => {
    const { models, calls } = fakeModels();
    const r = await generate(models, { prompt: 'x', seed: 1, steps: 2, guidance: 1 });
    expect(calls.decode[0]).toEqual(r.latents.map((v) => Math.fround(v / 0.5)));
    expect([r.width, r.height, r.rgb.length]).toEqual([16, 16, 16 * 16 * 3]);
    const z0 = calls.decode[0][0];
    expect(r.rgb[0]).toBe(Math.round((Math.tanh(z0) / 2 + 0.5) * 255)); // R of pixel 0
    expect(r.rgb[1]).toBe(Math.round((-Math.tanh(z0) / 2 + 0.5) * 255)); // G is negated in the fake decoder
    expect(Object.keys(r.timings)).toEqual(['encodeText', 'prepareLatents', 'denoise', 'decode', 'postprocess']);
    expect(r.totalMs).toBeGreaterThanOrEqual(r.timings.denoise);
  });

  test('guidance ≤ 1 runs batch 1 on the prompt only; a non-empty negative prompt is refused', async () => {
    const { models, calls } = fakeModels();
    await generate(models, { prompt: 'abc', seed: 1, steps: 2, guidance: 1 });
    expect(calls.encode[0]).toHaveLength(1);
    expect(calls.unet.every((c) => c.batch === 1)).toBe(true);
    await expect(generate(models, { prompt: 'abc', negativePrompt: 'no', seed: 1, guidance: 0.5 })).rejects.toThrow(/negativePrompt: has no effect/);
  });

  test('Euler: initial latents are the seeded noise × σ_max and the UNet sees x/√(σ²+1) at float timesteps', async () => {
    const { models, calls } = fakeModels();
    await generate(models, { prompt: 'p', seed: 9, steps: 4, guidance: 2, scheduler: 'euler' });
    const noise = gaussianFloat32(9, 256);
    const sMax = 14.614645004272461;
    const first = calls.unet[0].sample.subarray(0, 256);
    let worst = 0;
    first.forEach((v, k) => (worst = Math.max(worst, Math.abs(v - (noise[k] * sMax) / Math.sqrt(sMax * sMax + 1)))));
    expect(worst).toBeLessThan(1e-5);
    expect(calls.unet.map((c) => c.t)).toEqual([999, 666, 333, 0]);
  });

  test('initLatents replace the seeded draw; the seed must then be absent', async () => {
    const { models, calls } = fakeModels();
    const init = Float32Array.from({ length: 256 }, (_, k) => Math.sin(k));
    const r = await generate(models, { prompt: 'p', initLatents: init, steps: 1, guidance: 2, scheduler: 'dpmpp-2m' });
    expect(calls.unet[0].sample.subarray(0, 256)).toEqual(init);
    expect(r.seed).toBeNull();
    await expect(generate(models, { prompt: 'p', initLatents: init, seed: 1 })).rejects.toThrow(/either a seed or initLatents/);
    await expect(generate(models, { prompt: 'p', initLatents: new Float32Array(10) })).rejects.toThrow(/initLatents: must be float32 \[1, 4, 8, 8\]/);
  });

  test('onStep reports every step with a copy of the latents; an AbortSignal stops before the next step', async () => {
    const { models, calls } = fakeModels();
    const seen: StepProgress[] = [];
    const ac = new AbortController();
    const run = generate(models, { prompt: 'p', seed: 3, steps: 5, guidance: 2 }, {
      signal: ac.signal,
      onStep: (p) => {
        seen.push(p);
        if (p.step === 2) ac.abort();
      },
    });
    await expect(run).rejects.toThrow(GenerationAbortedError);
    await expect(run).rejects.toThrow('generation aborted after 2 of 5 steps');
    expect(seen.map((p) => [p.step, p.total])).toEqual([[1, 5], [2, 5]]);
    expect(calls.unet).toHaveLength(2);
    expect(calls.decode).toHaveLength(0);
    expect(seen[0].latents).not.toBe(seen[1].latents);
  });

  test('an already aborted signal runs nothing', async () => {
    const { models, calls } = fakeModels();
    const ac = new AbortController();
    ac.abort();
    await expect(generate(models, { prompt: 'p', seed: 1 }, { signal: ac.signal })).rejects.toThrow(GenerationAbortedError);
    expect(calls.encode).toHaveLength(0);
  });

  test.each([
    [{ steps: 0 }, /steps: must be an integer in \[1, 150\]/],
    [{ steps: 151 }, /steps/],
    [{ steps: 2.5 }, /steps/],
    [{ guidance: -0.5 }, /guidance: must be a number in \[0, 30\]/],
    [{ guidance: 30.5 }, /guidance/],
    [{ guidance: NaN }, /guidance/],
    [{ width: 18 }, /width: must be a multiple of 4 in \[4, 4096\] for this model \(VAE ×2, UNet ÷2\); got 18/],
    [{ height: 8192 }, /height/],
    [{ scheduler: 'pndm' as never }, /scheduler: must be one of ddim, dpmpp-2m, euler/],
    [{ seed: -1 }, /seed: -1 is outside/],
    [{ seed: undefined }, /seed: is required/],
  ])('refuses %p', async (patch, message) => {
    const { models, calls } = fakeModels();
    const err = generate(models, { prompt: 'p', seed: 1, ...patch });
    await expect(err).rejects.toThrow(GenerateInputError);
    await expect(generate(models, { prompt: 'p', seed: 1, ...patch })).rejects.toThrow(message);
    expect(calls.encode).toHaveLength(0);
  });

  test('NaN from the UNet is an InferenceError, not a black image', async () => {
    const { models } = fakeModels({ predictNoise: async (_s, b, h, w) => new Float32Array(b * 4 * h * w).fill(NaN) });
    await expect(generate(models, { prompt: 'p', seed: 1, steps: 2 })).rejects.toThrow(InferenceError);
  });
});
