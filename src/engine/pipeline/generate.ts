// Text-to-image generation as a numbered recipe (diffusers' StableDiffusionPipeline.__call__;
// sd-architecture.md §6). Extension points: an onStep callback after every denoising step and an
// AbortSignal checked before every step. Input is validated and refused, never adjusted.
import { imageTensorToRgb } from '../image/png';
import { gaussianFloat32, parseSeed, SeedError } from '../random/gaussian';
import { createScheduler, isSchedulerName, SCHEDULER_NAMES, type SchedulerName } from '../scheduler';
import { denoiseLoop, denseUNetCall } from './denoiseLoop';
import type { DiffusionModels } from './models';
import { GenerationAbortedError, InferenceError } from './pipelineErrors';

export { GenerationAbortedError, InferenceError };

export const GENERATE_DEFAULTS = { steps: 20, guidance: 7.5, scheduler: 'dpmpp-2m' as SchedulerName, negativePrompt: '' };
export const MAX_STEPS = 150;
export const MAX_GUIDANCE = 30;
export const MAX_IMAGE_SIDE = 4096;

/** A request that cannot be run as given; `field` names the offending input. */
export class GenerateInputError extends Error {
  constructor(readonly field: string, reason: string) {
    super(`${field}: ${reason}`);
    this.name = 'GenerateInputError';
  }
}

export interface GenerateRequest {
  prompt: string;
  /** Default "" (diffusers). Only used with classifier-free guidance (guidance > 1). */
  negativePrompt?: string;
  /** Integer in [0, 2^64 − 1]; required unless initLatents is given (docs/seeds.md). */
  seed?: number | bigint | string;
  /** 1–150, default 20. */
  steps?: number;
  /** 0–30, default 7.5; CFG runs iff guidance > 1. */
  guidance?: number;
  scheduler?: SchedulerName;
  /** Pixels; multiples of vaeScaleFactor·unetDownscale; default the model's sample size. */
  width?: number;
  height?: number;
  /** Unit-variance starting noise [1, C, h, w] used instead of the seeded draw (still × initNoiseSigma). */
  initLatents?: Float32Array;
}

export interface StepProgress {
  /** Steps completed, 1…total. */
  step: number;
  total: number;
  /** The UNet timestep of the step just taken. */
  timestep: number;
  /** Latents after this step, [1, C, h, w] (a fresh array the callback may keep). */
  latents: Float32Array;
}

export interface GenerateOptions {
  onStep?: (progress: StepProgress) => void | Promise<void>;
  signal?: AbortSignal;
}

/** Milliseconds per phase. */
export interface PhaseTimings {
  encodeText: number;
  prepareLatents: number;
  denoise: number;
  decode: number;
  postprocess: number;
}

export interface GenerateResult {
  /** Interleaved RGB, height × width × 3. */
  rgb: Uint8Array;
  width: number;
  height: number;
  /** Final latents [1, C, h, w], before the division by the VAE scaling factor. */
  latents: Float32Array;
  latentShape: [number, number, number, number];
  seed: bigint | null;
  steps: number;
  guidance: number;
  scheduler: SchedulerName;
  timesteps: number[];
  prompt: string;
  negativePrompt: string;
  promptTruncated: boolean;
  negativeTruncated: boolean;
  timings: PhaseTimings;
  /** Wall time of the whole call (model loading excluded). */
  totalMs: number;
}

export interface GenerateSettings {
  prompt: string;
  negativePrompt: string;
  seed: bigint | null;
  steps: number;
  guidance: number;
  scheduler: SchedulerName;
}

interface CheckedRequest extends GenerateSettings {
  width: number;
  height: number;
  initLatents: Float32Array | null;
}

/** The model-independent checks (text, seed, steps, guidance, scheduler): callers can fail fast before loading a model. */
export function checkGenerateSettings(req: Omit<GenerateRequest, 'width' | 'height' | 'initLatents'>): GenerateSettings {
  if (typeof req.prompt !== 'string') throw new GenerateInputError('prompt', 'must be a string');
  const negativePrompt = req.negativePrompt ?? GENERATE_DEFAULTS.negativePrompt;
  if (typeof negativePrompt !== 'string') throw new GenerateInputError('negativePrompt', 'must be a string');
  const steps = req.steps ?? GENERATE_DEFAULTS.steps;
  if (!Number.isInteger(steps) || steps < 1 || steps > MAX_STEPS) throw new GenerateInputError('steps', `must be an integer in [1, ${MAX_STEPS}] (got ${steps})`);
  const guidance = req.guidance ?? GENERATE_DEFAULTS.guidance;
  if (typeof guidance !== 'number' || !Number.isFinite(guidance) || guidance < 0 || guidance > MAX_GUIDANCE) {
    throw new GenerateInputError('guidance', `must be a number in [0, ${MAX_GUIDANCE}] (got ${guidance})`);
  }
  if (guidance <= 1 && negativePrompt !== '') {
    throw new GenerateInputError('negativePrompt', `has no effect without classifier-free guidance (guidance ${guidance} ≤ 1); remove it or raise guidance`);
  }
  const scheduler = req.scheduler ?? GENERATE_DEFAULTS.scheduler;
  if (!isSchedulerName(scheduler)) throw new GenerateInputError('scheduler', `must be one of ${SCHEDULER_NAMES.join(', ')} (got ${JSON.stringify(scheduler)})`);
  let seed: bigint | null = null;
  if (req.seed !== undefined) {
    try {
      seed = parseSeed(req.seed);
    } catch (e) {
      if (e instanceof SeedError) throw new GenerateInputError('seed', e.message.replace(/^seed: /, ''));
      throw e;
    }
  }
  return { prompt: req.prompt, negativePrompt, seed, steps, guidance, scheduler };
}

function checkRequest(models: DiffusionModels, req: GenerateRequest): CheckedRequest {
  const { info } = models;
  const settings = checkGenerateSettings(req);
  // The latent must halve exactly at every UNet level, so the image side is a multiple of both factors.
  const multiple = info.vaeScaleFactor * info.unetDownscale;
  const side = (field: 'width' | 'height', v: number | undefined, dflt: number): number => {
    const x = v ?? dflt;
    if (!Number.isInteger(x) || x < multiple || x > MAX_IMAGE_SIDE || x % multiple !== 0) {
      throw new GenerateInputError(
        field,
        `must be a multiple of ${multiple} in [${multiple}, ${MAX_IMAGE_SIDE}] for this model (VAE ×${info.vaeScaleFactor}, UNet ÷${info.unetDownscale}); got ${x}`,
      );
    }
    return x;
  };
  const width = side('width', req.width, info.defaultWidth);
  const height = side('height', req.height, info.defaultHeight);
  const initLatents = req.initLatents ?? null;
  if (initLatents) {
    if (settings.seed !== null) throw new GenerateInputError('seed', 'give either a seed or initLatents, not both (initLatents replaces the seeded noise)');
    const [h, w] = [height / info.vaeScaleFactor, width / info.vaeScaleFactor];
    const want = info.latentChannels * h * w;
    if (!(initLatents instanceof Float32Array) || initLatents.length !== want) {
      throw new GenerateInputError('initLatents', `must be float32 [1, ${info.latentChannels}, ${h}, ${w}] (${want} values) for ${width}×${height}; got ${initLatents.length} values`);
    }
  } else if (settings.seed === null) {
    throw new GenerateInputError('seed', 'is required (or pass initLatents)');
  }
  return { ...settings, width, height, initLatents };
}

function checkFinite(x: Float32Array, what: string): void {
  for (let i = 0; i < x.length; i++) if (!Number.isFinite(x[i])) throw new InferenceError(`${what} contains ${x[i]} at index ${i}`);
}

export async function generate(models: DiffusionModels, request: GenerateRequest, options: GenerateOptions = {}): Promise<GenerateResult> {
  const t0 = performance.now();
  const { info } = models;
  const { signal, onStep } = options;
  const timings: PhaseTimings = { encodeText: 0, prepareLatents: 0, denoise: 0, decode: 0, postprocess: 0 };
  let mark = t0;
  const lap = (phase: keyof PhaseTimings) => {
    const now = performance.now();
    timings[phase] = now - mark;
    mark = now;
  };

  // 1. check inputs
  const req = checkRequest(models, request);
  const h = req.height / info.vaeScaleFactor;
  const w = req.width / info.vaeScaleFactor;
  const C = info.latentChannels;
  const latentSize = C * h * w;
  const cfg = req.guidance > 1;
  if (signal?.aborted) throw new GenerationAbortedError(0, req.steps);

  // 2. tokenize and encode: CFG batches [negative, prompt] (negative first, like diffusers)
  const prompt = models.tokenize(req.prompt);
  const negative = cfg ? models.tokenize(req.negativePrompt) : null;
  const text = await models.encodeText(negative ? [negative.ids, prompt.ids] : [prompt.ids]); // [B, L, D]
  const batch = cfg ? 2 : 1;
  lap('encodeText');

  // 3. timesteps
  const scheduler = createScheduler(req.scheduler, models.schedulerConfig);
  scheduler.setTimesteps(req.steps);

  // 4. latents: unit Gaussian (seeded, docs/seeds.md) or given noise, × init_noise_sigma, in float32
  const noise = req.initLatents ?? gaussianFloat32(req.seed as bigint, latentSize);
  const sigma0 = Math.fround(scheduler.initNoiseSigma);
  let latents: Float32Array = noise.map((v) => Math.fround(v * sigma0));
  lap('prepareLatents');

  // 5. denoising loop (denoiseLoop.ts: scale → CFG batch → UNet → guide → scheduler step)
  const total = scheduler.timesteps.length;
  latents = await denoiseLoop(latents, {
    scheduler,
    guidance: req.guidance,
    batch,
    channels: C,
    pixels: h * w,
    steps: scheduler.timesteps.map((_, i) => i),
    totalSteps: total,
    unet: denseUNetCall((...a) => models.predictNoise(...a), h, w, text),
    signal,
    afterStep: onStep ? (i, x, t) => onStep({ step: i + 1, total, timestep: t, latents: x.slice() }) : undefined,
  });
  checkFinite(latents, 'final latents');
  lap('denoise');
  if (signal?.aborted) throw new GenerationAbortedError(total, total);

  // 6. decode: z = latents / scaling_factor (+ shift_factor)
  const inv = Math.fround(info.scalingFactor);
  const shift = info.shiftFactor === null ? null : Math.fround(info.shiftFactor);
  const z = latents.map((v) => (shift === null ? Math.fround(v / inv) : Math.fround(Math.fround(v / inv) + shift)));
  const image = await models.decodeLatents(z, h, w); // [1, 3, H, W]
  checkFinite(image, 'decoded image');
  lap('decode');

  // 7. postprocess and return
  const channels = image.length / (req.height * req.width);
  if (channels !== 3) throw new InferenceError(`decoder returned ${image.length} values, expected 3×${req.height}×${req.width}`);
  const rgb = imageTensorToRgb(image, 3, req.height, req.width);
  lap('postprocess');
  return {
    rgb,
    width: req.width,
    height: req.height,
    latents,
    latentShape: [1, C, h, w],
    seed: req.seed,
    steps: req.steps,
    guidance: req.guidance,
    scheduler: req.scheduler,
    timesteps: [...scheduler.timesteps],
    prompt: req.prompt,
    negativePrompt: cfg ? req.negativePrompt : '',
    promptTruncated: prompt.truncated,
    negativeTruncated: negative?.truncated ?? false,
    timings,
    totalMs: performance.now() - t0,
  };
}
