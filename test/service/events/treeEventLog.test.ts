// The tree event log (issue 15 item 7) on SQLite and PostgreSQL: numbered per tree from 1 where the
// event is committed, bounded to the last TREE_EVENT_LOG_SIZE, and a replay that cannot be complete says so.
import type { Database } from '../../../src/db/client';
import { MemoryPubSub } from '../../../src/service/events/memoryPubSub';
import { EventBus, EventsExpiredError, TREE_EVENT_LOG_SIZE } from '../../../src/service/events/treeEvents';
import { describeWithService, postgresProbe } from '../../helpers/services';
import { postgresTestDatabase, sqliteTestDatabase, TestDatabase } from '../../helpers/testDatabases';

function suite(make: () => Promise<TestDatabase>) {
  return () => {
    let tdb: TestDatabase;
    let database: Database;
    beforeAll(async () => {
      tdb = await make();
      database = await tdb.open();
    });
    afterAll(async () => {
      await database?.close();
      await tdb?.destroy();
    });

    it('numbers each tree’s events from 1, keeps the last 500, and refuses a replay from before them', async () => {
      const db = database.db;
      const bus = new EventBus(new MemoryPubSub(), db);
      const user = await db.user.create({ data: { name: `u${Date.now()}` } });
      const [t1, t2] = [await db.tree.create({ data: { title: 'a' } }), await db.tree.create({ data: { title: 'b' } })];
      const node = (treeId: string) => db.node.create({ data: { treeId, prompt: 'p', seed: 1, steps: 1, guidance: 1, scheduler: 'DDIM', width: 32, height: 32, model: 'm', createdById: user.id } });
      const [n1, n2] = [await node(t1.id), await node(t2.id)];
      const updatedAt = (await db.tree.findUniqueOrThrow({ where: { id: t1.id } })).updatedAt;
      const total = TREE_EVENT_LOG_SIZE + 7;
      for (let i = 0; i < total; i++) await bus.commitTree('CREATED', n1);
      await bus.commitTree('STARTED', n2);
      expect((await db.tree.findUniqueOrThrow({ where: { id: t2.id } })).eventSeq).toBe(1);
      const t1Row = await db.tree.findUniqueOrThrow({ where: { id: t1.id } });
      expect(t1Row.eventSeq).toBe(total);
      expect(t1Row.updatedAt).toEqual(updatedAt); // numbering an event is not a change of the tree
      expect(await db.treeEvent.count({ where: { treeId: t1.id } })).toBe(TREE_EVENT_LOG_SIZE);
      const r = await bus.replay(t1.id, total - 3);
      expect(r.events.map((e) => e.seq)).toEqual([total - 2, total - 1, total]);
      expect((await bus.replay(t1.id, 7)).events).toHaveLength(TREE_EVENT_LOG_SIZE);
      await expect(bus.replay(t1.id, 6)).rejects.toThrow(EventsExpiredError);
      await expect(bus.replay(t1.id, 0)).rejects.toMatchObject({ code: 'CONFLICT', details: { reason: 'EVENTS_EXPIRED', oldestSeq: 8 } });
      expect((await bus.replay(t1.id, total)).events).toEqual([]);
    });
  };
}

describe('tree event log on SQLite', suite(async () => sqliteTestDatabase()));
describeWithService(postgresProbe(), 'tree event log on PostgreSQL', suite(postgresTestDatabase));
