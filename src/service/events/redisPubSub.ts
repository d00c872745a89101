// PubSub over Redis Pub/Sub, for several API processes sharing one queue and database. Two connections
// (a connection in subscriber mode cannot publish). Channels are prefixed so one Redis can serve several
// deployments. Delivery is at most once, as with Redis Pub/Sub itself.
import Redis from 'ioredis';
import { BufferedSubscription, DEFAULT_BUFFER, PubSub, Subscription } from './pubsub';

export interface RedisPubSubOptions {
  url: string;
  /** Channel prefix (default "fisedit:"). */
  prefix?: string;
}

export class RedisPubSub implements PubSub {
  private readonly pub: Redis;
  private readonly sub: Redis;
  private readonly prefix: string;
  private readonly channels = new Map<string, Set<BufferedSubscription<unknown>>>();
  /** In-flight SUBSCRIBE per channel, so concurrent subscribers wait for the same acknowledgement. */
  private readonly subscribing = new Map<string, Promise<unknown>>();

  constructor(opts: RedisPubSubOptions) {
    this.prefix = opts.prefix ?? 'fisedit:';
    // Fail fast instead of queueing commands forever while Redis is down.
    const common = { lazyConnect: false, maxRetriesPerRequest: 3, enableOfflineQueue: true };
    this.pub = new Redis(opts.url, common);
    this.sub = new Redis(opts.url, common);
    this.sub.on('message', (channel: string, message: string) => {
      const subs = this.channels.get(channel);
      if (!subs) return;
      let payload: unknown;
      try {
        payload = JSON.parse(message);
      } catch {
        return; // not ours
      }
      for (const s of subs) s.push(payload);
    });
    // ioredis reconnects by itself; errors are logged by the caller's process handler, not thrown here.
    this.pub.on('error', () => undefined);
    this.sub.on('error', () => undefined);
  }

  async publish(topic: string, payload: unknown): Promise<void> {
    await this.pub.publish(this.prefix + topic, JSON.stringify(payload));
  }

  async subscribe<T>(topic: string, opts: { bufferSize?: number } = {}): Promise<Subscription<T>> {
    const channel = this.prefix + topic;
    let subs = this.channels.get(channel);
    if (!subs) {
      subs = new Set();
      this.channels.set(channel, subs);
      this.subscribing.set(channel, this.sub.subscribe(channel));
    }
    const set = subs;
    const sub: BufferedSubscription<unknown> = new BufferedSubscription<unknown>(opts.bufferSize ?? DEFAULT_BUFFER, () => {
      set.delete(sub);
      if (set.size === 0 && this.channels.get(channel) === set) {
        this.channels.delete(channel);
        this.subscribing.delete(channel);
        void this.sub.unsubscribe(channel).catch(() => undefined);
      }
    });
    set.add(sub);
    try {
      await this.subscribing.get(channel);
    } catch (e) {
      sub.close();
      throw e;
    }
    return sub as BufferedSubscription<T>;
  }

  async close(): Promise<void> {
    for (const subs of [...this.channels.values()]) for (const s of [...subs]) s.close();
    this.channels.clear();
    await Promise.allSettled([this.pub.quit(), this.sub.quit()]);
  }
}
