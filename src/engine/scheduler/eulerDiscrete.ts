// Euler (diffusers EulerDiscreteScheduler, s_churn = 0, ε-prediction; sd-architecture.md §6).
//   σ_i  = np.interp(t_i, arange(T), σ_table), then 0 appended (final_sigmas_type "zero")
//   UNet input  x / √(σ_i² + 1), at the float timestep t_i
//   x0 = x − σ_i·ε,  d = (x − x0)/σ_i,  x_next = x + d·(σ_{i+1} − σ_i)
// Class default timestep_spacing is "linspace": t = linspace(0, T−1, N) reversed, fractional float32.
// init_noise_sigma = max σ for linspace/trailing, √(max σ² + 1) for leading.
import { computeNoiseSchedule, interpOnIndex, spacedTimesteps } from './betas';
import {
  checkStepArgs, checkStepCount, parseNoiseScheduleConfig, readChoice, refuseFlags,
  type NoiseScheduleConfig, type RawSchedulerConfig,
} from './config';
import type { Scheduler } from './contract';

const f32 = Math.fround;

export class EulerDiscreteScheduler implements Scheduler {
  readonly name = 'euler' as const;
  timesteps: number[] = [];
  /** σ per step plus the final 0, float32 values (length N + 1). */
  sigmas: number[] = [];
  initNoiseSigma = 1;
  readonly config: NoiseScheduleConfig;
  readonly sigmaTable: Float32Array;

  constructor(raw: RawSchedulerConfig) {
    this.config = parseNoiseScheduleConfig(raw, 'linspace', this.name);
    readChoice(raw, 'interpolation_type', 'linear', ['linear'] as const, this.name);
    readChoice(raw, 'final_sigmas_type', 'zero', ['zero'] as const, this.name);
    readChoice(raw, 'timestep_type', 'discrete', ['discrete'] as const, this.name);
    refuseFlags(raw, ['use_karras_sigmas', 'use_exponential_sigmas', 'use_beta_sigmas'], this.name);
    this.sigmaTable = computeNoiseSchedule(this.config).sigmaTable;
  }

  setTimesteps(n: number): void {
    const { numTrainTimesteps: T, timestepSpacing, stepsOffset } = this.config;
    checkStepCount(n, T, this.name);
    // numpy computes the spacing in float64 and diffusers casts the timesteps to float32.
    this.timesteps = spacedTimesteps(timestepSpacing, n, T, stepsOffset).map(f32);
    // np.interp runs in float64 on the float32 table; the result is cast to float32.
    this.sigmas = [...this.timesteps.map((t) => f32(interpOnIndex(t, this.sigmaTable))), 0];
    const maxSigma = Math.max(...this.sigmas);
    this.initNoiseSigma = timestepSpacing === 'leading' ? f32(Math.sqrt(f32(f32(maxSigma * maxSigma) + 1))) : maxSigma;
  }

  scaleModelInput(sample: Float32Array, stepIndex: number): Float32Array {
    checkStepArgs(this.name, this.timesteps.length, stepIndex, sample);
    const sigma = this.sigmas[stepIndex];
    const denom = f32(Math.sqrt(f32(f32(sigma * sigma) + 1)));
    return sample.map((x) => f32(x / denom));
  }

  step(modelOutput: Float32Array, stepIndex: number, sample: Float32Array): Float32Array {
    checkStepArgs(this.name, this.timesteps.length, stepIndex, sample, modelOutput);
    const sigma = this.sigmas[stepIndex];
    const dt = f32(this.sigmas[stepIndex + 1] - sigma);
    const out = new Float32Array(sample.length);
    for (let i = 0; i < sample.length; i++) {
      const x = sample[i];
      const x0 = f32(x - f32(sigma * modelOutput[i]));
      const d = f32(f32(x - x0) / sigma);
      out[i] = f32(x + f32(d * dt));
    }
    return out;
  }
}
