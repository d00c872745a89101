// What a dense generation costs on this server, from dense runs measured here: the `speedup` of an edit
// is against this estimate, not against its parent's first run (which pays onnxruntime's warm-up: the
// first run of a session at a shape allocates and plans, 10–35 % slower on the bundled model).
//
//   estimate(steps) = median(fixed) + steps · median(per-step)
//   per-step = denoise ms / steps, fixed = total − denoise (text encoding, latents, decode)
//
// Kept per image size and guidance batch (guidance > 1 runs the UNet on two rows). The first dense run
// of each kind in a process is the cold one and is not a sample; no sample → no estimate (null).

export interface DenseRunTiming {
  width: number;
  height: number;
  guidance: number;
  steps: number;
  /** ms spent in the denoising loop. */
  denoiseMs: number;
  /** ms of the whole run. */
  totalMs: number;
}

/** Samples kept per kind: enough for a stable median, few enough to follow a change of load. */
const MAX_SAMPLES = 9;

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

export class DenseCostModel {
  private readonly seen = new Set<string>();
  private readonly samples = new Map<string, { perStep: number[]; fixed: number[] }>();

  private static key(width: number, height: number, guidance: number): string {
    return `${width}x${height}:${guidance > 1 ? 'cfg' : 'plain'}`;
  }

  /** A finished dense run. Returns whether it became a sample (false for the cold first run of its kind). */
  record(t: DenseRunTiming): boolean {
    if (!(t.steps > 0) || !(t.denoiseMs >= 0) || !(t.totalMs >= t.denoiseMs)) return false;
    const key = DenseCostModel.key(t.width, t.height, t.guidance);
    if (!this.seen.has(key)) {
      this.seen.add(key);
      return false;
    }
    const s = this.samples.get(key) ?? { perStep: [], fixed: [] };
    s.perStep.push(t.denoiseMs / t.steps);
    s.fixed.push(t.totalMs - t.denoiseMs);
    if (s.perStep.length > MAX_SAMPLES) (s.perStep.shift(), s.fixed.shift());
    this.samples.set(key, s);
    return true;
  }

  /** ms a dense run of these settings costs here, or null when no warm run of that kind was measured. */
  estimate(width: number, height: number, guidance: number, steps: number): number | null {
    const s = this.samples.get(DenseCostModel.key(width, height, guidance));
    if (!s || s.perStep.length === 0) return null;
    return median(s.fixed) + steps * median(s.perStep);
  }
}
