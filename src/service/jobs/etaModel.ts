// Time-to-finish estimates from measured step times of the same kind of job.
//
// A run's progress is: start-up (text encoding, and the first step, which pays onnxruntime's warm-up),
// then steps at a steady rate, then a tail after the last step (decode, storing the node). Dividing the
// elapsed time by the steps done counts the start-up in every remaining step: on the bundled model the
// first ETA came out ~4.5× too high. Here:
//
//   eta = (totalSteps − step) · perStep + tail
//
// perStep and tail are the medians of earlier finished runs of this kind (generation or edit strategy,
// size, guidance); once the current run has shown a few steps its own rate takes over (an edit's rate
// depends on its mask). Nothing measured yet → null (the API says "unknown"), never a guess from the
// start-up time.

export interface StepSample {
  /** Steps done, 1…total. */
  step: number;
  totalSteps: number;
  /** ms on one clock (the runner's), any origin. */
  at: number;
}

/** Samples kept per kind. */
const MAX_SAMPLES = 9;
/** Steps of the current run (after its first) from which its own rate replaces the history's. */
const OWN_RATE_AFTER = 3;

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** One run's step times, as they arrive. */
export class RunClock {
  first: StepSample | null = null;
  last: StepSample | null = null;

  step(s: StepSample): void {
    if (s.step < 1) return;
    if (!this.first) this.first = s;
    if (!this.last || s.step > this.last.step) this.last = s;
  }

  /** ms per step of this run after its first step, or null before two steps. */
  rate(): { perStep: number; intervals: number } | null {
    if (!this.first || !this.last || this.last.step <= this.first.step) return null;
    const intervals = this.last.step - this.first.step;
    return { perStep: (this.last.at - this.first.at) / intervals, intervals };
  }
}

export class EtaModel {
  private readonly samples = new Map<string, { perStep: number[]; tail: number[] }>();

  /** A run of this kind finished at `finishedAt` (same clock as its steps). */
  finished(kind: string, run: RunClock, finishedAt: number): void {
    const r = run.rate();
    if (!r || !run.last) return;
    const s = this.samples.get(kind) ?? { perStep: [], tail: [] };
    s.perStep.push(r.perStep);
    s.tail.push(Math.max(0, finishedAt - run.last.at));
    if (s.perStep.length > MAX_SAMPLES) (s.perStep.shift(), s.tail.shift());
    this.samples.set(kind, s);
  }

  /** ms left for a run of this kind now at `now` (its last step sample), or null when nothing is measured. */
  eta(kind: string, run: RunClock, now: StepSample): number | null {
    const hist = this.samples.get(kind);
    const own = run.rate();
    const histPerStep = hist ? median(hist.perStep) : null;
    const perStep = own && (own.intervals >= OWN_RATE_AFTER || histPerStep === null) ? own.perStep : histPerStep;
    if (perStep === null) return null;
    const tail = hist ? median(hist.tail) : perStep;
    return Math.max(0, (now.totalSteps - now.step) * perStep + tail);
  }
}
