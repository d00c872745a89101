// Noise schedule shared by every scheduler: betas, ᾱ (alphas_cumprod), the σ table and numpy-style
// timestep spacing, computed with the same float32/float64 semantics as diffusers in PyTorch/numpy on CPU
// (sd-architecture.md §6): β, ᾱ, σ and the timesteps match torch 1.13 (AVX2 dispatch) bit for bit.
import type { NoiseScheduleConfig, TimestepSpacing } from './config';

const f32 = Math.fround;

const f32Bits = new Float32Array(1);
const i32Bits = new Int32Array(f32Bits.buffer);
/** The float32 next to `r` in the direction of `toward` (r is a finite float32). */
function nextFloat32(r: number, toward: number): number {
  if (r === 0) return toward > 0 ? 2 ** -149 : -(2 ** -149);
  f32Bits[0] = r;
  i32Bits[0] += (toward > r) === (r > 0) ? 1 : -1;
  return f32Bits[0];
}

/**
 * Fused multiply-add rounded once to float32, as the FMA instruction computes it. a·b is exact in float64
 * for float32 a and small integer b; the only double-rounding hazard is a float64 sum that lands exactly
 * on a float32 midpoint, which the TwoSum error term resolves.
 */
export function fmaF32(a: number, b: number, c: number): number {
  const p = a * b;
  const s = p + c;
  const r = f32(s);
  if (r === s) return r;
  const bb = s - p;
  const err = p - (s - bb) + (c - bb);
  if (err === 0) return r;
  const other = nextFloat32(r, s);
  if ((r + other) / 2 !== s) return r; // not a midpoint: float64 rounding could not move it across one
  return err > 0 === other > r ? other : r;
}

/**
 * torch.linspace(start, end, steps, dtype=float32) as PyTorch's CPU kernel computes it in its default AVX2
 * build (aten/src/ATen/native/cpu/RangeFactoriesKernel.cpp, Loops.h vectorized_loop): start, end and step
 * are float32; the first half counts up from start, the second half down from end. The kernel works in
 * blocks of two 8-lane vectors: each vector's base is `start + step·idx` (or `end − step·(steps−idx−1)`)
 * contracted to an FMA by the compiler, its lanes are `base + k·step` rounded twice, and the tail
 * (fewer than 16 values) is scalar and fused. Verified bit for bit against torch 1.13 (AVX2 dispatch)
 * for SD's scaled_linear and diffusers' default linear schedules. The differences this reproduces are
 * ≤ 1 ulp of β; they matter only for bit-exact agreement with a PyTorch reference.
 */
export function torchLinspaceF32(start: number, end: number, steps: number): Float32Array {
  const out = new Float32Array(steps);
  if (steps === 1) {
    out[0] = start;
    return out;
  }
  const s = f32(start);
  const e = f32(end);
  const step = f32(f32(e - s) / (steps - 1));
  const halfway = Math.floor(steps / 2);
  const fused = (i: number): number => (i < halfway ? fmaF32(step, i, s) : fmaF32(-step, steps - i - 1, e));
  const lanes = 8;
  let i = 0;
  for (; i <= steps - 2 * lanes; i += lanes) {
    const base = fused(i);
    out[i] = base;
    for (let k = 1; k < lanes; k++) out[i + k] = f32(base + f32(k * step));
  }
  for (; i < steps; i++) out[i] = fused(i);
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
  // np.arange(start, 0, -step) has ceil(start/step) elements start − i·step.
  const ratio = numTrain / n;
  const count = Math.ceil(numTrain / ratio);
  return Array.from({ length: count }, (_, i) => roundHalfEven(numTrain - i * ratio) - 1);
}

export interface NoiseSchedule {
  betas: Float32Array;
  /** ᾱ_t, float32, index = training timestep. */
  alphasCumprod: Float32Array;
  /** σ_t = √((1 − ᾱ_t)/ᾱ_t), float32. */
  sigmaTable: Float32Array;
}

export function computeNoiseSchedule(cfg: NoiseScheduleConfig): NoiseSchedule {
  const betas = computeBetas(cfg);
  const alphasCumprod = computeAlphasCumprod(betas);
  return { betas, alphasCumprod, sigmaTable: computeSigmaTable(alphasCumprod) };
}
