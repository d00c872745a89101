// In-process PubSub: the default for a single server.
import { BufferedSubscription, DEFAULT_BUFFER, PubSub, Subscription } from './pubsub';

export class MemoryPubSub implements PubSub {
  private readonly topics = new Map<string, Set<BufferedSubscription<unknown>>>();

  async publish(topic: string, payload: unknown): Promise<void> {
    const subs = this.topics.get(topic);
    if (!subs) return;
    for (const s of subs) s.push(payload);
  }

  async subscribe<T>(topic: string, opts: { bufferSize?: number } = {}): Promise<Subscription<T>> {
    let subs = this.topics.get(topic);
    if (!subs) {
      subs = new Set();
      this.topics.set(topic, subs);
    }
    const set = subs;
    const sub: BufferedSubscription<unknown> = new BufferedSubscription<unknown>(opts.bufferSize ?? DEFAULT_BUFFER, () => {
      set.delete(sub);
      if (set.size === 0) this.topics.delete(topic);
    });
    set.add(sub);
    return sub as BufferedSubscription<T>;
  }

  /** Live subscriptions on a topic (tests, metrics). */
  subscriberCount(topic: string): number {
    return this.topics.get(topic)?.size ?? 0;
  }

  async close(): Promise<void> {
    for (const subs of [...this.topics.values()]) for (const s of [...subs]) s.close();
    this.topics.clear();
  }
}
