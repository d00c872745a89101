// scheduler_config.json parsing shared by every scheduler, with the defaults diffusers' constructors use
// when a key is missing. Each scheduler class passes its own default for the keys whose default differs by
// class (timestep_spacing, set_alpha_to_one, clip_sample: sd-architecture.md §1.7). Options we do not
// implement are refused with a clear error, never approximated.
import type { SchedulerName } from './contract';

export class SchedulerConfigError extends Error {
  constructor(reason: string, readonly file = 'scheduler/scheduler_config.json') {
    super(`${file}: ${reason}`);
    this.name = 'SchedulerConfigError';
  }
}

/** A scheduler used against its contract (steps out of order, wrong tensor sizes, step past the end). */
export class SchedulerUsageError extends Error {
  constructor(scheduler: SchedulerName, reason: string) {
    super(`${scheduler}: ${reason}`);
    this.name = 'SchedulerUsageError';
  }
}

export type TimestepSpacing = 'leading' | 'linspace' | 'trailing';
export type RawSchedulerConfig = Record<string, unknown>;

export interface NoiseScheduleConfig {
  numTrainTimesteps: number;
  betaStart: number;
  betaEnd: number;
  betaSchedule: 'scaled_linear' | 'linear';
  trainedBetas: number[] | null;
  stepsOffset: number;
  timestepSpacing: TimestepSpacing;
}

export function readNumber(c: RawSchedulerConfig, key: string, dflt: number): number {
  const v = c[key] ?? dflt;
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new SchedulerConfigError(`"${key}" must be a number (got ${JSON.stringify(c[key])})`);
  return v;
}

export function readBool(c: RawSchedulerConfig, key: string, dflt: boolean): boolean {
  const v = c[key] ?? dflt;
  if (typeof v !== 'boolean') throw new SchedulerConfigError(`"${key}" must be a boolean (got ${JSON.stringify(c[key])})`);
  return v;
}

/** A string option that must be one of `allowed`; anything else is refused rather than approximated. */
export function readChoice<T extends string>(c: RawSchedulerConfig, key: string, dflt: T, allowed: readonly T[], who: SchedulerName): T {
  const v = c[key] ?? dflt;
  if (typeof v !== 'string' || !allowed.includes(v as T)) {
    throw new SchedulerConfigError(`${who} supports ${key} ${allowed.map((a) => `"${a}"`).join(' | ')} only (got ${JSON.stringify(v)})`);
  }
  return v as T;
}

/** Keys that only change behaviour when true; we refuse them instead of silently ignoring them. */
export function refuseFlags(c: RawSchedulerConfig, keys: readonly string[], who: SchedulerName): void {
  for (const k of keys) {
    if (c[k] !== undefined && c[k] !== null && c[k] !== false) {
      throw new SchedulerConfigError(`${who} does not support ${k}=${JSON.stringify(c[k])}`);
    }
  }
}

/** Parses the keys shared by all schedulers. `spacingDefault` is the class's own default (§1.7). */
export function parseNoiseScheduleConfig(c: RawSchedulerConfig, spacingDefault: TimestepSpacing, who: SchedulerName): NoiseScheduleConfig {
  if (c === null || typeof c !== 'object' || Array.isArray(c)) throw new SchedulerConfigError('must be a JSON object');
  readChoice(c, 'prediction_type', 'epsilon', ['epsilon'] as const, who);
  refuseFlags(c, ['rescale_betas_zero_snr', 'thresholding'], who);
  const numTrainTimesteps = readNumber(c, 'num_train_timesteps', 1000);
  if (!Number.isInteger(numTrainTimesteps) || numTrainTimesteps < 2) throw new SchedulerConfigError(`"num_train_timesteps" must be an integer ≥ 2`);
  const stepsOffset = readNumber(c, 'steps_offset', 0);
  if (!Number.isInteger(stepsOffset) || stepsOffset < 0) throw new SchedulerConfigError(`"steps_offset" must be a non-negative integer`);
  let trainedBetas: number[] | null = null;
  const tb = c['trained_betas'];
  if (tb !== undefined && tb !== null) {
    if (!Array.isArray(tb) || tb.length !== numTrainTimesteps || tb.some((b) => typeof b !== 'number' || !(b > 0 && b < 1))) {
      throw new SchedulerConfigError(`"trained_betas" must list num_train_timesteps (${numTrainTimesteps}) numbers in (0, 1)`);
    }
    trainedBetas = tb as number[];
  }
  return {
    numTrainTimesteps,
    betaStart: readNumber(c, 'beta_start', 0.0001),
    betaEnd: readNumber(c, 'beta_end', 0.02),
    betaSchedule: readChoice(c, 'beta_schedule', 'linear', ['scaled_linear', 'linear'] as const, who),
    trainedBetas,
    stepsOffset,
    timestepSpacing: readChoice(c, 'timestep_spacing', spacingDefault, ['leading', 'linspace', 'trailing'] as const, who),
  };
}

export function checkStepCount(n: number, numTrain: number, who: SchedulerName): void {
  if (!Number.isInteger(n) || n < 1 || n > numTrain) {
    throw new SchedulerUsageError(who, `number of inference steps must be an integer in [1, ${numTrain}] (got ${n})`);
  }
}

/** Checks the arguments of scaleModelInput/step: a valid step index and same-size latents. */
export function checkStepArgs(who: SchedulerName, numSteps: number, stepIndex: number, ...tensors: Float32Array[]): void {
  if (numSteps === 0) throw new SchedulerUsageError(who, 'setTimesteps() must be called before stepping');
  if (!Number.isInteger(stepIndex) || stepIndex < 0 || stepIndex >= numSteps) {
    throw new SchedulerUsageError(who, `step index ${stepIndex} is outside [0, ${numSteps - 1}]`);
  }
  for (const t of tensors) {
    if (t.length !== tensors[0].length) throw new SchedulerUsageError(who, `latent sizes differ (${tensors[0].length} vs ${t.length})`);
  }
}
