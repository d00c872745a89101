// treeEvents(afterSeq)'s stream (issue 15 item 7): the replay, then live events, in seq order with no gap
// and no duplicate, even when concurrent commits publish out of order; PROGRESSED is not numbered.
import { sequencedStream } from '../../../src/api/resolvers/streams';
import { MemoryPubSub } from '../../../src/service/events/memoryPubSub';

interface Ev {
  type: string;
  seq: number;
}

async function take(it: AsyncIterator<Ev>, n: number): Promise<Ev[]> {
  const out: Ev[] = [];
  for (let i = 0; i < n; i++) out.push((await it.next()).value);
  return out;
}

it('replays, drops duplicates, fills gaps from the log, and passes PROGRESSED through', async () => {
  const pubsub = new MemoryPubSub();
  const log: Ev[] = Array.from({ length: 9 }, (_, i) => ({ type: 'STATE', seq: i + 1 }));
  const sub = await pubsub.subscribe<Ev>('t');
  const fills: [number, number][] = [];
  const it = sequencedStream(sub, {
    afterSeq: 2,
    initial: log.slice(2, 4), // 3, 4 from the replay
    seqOf: (e) => e.seq,
    unnumbered: (e) => e.type === 'PROGRESSED',
    fill: async (after, before) => (fills.push([after, before]), log.filter((e) => e.seq > after && e.seq < before)),
  });
  // Live: 4 again (committed before the replay read, published after), then 6 before 5 (two commits
  // racing), a PROGRESSED carrying seq 6, then 9 after a missed 7 and 8.
  for (const e of [log[3], log[5], log[4], { type: 'PROGRESSED', seq: 6 }, log[8]]) await pubsub.publish('t', e);
  const got = await take(it, 8);
  expect(got.map((e) => `${e.type === 'PROGRESSED' ? 'P' : ''}${e.seq}`)).toEqual(['3', '4', '5', '6', 'P6', '7', '8', '9']);
  expect(fills).toEqual([[4, 6], [6, 9]]);
  await it.return!();
  await pubsub.close();
});
