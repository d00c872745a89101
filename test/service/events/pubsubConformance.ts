// The contract every PubSub passes: delivery after subscribe() resolves, per-topic isolation, fan-out,
// order per publisher, close semantics, bounded buffers that drop the oldest.
import { PubSub } from '../../../src/service/events/pubsub';

async function take<T>(it: AsyncIterator<T>, n: number, timeoutMs = 3000): Promise<T[]> {
  const out: T[] = [];
  const deadline = Date.now() + timeoutMs;
  while (out.length < n) {
    let timer: NodeJS.Timeout | undefined;
    const r = await Promise.race([it.next(), new Promise<'timeout'>((res) => (timer = setTimeout(() => res('timeout'), Math.max(1, deadline - Date.now()))))]);
    clearTimeout(timer);
    if (r === 'timeout') throw new Error(`timed out after ${out.length} of ${n} events`);
    if (r.done) break;
    out.push(r.value);
  }
  return out;
}

/** Resolves when publish→deliver has round-tripped (Redis delivers asynchronously). */
async function settle(ps: PubSub, topic: string): Promise<void> {
  const s = await ps.subscribe<{ marker: number }>(topic);
  await ps.publish(topic, { marker: 1 });
  await take(s, 1);
  s.close();
}

/** describeSuite: `describe`, or one that skips visibly when the implementation's server is absent (describeWithService). */
export function runPubSubConformance(name: string, make: () => Promise<PubSub>, describeSuite: (name: string, fn: () => void) => void = describe): void {
  describeSuite(`${name} (PubSub conformance)`, () => {
    let ps!: PubSub;
    const topic = (t: string) => `conformance-${process.pid}-${t}`;
    beforeAll(async () => {
      ps = await make();
    });
    afterAll(async () => {
      await ps?.close();
    });

    it('delivers in order to every subscriber of a topic and to no other topic', async () => {
      const a = await ps.subscribe<{ i: number }>(topic('a'));
      const a2 = await ps.subscribe<{ i: number }>(topic('a'));
      const b = await ps.subscribe<{ i: number }>(topic('b'));
      for (let i = 0; i < 20; i++) await ps.publish(topic('a'), { i, text: 'é✓', nested: { x: [1, 2] } });
      await ps.publish(topic('b'), { i: -1 });
      expect((await take(a, 20)).map((e) => e.i)).toEqual([...Array(20).keys()]);
      expect((await take(a2, 20)).map((e) => e.i)).toEqual([...Array(20).keys()]);
      expect(await take(b, 1)).toEqual([{ i: -1 }]);
      expect(await take(a, 1, 200).catch(() => [])).toEqual([]);
      a.close();
      a2.close();
      b.close();
    });

    it('payloads arrive JSON-equal', async () => {
      const s = await ps.subscribe(topic('json'));
      const payload = { s: 'x', n: 1.5, b: true, nil: null, arr: [{ k: 'v' }] };
      await ps.publish(topic('json'), payload);
      expect(await take(s, 1)).toEqual([payload]);
      s.close();
    });

    it('ends the iterator on close() and delivers nothing after', async () => {
      const s = await ps.subscribe(topic('close'));
      const pending = s.next();
      s.close();
      expect(await pending).toEqual({ value: undefined, done: true });
      await ps.publish(topic('close'), { late: true });
      expect(await s.next()).toEqual({ value: undefined, done: true });
      // for-await with break closes the subscription too.
      const t = await ps.subscribe<{ i: number }>(topic('close2'));
      await ps.publish(topic('close2'), { i: 1 });
      for await (const e of t) {
        expect(e.i).toBe(1);
        break;
      }
      expect(await t.next()).toEqual({ value: undefined, done: true });
    });

    it('keeps at most bufferSize pending events per slow subscriber, dropping the oldest', async () => {
      const slow = await ps.subscribe<{ i: number }>(topic('slow'), { bufferSize: 5 });
      for (let i = 0; i < 50; i++) await ps.publish(topic('slow'), { i });
      await settle(ps, topic('slow-marker')); // same connection, so everything published before has arrived
      const got = await take(slow, 5);
      expect(got.map((e) => e.i)).toEqual([45, 46, 47, 48, 49]);
      expect(slow.dropped).toBe(45);
      slow.close();
    });
  });
}
