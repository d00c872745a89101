// The scale-out queue (docs/scaling.md, "Queue and workers"): BullMQ on Redis carries the jobs to the
// workers, the database stays the source of truth for every job's state. BullMQ gives what a home-made
// queue gets wrong: a lease per running job (a lock the worker renews, the heartbeat) and an atomic
// stalled-job check that hands a dead worker's job back exactly once (maxStalledCount 1), priorities,
// and one queue per worker for cache affinity. What BullMQ (without its paid groups) lacks, the release
// below adds from the database:
//   - order: a job enters BullMQ only once it may run (a root, or an edit whose parent SUCCEEDED), at
//     BullMQ priority 11 − priority (higher first), FIFO within a priority;
//   - fairness: at most one released, unclaimed job per (user, priority, target queue): the next one is
//     released when it is claimed, so at equal priority users take turns (round-robin, as jobQueue.ts);
//   - affinity: an edit goes to the queue of a live worker that holds its parent's engine state
//     (workerRegistry.ts); after affinityWaitMs unclaimed there, or as soon as that worker is gone, it
//     moves to the shared queue, where any worker takes it and rebuilds the parent (saying so).
// A BullMQ job only carries the database job's id; claiming it is the database's conditional update, so
// a duplicate or stale BullMQ job (cancelled, deleted, already run) is dropped, never run twice.
import { Job as BullJob, Queue, Worker } from 'bullmq';
import Redis from 'ioredis';
import { randomUUID } from 'crypto';
import type { Db } from '../../db/client';
import type { Node as NodeRow } from '../../generated/sqlite/client';
import { log } from '../log';
import { ClaimedJob, CLAIMABLE_NODE, PrismaJobQueue } from './jobQueue';
import { WorkerRegistry } from './workerRegistry';

export const SHARED_QUEUE = 'fisedit-jobs';
export const workerQueueName = (workerId: string): string => `fisedit-jobs.w.${workerId}`;

/** What a BullMQ job carries: the database job, and for an edit that left its worker's queue, why. */
export interface DispatchData {
  jobId: number;
  nodeId: string;
  dispatchedAt: number;
  /** The worker queue it waited in before it moved to the shared queue. */
  affinity?: { worker: string; waitedMs: number; reason: 'busy' | 'gone' };
}

export interface RedisQueueOptions {
  redisUrl: string;
  /** How long an edit waits in the queue of the worker holding its parent's cache before any worker may take it, ms (default 10 s; 0: no affinity). */
  affinityWaitMs?: number;
  /** A running job's lease: a worker that does not renew it within this is dead, ms (default 30 s; renewed every third). */
  leaseMs?: number;
  /** How often the release runs by itself (affinity fallback, missed kicks), ms (default 500). */
  tickMs?: number;
  /** Namespace of every Redis key (BullMQ's prefix too), so deployments (and tests) can share one Redis (default "fisedit"). */
  prefix?: string;
  /** How often rows whose BullMQ job is gone are repaired, ms (default 10 s). */
  repairMs?: number;
}

/** A claimed job with its lease; done() ends the lease (the database already says how the job ended). */
export interface LeasedJob extends ClaimedJob {
  lease: { done(): Promise<void>; readonly lost: boolean };
  affinity?: DispatchData['affinity'];
}

export class RedisJobQueue {
  readonly redis: Redis;
  readonly affinityWaitMs: number;
  readonly leaseMs: number;
  readonly prefix: string;
  private readonly queues = new Map<string, Queue>();
  private tick: NodeJS.Timeout | null = null;
  private releasing: Promise<void> | null = null;
  private again = false;
  private closed = false;
  private readonly repairMs: number;
  private lastRepair = 0;

  private readonly jobs: PrismaJobQueue;

  constructor(
    private readonly db: Db,
    readonly registry: WorkerRegistry,
    opts: RedisQueueOptions,
    redis?: Redis,
  ) {
    this.jobs = new PrismaJobQueue(db);
    this.redis = redis ?? new Redis(opts.redisUrl, { maxRetriesPerRequest: null });
    this.redis.on('error', () => undefined);
    this.affinityWaitMs = opts.affinityWaitMs ?? 10_000;
    this.leaseMs = opts.leaseMs ?? 30_000;
    this.prefix = opts.prefix ?? 'fisedit';
    this.repairMs = opts.repairMs ?? 10_000;
    this.tick = setInterval(() => this.kick(), opts.tickMs ?? 500);
    this.tick.unref();
  }

  queue(name: string): Queue {
    let q = this.queues.get(name);
    if (!q) {
      q = new Queue(name, { connection: this.redis, prefix: this.prefix, defaultJobOptions: { removeOnComplete: true, removeOnFail: true } });
      this.queues.set(name, q);
    }
    return q;
  }

  /** Runs the release soon (coalesced: one at a time per process, and one at a time across processes). */
  kick(): void {
    if (this.closed) return;
    if (this.releasing) {
      this.again = true;
      return;
    }
    this.releasing = this.releaseLocked()
      .catch((e) => log.error({ err: e }, 'job dispatch: release failed'))
      .finally(() => {
        this.releasing = null;
        if (this.again) {
          this.again = false;
          this.kick();
        }
      });
  }

  /** Waits for a running release (tests, shutdown). */
  async settle(): Promise<void> {
    while (this.releasing) await this.releasing;
  }

  private async releaseLocked(): Promise<void> {
    const key = `${this.prefix}:dispatch-lock`;
    const token = randomUUID();
    if ((await this.redis.set(key, token, 'PX', 10_000, 'NX')) !== 'OK') {
      this.again = true; // someone else is releasing; look again after it
      await new Promise((r) => setTimeout(r, 50));
      return;
    }
    try {
      if (Date.now() - this.lastRepair >= this.repairMs) {
        this.lastRepair = Date.now();
        await this.repair();
      }
      await this.fallBack();
      await this.release();
    } finally {
      await this.redis.eval("if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0", 1, key, token);
    }
  }

  /**
   * Rows whose BullMQ job is gone (Redis restarted without its data, or a process died between the
   * database write and the Redis one): a released row is released again; a row RUNNING on a dead worker
   * whose lease BullMQ no longer has goes back to the queue (or fails, its attempts used), as a stalled
   * lease would. Every step is a conditional update, so a repair racing a claim changes nothing.
   */
  private async repair(): Promise<void> {
    const settled = new Date(Date.now() - Math.max(this.leaseMs, 1000));
    const released = await this.db.job.findMany({ where: { status: 'QUEUED', dispatchedAt: { lt: settled } }, select: { id: true, dispatchedAt: true, routedTo: true } });
    for (const j of released) {
      if (await this.bullJob(j)) continue;
      await this.db.job.updateMany({ where: { id: j.id, status: 'QUEUED', dispatchedAt: j.dispatchedAt }, data: { dispatchedAt: null, routedTo: null } });
    }
    const running = await this.db.job.findMany({ where: { status: 'RUNNING', worker: { not: null }, startedAt: { lt: settled } } });
    if (running.length === 0) return;
    const live = await this.registry.alive(running.map((j) => j.worker!));
    for (const j of running) {
      if (live.has(j.worker!) || !j.dispatchedAt || (await this.bullJob(j))) continue;
      await this.jobs.fail(j, `interrupted: worker ${j.worker} stopped and its lease was lost`, true);
    }
  }

  private bullJob(j: { id: number; dispatchedAt: Date | null; routedTo: string | null }): Promise<BullJob | undefined> {
    return this.queue(j.routedTo ? workerQueueName(j.routedTo) : SHARED_QUEUE).getJob(bullId(j.id, j.dispatchedAt!.getTime()));
  }

  /** Edits that waited too long in a worker's queue, or whose worker is gone, move to the shared queue. */
  private async fallBack(): Promise<void> {
    const routed = await this.db.job.findMany({ where: { status: 'QUEUED', routedTo: { not: null }, dispatchedAt: { not: null } }, select: { id: true, nodeId: true, priority: true, routedTo: true, dispatchedAt: true } });
    if (routed.length === 0) return;
    const live = await this.registry.alive(routed.map((j) => j.routedTo!));
    const now = Date.now();
    for (const j of routed) {
      const waitedMs = now - j.dispatchedAt!.getTime();
      const gone = !live.has(j.routedTo!);
      if (!gone && waitedMs < this.affinityWaitMs) continue;
      const old = await this.queue(workerQueueName(j.routedTo!)).getJob(bullId(j.id, j.dispatchedAt!.getTime()));
      if (old) {
        try {
          await old.remove();
        } catch {
          continue; // its worker is taking it this instant
        }
      }
      const at = new Date();
      const r = await this.db.job.updateMany({ where: { id: j.id, status: 'QUEUED', dispatchedAt: j.dispatchedAt }, data: { routedTo: null, dispatchedAt: at } });
      if (r.count !== 1) continue;
      const data: DispatchData = { jobId: j.id, nodeId: j.nodeId, dispatchedAt: at.getTime(), affinity: { worker: j.routedTo!, waitedMs, reason: gone ? 'gone' : 'busy' } };
      await this.queue(SHARED_QUEUE).add('job', data, { jobId: bullId(j.id, at.getTime()), priority: bullPriority(j.priority) });
    }
  }

  /** Hands the jobs that may run now to BullMQ, one unclaimed job per (user, priority, target queue). */
  private async release(): Promise<void> {
    const candidates = await this.db.job.findMany({
      where: { status: 'QUEUED', dispatchedAt: null, node: { is: CLAIMABLE_NODE } },
      orderBy: [{ priority: 'desc' }, { id: 'asc' }],
      select: { id: true, nodeId: true, priority: true, node: { select: { createdById: true, parentId: true } } },
      take: 500,
    });
    if (candidates.length === 0) return;
    const outstanding = await this.db.job.findMany({ where: { status: 'QUEUED', dispatchedAt: { not: null } }, select: { priority: true, routedTo: true, node: { select: { createdById: true } } } });
    const taken = new Set(outstanding.map((o) => slot(o.node.createdById, o.priority, o.routedTo)));
    for (const c of candidates) {
      // affinityWaitMs 0 turns affinity off: every job goes to the shared queue (bench/scale compares the two).
      const target = c.node.parentId && this.affinityWaitMs > 0 ? ((await this.registry.holders(c.node.parentId))[0] ?? null) : null;
      const s = slot(c.node.createdById, c.priority, target);
      if (taken.has(s)) continue;
      const at = new Date();
      const r = await this.db.job.updateMany({ where: { id: c.id, status: 'QUEUED', dispatchedAt: null }, data: { dispatchedAt: at, routedTo: target } });
      if (r.count !== 1) continue;
      taken.add(s);
      const data: DispatchData = { jobId: c.id, nodeId: c.nodeId, dispatchedAt: at.getTime() };
      await this.queue(target ? workerQueueName(target) : SHARED_QUEUE).add('job', data, { jobId: bullId(c.id, at.getTime()), priority: bullPriority(c.priority) });
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.tick) clearInterval(this.tick);
    await this.settle();
    for (const q of this.queues.values()) await q.close().catch(() => undefined);
    await this.redis.quit().catch(() => undefined);
  }
}

/**
 * One worker's side: takes jobs from its own queue first (edits of nodes it holds), then the shared one;
 * renews the lease while the job runs; watches every worker's queue for stalled jobs (a dead worker's
 * lease expired), which BullMQ hands back once.
 */
export class LeasedJobSource {
  private readonly own: Worker;
  private readonly shared: Worker;
  private readonly watchers = new Map<string, Worker>();
  private watchTimer: NodeJS.Timeout | null = null;
  /** Told about a dead worker's job that ended here for good (its attempts used, or cancelled meanwhile). */
  onEnded: ((node: NodeRow) => Promise<void>) | null = null;

  constructor(
    private readonly dispatch: RedisJobQueue,
    private readonly jobs: PrismaJobQueue,
    readonly workerId: string,
  ) {
    const opts = { connection: dispatch.redis, prefix: dispatch.prefix, autorun: false, lockDuration: dispatch.leaseMs, stalledInterval: dispatch.leaseMs, maxStalledCount: 1 } as const;
    this.own = new Worker(workerQueueName(workerId), null, opts);
    this.shared = new Worker(SHARED_QUEUE, null, opts);
    for (const w of [this.own, this.shared]) w.on('error', (e) => log.warn(`job queue: ${e.message}`));
  }

  /** Starts the stalled-job checks (own, shared and every other worker's queue). */
  async start(): Promise<void> {
    await this.own.startStalledCheckTimer();
    await this.shared.startStalledCheckTimer();
    const watchOthers = async () => {
      const ids = (await this.dispatch.registry.allWorkers()).filter((id) => id !== this.workerId);
      const live = await this.dispatch.registry.alive(ids);
      for (const id of ids) {
        if (!live.has(id)) {
          // A worker that is gone and left nothing in its queue needs no watching (pod names come and go).
          const c = await this.dispatch.queue(workerQueueName(id)).getJobCounts('active', 'waiting', 'prioritized', 'delayed');
          if (Object.values(c).every((n) => n === 0)) {
            await this.dispatch.registry.forgetWorker(id);
            await this.watchers.get(id)?.close().catch(() => undefined);
            this.watchers.delete(id);
            continue;
          }
        }
        if (this.watchers.has(id)) continue;
        const w = new Worker(workerQueueName(id), null, { connection: this.dispatch.redis, prefix: this.dispatch.prefix, autorun: false, lockDuration: this.dispatch.leaseMs, stalledInterval: this.dispatch.leaseMs, maxStalledCount: 1 });
        w.on('error', () => undefined);
        this.watchers.set(id, w);
        await w.startStalledCheckTimer();
      }
    };
    await watchOthers();
    this.watchTimer = setInterval(() => void watchOthers().catch(() => undefined), 5000);
    this.watchTimer.unref();
  }

  async claimNext(): Promise<LeasedJob | null> {
    for (const worker of [this.own, this.shared]) {
      for (let tries = 0; tries < 20; tries++) {
        const token = randomUUID();
        const bull = (await worker.getNextJob(token, { block: false })) as BullJob<DispatchData> | undefined;
        if (!bull) break;
        const claimed = await this.claim(bull, token);
        if (claimed) return claimed;
      }
    }
    return null;
  }

  private async claim(bull: BullJob<DispatchData>, token: string): Promise<LeasedJob | null> {
    const { jobId } = bull.data;
    const r = await this.jobs.claimLeased(jobId, this.workerId, (w) => this.dispatch.registry.alive([w]).then((s) => s.has(w)));
    if (r === 'HELD') {
      // Its database row says another live worker runs it (a lease hiccup): look again later.
      await bull.moveToDelayed(Date.now() + 1000, token).catch(() => undefined);
      return null;
    }
    if (!r || 'ended' in r) {
      await bull.moveToCompleted('stale', token, false).catch(() => undefined); // cancelled, deleted or already run
      if (r) await this.onEnded?.(r.ended).catch(() => undefined);
      return null;
    }
    this.dispatch.kick(); // the user's next job may be released now
    let lost = false;
    const renew = setInterval(() => {
      bull.extendLock(token, this.dispatch.leaseMs).then(
        (ok) => {
          if (!ok) lost = true;
        },
        () => undefined,
      );
    }, Math.max(100, Math.floor(this.dispatch.leaseMs / 3)));
    renew.unref(); // a lease never keeps a process alive by itself
    return {
      ...r,
      affinity: bull.data.affinity,
      lease: {
        get lost() {
          return lost;
        },
        done: async () => {
          clearInterval(renew);
          await bull.moveToCompleted('done', token, false).catch(() => undefined);
        },
      },
    };
  }

  async close(): Promise<void> {
    if (this.watchTimer) clearInterval(this.watchTimer);
    for (const w of [this.own, this.shared, ...this.watchers.values()]) await w.close().catch(() => undefined);
  }
}

function bullId(jobId: number, dispatchedAt: number): string {
  return `${jobId}-${dispatchedAt}`;
}

/** BullMQ: 1 runs first; ours: 10 runs first (−10…10). */
function bullPriority(priority: number): number {
  return 11 - priority;
}

function slot(user: string, priority: number, target: string | null): string {
  return `${user}|${priority}|${target ?? ''}`;
}
