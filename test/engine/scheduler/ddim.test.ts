import { createScheduler, DDIMScheduler, SchedulerUsageError } from '../../../src/engine/scheduler';
import { alphasCumprod64, maxAbsDiff, SD15_SCHEDULER_CONFIG, testTensor } from './reference';

const ac64 = alphasCumprod64();

/** x_prev = √ᾱ_prev·x0 + √(1−ᾱ_prev)·ε, x0 = (x − √(1−ᾱ_t)·ε)/√ᾱ_t, in float64. */
function ddimStep64(eps: Float32Array, x: Float32Array, aT: number, aPrev: number, clip?: number): number[] {
  return Array.from(x, (xi, i) => {
    let x0 = (xi - Math.sqrt(1 - aT) * eps[i]) / Math.sqrt(aT);
    if (clip !== undefined) x0 = Math.max(-clip, Math.min(clip, x0));
    return Math.sqrt(aPrev) * x0 + Math.sqrt(1 - aPrev) * eps[i];
  });
}

describe('DDIMScheduler on the SD 1.5 config', () => {
  test('N = 50 gives leading timesteps 981, 961, …, 21, 1 (steps_offset 1)', () => {
    const s = createScheduler('ddim', SD15_SCHEDULER_CONFIG);
    s.setTimesteps(50);
    expect(s.timesteps).toEqual(Array.from({ length: 50 }, (_, i) => 981 - 20 * i));
    expect(s.initNoiseSigma).toBe(1);
  });

  test('scaleModelInput is the identity and returns a copy', () => {
    const s = createScheduler('ddim', SD15_SCHEDULER_CONFIG);
    s.setTimesteps(10);
    const x = testTensor(64, 1);
    const y = s.scaleModelInput(x, 3);
    expect(y).toEqual(x);
    expect(y).not.toBe(x);
  });

  test('step matches the float64 formula at every timestep, last step uses ᾱ[0] (set_alpha_to_one false)', () => {
    const s = createScheduler('ddim', SD15_SCHEDULER_CONFIG);
    s.setTimesteps(50);
    const x = testTensor(4 * 8 * 8, 2, 3);
    const eps = testTensor(4 * 8 * 8, 3);
    for (const i of [0, 1, 25, 48, 49]) {
      const t = s.timesteps[i];
      const aPrev = t - 20 >= 0 ? ac64[t - 20] : ac64[0];
      const want = ddimStep64(eps, x, ac64[t], aPrev);
      const got = s.step(eps, i, x);
      // float32 arithmetic on |x| ≤ 3 with 1/√ᾱ up to ~15: a few float32 ulps of ~40.
      expect(maxAbsDiff(got, want)).toBeLessThan(2e-5 * Math.max(1, 1 / Math.sqrt(ac64[t])));
    }
  });

  test('set_alpha_to_one true makes the final ᾱ_prev 1, so the last step returns x0', () => {
    const s = createScheduler('ddim', { ...SD15_SCHEDULER_CONFIG, set_alpha_to_one: true });
    s.setTimesteps(50);
    const x = testTensor(32, 4);
    const eps = testTensor(32, 5);
    expect(maxAbsDiff(s.step(eps, 49, x), ddimStep64(eps, x, ac64[1], 1))).toBeLessThan(1e-6);
  });

  test('clip_sample defaults to TRUE for DDIM when the key is missing; the SD config says false', () => {
    const { clip_sample: _omit, ...noClipKey } = SD15_SCHEDULER_CONFIG;
    const clipping = new DDIMScheduler(noClipKey);
    const sd = new DDIMScheduler(SD15_SCHEDULER_CONFIG);
    expect(clipping.config.clipSample).toBe(true);
    expect(sd.config.clipSample).toBe(false);
    clipping.setTimesteps(50);
    sd.setTimesteps(50);
    const x = testTensor(64, 6, 5); // at t = 981 x0 = (x − …)/0.069 leaves [−1, 1]
    const eps = testTensor(64, 7);
    const t = clipping.timesteps[0];
    expect(maxAbsDiff(clipping.step(eps, 0, x), ddimStep64(eps, x, ac64[t], ac64[t - 20], 1))).toBeLessThan(1e-5);
    expect(maxAbsDiff(sd.step(eps, 0, x), ddimStep64(eps, x, ac64[t], ac64[t - 20]))).toBeLessThan(1e-3);
    expect(maxAbsDiff(sd.step(eps, 0, x), clipping.step(eps, 0, x))).toBeGreaterThan(0.1);
  });

  test('linspace and trailing spacings follow diffusers', () => {
    const lin = createScheduler('ddim', { ...SD15_SCHEDULER_CONFIG, timestep_spacing: 'linspace' });
    lin.setTimesteps(4); // round(linspace(0, 999, 4)) = 0, 333, 666, 999
    expect(lin.timesteps).toEqual([999, 666, 333, 0]);
    const tr = createScheduler('ddim', { ...SD15_SCHEDULER_CONFIG, timestep_spacing: 'trailing' });
    tr.setTimesteps(3); // round(arange(1000, 0, −333.33)) − 1
    expect(tr.timesteps).toEqual([999, 666, 332]);
  });

  test('usage errors are loud', () => {
    const s = createScheduler('ddim', SD15_SCHEDULER_CONFIG);
    expect(() => s.step(new Float32Array(4), 0, new Float32Array(4))).toThrow(/setTimesteps\(\) must be called/);
    expect(() => s.setTimesteps(0)).toThrow(SchedulerUsageError);
    expect(() => s.setTimesteps(1001)).toThrow(/\[1, 1000\]/);
    s.setTimesteps(10);
    expect(() => s.step(new Float32Array(4), 10, new Float32Array(4))).toThrow(/step index 10 is outside \[0, 9\]/);
    expect(() => s.step(new Float32Array(4), 0, new Float32Array(8))).toThrow(/latent sizes differ/);
  });
});
