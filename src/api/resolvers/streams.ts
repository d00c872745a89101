// Subscription streams as hand-written async iterators rather than async generators: an async
// generator suspended in `await sub.next()` cannot be stopped by return() until another event arrives,
// so an idle unsubscribed client would hold its topic forever. Here return() closes the topic at once.
import type { Subscription } from '../../service/events/pubsub';

export interface StreamOptions<T> {
  /** Sent before any live event (the current state). */
  initial?: T[];
  /** Live events failing this are skipped (e.g. older than the initial state). */
  keep?: (e: T) => boolean;
  /** The stream ends right after delivering an event for which this is true. */
  last?: (e: T) => boolean;
}

export function stream<T>(sub: Subscription<T>, opts: StreamOptions<T> = {}): AsyncIterableIterator<T> {
  const initial = [...(opts.initial ?? [])];
  let ended = false;
  const end = (): IteratorResult<T> => {
    ended = true;
    sub.close();
    return { value: undefined, done: true };
  };
  const deliver = (value: T): IteratorResult<T> => {
    if (opts.last?.(value)) {
      // Deliver this one; the next call ends the stream.
      ended = true;
      sub.close();
    }
    return { value, done: false };
  };
  const it: AsyncIterableIterator<T> = {
    async next(): Promise<IteratorResult<T>> {
      if (initial.length > 0) return deliver(initial.shift() as T);
      for (;;) {
        if (ended) return { value: undefined, done: true };
        const r = await sub.next();
        if (r.done) return end();
        if (opts.keep && !opts.keep(r.value)) continue;
        return deliver(r.value);
      }
    },
    async return(): Promise<IteratorResult<T>> {
      return end();
    },
    async throw(e?: unknown): Promise<IteratorResult<T>> {
      end();
      throw e;
    },
    [Symbol.asyncIterator]() {
      return it;
    },
  };
  return it;
}

export interface SequencedOptions<T> {
  /** The last seq the client has (its afterSeq, then each state event delivered). */
  afterSeq: number;
  /** Already read from the log: delivered first, in order. */
  initial: T[];
  seqOf: (e: T) => number;
  /** Best-effort events: not numbered (they carry the last state seq), delivered as they come. */
  unnumbered: (e: T) => boolean;
  /** Numbered events with afterSeq < seq < beforeSeq, from the log, to fill a gap in the live order. */
  fill: (afterSeq: number, beforeSeq: number) => Promise<T[]>;
  last?: (e: T) => boolean;
}

/**
 * A stream of numbered events without gaps or duplicates: the log's replay, then live events. A live
 * numbered event at or below the last delivered seq is a duplicate (it was in the replay) and is dropped;
 * one above last + 1 means events were published out of order (concurrent commits) or missed, and the
 * gap is read from the log first (events are logged before they are published).
 */
export function sequencedStream<T>(sub: Subscription<T>, opts: SequencedOptions<T>): AsyncIterableIterator<T> {
  const pending: T[] = [];
  let lastSeq = opts.afterSeq;
  const numbered = (e: T) => !opts.unnumbered(e);
  const admit = (e: T) => {
    if (numbered(e)) lastSeq = Math.max(lastSeq, opts.seqOf(e));
  };
  for (const e of opts.initial) pending.push(e);
  const it = stream(
    {
      get dropped() {
        return sub.dropped;
      },
      close: () => sub.close(),
      [Symbol.asyncIterator]() {
        return this;
      },
      return: () => sub.return!(),
      throw: (e?: unknown) => sub.throw!(e),
      async next(): Promise<IteratorResult<T>> {
        for (;;) {
          if (pending.length > 0) {
            const e = pending.shift() as T;
            admit(e);
            return { value: e, done: false };
          }
          const r = await sub.next();
          if (r.done) return r;
          const e = r.value;
          const seq = opts.seqOf(e);
          if (numbered(e) && seq <= lastSeq) continue; // already delivered (replay or duplicate)
          if (seq > lastSeq + (numbered(e) ? 1 : 0)) {
            // Missed or out of order: the log has everything up to this event.
            const gap = await opts.fill(lastSeq, numbered(e) ? seq : seq + 1);
            pending.push(...gap.filter((g) => opts.seqOf(g) > lastSeq));
          }
          pending.push(e);
        }
      },
    } as Subscription<T>,
    { last: opts.last },
  );
  return it;
}
