// The durable job queue: one Job row per node, in the database, so the queue survives a restart.
// Order: higher priority first; among jobs of equal priority the users take turns (round-robin: the
// user served least recently goes next), and each user's jobs run first in first out (Job.id is an
// autoincrement). An edit's job waits for its parent: it is claimable only once the parent SUCCEEDED,
// and a parent that ends FAILED or CANCELLED fails its waiting children (failOrphans).
// A claim is a conditional update (QUEUED → RUNNING where still QUEUED), so two runners never take the
// same job, on SQLite or PostgreSQL.
//
// Node.status mirrors Job.status; both change in one transaction. Node rows are updated with updateMany
// because a branch may be deleted while its job runs: the update then touches nothing, and the runner
// throws the result away.

import type { Db } from '../../db/client';
import type { Job, Node as NodeRow } from '../../generated/sqlite/client';

/** A node that may run now: a root, or an edit whose parent has its result. */
export const CLAIMABLE_NODE = { OR: [{ parentId: null }, { parent: { is: { status: 'SUCCEEDED' as const } } }] };
const CLAIMABLE = { status: 'QUEUED' as const, node: { is: CLAIMABLE_NODE } };

export interface ClaimedJob {
  job: Job;
  node: NodeRow;
}

export interface JobOutcome {
  statsMode: 'DENSE' | 'SPARSE' | 'PARENT';
  wallMs: number;
  denseEstimateMs: number | null;
  speedup: number | null;
  maskedFraction: number | null;
  /** Why an edit ran otherwise than asked (engine state rebuilt, ran dense, ...); null when it ran as asked. */
  fallbackReason?: string | null;
  imagePath: string;
  thumbPath: string;
  maskPath: string | null;
  /** The node's id in the engine's node store, when the engine recorded it. */
  engineNodeId?: string | null;
  /** The scale-out worker that ran it (null: the all-in-one server). */
  worker?: string | null;
  /** An edit ran where its parent's engine state was (true) or rebuilt it elsewhere (false); null for roots and the all-in-one server. */
  cacheHit?: boolean | null;
}

/**
 * The job's row is still the run that `job` describes: RUNNING, the same attempt, the same worker. A run
 * whose worker lost its lease (and whose job another worker took over) records nothing.
 */
function stillMine(job: Job) {
  return { id: job.id, status: 'RUNNING' as const, attempts: job.attempts, worker: job.worker };
}

/** A job handed back to the queue is no longer leased, released to the Redis queue or routed anywhere. */
const UNLEASED = { worker: null, dispatchedAt: null, routedTo: null } as const;

export interface RecoveryReport {
  requeued: string[];
  failed: string[];
  cancelled: string[];
}

export class PrismaJobQueue {
  constructor(private readonly db: Db) {}

  /**
   * Which user each user-served turn went to, in claim order (round-robin state). In memory: the process
   * that runs jobs is the only claimer (service.ts runJobs), and after a restart every user starts even.
   */
  private readonly lastServed = new Map<string, number>();
  private turns = 0;

  /**
   * The next job, now RUNNING with attempts + 1; null when nothing is claimable. Highest priority first;
   * at that priority the user served least recently, then that user's oldest job. Only jobs whose node is
   * a root or whose parent SUCCEEDED are claimable.
   */
  async claimNext(): Promise<ClaimedJob | null> {
    for (let tries = 0; tries < 5; tries++) {
      const next = await this.pickNext();
      if (!next) return null;
      const now = new Date();
      const claimed = await this.db.$transaction(async (tx) => {
        const r = await tx.job.updateMany({
          where: { id: next.id, status: 'QUEUED' },
          data: { status: 'RUNNING', attempts: { increment: 1 }, startedAt: now, finishedAt: null, error: null },
        });
        if (r.count !== 1) return null;
        await tx.node.updateMany({ where: { id: next.nodeId }, data: { status: 'RUNNING', startedAt: now, finishedAt: null, error: null } });
        const job = await tx.job.findUnique({ where: { id: next.id } });
        const node = await tx.node.findUnique({ where: { id: next.nodeId } });
        return job && node ? { job, node } : null;
      });
      if (claimed) {
        this.lastServed.set(claimed.node.createdById, ++this.turns);
        return claimed;
      }
      // Someone else claimed or deleted it between the read and the update: look again.
    }
    return null;
  }

  /**
   * Scale-out: claims the job a BullMQ lease brought to this worker (redisDispatch.ts). QUEUED → RUNNING
   * here; a job RUNNING on a worker that is gone (its lease expired, so BullMQ handed it back) is taken
   * over with a fresh attempt, or failed once it used its attempts. 'HELD': a live worker runs it. null:
   * nothing to run (cancelled, deleted, finished, or another worker won the claim).
   */
  async claimLeased(jobId: number, worker: string, isAlive: (worker: string) => Promise<boolean>): Promise<ClaimedJob | 'HELD' | { ended: NodeRow } | null> {
    const row = await this.db.job.findUnique({ where: { id: jobId } });
    if (!row) return null;
    let from: Record<string, unknown>;
    if (row.status === 'QUEUED') from = { status: 'QUEUED' };
    else if (row.status === 'RUNNING' && row.worker && row.worker !== worker) {
      if (await isAlive(row.worker)) return 'HELD';
      // Ended for good here, once (conditional on the row still being the dead worker's).
      const ended = row.cancelRequested
        ? await this.markCancelledIf(row.id, row.nodeId, { status: 'RUNNING', worker: row.worker, attempts: row.attempts })
        : row.attempts >= row.maxAttempts
          ? await this.failIf(row, { status: 'RUNNING', worker: row.worker, attempts: row.attempts }, `interrupted: worker ${row.worker} stopped during each of ${row.attempts} attempts`)
          : undefined;
      if (ended !== undefined) return ended ? { ended } : null;
      from = { status: 'RUNNING', worker: row.worker, attempts: row.attempts };
    } else return null;
    const now = new Date();
    return this.db.$transaction(async (tx) => {
      const r = await tx.job.updateMany({
        where: { id: jobId, ...from },
        data: { status: 'RUNNING', worker, attempts: { increment: 1 }, startedAt: now, finishedAt: null, error: null },
      });
      if (r.count !== 1) return null;
      const parentOk = await tx.node.count({ where: { id: row.nodeId, ...CLAIMABLE_NODE } });
      if (parentOk !== 1) {
        // Released before its parent was re-run (a retry): back to waiting, unreleased.
        await tx.job.updateMany({ where: { id: jobId }, data: { status: 'QUEUED', attempts: { decrement: 1 }, startedAt: null, ...UNLEASED } });
        return null;
      }
      await tx.node.updateMany({ where: { id: row.nodeId }, data: { status: 'RUNNING', startedAt: now, finishedAt: null, error: null } });
      const job = await tx.job.findUnique({ where: { id: jobId } });
      const node = await tx.node.findUnique({ where: { id: row.nodeId } });
      return job && node ? { job, node } : null;
    });
  }

  private async pickNext(): Promise<{ id: number; nodeId: string } | null> {
    // Each read may race with another claimer taking the job it found: look again (bounded).
    for (let tries = 0; tries < 5; tries++) {
      const first = await this.db.job.findFirst({ where: CLAIMABLE, orderBy: [{ priority: 'desc' }, { id: 'asc' }], select: { id: true, nodeId: true, priority: true } });
      if (!first) return null;
      const [next] = await this.turnOrder(first.priority, true);
      if (!next) continue;
      const job = await this.db.job.findFirst({ where: { ...CLAIMABLE, priority: first.priority, node: { is: { ...CLAIMABLE_NODE, createdById: next.userId } } }, orderBy: { id: 'asc' }, select: { id: true, nodeId: true } });
      if (job) return job;
    }
    return null;
  }

  /**
   * Users with jobs waiting at this priority in the order their turns come: served least recently first;
   * among users not served yet, the one whose oldest waiting node is oldest. With `claimable`, only jobs
   * that may run now count.
   */
  private async turnOrder(priority: number, claimable: boolean): Promise<{ userId: string; waiting: number }[]> {
    const groups = await this.db.node.groupBy({
      by: ['createdById'],
      where: { ...(claimable ? CLAIMABLE_NODE : {}), job: { is: { status: 'QUEUED', priority } } },
      _min: { createdAt: true },
      _count: { _all: true },
    });
    const key = (g: (typeof groups)[number]) => [this.lastServed.get(g.createdById) ?? 0, g._min.createdAt?.getTime() ?? 0] as const;
    groups.sort((a, b) => {
      const [ta, ca] = key(a);
      const [tb, cb] = key(b);
      return ta - tb || ca - cb || (a.createdById < b.createdById ? -1 : a.createdById > b.createdById ? 1 : 0);
    });
    return groups.map((g) => ({ userId: g.createdById, waiting: g._count._all }));
  }

  /**
   * Fails, for good, every QUEUED job whose parent node ended FAILED or CANCELLED (it can never run
   * from that parent), with the reason; repeats down the tree. Returns the nodes failed.
   */
  async failOrphans(): Promise<NodeRow[]> {
    const failed: NodeRow[] = [];
    for (let depth = 0; depth < 10_000; depth++) {
      const orphans = await this.db.job.findMany({
        where: { status: 'QUEUED', node: { is: { parent: { is: { status: { in: ['FAILED', 'CANCELLED'] } } } } } },
        select: { id: true, nodeId: true, node: { select: { parent: { select: { id: true, status: true } } } } },
        take: 100,
      });
      if (orphans.length === 0) break;
      const now = new Date();
      for (const o of orphans) {
        const p = o.node.parent!;
        const error = `its parent node ${p.id} is ${p.status}: an edit runs from its parent's result; retry the parent, then this node`;
        const node = await this.db.$transaction(async (tx) => {
          const r = await tx.job.updateMany({ where: { id: o.id, status: 'QUEUED' }, data: { status: 'FAILED', error, finishedAt: now } });
          if (r.count !== 1) return null;
          await tx.node.updateMany({ where: { id: o.nodeId }, data: { status: 'FAILED', error, finishedAt: now } });
          return tx.node.findUnique({ where: { id: o.nodeId } });
        });
        if (node) failed.push(node);
      }
    }
    return failed;
  }

  async succeed(job: Job, outcome: JobOutcome): Promise<NodeRow | null> {
    const now = new Date();
    return this.db.$transaction(async (tx) => {
      const j = await tx.job.updateMany({ where: stillMine(job), data: { status: 'SUCCEEDED', finishedAt: now, error: null } });
      if (j.count === 0) return null;
      const r = await tx.node.updateMany({ where: { id: job.nodeId }, data: { status: 'SUCCEEDED', finishedAt: now, error: null, ...outcome } });
      if (r.count === 0) return null;
      return tx.node.findUnique({ where: { id: job.nodeId } });
    });
  }

  /** FAILED for good, or back to QUEUED when `retry` and attempts remain. */
  async fail(job: Job, error: string, retry: boolean): Promise<NodeRow | null> {
    const requeue = retry && job.attempts < job.maxAttempts;
    const now = new Date();
    return this.db.$transaction(async (tx) => {
      const status = requeue ? 'QUEUED' : 'FAILED';
      const j = await tx.job.updateMany({ where: stillMine(job), data: { status, error, finishedAt: requeue ? null : now, ...(requeue ? { queuedAt: now, ...UNLEASED } : {}) } });
      if (j.count === 0) return null;
      const r = await tx.node.updateMany({ where: { id: job.nodeId }, data: { status, error: requeue ? null : error, finishedAt: requeue ? null : now } });
      if (r.count === 0) return null;
      return tx.node.findUnique({ where: { id: job.nodeId } });
    });
  }

  async markCancelled(nodeId: string, fromStatuses: ('QUEUED' | 'RUNNING')[]): Promise<NodeRow | null> {
    const now = new Date();
    return this.db.$transaction(async (tx) => {
      const r = await tx.job.updateMany({ where: { nodeId, status: { in: fromStatuses } }, data: { status: 'CANCELLED', finishedAt: now, cancelRequested: true } });
      if (r.count === 0) return null;
      await tx.node.updateMany({ where: { id: nodeId }, data: { status: 'CANCELLED', finishedAt: now } });
      return tx.node.findUnique({ where: { id: nodeId } });
    });
  }

  private async markCancelledIf(jobId: number, nodeId: string, where: Record<string, unknown>): Promise<NodeRow | null> {
    const now = new Date();
    return this.db.$transaction(async (tx) => {
      const r = await tx.job.updateMany({ where: { id: jobId, ...where }, data: { status: 'CANCELLED', finishedAt: now } });
      if (r.count === 0) return null;
      await tx.node.updateMany({ where: { id: nodeId }, data: { status: 'CANCELLED', finishedAt: now } });
      return tx.node.findUnique({ where: { id: nodeId } });
    });
  }

  private async failIf(job: Job, where: Record<string, unknown>, error: string): Promise<NodeRow | null> {
    const now = new Date();
    return this.db.$transaction(async (tx) => {
      const r = await tx.job.updateMany({ where: { id: job.id, ...where }, data: { status: 'FAILED', error, finishedAt: now } });
      if (r.count === 0) return null;
      await tx.node.updateMany({ where: { id: job.nodeId }, data: { status: 'FAILED', error, finishedAt: now } });
      return tx.node.findUnique({ where: { id: job.nodeId } });
    });
  }

  async requestCancel(nodeId: string): Promise<boolean> {
    const r = await this.db.job.updateMany({ where: { nodeId, status: 'RUNNING' }, data: { cancelRequested: true } });
    return r.count > 0;
  }

  /** A RUNNING job handed back without counting the attempt (graceful shutdown). */
  async handBack(job: Job): Promise<void> {
    await this.db.$transaction(async (tx) => {
      const r = await tx.job.updateMany({ where: stillMine(job), data: { status: 'QUEUED', attempts: { decrement: 1 }, startedAt: null, ...UNLEASED } });
      if (r.count === 1) await tx.node.updateMany({ where: { id: job.nodeId }, data: { status: 'QUEUED', startedAt: null } });
    });
  }

  /** FAILED or CANCELLED → QUEUED with a fresh attempt budget; false if the node is in another state. */
  async retry(nodeId: string, priority?: number): Promise<boolean> {
    const now = new Date();
    return this.db.$transaction(async (tx) => {
      const r = await tx.job.updateMany({
        where: { nodeId, status: { in: ['FAILED', 'CANCELLED'] } },
        data: { status: 'QUEUED', attempts: 0, cancelRequested: false, error: null, queuedAt: now, startedAt: null, finishedAt: null, ...UNLEASED, ...(priority === undefined ? {} : { priority }) },
      });
      if (r.count === 0) return false;
      await tx.node.updateMany({
        where: { id: nodeId },
        data: { status: 'QUEUED', error: null, startedAt: null, finishedAt: null, statsMode: null, wallMs: null, denseEstimateMs: null, speedup: null, maskedFraction: null, engineNodeId: null, fallbackReason: null, worker: null, cacheHit: null },
      });
      return true;
    });
  }

  /**
   * Start-up recovery: a job still RUNNING was interrupted by a crash. It goes back to the queue while it
   * has attempts left, else FAILED with the reason; one whose cancel was requested becomes CANCELLED.
   * Nothing is left RUNNING and nothing is lost.
   */
  async recover(opts: { worker?: string } = {}): Promise<RecoveryReport> {
    const report: RecoveryReport = { requeued: [], failed: [], cancelled: [] };
    // A scale-out worker recovers only its own jobs, and the all-in-one runner only jobs no worker holds:
    // a worker's are its own, or come back through its expired lease (redisDispatch.ts).
    const running = await this.db.job.findMany({ where: { status: 'RUNNING', worker: opts.worker ?? null }, orderBy: { id: 'asc' } });
    for (const job of running) {
      if (job.cancelRequested) {
        await this.markCancelled(job.nodeId, ['RUNNING']);
        report.cancelled.push(job.nodeId);
      } else if (job.attempts < job.maxAttempts) {
        await this.fail(job, `interrupted: the server stopped during attempt ${job.attempts}; re-queued`, true);
        report.requeued.push(job.nodeId);
      } else {
        await this.fail(job, `interrupted: the server stopped during each of ${job.attempts} attempts`, false);
        report.failed.push(job.nodeId);
      }
    }
    // Node rows that say RUNNING without a running job (should not happen; repair rather than hide).
    if (opts.worker) return report;
    await this.db.node.updateMany({ where: { status: 'RUNNING', job: { is: { status: 'QUEUED' } } }, data: { status: 'QUEUED' } });
    return report;
  }

  /**
   * Jobs ahead of this node's in the queue (0 = next), or null when it is not queued: every job of
   * higher priority, and at equal priority the turns before this job's: with round-robin, this user's
   * k-th waiting job goes after min(n, k) jobs of each other user with n waiting (k + 1 for users whose
   * turn comes before this user's). Parents an edit waits for are not counted.
   */
  async position(nodeId: string): Promise<number | null> {
    return (await this.positions([nodeId])).get(nodeId) ?? null;
  }

  /**
   * position() of many nodes from one read of the queue (a request listing a tree's nodes asks for each):
   * the same count, from the QUEUED jobs and the same turn order as turnOrder(priority, false).
   */
  async positions(nodeIds: readonly string[]): Promise<Map<string, number | null>> {
    const out = new Map<string, number | null>(nodeIds.map((id) => [id, null]));
    const queued = await this.db.job.findMany({ where: { status: 'QUEUED' }, select: { id: true, nodeId: true, priority: true, node: { select: { createdById: true, createdAt: true } } } });
    const byPriority = new Map<number, typeof queued>();
    for (const j of queued) byPriority.set(j.priority, [...(byPriority.get(j.priority) ?? []), j]);
    const orders = new Map<number, { userId: string; waiting: number }[]>();
    const orderAt = (priority: number) => {
      let order = orders.get(priority);
      if (!order) {
        const groups = new Map<string, { userId: string; waiting: number; oldest: number }>();
        for (const j of byPriority.get(priority) ?? []) {
          const g = groups.get(j.node.createdById) ?? { userId: j.node.createdById, waiting: 0, oldest: Infinity };
          g.waiting++;
          g.oldest = Math.min(g.oldest, j.node.createdAt.getTime());
          groups.set(g.userId, g);
        }
        const key = (g: { userId: string; oldest: number }) => [this.lastServed.get(g.userId) ?? 0, g.oldest] as const;
        order = [...groups.values()]
          .sort((a, b) => {
            const [ta, ca] = key(a);
            const [tb, cb] = key(b);
            return ta - tb || ca - cb || (a.userId < b.userId ? -1 : a.userId > b.userId ? 1 : 0);
          })
          .map((g) => ({ userId: g.userId, waiting: g.waiting }));
        orders.set(priority, order);
      }
      return order;
    };
    const wanted = new Set(nodeIds);
    for (const job of queued) {
      if (!wanted.has(job.nodeId)) continue;
      const me = job.node.createdById;
      const higher = queued.filter((j) => j.priority > job.priority).length;
      const k = (byPriority.get(job.priority) ?? []).filter((j) => j.id < job.id && j.node.createdById === me).length;
      const order = orderAt(job.priority);
      const mine = order.findIndex((u) => u.userId === me);
      let ahead = higher + k;
      order.forEach((u, i) => {
        if (u.userId !== me) ahead += Math.min(u.waiting, k + (i < mine ? 1 : 0));
      });
      out.set(job.nodeId, ahead);
    }
    return out;
  }

}
