import { createScheduler, DPMSolverMultistepScheduler, SchedulerUsageError } from '../../../src/engine/scheduler';
import { maxAbsDiff, SD15_SCHEDULER_CONFIG, sigmaTable64, testTensor } from './reference';

const table = sigmaTable64();

/** Float64 DPM-Solver++(2M) from §6: α = 1/√(σ²+1), σ_t = σα, λ = ln α − ln σ_t. */
function terms(s: number) {
  const alpha = 1 / Math.sqrt(s * s + 1);
  const sigma = s * alpha;
  return { alpha, sigma, lambda: Math.log(alpha) - Math.log(sigma) };
}

function run64(sigmas: number[], x0: Float32Array, model: (x: number[], i: number) => number[]): number[] {
  let x = Array.from(x0);
  let prev: number[] | null = null;
  const n = sigmas.length - 1;
  for (let i = 0; i < n; i++) {
    const eps = model(x, i);
    const s = terms(sigmas[i]);
    const m0 = x.map((v, k) => (v - s.sigma * eps[k]) / s.alpha);
    if (sigmas[i + 1] === 0) {
      x = m0; // σ_t = 0: x_t = x0 (e^{−h} = 0, σ_t/σ_s = 0)
    } else {
      const t = terms(sigmas[i + 1]);
      const h = t.lambda - s.lambda;
      const c = t.alpha * (Math.exp(-h) - 1);
      if (prev === null) {
        x = x.map((v, k) => (t.sigma / s.sigma) * v - c * m0[k]);
      } else {
        const p = terms(sigmas[i - 1]);
        const r0 = (s.lambda - p.lambda) / h;
        const m1 = prev;
        x = x.map((v, k) => (t.sigma / s.sigma) * v - c * m0[k] - 0.5 * c * ((m0[k] - m1[k]) / r0));
      }
    }
    prev = m0;
  }
  return x;
}

describe('DPMSolverMultistepScheduler (DPM-Solver++ 2M) on the SD 1.5 config', () => {
  test('N = 20 timesteps are 999, 949, …, 549, 500, 450, …, 50 (int, half to even)', () => {
    const s = createScheduler('dpmpp-2m', SD15_SCHEDULER_CONFIG);
    s.setTimesteps(20);
    expect(s.timesteps).toEqual([999, 949, 899, 849, 799, 749, 699, 649, 599, 549, 500, 450, 400, 350, 300, 250, 200, 150, 100, 50]);
    expect(s.initNoiseSigma).toBe(1);
  });

  test('sigmas are the σ table at those timesteps, then 0', () => {
    const s = new DPMSolverMultistepScheduler(SD15_SCHEDULER_CONFIG);
    s.setTimesteps(20);
    expect(s.sigmas).toHaveLength(21);
    expect(s.sigmas[0]).toBe(14.614645004272461);
    expect(s.sigmas[20]).toBe(0);
    s.timesteps.forEach((t, i) => expect(Math.abs(s.sigmas[i] - table[t]) / table[t]).toBeLessThan(1e-4));
  });

  test('first step is first order, second step is the 2M midpoint update (float64 reference)', () => {
    const s = createScheduler('dpmpp-2m', SD15_SCHEDULER_CONFIG) as DPMSolverMultistepScheduler;
    s.setTimesteps(20);
    const x0 = testTensor(4 * 8 * 8, 21, 3);
    const eps0 = testTensor(4 * 8 * 8, 22);
    const eps1 = testTensor(4 * 8 * 8, 23);
    const x1 = s.step(eps0, 0, x0);
    const x2 = s.step(eps1, 1, x1);
    const epsOf = [eps0, eps1];
    const ref = run64(s.sigmas.slice(0, 3), x0, (_x, i) => Array.from(epsOf[i]));
    expect(maxAbsDiff(x2, ref)).toBeLessThan(1e-4);
    // and the 2nd-order term matters: a first-order second step lands measurably elsewhere
    const firstOrder = createScheduler('dpmpp-2m', { ...SD15_SCHEDULER_CONFIG, solver_order: 1 });
    firstOrder.setTimesteps(20);
    firstOrder.step(eps0, 0, x0);
    const y2 = firstOrder.step(eps1, 1, x1);
    expect(maxAbsDiff(y2, x2)).toBeGreaterThan(1e-3);
  });

  test('a whole 20-step run with a latent-dependent model matches the float64 reference; the last step returns x0', () => {
    const s = createScheduler('dpmpp-2m', SD15_SCHEDULER_CONFIG) as DPMSolverMultistepScheduler;
    s.setTimesteps(20);
    const init = testTensor(4 * 8 * 8, 31);
    const bias = testTensor(4 * 8 * 8, 32, 0.3);
    const model = (x: ArrayLike<number>, i: number) => Array.from(x, (v, k) => 0.8 * v + bias[k] * (1 + i / 20));
    let x = init;
    let beforeLast = init;
    for (let i = 0; i < 20; i++) {
      if (i === 19) beforeLast = x;
      x = s.step(Float32Array.from(model(x, i)), i, x);
    }
    expect(maxAbsDiff(x, run64(s.sigmas, init, model))).toBeLessThan(1e-4);
    const sig = s.sigmas[19];
    const e = model(beforeLast, 19);
    const t = terms(sig);
    expect(maxAbsDiff(x, Array.from(beforeLast, (v, k) => (v - t.sigma * e[k]) / t.alpha))).toBeLessThan(1e-6);
  });

  test('steps must run in order; setTimesteps resets the multistep state', () => {
    const s = createScheduler('dpmpp-2m', SD15_SCHEDULER_CONFIG);
    s.setTimesteps(5);
    const x = testTensor(16, 41);
    expect(() => s.step(x, 1, x)).toThrow(SchedulerUsageError);
    const a = s.step(x, 0, x);
    s.step(x, 1, a);
    s.setTimesteps(5);
    expect(s.step(x, 0, x)).toEqual(a);
  });

  test('refuses options it does not implement', () => {
    expect(() => createScheduler('dpmpp-2m', { ...SD15_SCHEDULER_CONFIG, algorithm_type: 'sde-dpmsolver++' })).toThrow(/algorithm_type/);
    expect(() => createScheduler('dpmpp-2m', { ...SD15_SCHEDULER_CONFIG, solver_order: 3 })).toThrow(/solver_order 1 or 2/);
    expect(() => createScheduler('dpmpp-2m', { ...SD15_SCHEDULER_CONFIG, solver_type: 'heun' })).toThrow(/solver_type/);
    expect(() => createScheduler('dpmpp-2m', { ...SD15_SCHEDULER_CONFIG, use_karras_sigmas: true })).toThrow(/use_karras_sigmas/);
  });
});
