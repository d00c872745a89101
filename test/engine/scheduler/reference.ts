// Independent float64 references for scheduler tests, written straight from the formulas in
// sd-architecture.md §6 (no float32 emulation, no shared code with src/engine/scheduler).

/** SD 1.5's scheduler_config.json (PNDMScheduler) as shipped: no prediction_type, no timestep_spacing. */
export const SD15_SCHEDULER_CONFIG = {
  _class_name: 'PNDMScheduler',
  _diffusers_version: '0.6.0',
  beta_start: 0.00085,
  beta_end: 0.012,
  beta_schedule: 'scaled_linear',
  num_train_timesteps: 1000,
  set_alpha_to_one: false,
  skip_prk_steps: true,
  steps_offset: 1,
  trained_betas: null,
  clip_sample: false,
};

/** ᾱ_t in float64: β = linspace(√0.00085, √0.012, 1000)², ᾱ = cumprod(1 − β). */
export function alphasCumprod64(): number[] {
  const a = Math.sqrt(0.00085);
  const b = Math.sqrt(0.012);
  const out: number[] = [];
  let acc = 1;
  for (let i = 0; i < 1000; i++) {
    const r = a + ((b - a) * i) / 999;
    acc *= 1 - r * r;
    out.push(acc);
  }
  return out;
}

export function sigmaTable64(): number[] {
  return alphasCumprod64().map((a) => Math.sqrt((1 - a) / a));
}

/** σ at a fractional training timestep: linear interpolation between neighbouring table entries. */
export function sigmaAt64(t: number, table: number[]): number {
  const j = Math.min(Math.floor(t), table.length - 2);
  const f = t - j;
  return table[j] * (1 - f) + table[j + 1] * f;
}

/** Deterministic pseudo-random test data (LCG; only needs to be varied, not Gaussian). */
export function testTensor(n: number, seed: number, scale = 1): Float32Array {
  let s = seed >>> 0;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = ((s / 2 ** 32) * 2 - 1) * scale;
  }
  return out;
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}
