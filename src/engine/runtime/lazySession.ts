// A session slot: created now, created at first use, or absent.
//
// An edit of a small model may never run its recording, sparse or region-decoder graphs (on the bundled
// model dense steps are cheaper than sparse ones, and 'auto' decodes in full): creating those six
// sessions made `fisedit edit` load in ~2× the time `fisedit generate` does. A lazy slot serialises and
// creates its graph when first asked for it, and a failure then is the same OrtSessionError, at that call.

import type { OrtModelSession } from './ortSession';

let createdLazilyMs = 0;

/**
 * Wall ms spent creating lazy sessions in this process so far. A pipeline that excludes model loading
 * from its own time (an edit's totalMs, as a generation's) excludes what it paid for these too.
 */
export function lazyCreationMs(): number {
  return createdLazilyMs;
}

export class SessionSlot {
  private session: OrtModelSession | null;
  private pending: Promise<OrtModelSession> | null = null;
  private make: (() => Promise<OrtModelSession>) | null;

  private constructor(session: OrtModelSession | null, make: (() => Promise<OrtModelSession>) | null) {
    this.session = session;
    this.make = make;
  }

  static ready(session: OrtModelSession): SessionSlot {
    return new SessionSlot(session, null);
  }

  /** Created by `make` at the first get(); `make` runs at most once while it succeeds. */
  static lazy(make: () => Promise<OrtModelSession>): SessionSlot {
    return new SessionSlot(null, make);
  }

  static absent(): SessionSlot {
    return new SessionSlot(null, null);
  }

  /** Created now or creatable on first use (false when absent or released). */
  get available(): boolean {
    return this.session !== null || this.make !== null || this.pending !== null;
  }

  /** The session if it was created already (no creation). */
  get created(): OrtModelSession | null {
    return this.session;
  }

  /** The session, created now when lazy; null when absent or released. */
  async get(): Promise<OrtModelSession | null> {
    if (this.session) return this.session;
    if (this.pending) return this.pending;
    if (!this.make) return null;
    const make = this.make;
    const t0 = performance.now();
    this.pending = make().finally(() => {
      createdLazilyMs += performance.now() - t0;
    });
    try {
      this.session = await this.pending;
      this.make = null;
      return this.session;
    } finally {
      // A failed creation may be tried again by the next get() (make is kept).
      this.pending = null;
    }
  }

  /** Frees the session if it was created; a lazy slot that never was is simply dropped. */
  async release(): Promise<void> {
    const pending = this.pending;
    this.make = null;
    this.pending = null;
    const s = this.session ?? (pending ? await pending.catch(() => null) : null);
    this.session = null;
    await s?.release();
  }
}
