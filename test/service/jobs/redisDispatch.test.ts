// The scale-out queue's release and routing (src/service/jobs/redisDispatch.ts) on the real PostgreSQL and
// Redis, without an engine: jobs are rows written here and "run" by claiming and succeeding them.
//   - priority first, then users take turns (one released job per user, priority and target queue);
//   - an edit goes to the queue of the worker holding its parent, and to the shared queue after the
//     affinity wait (busy) or as soon as that worker's heartbeat is gone;
//   - a BullMQ job whose row was cancelled is dropped, not run.
// Skips visibly without PostgreSQL or Redis; fails under CI=true.
import { randomBytes } from 'crypto';
import Redis from 'ioredis';
import type { Database } from '../../../src/db/client';
import { ClaimedJob, PrismaJobQueue } from '../../../src/service/jobs/jobQueue';
import { LeasedJob, LeasedJobSource, RedisJobQueue } from '../../../src/service/jobs/redisDispatch';
import { WorkerRegistry } from '../../../src/service/jobs/workerRegistry';
import { describeWithService, postgresProbe, REDIS_URL, redisProbe } from '../../helpers/services';
import { postgresTestDatabase, TestDatabase } from '../../helpers/testDatabases';

const PREFIX = `fisedit-test-${randomBytes(4).toString('hex')}`;
const AFFINITY_WAIT_MS = 400;

let database: TestDatabase | null = null;
let db: Database;
let redis: Redis;
let registry: WorkerRegistry;
let rq: RedisJobQueue;
let jobs: PrismaJobQueue;
const sources: LeasedJobSource[] = [];

async function user(name: string): Promise<string> {
  return (await db.db.user.create({ data: { name } })).id;
}

/** A node with its job: a root, or an edit of `parentId`; `status` SUCCEEDED makes a finished parent. */
async function node(userId: string, opts: { parentId?: string; priority?: number; status?: 'QUEUED' | 'SUCCEEDED'; treeId?: string } = {}): Promise<{ id: string; treeId: string }> {
  const treeId = opts.treeId ?? (await db.db.tree.create({ data: { title: 't', members: { create: { userId, role: 'OWNER' } } } })).id;
  const status = opts.status ?? 'QUEUED';
  const n = await db.db.node.create({
    data: {
      treeId, parentId: opts.parentId ?? null, depth: opts.parentId ? 1 : 0, prompt: 'a red circle', seed: 1, steps: 2, guidance: 1, scheduler: 'DDIM', width: 32, height: 32, model: 'tiny', createdById: userId, status,
      job: { create: { priority: opts.priority ?? 0, status } },
    },
  });
  return { id: n.id, treeId };
}

async function release(): Promise<void> {
  rq.kick();
  await rq.settle();
}

/** Claims the next job as `source`'s worker and finishes it (SUCCEEDED), as a worker would. */
async function runNext(source: LeasedJobSource): Promise<LeasedJob | null> {
  await release();
  const c = await source.claimNext();
  if (!c) return null;
  await jobs.succeed(c.job, { statsMode: 'DENSE', wallMs: 1, denseEstimateMs: null, speedup: null, maskedFraction: null, imagePath: 'x.png', thumbPath: 'x.webp', maskPath: null, worker: source.workerId });
  await c.lease.done();
  return c;
}

const probe = postgresProbe().up ? redisProbe() : postgresProbe();
describeWithService(probe, 'scale-out queue: release, fairness and cache affinity (BullMQ + PostgreSQL)', () => {
  beforeAll(async () => {
    database = await postgresTestDatabase();
    db = await database.open();
    redis = new Redis(REDIS_URL, { maxRetriesPerRequest: null });
    registry = new WorkerRegistry(redis, { prefix: `${PREFIX}:`, aliveMs: 5000 });
    rq = new RedisJobQueue(db.db, registry, { redisUrl: REDIS_URL, affinityWaitMs: AFFINITY_WAIT_MS, leaseMs: 5000, prefix: PREFIX, tickMs: 3_600_000, repairMs: 0 }, redis);
    jobs = new PrismaJobQueue(db.db);
  });

  afterEach(async () => {
    for (const s of sources.splice(0)) await s.close();
    await db.db.tree.deleteMany({});
  });

  afterAll(async () => {
    await rq?.close(); // quits the shared connection
    await db?.close();
    await database?.destroy();
    const r = new Redis(REDIS_URL);
    const keys = await r.keys(`${PREFIX}*`);
    if (keys.length) await r.del(...keys);
    await r.quit();
  });

  function source(workerId: string): LeasedJobSource {
    const s = new LeasedJobSource(rq, jobs, workerId);
    sources.push(s);
    return s;
  }

  it('runs higher priority first, then lets users take turns', async () => {
    const [alice, bob, carol] = [await user('alice'), await user('bob'), await user('carol')];
    const a1 = await node(alice);
    const a2 = await node(alice, { treeId: a1.treeId });
    const a3 = await node(alice, { treeId: a1.treeId });
    const b1 = await node(bob);
    const c1 = await node(carol, { priority: 5 });
    const w = source('w-order');
    const order: string[] = [];
    for (let c = await runNext(w); c; c = await runNext(w)) order.push(c.node.id);
    const name = new Map([[a1.id, 'a1'], [a2.id, 'a2'], [a3.id, 'a3'], [b1.id, 'b1'], [c1.id, 'c1']]);
    expect(order.map((id) => name.get(id))).toEqual(['c1', 'a1', 'b1', 'a2', 'a3']);
    // One released job per user at a time: bob's job waited behind one of alice's, not three.
  });

  it('routes an edit to the worker holding its parent, then to any worker after the affinity wait', async () => {
    const alice = await user('alice2');
    const parent = await node(alice, { status: 'SUCCEEDED' });
    await registry.register('w-holder');
    await registry.announce('w-holder', [{ nodeId: parent.id, engineNodeId: 'abc' }]);
    const edit = await node(alice, { parentId: parent.id, treeId: parent.treeId });
    await release();
    expect(await db.db.job.findUnique({ where: { nodeId: edit.id } })).toMatchObject({ routedTo: 'w-holder' });
    const other = source('w-other');
    expect(await other.claimNext()).toBeNull(); // it waits in the holder's queue
    await new Promise((r) => setTimeout(r, AFFINITY_WAIT_MS + 100));
    const c = await runNext(other);
    expect(c?.node.id).toBe(edit.id);
    expect(c?.affinity).toMatchObject({ worker: 'w-holder', reason: 'busy' });
    expect(c!.affinity!.waitedMs).toBeGreaterThanOrEqual(AFFINITY_WAIT_MS);

    // The holder takes an edit routed to it before the wait is over.
    const edit2 = await node(alice, { parentId: parent.id, treeId: parent.treeId });
    const holder = source('w-holder');
    const h = await runNext(holder);
    expect(h?.node.id).toBe(edit2.id);
    expect(h?.affinity).toBeUndefined();

    // A holder whose heartbeat is gone: its edits fall back at once.
    const edit3 = await node(alice, { parentId: parent.id, treeId: parent.treeId });
    await release();
    expect(await db.db.job.findUnique({ where: { nodeId: edit3.id } })).toMatchObject({ routedTo: 'w-holder' });
    await registry.unregister('w-holder');
    const g = await runNext(other);
    expect(g?.node.id).toBe(edit3.id);
    expect(g?.affinity).toMatchObject({ worker: 'w-holder', reason: 'gone' });
  });

  it('lets one worker take over a dead worker’s job, once, and discards what the dead worker records later', async () => {
    const erin = await user('erin');
    const n = await node(erin);
    const row = await db.db.job.findUniqueOrThrow({ where: { nodeId: n.id } });
    const alive = new Set(['w-dead']);
    const isAlive = async (w: string) => alive.has(w);
    const first = await jobs.claimLeased(row.id, 'w-dead', isAlive);
    expect(first).toMatchObject({ job: { status: 'RUNNING', worker: 'w-dead', attempts: 1 } });
    // While its worker lives, nobody else takes it.
    expect(await jobs.claimLeased(row.id, 'w-b', isAlive)).toBe('HELD');
    alive.delete('w-dead');
    const [b, c] = await Promise.all([jobs.claimLeased(row.id, 'w-b', isAlive), jobs.claimLeased(row.id, 'w-c', isAlive)]);
    const winners = [b, c].filter((x): x is ClaimedJob => !!x && typeof x === 'object' && 'job' in x);
    expect(winners).toHaveLength(1);
    expect(winners[0].job.attempts).toBe(2);
    const outcome = { statsMode: 'DENSE' as const, wallMs: 1, denseEstimateMs: null, speedup: null, maskedFraction: null, imagePath: 'x.png', thumbPath: 'x.webp', maskPath: null };
    // The dead worker's late result is not recorded; the winner's is.
    expect(await jobs.succeed((first as ClaimedJob).job, { ...outcome, worker: 'w-dead' })).toBeNull();
    expect(await jobs.succeed(winners[0].job, { ...outcome, worker: winners[0].job.worker })).toMatchObject({ status: 'SUCCEEDED', worker: winners[0].job.worker });
    // A third lease on the finished job finds nothing to run.
    expect(await jobs.claimLeased(row.id, 'w-d', isAlive)).toBeNull();
  });

  it('repairs rows whose BullMQ job Redis lost: released again, or re-queued from a dead worker', async () => {
    const frank = await user('frank');
    const n = await node(frank);
    await release();
    const backdate = (nodeId: string, field: 'dispatchedAt' | 'startedAt') => db.db.job.update({ where: { nodeId }, data: { [field]: new Date(Date.now() - 60_000) } });
    await rq.queue('fisedit-jobs').obliterate({ force: true }); // Redis restarted without its data
    await backdate(n.id, 'dispatchedAt');
    const w = source('w-repair');
    expect(await w.claimNext()).toBeNull();
    expect((await runNext(w))?.node.id).toBe(n.id);

    const n2 = await node(frank);
    await release();
    const gone = await source('w-gone').claimNext(); // w-gone has no heartbeat: it is dead once its lease is lost
    expect(gone?.node.id).toBe(n2.id);
    await rq.queue('fisedit-jobs').obliterate({ force: true });
    await backdate(n2.id, 'startedAt');
    const again = await runNext(w);
    expect(again?.node.id).toBe(n2.id);
    expect(again?.job.attempts).toBe(2);
    await gone!.lease.done(); // the dead worker's lease object (its BullMQ job is long gone)
  });

  it('drops a released job whose row was cancelled meanwhile', async () => {
    const dave = await user('dave');
    const n = await node(dave);
    await release();
    expect((await db.db.job.findUnique({ where: { nodeId: n.id } }))?.dispatchedAt).not.toBeNull();
    await jobs.markCancelled(n.id, ['QUEUED']);
    const w = source('w-stale');
    expect(await w.claimNext()).toBeNull();
    expect(await rq.queue('fisedit-jobs').getJobCounts('waiting', 'prioritized', 'active')).toEqual({ waiting: 0, prioritized: 0, active: 0 });
  });
});
