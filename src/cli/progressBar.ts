// Step progress on stderr. "bar": one redrawn line, "[#########-----------]  9/20 steps  1.2 s  ETA 1.5 s",
// used by default when stderr is a terminal; "lines": one plain line per step ("step 9/20"), for logs and
// supervising processes; "none": silent (the default when stderr is not a terminal).

export interface ProgressStream {
  write(s: string): unknown;
  isTTY?: boolean;
}

export type ProgressMode = 'bar' | 'lines' | 'none';

export function defaultProgressMode(out: ProgressStream): ProgressMode {
  return out.isTTY ? 'bar' : 'none';
}

export class ProgressBar {
  private readonly start = performance.now();
  private drawn = false;

  constructor(
    private readonly out: ProgressStream,
    private readonly label: string,
    private readonly mode: ProgressMode = defaultProgressMode(out),
    private readonly width = 24,
  ) {}

  update(done: number, total: number): void {
    if (this.mode === 'none') return;
    if (this.mode === 'lines') {
      this.out.write(`step ${done}/${total}\n`);
      return;
    }
    const frac = total > 0 ? done / total : 1;
    const filled = Math.round(frac * this.width);
    const elapsed = (performance.now() - this.start) / 1000;
    const eta = done > 0 ? (elapsed / done) * (total - done) : NaN;
    const etaText = Number.isFinite(eta) ? `  ETA ${eta.toFixed(1)} s` : '';
    this.out.write(`\r[${'#'.repeat(filled)}${'-'.repeat(this.width - filled)}] ${String(done).padStart(String(total).length)}/${total} ${this.label}  ${elapsed.toFixed(1)} s${etaText}\x1b[K`);
    this.drawn = true;
  }

  finish(): void {
    if (this.drawn) this.out.write('\n');
    this.drawn = false;
  }
}
