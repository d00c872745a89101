// The durable job queue: one Job row per node, in the database, so the queue survives a restart.
// Order: higher priority first, then FIFO (Job.id is an autoincrement). A claim is a conditional update
// (QUEUED → RUNNING where still QUEUED), so two runners never take the same job, on SQLite or PostgreSQL.
//
// Node.status mirrors Job.status; both change in one transaction. Node rows are updated with updateMany
// because a branch may be deleted while its job runs: the update then touches nothing, and the runner
// throws the result away.

import type { Db } from '../../db/client';
import type { Job, Node as NodeRecord } from '../../generated/sqlite/client';

export interface ClaimedJob {
  job: Job;
  node: NodeRecord;
}

export interface JobOutcome {
  statsMode: 'DENSE' | 'SPARSE' | 'PARENT';
  wallMs: number;
  denseEstimateMs: number | null;
  speedup: number | null;
  maskedFraction: number | null;
  imagePath: string;
  thumbPath: string;
  maskPath: string | null;
  /** The node's id in the engine's node store, when the engine recorded it. */
  engineNodeId?: string | null;
}

export interface RecoveryReport {
  requeued: string[];
  failed: string[];
  cancelled: string[];
}

export class PrismaJobQueue {
  constructor(private readonly db: Db) {}

  /** The next job by priority then FIFO, now RUNNING with attempts + 1; null when the queue is empty. */
  async claimNext(): Promise<ClaimedJob | null> {
    for (let tries = 0; tries < 5; tries++) {
      const next = await this.db.job.findFirst({ where: { status: 'QUEUED' }, orderBy: [{ priority: 'desc' }, { id: 'asc' }] });
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
      if (claimed) return claimed;
      // Someone else claimed or deleted it between the read and the update: look again.
    }
    return null;
  }

  async succeed(job: Job, outcome: JobOutcome): Promise<NodeRecord | null> {
    const now = new Date();
    return this.db.$transaction(async (tx) => {
      const r = await tx.node.updateMany({ where: { id: job.nodeId }, data: { status: 'SUCCEEDED', finishedAt: now, error: null, ...outcome } });
      if (r.count === 0) return null;
      await tx.job.updateMany({ where: { id: job.id }, data: { status: 'SUCCEEDED', finishedAt: now, error: null } });
      return tx.node.findUnique({ where: { id: job.nodeId } });
    });
  }

  /** FAILED for good, or back to QUEUED when `retry` and attempts remain. */
  async fail(job: Job, error: string, retry: boolean): Promise<NodeRecord | null> {
    const requeue = retry && job.attempts < job.maxAttempts;
    const now = new Date();
    return this.db.$transaction(async (tx) => {
      const status = requeue ? 'QUEUED' : 'FAILED';
      const r = await tx.node.updateMany({ where: { id: job.nodeId }, data: { status, error: requeue ? null : error, finishedAt: requeue ? null : now } });
      if (r.count === 0) return null;
      await tx.job.updateMany({ where: { id: job.id }, data: { status, error, finishedAt: requeue ? null : now, ...(requeue ? { queuedAt: now } : {}) } });
      return tx.node.findUnique({ where: { id: job.nodeId } });
    });
  }

  async markCancelled(nodeId: string, fromStatuses: ('QUEUED' | 'RUNNING')[]): Promise<NodeRecord | null> {
    const now = new Date();
    return this.db.$transaction(async (tx) => {
      const r = await tx.job.updateMany({ where: { nodeId, status: { in: fromStatuses } }, data: { status: 'CANCELLED', finishedAt: now, cancelRequested: true } });
      if (r.count === 0) return null;
      await tx.node.updateMany({ where: { id: nodeId }, data: { status: 'CANCELLED', finishedAt: now } });
      return tx.node.findUnique({ where: { id: nodeId } });
    });
  }

  async requestCancel(nodeId: string): Promise<boolean> {
    const r = await this.db.job.updateMany({ where: { nodeId, status: 'RUNNING' }, data: { cancelRequested: true } });
    return r.count > 0;
  }

  /** A RUNNING job handed back without counting the attempt (graceful shutdown). */
  async handBack(job: Job): Promise<void> {
    await this.db.$transaction(async (tx) => {
      const r = await tx.job.updateMany({ where: { id: job.id, status: 'RUNNING' }, data: { status: 'QUEUED', attempts: { decrement: 1 }, startedAt: null } });
      if (r.count === 1) await tx.node.updateMany({ where: { id: job.nodeId }, data: { status: 'QUEUED', startedAt: null } });
    });
  }

  /** FAILED or CANCELLED → QUEUED with a fresh attempt budget; false if the node is in another state. */
  async retry(nodeId: string, priority?: number): Promise<boolean> {
    const now = new Date();
    return this.db.$transaction(async (tx) => {
      const r = await tx.job.updateMany({
        where: { nodeId, status: { in: ['FAILED', 'CANCELLED'] } },
        data: { status: 'QUEUED', attempts: 0, cancelRequested: false, error: null, queuedAt: now, startedAt: null, finishedAt: null, ...(priority === undefined ? {} : { priority }) },
      });
      if (r.count === 0) return false;
      await tx.node.updateMany({
        where: { id: nodeId },
        data: { status: 'QUEUED', error: null, startedAt: null, finishedAt: null, statsMode: null, wallMs: null, denseEstimateMs: null, speedup: null, maskedFraction: null, engineNodeId: null },
      });
      return true;
    });
  }

  /**
   * Start-up recovery: a job still RUNNING was interrupted by a crash. It goes back to the queue while it
   * has attempts left, else FAILED with the reason; one whose cancel was requested becomes CANCELLED.
   * Nothing is left RUNNING and nothing is lost.
   */
  async recover(): Promise<RecoveryReport> {
    const report: RecoveryReport = { requeued: [], failed: [], cancelled: [] };
    const running = await this.db.job.findMany({ where: { status: 'RUNNING' }, orderBy: { id: 'asc' } });
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
    await this.db.node.updateMany({ where: { status: 'RUNNING', job: { is: { status: 'QUEUED' } } }, data: { status: 'QUEUED' } });
    return report;
  }

  /** Jobs ahead of this node's in the queue (0 = next), or null when it is not queued. */
  async position(nodeId: string): Promise<number | null> {
    const job = await this.db.job.findUnique({ where: { nodeId } });
    if (!job || job.status !== 'QUEUED') return null;
    return this.db.job.count({
      where: { status: 'QUEUED', OR: [{ priority: { gt: job.priority } }, { priority: job.priority, id: { lt: job.id } }] },
    });
  }
}
