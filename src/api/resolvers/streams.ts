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
