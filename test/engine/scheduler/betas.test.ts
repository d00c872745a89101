import {
  computeAlphasCumprod, computeBetas, computeNoiseSchedule, fmaF32, interpOnIndex, npLinspace, roundHalfEven, torchLinspaceF32,
} from '../../../src/engine/scheduler/betas';
import { parseNoiseScheduleConfig, SchedulerConfigError } from '../../../src/engine/scheduler/config';
import { alphasCumprod64, SD15_SCHEDULER_CONFIG } from './reference';

const sd15 = parseNoiseScheduleConfig(SD15_SCHEDULER_CONFIG, 'leading', 'ddim');

describe('noise schedule (SD 1.5 scaled_linear)', () => {
  const { betas, alphasCumprod, sigmaTable } = computeNoiseSchedule(sd15);

  test('agrees with the float64 formulas to float32 precision', () => {
    const ref = alphasCumprod64();
    let worst = 0;
    for (let i = 0; i < 1000; i++) worst = Math.max(worst, Math.abs(alphasCumprod[i] - ref[i]) / ref[i]);
    // float32 rounding of β and of each prefix: relative error stays well below 1e-5 over 1000 products.
    expect(worst).toBeLessThan(1e-5);
    expect(worst).toBeGreaterThan(0); // it is float32, not float64
  });

  test('pins the values torch 1.13 computes on CPU (bit-exact)', () => {
    // From torch.linspace(√0.00085, √0.012, 1000, dtype=float32)**2 and torch.cumprod(1 − β) on this
    // machine's default AVX2 dispatch. β[42], β[43] differ by 1 ulp from a naive float32 linspace.
    expect(betas[41]).toBe(0.0010532644810155034);
    expect(betas[42]).toBe(0.001058494090102613);
    expect(betas[43]).toBe(0.0010637366212904453);
    expect(betas[500]).toBe(0.004814954474568367);
    expect(betas[998]).toBe(0.01198237482458353);
    expect(alphasCumprod[0]).toBe(0.9991499781608582);
    expect(alphasCumprod[1]).toBe(0.9982960224151611);
    expect(alphasCumprod[500]).toBe(0.2763324975967407);
    expect(alphasCumprod[999]).toBe(0.0046600960195064545);
    expect(sigmaTable[0]).toBe(0.029167532920837402);
    expect(sigmaTable[999]).toBe(14.614645004272461);
  });

  test('linear schedule pins torch values where the unfused vector lanes round differently', () => {
    const lin = computeBetas({ ...sd15, betaSchedule: 'linear', betaStart: 0.0001, betaEnd: 0.02 });
    expect(lin[7]).toBe(0.00023943945416249335);
    expect(lin[31]).toBe(0.000717517570592463);
    expect(lin[0]).toBe(Math.fround(0.0001));
    expect(lin[999]).toBe(Math.fround(0.02));
  });

  test('cumprod accumulates in float64 and stores float32 prefixes', () => {
    const b = new Float32Array([0.5, 0.25, 0.1]);
    const ac = computeAlphasCumprod(b);
    expect(Array.from(ac)).toEqual([0.5, 0.375, Math.fround(0.375 * Math.fround(0.9))]);
  });

  test('trained_betas are used as given', () => {
    const raw = { ...SD15_SCHEDULER_CONFIG, num_train_timesteps: 3, trained_betas: [0.1, 0.2, 0.3] };
    const b = computeBetas(parseNoiseScheduleConfig(raw, 'leading', 'ddim'));
    expect(Array.from(b)).toEqual([0.1, 0.2, 0.3].map(Math.fround));
  });
});

describe('numeric helpers', () => {
  test('fmaF32 rounds once, even where float64 lands on a float32 midpoint', () => {
    // a·b = 2^-24 − 2^-70, c = 1 + 2^-23: the exact sum lies just below the midpoint 1 + 3·2^-24, so FMA
    // gives 1 + 2^-23, while rounding through float64 would hit the midpoint and round to even, 1 + 2^-22.
    const a = 2 ** -24 * (1 + 2 ** -23);
    const b = 1 - 2 ** -23;
    const c = 1 + 2 ** -23;
    expect(Math.fround(a * b + c)).toBe(1 + 2 ** -22);
    expect(fmaF32(a, b, c)).toBe(1 + 2 ** -23);
    expect(fmaF32(3, 0.5, 0.25)).toBe(1.75);
  });

  test('torchLinspaceF32 is exact at both ends and monotone', () => {
    const l = torchLinspaceF32(0, 1, 101);
    expect(l[0]).toBe(0);
    expect(l[100]).toBe(1);
    for (let i = 1; i < 101; i++) expect(l[i]).toBeGreaterThan(l[i - 1]);
    expect(Math.abs(l[37] - 0.37)).toBeLessThan(1e-7);
  });

  test('roundHalfEven follows numpy', () => {
    expect([0.5, 1.5, 2.5, -0.5, -1.5, 499.5, 2.4, 2.6].map(roundHalfEven)).toEqual([0, 2, 2, -0, -2, 500, 2, 3]);
  });

  test('npLinspace ends exactly at stop', () => {
    const l = npLinspace(0, 999, 21);
    expect(l[20]).toBe(999);
    expect(l[10]).toBeCloseTo(499.5, 12);
  });

  test('interpOnIndex interpolates linearly and refuses out-of-range points', () => {
    const fp = [0, 10, 30];
    expect(interpOnIndex(0.25, fp)).toBe(2.5);
    expect(interpOnIndex(1.5, fp)).toBe(20);
    expect(interpOnIndex(2, fp)).toBe(30);
    expect(() => interpOnIndex(2.5, fp)).toThrow(RangeError);
  });
});

describe('config parsing', () => {
  test('refuses non-epsilon prediction types with the file and the reason', () => {
    expect(() => parseNoiseScheduleConfig({ ...SD15_SCHEDULER_CONFIG, prediction_type: 'v_prediction' }, 'leading', 'ddim')).toThrow(
      /scheduler_config\.json: ddim supports prediction_type "epsilon" only \(got "v_prediction"\)/,
    );
  });

  test('refuses unknown beta schedules, bad numbers and zero-SNR rescaling', () => {
    expect(() => parseNoiseScheduleConfig({ beta_schedule: 'squaredcos_cap_v2' }, 'leading', 'ddim')).toThrow(SchedulerConfigError);
    expect(() => parseNoiseScheduleConfig({ beta_start: '0.1' }, 'leading', 'ddim')).toThrow(/"beta_start" must be a number/);
    expect(() => parseNoiseScheduleConfig({ rescale_betas_zero_snr: true }, 'leading', 'ddim')).toThrow(/rescale_betas_zero_snr/);
    expect(() => parseNoiseScheduleConfig({ timestep_spacing: 'karras' }, 'leading', 'ddim')).toThrow(/timestep_spacing/);
  });

  test('each class default applies only when the key is missing', () => {
    expect(parseNoiseScheduleConfig(SD15_SCHEDULER_CONFIG, 'linspace', 'euler').timestepSpacing).toBe('linspace');
    expect(parseNoiseScheduleConfig({ ...SD15_SCHEDULER_CONFIG, timestep_spacing: 'trailing' }, 'linspace', 'euler').timestepSpacing).toBe('trailing');
  });
});
