// Topic-based publish/subscribe between the job runner and subscribers (GraphQL subscriptions).
// In one process: MemoryPubSub. Several API processes: RedisPubSub. Both pass
// test/service/events/pubsubConformance.ts. Events are hints for live views, delivered at most once
// (Redis Pub/Sub semantics): clients re-read authoritative state from the API after a reconnect.
//
// Each subscription has a bounded buffer; when a slow subscriber falls behind, the OLDEST pending events
// are dropped (previews are latest-wins), so one slow socket never grows memory without bound.

export interface Subscription<T> extends AsyncIterableIterator<T> {
  /** Events dropped because this subscriber fell behind. */
  readonly dropped: number;
  /** Stops delivery and ends the iterator. */
  close(): void;
}

export interface PubSub {
  /** Payloads must be JSON-serialisable (they may cross a network). */
  publish(topic: string, payload: unknown): Promise<void>;
  /** Resolves once the subscription is live: every publish that starts afterwards is delivered. */
  subscribe<T>(topic: string, opts?: { bufferSize?: number }): Promise<Subscription<T>>;
  close(): Promise<void>;
}

export const DEFAULT_BUFFER = 256;

/** A push→pull queue: producers push, the async iterator pulls; bounded, drop-oldest. */
export class BufferedSubscription<T> implements Subscription<T> {
  private readonly items: T[] = [];
  private readonly waiting: ((r: IteratorResult<T>) => void)[] = [];
  private done = false;
  dropped = 0;

  constructor(private readonly bufferSize: number, private readonly onClose: () => void) {}

  push(item: T): void {
    if (this.done) return;
    const w = this.waiting.shift();
    if (w) {
      w({ value: item, done: false });
      return;
    }
    if (this.items.length >= this.bufferSize) {
      this.items.shift();
      this.dropped++;
    }
    this.items.push(item);
  }

  next(): Promise<IteratorResult<T>> {
    if (this.items.length > 0) return Promise.resolve({ value: this.items.shift() as T, done: false });
    if (this.done) return Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  return(): Promise<IteratorResult<T>> {
    this.close();
    return Promise.resolve({ value: undefined, done: true });
  }

  throw(e?: unknown): Promise<IteratorResult<T>> {
    this.close();
    return Promise.reject(e);
  }

  close(): void {
    if (this.done) return;
    this.done = true;
    this.items.length = 0;
    for (const w of this.waiting.splice(0)) w({ value: undefined, done: true });
    this.onClose();
  }

  [Symbol.asyncIterator](): this {
    return this;
  }
}
