// The queue's order beyond priority + FIFO, on both databases: users take turns at equal priority
// (round-robin), an edit's job waits for its parent, and a parent that FAILED or was CANCELLED fails its
// waiting edits with the reason (issue 15 item 0, issue 16 item 6).
import type { Database } from '../../../src/db/client';
import { PrismaJobQueue } from '../../../src/service/jobs/jobQueue';
import { postgresProbe } from '../../helpers/services';
import { describeWithService } from '../../helpers/services';
import { postgresTestDatabase, sqliteTestDatabase, TestDatabase } from '../../helpers/testDatabases';

function suite(make: () => Promise<TestDatabase>) {
  return () => {
    let tdb: TestDatabase;
    let database: Database;
    let queue: PrismaJobQueue;
    let users: Record<string, string>;
    let treeId: string;

    beforeAll(async () => {
      tdb = await make();
      database = await tdb.open();
      users = {};
      for (const name of ['ann', 'bob', 'cat']) users[name] = (await database.db.user.create({ data: { name } })).id;
      treeId = (await database.db.tree.create({ data: { title: 't' } })).id;
    });
    afterAll(async () => {
      await database?.close();
      await tdb?.destroy();
    });
    beforeEach(async () => {
      await database.db.node.deleteMany({});
      queue = new PrismaJobQueue(database.db);
    });

    async function enqueue(user: string, prompt: string, opts: { priority?: number; parentId?: string; status?: 'QUEUED' | 'SUCCEEDED' | 'FAILED' | 'CANCELLED' } = {}) {
      const status = opts.status ?? 'QUEUED';
      return database.db.node.create({
        data: {
          treeId, prompt, seed: 1, steps: 1, guidance: 1, scheduler: 'DDIM', width: 32, height: 32, model: 'm', createdById: users[user], parentId: opts.parentId ?? null, status,
          job: { create: { priority: opts.priority ?? 0, status } },
        },
      });
    }

    async function drain(): Promise<string[]> {
      const order: string[] = [];
      for (let c = await queue.claimNext(); c; c = await queue.claimNext()) {
        order.push(c.node.prompt);
        await queue.succeed(c.job, { statsMode: 'DENSE', wallMs: 1, denseEstimateMs: 1, speedup: 1, maskedFraction: null, imagePath: 'a', thumbPath: 'b', maskPath: null });
      }
      return order;
    }

    it('lets users take turns at equal priority; each user FIFO; higher priority first', async () => {
      for (let i = 1; i <= 4; i++) await enqueue('bob', `bob${i}`);
      await enqueue('ann', 'ann1');
      await enqueue('ann', 'ann2');
      await enqueue('cat', 'cat1');
      await enqueue('cat', 'cat-high', { priority: 3 });
      // Positions as the claims will go: cat-high, then bob1 ann1 cat1 bob2 ann2 bob3 bob4.
      const pos = async (p: string) => queue.position((await database.db.node.findFirstOrThrow({ where: { prompt: p } })).id);
      expect(await pos('cat-high')).toBe(0);
      expect(await pos('bob1')).toBe(1);
      expect(await pos('ann2')).toBe(5);
      expect(await pos('bob4')).toBe(7);
      expect(await drain()).toEqual(['cat-high', 'bob1', 'ann1', 'cat1', 'bob2', 'ann2', 'bob3', 'bob4']);
    });

    it('a newcomer waits one turn, not behind another user’s whole backlog', async () => {
      for (let i = 1; i <= 20; i++) await enqueue('bob', `bob${i}`);
      const first = (await queue.claimNext())!; // bob1 runs
      await queue.succeed(first.job, { statsMode: 'DENSE', wallMs: 1, denseEstimateMs: 1, speedup: 1, maskedFraction: null, imagePath: 'a', thumbPath: 'b', maskPath: null });
      const ann = await enqueue('ann', 'ann1');
      expect(await queue.position(ann.id)).toBe(0);
      expect((await drain()).slice(0, 2)).toEqual(['ann1', 'bob2']);
    });

    it('runs an edit only after its parent succeeded, whatever its priority', async () => {
      const root = await enqueue('ann', 'root');
      await enqueue('ann', 'child', { parentId: root.id, priority: 9 });
      await enqueue('bob', 'other');
      expect(await drain()).toEqual(['root', 'child', 'other']);
    });

    it('fails the waiting edits of a FAILED or CANCELLED parent, down the tree, saying why', async () => {
      const failed = await enqueue('ann', 'failed root', { status: 'FAILED' });
      const child = await enqueue('ann', 'child', { parentId: failed.id });
      const grandchild = await enqueue('bob', 'grandchild', { parentId: child.id });
      const cancelled = await enqueue('ann', 'cancelled root', { status: 'CANCELLED' });
      const c2 = await enqueue('ann', 'child of cancelled', { parentId: cancelled.id });
      const ok = await enqueue('ann', 'fine');
      const out = await queue.failOrphans();
      expect(out.map((n) => n.id).sort()).toEqual([child.id, grandchild.id, c2.id].sort());
      const child2 = await database.db.node.findUniqueOrThrow({ where: { id: child.id }, include: { job: true } });
      expect(child2).toMatchObject({ status: 'FAILED', job: { status: 'FAILED' } });
      expect(child2.error).toContain(`parent node ${failed.id} is FAILED`);
      expect((await database.db.node.findUniqueOrThrow({ where: { id: grandchild.id } })).error).toContain(`parent node ${child.id} is FAILED`);
      expect((await database.db.node.findUniqueOrThrow({ where: { id: c2.id } })).error).toContain('CANCELLED');
      expect((await database.db.node.findUniqueOrThrow({ where: { id: ok.id } })).status).toBe('QUEUED');
      expect(await queue.failOrphans()).toEqual([]);
    });
  };
}

describe('fair queue on SQLite', suite(async () => sqliteTestDatabase()));
describeWithService(postgresProbe(), 'fair queue on PostgreSQL', suite(postgresTestDatabase));
