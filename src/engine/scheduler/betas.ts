// Noise schedule shared by every scheduler: betas, ᾱ (alphas_cumprod) and the σ table, computed with the
// same float32 semantics as diffusers does in PyTorch on CPU (sd-architecture.md §6), so timesteps, σ and
// step coefficients match the reference to the last bit where torch is deterministic.
//
// The raw scheduler_config.json object is parsed here too (the keys every scheduler shares), with the
// defaults diffusers' constructors use when a key is missing. Each scheduler class passes its own default
// for the keys whose default differs by class (timestep_spacing, set_alpha_to_one, clip_sample).

const f32 = Math.fround;

export class SchedulerConfigError extends Error {
  constructor(reason: string, readonly file = 'scheduler/scheduler_config.json') {
    super(`${file}: ${reason}`);
    this.name = 'SchedulerConfigError';
  }
}

/** A scheduler used against its contract (steps out of order, wrong tensor sizes, step past the end). */
export class SchedulerUsageError extends Error {
  constructor(scheduler: string, reason: string) {
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
export function readChoice<T extends string>(c: RawSchedulerConfig, key: string, dflt: T, allowed: readonly T[], who: string): T {
  const v = c[key] ?? dflt;
  if (typeof v !== 'string' || !allowed.includes(v as T)) {
    throw new SchedulerConfigError(`${who} supports ${key} ${allowed.map((a) => `"${a}"`).join(' | ')} only (got ${JSON.stringify(v)})`);
  }
  return v as T;
}

/** Keys that only change behaviour when true; we refuse them instead of silently ignoring them. */
export function refuseFlags(c: RawSchedulerConfig, keys: readonly string[], who: string): void {
  for (const k of keys) {
    if (c[k] !== undefined && c[k] !== null && c[k] !== false) {
      throw new SchedulerConfigError(`${who} does not support ${k}=${JSON.stringify(c[k])}`);
    }
  }
}

/** Parses the keys shared by all schedulers. `spacingDefault` is the class's own default (§1.7). */
export function parseNoiseScheduleConfig(c: RawSchedulerConfig, spacingDefault: TimestepSpacing, who: string): NoiseScheduleConfig {
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

/**
 * torch.linspace(start, end, steps, dtype=float32) on CPU: start, end and the step are float32; the first
 * half counts up from start, the second half counts down from end (aten RangeFactoriesKernel.cpp).
 */
export function torchLinspaceF32(start: number, end: number, steps: number): Float32Array {
  const out = new Float32Array(steps);
  const s = f32(start);
  const e = f32(end);
  const step = f32(f32(e - s) / (steps - 1));
  const halfway = Math.floor(steps / 2);
  for (let i = 0; i < steps; i++) {
    out[i] = i < halfway ? f32(s + f32(step * i)) : f32(e - f32(step * (steps - i - 1)));
  }
  return out;
}

export function computeBetas(cfg: NoiseScheduleConfig): Float32Array {
  if (cfg.trainedBetas) return Float32Array.from(cfg.trainedBetas);
  if (cfg.betaSchedule === 'linear') return torchLinspaceF32(cfg.betaStart, cfg.betaEnd, cfg.numTrainTimesteps);
  // scaled_linear: linspace of √β in float32 (√ taken in Python float64 first), then squared in float32.
  const roots = torchLinspaceF32(Math.sqrt(cfg.betaStart), Math.sqrt(cfg.betaEnd), cfg.numTrainTimesteps);
  return roots.map((r) => f32(r * r));
}

/**
 * ᾱ = cumprod(1 − β). torch's CPU cumprod accumulates in double and stores each prefix as float32
 * (acc_type<float> is double on CPU), so we do the same.
 */
export function computeAlphasCumprod(betas: Float32Array): Float32Array {
  const out = new Float32Array(betas.length);
  let acc = 1;
  for (let i = 0; i < betas.length; i++) {
    acc *= f32(1 - betas[i]);
    out[i] = acc;
  }
  return out;
}

/** σ_t = √((1 − ᾱ_t)/ᾱ_t), each operation in float32 (diffusers computes it on the float32 tensor). */
export function computeSigmaTable(alphasCumprod: Float32Array): Float32Array {
  return alphasCumprod.map((a) => f32(Math.sqrt(f32(f32(1 - a) / a))));
}

/** np.linspace(0, stop, num) in float64, with the last value exactly `stop`, as numpy does. */
export function npLinspace(start: number, stop: number, num: number): number[] {
  if (num === 1) return [start];
  const step = (stop - start) / (num - 1);
  const out: number[] = [];
  for (let i = 0; i < num; i++) out.push(i * step + start);
  out[num - 1] = stop;
  return out;
}

/** numpy's round(): half to even. */
export function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/**
 * np.interp(x, arange(len(fp)), fp) for x in [0, len(fp) − 1], in float64 like numpy
 * (slope·(x − xp[j]) + fp[j]; the right end returns fp[last] exactly).
 */
export function interpOnIndex(x: number, fp: ArrayLike<number>): number {
  const last = fp.length - 1;
  if (!(x >= 0 && x <= last)) throw new RangeError(`interp: ${x} is outside [0, ${last}]`);
  if (x === last) return fp[last];
  const j = Math.floor(x);
  const slope = fp[j + 1] - fp[j];
  return slope * (x - j) + fp[j];
}

/**
 * Inference timesteps (descending) by diffusers' three spacings, before any scheduler-specific typing.
 * `leading` and `trailing` are integers; `linspace` is float64 (the caller rounds or keeps fractions).
 * DDIM/Euler spacing: N values. DPM-Solver uses its own variant (N+1 points, last dropped) and does not call this.
 */
export function spacedTimesteps(spacing: TimestepSpacing, n: number, numTrain: number, stepsOffset: number): number[] {
  if (spacing === 'linspace') return npLinspace(0, numTrain - 1, n).reverse();
  if (spacing === 'leading') {
    const ratio = Math.floor(numTrain / n);
    return Array.from({ length: n }, (_, i) => (n - 1 - i) * ratio + stepsOffset);
  }
  // trailing: np.round(np.arange(numTrain, 0, -numTrain / n)) - 1
  const ratio = numTrain / n;
  const out: number[] = [];
  for (let v = numTrain; v > 0; v -= ratio) out.push(roundHalfEven(v) - 1);
  return out;
}

export function checkStepCount(n: number, numTrain: number, who: string): void {
  if (!Number.isInteger(n) || n < 1 || n > numTrain) {
    throw new SchedulerUsageError(who, `number of inference steps must be an integer in [1, ${numTrain}] (got ${n})`);
  }
}
