// Takes jobs from the queue one at a time and runs them on the inference backend:
//   1. claim the next job (priority, then FIFO)              → STARTED
//   2. run generate/edit in the engine worker, relaying steps → PROGRESSED (+ previews)
//   3. store the image, thumbnail and mask files
//   4. record the outcome                                     → SUCCEEDED / FAILED / CANCELLED
// Cancel reaches the worker, which stops before its next step. A crashed worker is retried while the job
// has attempts left. The runner never runs a model itself: the backend does, off this thread.

import type { Db } from '../../db/client';
import type { Job, Node as NodeRow } from '../../generated/sqlite/client';
import {
  EditStrategy,
  InferenceBackend,
  InferenceCancelledError,
  InferenceCrashedError,
  InferenceInputError,
  InferenceProgress,
  InferenceResult,
  LineageNode,
  SchedulerName,
} from '../inference/backend';
import type { Subscription } from '../events/pubsub';
import { log } from '../log';
import { EventBus, NodeProgressEvent } from '../events/treeEvents';
import { ImageStore } from '../images/imageStore';
import { EngineStateBudget, isDiskFull } from '../inference/stateBudget';
import { EtaModel, RunClock } from './etaModel';
import { ClaimedJob, JobOutcome, PrismaJobQueue } from './jobQueue';
import type { DispatchData } from './redisDispatch';
import type { WorkerRegistry } from './workerRegistry';
import { schedulerToEngine } from '../trees/settings';

export interface JobRunnerOptions {
  /** How often an idle runner looks at the queue when nobody kicks it (other processes may enqueue), ms. */
  pollMs?: number;
  /** Minimum time between two PROGRESSED tree events of one node (node progress is not throttled), ms. */
  treeProgressIntervalMs?: number;
  /** The engine state's disk budget: checked before each job, enforced after it, consulted when the disk is full. */
  stateBudget?: EngineStateBudget;
  /** Where jobs come from (default: the database queue); a scale-out worker takes them from Redis with a lease. */
  source?: JobSource;
  /** Told when a job was enqueued or ended, so the next ones are released (scale-out, redisDispatch.ts). */
  dispatch?: { kick(): void };
  /** A scale-out worker: its id and the nodes whose engine state it holds (workerRegistry.ts). */
  scaleOut?: ScaleOutWorker;
}

/** A claimed job; with a lease when it came from the Redis queue. */
export interface SourcedJob extends ClaimedJob {
  lease?: { done(): Promise<void> };
  affinity?: DispatchData['affinity'];
}

export interface JobSource {
  claimNext(): Promise<SourcedJob | null>;
}

export interface ScaleOutWorker {
  workerId: string;
  registry: WorkerRegistry;
  /** service node id → this worker's engine node id (its engine state). */
  held: Map<string, string>;
}

export class JobRunner {
  private running = false;
  private loop: Promise<void> | null = null;
  private wake: (() => void) | null = null;
  private current: { job: Job; node: NodeRow; cancelled: boolean; affinity?: DispatchData['affinity'] } | null = null;
  private draining = false;
  private stopping = false;
  private readonly finishWaiters = new Map<string, (() => void)[]>();
  private control: Subscription<CancelRequest> | null = null;
  private forgets: Subscription<ForgetRequest> | null = null;
  /** Measured step times per kind of job: the ETA of progress events. */
  private readonly eta = new EtaModel();

  constructor(
    private readonly db: Db,
    private readonly queue: PrismaJobQueue,
    private readonly backend: InferenceBackend,
    private readonly bus: EventBus,
    private readonly images: ImageStore,
    private readonly modelName: string,
    private readonly opts: JobRunnerOptions = {},
  ) {}

  /**
   * Starts taking jobs. With `control`, cancel requests published by other API processes (shared Redis)
   * reach the job running here too.
   */
  start(control?: Subscription<CancelRequest>, forgets?: Subscription<ForgetRequest>): void {
    if (this.running) return;
    this.running = true;
    this.stopping = false;
    this.loop = this.run();
    if (control) {
      this.control = control;
      void (async () => {
        for await (const req of control) this.cancel(req.nodeId);
      })();
    }
    if (forgets) {
      this.forgets = forgets;
      void (async () => {
        for await (const req of forgets) await this.forgetHeld(req.nodeIds).catch((e) => log.warn(`job runner: forgetting nodes: ${(e as Error).message}`));
      })();
    }
  }

  /** Wake an idle runner (a job was just enqueued). */
  kick(): void {
    this.opts.dispatch?.kick();
    this.wake?.();
  }

  /**
   * Graceful drain (SIGTERM on a worker): takes no new job, lets the running one finish within
   * `timeoutMs`, then stops it and hands it back to the queue (stop()).
   */
  async drain(timeoutMs: number): Promise<'finished' | 'handed back' | 'idle'> {
    this.draining = true;
    this.kick();
    const nodeId = this.currentNodeId();
    if (!nodeId) {
      await this.stop();
      return 'idle';
    }
    await this.waitForFinish(nodeId, timeoutMs);
    const stillRunning = this.currentNodeId() === nodeId;
    await this.stop();
    return stillRunning ? 'handed back' : 'finished';
  }

  /** The node whose job is running in this process, if any. */
  currentNodeId(): string | null {
    return this.current?.node.id ?? null;
  }

  /** Asks the running job of this node to stop at its next step; false if it is not running here. */
  /**
   * Edits waiting for a parent that FAILED or was CANCELLED can never run: fails them, saying why, and
   * tells their watchers. Run between jobs and right after a queued parent is cancelled.
   */
  async failOrphans(): Promise<void> {
    for (const n of await this.queue.failOrphans()) await this.finish(n, 'FAILED');
  }

  /** A job that ended without running here (a dead worker's, out of attempts): its watchers are told. */
  async ended(node: NodeRow): Promise<void> {
    if (node.status === 'FAILED' || node.status === 'CANCELLED' || node.status === 'SUCCEEDED') await this.finish(node, node.status);
  }

  /**
   * Frees the engine state of deleted nodes: here, or in scale-out on every worker that holds them (their
   * engine ids differ per worker), told over FORGET_TOPIC.
   */
  forget(nodes: readonly { nodeId: string; engineNodeId: string | null }[]): void {
    if (this.opts.dispatch) {
      if (nodes.length > 0) void this.bus.pubsub.publish(FORGET_TOPIC, { nodeIds: nodes.map((n) => n.nodeId) } satisfies ForgetRequest).catch((e) => log.warn(`job runner: cannot tell the workers to forget nodes: ${(e as Error).message}`));
      return;
    }
    this.backend.forget(nodes.filter((n) => n.engineNodeId).map((n) => n.engineNodeId!));
  }

  /** A scale-out worker forgets the deleted nodes it holds: their engine state and its announcements. */
  private async forgetHeld(nodeIds: readonly string[]): Promise<void> {
    const so = this.opts.scaleOut;
    if (!so) return;
    const mine = nodeIds.filter((id) => so.held.has(id));
    if (mine.length === 0) return;
    this.backend.forget(mine.map((id) => so.held.get(id)!));
    for (const id of mine) so.held.delete(id);
    await so.registry.withdraw(so.workerId, mine);
  }

  cancel(nodeId: string): boolean {
    if (!this.current || this.current.node.id !== nodeId) return false;
    this.current.cancelled = true;
    this.backend.cancel(runIdOf(this.current.job));
    return true;
  }

  /** Resolves when this node's current run has finished here (or at once if it is not running here). */
  waitForFinish(nodeId: string, timeoutMs: number): Promise<void> {
    if (this.current?.node.id !== nodeId) return Promise.resolve();
    return new Promise((resolve) => {
      const t = setTimeout(resolve, timeoutMs);
      const list = this.finishWaiters.get(nodeId) ?? [];
      list.push(() => {
        clearTimeout(t);
        resolve();
      });
      this.finishWaiters.set(nodeId, list);
    });
  }

  /**
   * Graceful stop: the running job is stopped in the worker and handed back to the queue without using
   * up an attempt, so the next start runs it again.
   */
  async stop(): Promise<void> {
    if (!this.running) return;
    this.stopping = true;
    this.running = false;
    if (this.current) this.backend.cancel(runIdOf(this.current.job));
    this.kick();
    this.control?.close();
    this.control = null;
    this.forgets?.close();
    this.forgets = null;
    await this.loop;
    this.loop = null;
  }

  private async run(): Promise<void> {
    while (this.running) {
      let claimed: SourcedJob | null;
      try {
        await this.failOrphans();
        claimed = this.draining ? null : await (this.opts.source ?? this.queue).claimNext();
      } catch (e) {
        log.error({ err: e }, 'job runner: cannot read the queue');
        claimed = null;
      }
      if (!claimed) {
        if (!this.running) break;
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, this.opts.pollMs ?? 1000);
          this.wake = () => {
            clearTimeout(t);
            resolve();
          };
        });
        this.wake = null;
        continue;
      }
      this.current = { ...claimed, cancelled: false, affinity: claimed.affinity };
      try {
        await this.runJob(claimed.job, claimed.node);
      } catch (e) {
        // A bug or a database failure while recording: leave a clear state, never a silent RUNNING.
        log.error({ jobId: claimed.job.id, nodeId: claimed.node.id, err: e }, 'job runner: job failed inside the runner');
        const message = isDiskFull(e) ? await this.diskFull() : 'internal error while running this job';
        const n = await this.queue.fail(claimed.job, message, false).catch(() => null);
        if (n?.status === 'FAILED') await this.finish(n, 'FAILED').catch(() => undefined);
      } finally {
        const nodeId = claimed.node.id;
        await claimed.lease?.done().catch((e) => log.warn(`job runner: lease: ${(e as Error).message}`));
        this.opts.dispatch?.kick();
        this.current = null;
        for (const w of this.finishWaiters.get(nodeId) ?? []) w();
        this.finishWaiters.delete(nodeId);
        this.opts.stateBudget?.enforce().catch((e) => log.error(`job runner: engine state budget: ${(e as Error).message}`));
      }
    }
  }

  /** Frees what the disk budget can (cold caches) and says why the job failed. */
  private async diskFull(): Promise<string> {
    const budget = this.opts.stateBudget;
    if (!budget) return "the server's disk is full; retry the job once space is freed";
    await budget.makeRoomAfterDiskFull().catch((e) => log.error(`job runner: engine state budget: ${(e as Error).message}`));
    return budget.diskFullMessage(await budget.freeDiskBytes());
  }

  private async runJob(job: Job, node: NodeRow): Promise<void> {
    // A full disk fails the job before it starts (after evicting cold caches), saying why.
    const noRoom = await this.opts.stateBudget?.roomForJob();
    if (noRoom) {
      const n = await this.queue.fail(job, noRoom, false);
      if (n) await this.finish(n, 'FAILED');
      return;
    }
    await this.bus.tree('STARTED', node);
    await this.bus.progress({ ...baseProgress(node), step: 0, totalSteps: node.steps, phase: 'ENCODING', status: 'RUNNING', etaMs: null });
    let lastTreeProgress = 0;
    const kind = etaKind(node);
    const clock = new RunClock();
    const onProgress = (p: InferenceProgress) => {
      let etaMs: number | null = null;
      if (p.phase === 'CAPTURING' || p.phase === 'DENOISING' || p.phase === 'DECODING') {
        const sample = { step: p.step, totalSteps: p.totalSteps, at: performance.now() };
        clock.step(sample);
        etaMs = this.eta.eta(kind, clock, sample);
      }
      void this.relayProgress(node, p, etaMs).then((ev) => {
        const now = Date.now();
        if (ev.preview || now - lastTreeProgress >= (this.opts.treeProgressIntervalMs ?? 250)) {
          lastTreeProgress = now;
          return this.bus.tree('PROGRESSED', node, { progress: ev });
        }
      });
    };
    let result: InferenceResult;
    try {
      result = await this.infer(job, node, onProgress);
    } catch (e) {
      await this.onRunError(job, node, e as Error);
      return;
    }
    this.eta.finished(kind, clock, performance.now());
    // Ancestors whose engine state the run rebuilt: later edits of them start from the new records (on a
    // scale-out worker, from this worker's: Node.engineNodeId stays the id on the worker that ran the node).
    const so = this.opts.scaleOut;
    if (so) await this.hold(so, result.rebuilt ?? []);
    else for (const r of result.rebuilt ?? []) await this.db.node.updateMany({ where: { id: r.nodeId }, data: { engineNodeId: r.engineNodeId } });
    const placement = so ? this.placement(so, node, result) : {};
    // 3. files
    if (result.maskNotApplied && node.parentId) await this.keepParentOutsideMask(node, result);
    const text = pngText(node, this.modelName);
    const files = await this.images.saveResult(node.treeId, node.id, result.rgb, result.width, result.height, text);
    const maskPath = result.mask ? await this.images.saveMask(node.treeId, node.id, 'mask', result.mask.data, result.mask.width, result.mask.height) : null;
    // 4. outcome
    const done = await this.queue.succeed(job, {
      statsMode: result.mode,
      wallMs: result.wallMs,
      denseEstimateMs: result.denseEstimateMs,
      speedup: result.denseEstimateMs && result.wallMs > 0 ? result.denseEstimateMs / result.wallMs : null,
      maskedFraction: result.maskedFraction,
      fallbackReason: result.fallbackReason ?? null,
      imagePath: files.imagePath,
      thumbPath: files.thumbPath,
      maskPath,
      engineNodeId: result.engineNodeId ?? null,
      ...placement,
    });
    if (so && done && result.engineNodeId) await this.hold(so, [{ nodeId: node.id, engineNodeId: result.engineNodeId }]);
    if (!done) {
      // The branch was deleted while this job ran; or (scale-out) this worker lost its lease and another
      // worker runs the job now: then the files are that run's too and stay.
      if ((await this.db.node.count({ where: { id: node.id } })) === 0) await this.images.remove([files.imagePath, files.thumbPath, maskPath]);
      return;
    }
    await this.finish(done, 'SUCCEEDED');
  }

  private infer(job: Job, node: NodeRow, onProgress: (p: InferenceProgress) => void): Promise<InferenceResult> {
    const req = {
      prompt: node.prompt,
      negativePrompt: node.negativePrompt,
      seed: node.seed,
      steps: node.steps,
      guidance: node.guidance,
      scheduler: schedulerToEngine(node.scheduler) as SchedulerName,
      width: node.width,
      height: node.height,
    };
    if (!node.parentId) return this.backend.generate(runIdOf(job), req, onProgress);
    return this.loadParentAndEdit(job, node, req, onProgress);
  }

  private async loadParentAndEdit(job: Job, node: NodeRow, req: Parameters<InferenceBackend['generate']>[1], onProgress: (p: InferenceProgress) => void): Promise<InferenceResult> {
    const parent = await this.db.node.findUnique({ where: { id: node.parentId! } });
    // The ancestry, root first: the engine rebuilds the parent from it when the parent's state is gone.
    const lineage: LineageNode[] = [];
    // On a scale-out worker only this worker's engine records count (the others' live on other disks).
    const held = this.opts.scaleOut?.held;
    const engineIdOf = (n: NodeRow) => (held ? (held.get(n.id) ?? null) : n.engineNodeId);
    if (this.current?.node.id === node.id && held && parent) this.parentHeld = held.has(parent.id);
    for (let n = parent; n && lineage.length <= 10_000; n = n.parentId ? await this.db.node.findUnique({ where: { id: n.parentId } }) : null) {
      lineage.unshift({ nodeId: n.id, engineNodeId: engineIdOf(n), prompt: n.prompt, negativePrompt: n.negativePrompt, strategy: n.parentId ? (n.strategy as EditStrategy) : null, mask: await this.inputMask(n) });
    }
    return this.backend.edit(
      runIdOf(job),
      { ...req, parentNodeId: node.parentId!, parentPrompt: parent?.prompt ?? '', parentEngineNodeId: parent ? engineIdOf(parent) : null, strategy: node.strategy as EditStrategy, mask: await this.inputMask(node), lineage },
      onProgress,
    );
  }

  /** Whether the running edit's parent was held here when it started (scale-out). */
  private parentHeld: boolean | null = null;

  /** These nodes' engine state is on this worker now: remembered and announced for cache affinity. */
  private async hold(so: ScaleOutWorker, nodes: readonly { nodeId: string; engineNodeId: string }[]): Promise<void> {
    for (const n of nodes) so.held.set(n.nodeId, n.engineNodeId);
    await so.registry.announce(so.workerId, nodes).catch((e) => log.warn(`job runner: cannot announce cached nodes: ${(e as Error).message}`));
  }

  /** Which worker ran the node, whether an edit found its parent's cache here, and why not. */
  private placement(so: ScaleOutWorker, node: NodeRow, result: InferenceResult): Pick<JobOutcome, 'worker' | 'cacheHit' | 'fallbackReason'> {
    if (!node.parentId) return { worker: so.workerId, cacheHit: null };
    const hit = this.parentHeld === true;
    this.parentHeld = null;
    const a = this.current?.affinity;
    const why = hit
      ? null
      : a
        ? `ran on worker ${so.workerId}, not on ${a.worker} which holds the parent's cache (${a.reason === 'gone' ? 'that worker is gone' : `busy for ${Math.round(a.waitedMs)} ms`})`
        : `ran on worker ${so.workerId}, which did not hold the parent's cache`;
    const fallbackReason = [why, result.fallbackReason].filter((x) => x).join('; ') || null;
    return { worker: so.workerId, cacheHit: hit, fallbackReason };
  }

  /**
   * The engine ran the edit without its mask (no node store): every pixel outside the user's mask becomes
   * the parent's again, so the mask holds whatever the engine could do.
   */
  private async keepParentOutsideMask(node: NodeRow, result: InferenceResult): Promise<void> {
    const parent = await this.db.node.findUnique({ where: { id: node.parentId! }, select: { imagePath: true } });
    const mask = await this.inputMask(node);
    if (!parent?.imagePath || !mask || mask.width !== result.width || mask.height !== result.height) return;
    const sharp = (await import('sharp')).default;
    const img = await sharp(await this.images.read(parent.imagePath)).removeAlpha().raw().toBuffer({ resolveWithObject: true });
    if (img.info.width !== result.width || img.info.height !== result.height || img.info.channels !== 3) return;
    for (let p = 0; p < mask.data.length; p++) if (mask.data[p] === 0) for (let c = 0; c < 3; c++) result.rgb[p * 3 + c] = img.data[p * 3 + c];
    result.mask = { data: mask.data.map((v) => (v > 0 ? 255 : 0)), width: mask.width, height: mask.height };
    result.maskedFraction = mask.data.reduce((n, v) => n + (v > 0 ? 1 : 0), 0) / mask.data.length;
    result.fallbackReason = `${result.fallbackReason ?? ''}; the parent's pixels were kept outside the mask`.replace(/^; /, '');
  }

  /** The mask the node's user drew (image size, 8-bit grey), or null. */
  private async inputMask(node: NodeRow): Promise<{ data: Uint8Array; width: number; height: number } | null> {
    if (!node.inputMaskPath) return null;
    const sharp = (await import('sharp')).default;
    const raw = await sharp(await this.images.read(node.inputMaskPath)).removeAlpha().greyscale().raw().toBuffer();
    return { data: new Uint8Array(raw), width: node.width, height: node.height };
  }

  private async onRunError(job: Job, node: NodeRow, e: Error): Promise<void> {
    if (e instanceof InferenceCancelledError) {
      if (this.stopping && !this.current?.cancelled) {
        await this.queue.handBack(job);
        return;
      }
      const n = await this.queue.markCancelled(node.id, ['RUNNING']);
      if (n) await this.finish(n, 'CANCELLED');
      return;
    }
    const crashed = e instanceof InferenceCrashedError;
    const message = e instanceof InferenceInputError ? `invalid request: ${e.message}` : isDiskFull(e) ? await this.diskFull() : e.message;
    const n = await this.queue.fail(job, message, crashed);
    if (!n) return;
    if (n.status === 'QUEUED') {
      // Crashed with attempts left: back in the queue; watchers see it waiting again.
      await this.bus.progress({ ...baseProgress(n), step: 0, totalSteps: n.steps, phase: 'QUEUED', status: 'QUEUED', etaMs: null });
      return;
    }
    await this.finish(n, 'FAILED');
  }

  private async finish(node: NodeRow, type: 'SUCCEEDED' | 'FAILED' | 'CANCELLED'): Promise<void> {
    const last = this.bus.latestProgress(node.id);
    await this.bus.progress({
      ...baseProgress(node),
      step: type === 'SUCCEEDED' ? node.steps : (last?.step ?? 0),
      totalSteps: node.steps,
      phase: 'DONE',
      status: node.status,
      etaMs: 0,
      maskedFraction: node.maskedFraction,
    });
    await this.bus.tree(type, node);
  }

  private relayProgress(node: NodeRow, p: InferenceProgress, etaMs: number | null): Promise<NodeProgressEvent> {
    return this.bus.progress({
      ...baseProgress(node),
      step: p.step,
      totalSteps: p.totalSteps,
      phase: p.phase,
      status: 'RUNNING',
      etaMs,
      preview: p.preview,
      maskedFraction: p.maskedFraction,
    });
  }
}

/** Published on CONTROL_TOPIC by whoever wants a node's running job stopped (any API process). */
export interface CancelRequest {
  nodeId: string;
}
export const CONTROL_TOPIC = 'job-control';

/** Published on FORGET_TOPIC when nodes are deleted in scale-out: every worker frees those it holds. */
export interface ForgetRequest {
  nodeIds: string[];
}
export const FORGET_TOPIC = 'engine-forget';

export function runIdOf(job: Job): string {
  return `job-${job.id}-attempt-${job.attempts}`;
}

/** Jobs whose steps cost alike: generation or edit strategy (a user mask: no capture steps), size, guidance. */
function etaKind(node: NodeRow): string {
  const what = node.parentId ? `edit:${node.strategy}${node.inputMaskPath ? '+mask' : ''}` : 'generate';
  return `${what}:${node.width}x${node.height}:${node.guidance > 1 ? 'cfg' : 'plain'}`;
}

function baseProgress(node: NodeRow) {
  return { nodeId: node.id, treeId: node.treeId, preview: null as string | null, maskedFraction: null as number | null };
}

/** Parameters written into the PNG, so a downloaded image still says how it was made. */
function pngText(node: NodeRow, model: string): Record<string, string> {
  return {
    prompt: node.prompt,
    negative_prompt: node.negativePrompt,
    seed: String(node.seed),
    steps: String(node.steps),
    guidance: String(node.guidance),
    scheduler: schedulerToEngine(node.scheduler),
    width: String(node.width),
    height: String(node.height),
    model,
    fisedit_node: node.id,
    ...(node.parentId ? { fisedit_parent: node.parentId } : {}),
    Software: 'fisedit',
  };
}
