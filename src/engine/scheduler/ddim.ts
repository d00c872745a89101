// DDIM with η = 0 (diffusers DDIMScheduler; sd-architecture.md §6). Deterministic and stateless:
//   x0     = (x_t − √(1−ᾱ_t)·ε) / √ᾱ_t          (optionally clipped to ±clip_sample_range)
//   x_prev = √ᾱ_prev·x0 + √(1−ᾱ_prev)·ε,        prev_t = t − num_train_timesteps // N
// ᾱ_prev below timestep 0 is 1 when set_alpha_to_one, else ᾱ[0] (SD 1.5: false).
// Class defaults: timestep_spacing "leading", steps_offset 0, set_alpha_to_one true, clip_sample TRUE
// (SD 1.5's config says false, and the config wins). Arithmetic is float32 per operation, like torch.
import { computeNoiseSchedule, npLinspace, roundHalfEven, spacedTimesteps } from './betas';
import {
  checkStepArgs, checkStepCount, parseNoiseScheduleConfig, readBool, readNumber,
  type NoiseScheduleConfig, type RawSchedulerConfig,
} from './config';
import type { Scheduler } from './contract';

const f32 = Math.fround;

export class DDIMScheduler implements Scheduler {
  readonly name = 'ddim' as const;
  readonly initNoiseSigma = 1;
  timesteps: number[] = [];
  readonly config: NoiseScheduleConfig & { setAlphaToOne: boolean; clipSample: boolean; clipSampleRange: number };
  readonly alphasCumprod: Float32Array;
  private readonly finalAlphaCumprod: number;
  private numInferenceSteps = 0;

  constructor(raw: RawSchedulerConfig) {
    const base = parseNoiseScheduleConfig(raw, 'leading', this.name);
    this.config = {
      ...base,
      setAlphaToOne: readBool(raw, 'set_alpha_to_one', true),
      clipSample: readBool(raw, 'clip_sample', true),
      clipSampleRange: readNumber(raw, 'clip_sample_range', 1),
    };
    this.alphasCumprod = computeNoiseSchedule(base).alphasCumprod;
    this.finalAlphaCumprod = this.config.setAlphaToOne ? 1 : this.alphasCumprod[0];
  }

  setTimesteps(n: number): void {
    const { numTrainTimesteps: T, timestepSpacing, stepsOffset } = this.config;
    checkStepCount(n, T, this.name);
    // DDIM's linspace rounds to integers and ignores steps_offset; leading/trailing are shared.
    this.timesteps =
      timestepSpacing === 'linspace'
        ? npLinspace(0, T - 1, n).reverse().map(roundHalfEven)
        : spacedTimesteps(timestepSpacing, n, T, stepsOffset);
    this.numInferenceSteps = n;
  }

  scaleModelInput(sample: Float32Array, stepIndex: number): Float32Array {
    checkStepArgs(this.name, this.timesteps.length, stepIndex, sample);
    return sample.slice();
  }

  step(modelOutput: Float32Array, stepIndex: number, sample: Float32Array): Float32Array {
    checkStepArgs(this.name, this.timesteps.length, stepIndex, sample, modelOutput);
    const t = this.timesteps[stepIndex];
    // diffusers uses T // N whatever the spacing, so this is not always the next timestep in the list.
    const prevT = t - Math.floor(this.config.numTrainTimesteps / this.numInferenceSteps);
    const aT = this.alphasCumprod[t];
    const aPrev = prevT >= 0 ? this.alphasCumprod[prevT] : this.finalAlphaCumprod;
    const sqrtBetaT = f32(Math.sqrt(f32(1 - aT)));
    const sqrtAT = f32(Math.sqrt(aT));
    const sqrtAPrev = f32(Math.sqrt(aPrev));
    const dirCoef = f32(Math.sqrt(f32(1 - aPrev))); // √(1 − ᾱ_prev − σ_t²) with σ_t = η·… = 0
    const { clipSample, clipSampleRange: r } = this.config;
    const out = new Float32Array(sample.length);
    for (let i = 0; i < sample.length; i++) {
      const eps = modelOutput[i];
      let x0 = f32(f32(sample[i] - f32(sqrtBetaT * eps)) / sqrtAT);
      if (clipSample) x0 = Math.min(r, Math.max(-r, x0));
      out[i] = f32(f32(sqrtAPrev * x0) + f32(dirCoef * eps));
    }
    return out;
  }
}
