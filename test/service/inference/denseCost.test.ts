// The dense estimate behind NodeStats.speedup (issue 15 item 6): measured warm dense runs only.
import { DenseCostModel } from '../../../src/service/inference/denseCost';

const run = (steps: number, denoiseMs: number, totalMs: number, width = 64, guidance = 7.5) => ({ width, height: 64, guidance, steps, denoiseMs, totalMs });

it('skips the cold first run of each kind and estimates fixed + steps × per-step from the medians', () => {
  const m = new DenseCostModel();
  expect(m.record(run(20, 900, 1300))).toBe(false); // cold: onnxruntime's first run at this shape
  expect(m.estimate(64, 64, 7.5, 20)).toBeNull();
  expect(m.record(run(20, 400, 500))).toBe(true); // 20 ms/step, 100 ms fixed
  expect(m.estimate(64, 64, 7.5, 20)).toBeCloseTo(500, 9);
  expect(m.estimate(64, 64, 7.5, 50)).toBeCloseTo(100 + 50 * 20, 9);
  m.record(run(10, 300, 420)); // 30 ms/step, 120 fixed
  m.record(run(40, 1000, 1110)); // 25 ms/step, 110 fixed
  expect(m.estimate(64, 64, 7.5, 10)).toBeCloseTo(110 + 10 * 25, 9);
});

it('keeps sizes and guidance batches apart', () => {
  const m = new DenseCostModel();
  m.record(run(10, 100, 150));
  m.record(run(10, 100, 150));
  expect(m.estimate(64, 64, 7.5, 10)).toBeCloseTo(150, 9);
  expect(m.estimate(128, 64, 7.5, 10)).toBeNull();
  expect(m.estimate(64, 64, 1, 10)).toBeNull();
});
