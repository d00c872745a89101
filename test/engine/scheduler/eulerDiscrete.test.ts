import { createScheduler, EulerDiscreteScheduler, SchedulerConfigError } from '../../../src/engine/scheduler';
import { maxAbsDiff, SD15_SCHEDULER_CONFIG, sigmaAt64, sigmaTable64, testTensor } from './reference';

const table = sigmaTable64();

describe('EulerDiscreteScheduler on the SD 1.5 config (linspace by class default)', () => {
  const s = new EulerDiscreteScheduler(SD15_SCHEDULER_CONFIG);
  s.setTimesteps(50);

  test('timesteps are linspace(0, 999, 50) reversed, fractional float32', () => {
    expect(s.timesteps).toHaveLength(50);
    expect(s.timesteps[0]).toBe(999);
    expect(s.timesteps[49]).toBe(0);
    for (let i = 0; i < 50; i++) expect(s.timesteps[i]).toBe(Math.fround(999 - (999 * i) / 49));
    expect(s.timesteps[1]).toBeCloseTo(978.6122, 3);
  });

  test('sigmas interpolate the σ table, start at 14.6146…, end with 0; initNoiseSigma = max σ', () => {
    expect(s.sigmas).toHaveLength(51);
    expect(s.sigmas[0]).toBe(14.614645004272461); // σ(999), torch float32
    expect(s.sigmas[50]).toBe(0);
    expect(s.sigmas[49]).toBeCloseTo(0.0291675, 6); // σ(0)
    for (let i = 0; i < 50; i++) {
      const want = sigmaAt64(s.timesteps[i], table);
      // float32 vs float64 ᾱ: near t = 0, 1 − ᾱ ≈ 8.5e-4 keeps only ~1e-4 relative precision in float32
      expect(Math.abs(s.sigmas[i] - want) / want).toBeLessThan(1e-4);
    }
    // the interpolation is really used: σ at t = 978.61 lies strictly between σ(978) and σ(979)
    expect(s.sigmas[1]).toBeGreaterThan(table[978]);
    expect(s.sigmas[1]).toBeLessThan(table[979]);
    expect(s.initNoiseSigma).toBe(14.614645004272461);
  });

  test('scaleModelInput divides by √(σ²+1)', () => {
    const x = testTensor(64, 11, 10);
    for (const i of [0, 17, 49]) {
      const d = Math.sqrt(s.sigmas[i] ** 2 + 1);
      expect(maxAbsDiff(s.scaleModelInput(x, i), Array.from(x, (v) => v / d))).toBeLessThan(1e-6);
    }
  });

  test('step is x + (x − (x − σε))/σ · (σ_next − σ)', () => {
    const x = testTensor(4 * 8 * 8, 12, 14);
    const eps = testTensor(4 * 8 * 8, 13);
    for (const i of [0, 10, 48, 49]) {
      const sg = s.sigmas[i];
      const next = s.sigmas[i + 1];
      const want = Array.from(x, (v, k) => v + ((v - (v - sg * eps[k])) / sg) * (next - sg));
      // the x0 round trip in float32 costs a few ulps of |x| ≤ 14
      expect(maxAbsDiff(s.step(eps, i, x), want)).toBeLessThan(1e-5 * 14);
    }
    // last step: σ_next = 0 gives x − σε
    const last = s.step(eps, 49, x);
    expect(maxAbsDiff(last, Array.from(x, (v, k) => v - s.sigmas[49] * eps[k]))).toBeLessThan(1e-5);
  });

  test('leading spacing: integer timesteps with steps_offset and init σ = √(σmax²+1)', () => {
    const l = createScheduler('euler', { ...SD15_SCHEDULER_CONFIG, timestep_spacing: 'leading' }) as EulerDiscreteScheduler;
    l.setTimesteps(50);
    expect(l.timesteps.slice(0, 3)).toEqual([981, 961, 941]);
    expect(l.initNoiseSigma).toBeCloseTo(Math.sqrt(table[981] ** 2 + 1), 5);
  });

  test('refuses options it does not implement', () => {
    expect(() => new EulerDiscreteScheduler({ ...SD15_SCHEDULER_CONFIG, use_karras_sigmas: true })).toThrow(/use_karras_sigmas/);
    expect(() => new EulerDiscreteScheduler({ ...SD15_SCHEDULER_CONFIG, interpolation_type: 'log_linear' })).toThrow(SchedulerConfigError);
  });
});
