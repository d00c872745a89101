// ETA from measured step times (issue 15 item 5): a run's start-up (text encoding, the first step's
// warm-up) must not be spread over the remaining steps, which made the first ETA ~4.5× too high.
import { EtaModel, RunClock } from '../../../src/service/jobs/etaModel';

/** A synthetic run: start-up `startup` ms before step 1, then `perStep` ms per step, then `tail` ms. */
function run(model: EtaModel | null, kind: string, total: number, startup: number, perStep: number, tail: number) {
  const clock = new RunClock();
  const etas: { step: number; eta: number | null; truth: number }[] = [];
  const end = startup + (total - 1) * perStep + tail;
  for (let s = 1; s <= total; s++) {
    const at = startup + (s - 1) * perStep;
    const sample = { step: s, totalSteps: total, at };
    clock.step(sample);
    etas.push({ step: s, eta: model ? model.eta(kind, clock, sample) : null, truth: end - at });
  }
  model?.finished(kind, clock, end);
  return etas;
}

it('uses the per-step time and tail of earlier runs of the same kind from the first step on', () => {
  const m = new EtaModel();
  // First run of the kind: nothing measured at step 1 (unknown, not a guess from the start-up).
  const first = run(m, 'generate:32x32:cfg', 20, 400, 20, 30);
  expect(first[0].eta).toBeNull();
  // Its own rate from 3 intervals on (step 4): remaining steps × 20 ms, the tail taken as one step.
  expect(first[2].eta).toBeNull();
  expect(first[3].eta).toBeCloseTo(16 * 20 + 20, 6);
  // The next run of that kind: exact from step 1 (remaining steps × 20 + the 30 ms tail).
  const second = run(m, 'generate:32x32:cfg', 20, 400, 20, 30);
  for (const e of second) expect(e.eta).toBeCloseTo(e.truth, 6);
  // The old estimate, elapsed / step × remaining, at step 1 of the same run: (400 / 1) × 19.
  const old = (400 / 1) * 19;
  expect(old / second[0].truth).toBeGreaterThan(15);
});

it('keeps kinds apart, and lets a run’s own rate take over after a few steps', () => {
  const m = new EtaModel();
  run(m, 'generate', 10, 100, 10, 5);
  run(m, 'edit:AUTO', 10, 100, 40, 5);
  const g = run(m, 'generate', 10, 100, 10, 5);
  expect(g[0].eta).toBeCloseTo(g[0].truth, 6);
  // An edit with a different rate than its history (a smaller mask): the history first, its own rate
  // from the 4th step (3 intervals) on.
  const e = run(m, 'edit:AUTO', 10, 100, 20, 5);
  expect(e[0].eta).toBeCloseTo(9 * 40 + 5, 6);
  expect(e[3].eta).toBeCloseTo(e[3].truth, 6);
});

it('does not let a slow first step of a cold run set the rate', () => {
  const m = new EtaModel();
  const clock = new RunClock();
  // Steps 1→2 take 300 ms (warm-up), then 20 ms each.
  const at = [0, 300, 320, 340, 360, 380];
  let eta: number | null = null;
  at.forEach((t, i) => {
    const s = { step: i + 1, totalSteps: 20, at: t };
    clock.step(s);
    eta = m.eta('cold', clock, s);
  });
  // Latest 5 intervals: 300, 20, 20, 20, 20 → median 20; 14 steps left + one step of tail.
  expect(eta).toBeCloseTo(14 * 20 + 20, 6);
  m.finished('cold', clock, 400);
  const next = new RunClock();
  const s1 = { step: 1, totalSteps: 20, at: 0 };
  next.step(s1);
  expect(m.eta('cold', next, s1)).toBeCloseTo(19 * 20 + 20, 6);
});
