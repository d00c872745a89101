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
// size, guidance); once the current run has shown a few steps its own rate (the median of its latest
// step intervals) takes over: an edit's rate depends on its mask. Nothing measured yet → null (the API
// says "unknown"), never a guess from the start-up time; without a finished run the tail is taken as one
// step.

export interface StepSample {
  /** Steps done, 1…total. */
  step: number;
  totalSteps: number;
  /** ms on one clock (the runner's), any origin. */
  at: number;
}

/** Samples kept per kind. */
const MAX_SAMPLES = 9;
/** Intervals of the current run from which its own rate replaces the history's (and, without history, the fewest it needs). */
const OWN_RATE_AFTER = 3;
/** The current run's rate is the median of its latest intervals (the first ones pay warm-up). */
const RECENT_INTERVALS = 5;

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** One run's step times, as they arrive. */
export class RunClock {
  first: StepSample | null = null;
  last: StepSample | null = null;
  /** ms per step of each interval between consecutive step samples. */
  readonly intervals: number[] = [];

  step(s: StepSample): void {
    if (s.step < 1) return;
    if (!this.first) this.first = s;
    if (this.last && s.step > this.last.step) this.intervals.push((s.at - this.last.at) / (s.step - this.last.step));
    if (!this.last || s.step > this.last.step) this.last = s;
  }

  /** ms per step of this run (median of its latest intervals), or null before two steps. */
  rate(): { perStep: number; intervals: number } | null {
    if (this.intervals.length === 0) return null;
    return { perStep: median(this.intervals.slice(-RECENT_INTERVALS)), intervals: this.intervals.length };
  }

  /** ms per step over the whole run, robust to its slow first steps (median of every interval). */
  overall(): number | null {
    return this.intervals.length ? median(this.intervals) : null;
  }
}

export class EtaModel {
  private readonly samples = new Map<string, { perStep: number[]; tail: number[] }>();

  /** A run of this kind finished at `finishedAt` (same clock as its steps). */
  finished(kind: string, run: RunClock, finishedAt: number): void {
    const perStep = run.overall();
    if (perStep === null || !run.last) return;
    const s = this.samples.get(kind) ?? { perStep: [], tail: [] };
    s.perStep.push(perStep);
    s.tail.push(Math.max(0, finishedAt - run.last.at));
    if (s.perStep.length > MAX_SAMPLES) (s.perStep.shift(), s.tail.shift());
    this.samples.set(kind, s);
  }

  /** ms left for a run of this kind now at `now` (its last step sample), or null when nothing is measured. */
  eta(kind: string, run: RunClock, now: StepSample): number | null {
    const hist = this.samples.get(kind);
    const own = run.rate();
    const histPerStep = hist ? median(hist.perStep) : null;
    // Without history the run's own rate once it has a few intervals (its first ones pay warm-up).
    const perStep = own && own.intervals >= OWN_RATE_AFTER ? own.perStep : histPerStep;
    if (perStep === null) return null;
    const tail = hist ? median(hist.tail) : perStep;
    return Math.max(0, (now.totalSteps - now.step) * perStep + tail);
  }
}
