// DPM-Solver++ (2M), diffusers DPMSolverMultistepScheduler with algorithm_type "dpmsolver++",
// solver_type "midpoint" (sd-architecture.md §6). For σ: α = 1/√(σ²+1), σ_t = σ·α, λ = ln α − ln σ_t.
//   data prediction  m = (x − σ_t·ε)/α
//   1st order  x_t = (σ_t/σ_s)·x − α_t(e^{−h} − 1)·m0,                     h = λ_t − λ_s
//   2nd order  x_t = (σ_t/σ_s0)·x − α_t(e^{−h} − 1)·D0 − ½α_t(e^{−h} − 1)·D1,
//              D0 = m0, D1 = (m0 − m1)/r0, r0 = (λ_s0 − λ_s1)/h
// First order on the first step, and on the last step when final_sigmas_type is "zero" (or
// lower_order_final with fewer than 15 steps, or euler_at_final). Multistep: it keeps the previous
// data prediction, so steps must run in order 0, 1, …, N−1 after setTimesteps.
// Class default timestep_spacing is "linspace": round(linspace(0, T−1, N+1)) reversed, last dropped, int64.
// Scalars are float32 per operation like diffusers' 0-dim tensors; ln and exp here are correctly rounded,
// torch's (SLEEF) may differ by 1 ulp, so coefficients can differ from diffusers in the last bit.
import { computeNoiseSchedule, interpOnIndex, npLinspace, roundHalfEven } from './betas';
import {
  checkStepArgs, checkStepCount, parseNoiseScheduleConfig, readBool, readChoice, readNumber, refuseFlags,
  SchedulerConfigError, SchedulerUsageError, type NoiseScheduleConfig, type RawSchedulerConfig,
} from './config';
import type { Scheduler } from './contract';

const f32 = Math.fround;

interface SigmaTerms {
  alpha: number;
  sigma: number;
  lambda: number;
}

/** diffusers' _sigma_to_alpha_sigma_t and λ, each operation in float32 like the 0-dim torch tensors. */
function sigmaTerms(s: number): SigmaTerms {
  const alpha = f32(1 / f32(Math.sqrt(f32(f32(s * s) + 1))));
  const sigma = f32(s * alpha);
  // σ = 0 (final step) gives λ = +∞, h = +∞, e^{−h} = 0: the update returns the data prediction.
  return { alpha, sigma, lambda: f32(f32(Math.log(alpha)) - f32(Math.log(sigma))) };
}

export class DPMSolverMultistepScheduler implements Scheduler {
  readonly name = 'dpmpp-2m' as const;
  readonly initNoiseSigma = 1;
  timesteps: number[] = [];
  /** σ per step plus the final σ (0 for final_sigmas_type "zero"), float32 values (length N + 1). */
  sigmas: number[] = [];
  readonly config: NoiseScheduleConfig & {
    solverOrder: 1 | 2;
    lowerOrderFinal: boolean;
    eulerAtFinal: boolean;
    finalSigmasType: 'zero' | 'sigma_min';
  };
  readonly sigmaTable: Float32Array;
  /** Data prediction of the previous step (m1), or null before the first step. */
  private previousX0: Float32Array | null = null;
  private nextStepIndex = 0;

  constructor(raw: RawSchedulerConfig) {
    const base = parseNoiseScheduleConfig(raw, 'linspace', this.name);
    readChoice(raw, 'algorithm_type', 'dpmsolver++', ['dpmsolver++'] as const, this.name);
    readChoice(raw, 'solver_type', 'midpoint', ['midpoint'] as const, this.name);
    refuseFlags(raw, ['use_karras_sigmas', 'use_exponential_sigmas', 'use_beta_sigmas', 'use_lu_lambdas', 'variance_type'], this.name);
    const lambdaMin = raw['lambda_min_clipped'];
    if (lambdaMin !== undefined && lambdaMin !== null && lambdaMin !== '-inf' && lambdaMin !== -Infinity) {
      throw new SchedulerConfigError(`${this.name} does not support lambda_min_clipped=${JSON.stringify(lambdaMin)}`);
    }
    const solverOrder = readNumber(raw, 'solver_order', 2);
    if (solverOrder !== 1 && solverOrder !== 2) throw new SchedulerConfigError(`${this.name} supports solver_order 1 or 2 only (got ${solverOrder})`);
    this.config = {
      ...base,
      solverOrder,
      lowerOrderFinal: readBool(raw, 'lower_order_final', true),
      eulerAtFinal: readBool(raw, 'euler_at_final', false),
      finalSigmasType: readChoice(raw, 'final_sigmas_type', 'zero', ['zero', 'sigma_min'] as const, this.name),
    };
    this.sigmaTable = computeNoiseSchedule(base).sigmaTable;
  }

  setTimesteps(n: number): void {
    const { numTrainTimesteps: T, timestepSpacing, stepsOffset } = this.config;
    checkStepCount(n, T, this.name);
    let ts: number[];
    if (timestepSpacing === 'linspace') {
      ts = npLinspace(0, T - 1, n + 1).map(roundHalfEven).reverse().slice(0, n);
    } else if (timestepSpacing === 'leading') {
      const ratio = Math.floor(T / (n + 1));
      ts = Array.from({ length: n }, (_, i) => (n - i) * ratio + stepsOffset);
    } else {
      const ratio = T / n;
      ts = Array.from({ length: Math.ceil(T / ratio) }, (_, i) => roundHalfEven(T - i * ratio) - 1);
    }
    for (let i = 1; i < ts.length; i++) {
      if (!(ts[i] < ts[i - 1])) throw new SchedulerUsageError(this.name, `${n} steps give repeated timesteps with ${timestepSpacing} spacing`);
    }
    this.timesteps = ts;
    const last = this.config.finalSigmasType === 'zero' ? 0 : this.sigmaTable[0];
    this.sigmas = [...ts.map((t) => f32(interpOnIndex(t, this.sigmaTable))), last];
    this.previousX0 = null;
    this.nextStepIndex = 0;
  }

  scaleModelInput(sample: Float32Array, stepIndex: number): Float32Array {
    checkStepArgs(this.name, this.timesteps.length, stepIndex, sample);
    return sample.slice();
  }

  step(modelOutput: Float32Array, stepIndex: number, sample: Float32Array): Float32Array {
    checkStepArgs(this.name, this.timesteps.length, stepIndex, sample, modelOutput);
    if (stepIndex !== this.nextStepIndex) {
      throw new SchedulerUsageError(this.name, `steps must run in order after setTimesteps(): expected step ${this.nextStepIndex}, got ${stepIndex}`);
    }
    const n = this.timesteps.length;
    const { solverOrder, lowerOrderFinal, eulerAtFinal, finalSigmasType } = this.config;
    const lowerOrderHere =
      stepIndex === n - 1 && (eulerAtFinal || (lowerOrderFinal && n < 15) || finalSigmasType === 'zero');

    const s0 = sigmaTerms(this.sigmas[stepIndex]);
    const t = sigmaTerms(this.sigmas[stepIndex + 1]);
    const x0 = new Float32Array(sample.length);
    for (let i = 0; i < sample.length; i++) x0[i] = f32(f32(sample[i] - f32(s0.sigma * modelOutput[i])) / s0.alpha);

    const h = f32(t.lambda - s0.lambda);
    const ratio = f32(t.sigma / s0.sigma);
    const coef = f32(t.alpha * f32(f32(Math.exp(-h)) - 1)); // α_t(e^{−h} − 1)
    const out = new Float32Array(sample.length);
    const m1 = this.previousX0;
    if (solverOrder === 1 || m1 === null || lowerOrderHere) {
      for (let i = 0; i < sample.length; i++) out[i] = f32(f32(ratio * sample[i]) - f32(coef * x0[i]));
    } else {
      const s1 = sigmaTerms(this.sigmas[stepIndex - 1]);
      const h0 = f32(s0.lambda - s1.lambda);
      const invR0 = f32(1 / f32(h0 / h));
      const halfCoef = f32(0.5 * coef);
      for (let i = 0; i < sample.length; i++) {
        const d1 = f32(invR0 * f32(x0[i] - m1[i]));
        out[i] = f32(f32(f32(ratio * sample[i]) - f32(coef * x0[i])) - f32(halfCoef * d1));
      }
    }
    this.previousX0 = x0;
    this.nextStepIndex = stepIndex + 1;
    return out;
  }
}
