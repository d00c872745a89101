// The composition root: database, events, inference worker, queue, runner and tree operations wired
// together. `createService` is what `fisedit serve` and the tests call; `close` undoes it in order.
//
// Start-up order matters for "the queue survives a restart": recovery runs before the runner takes
// its first job, so a job that was RUNNING when the last process died is re-queued (or failed, when it
// has used its attempts) and never left RUNNING.

import type { EngineDevice } from '../engine/runtime/ortSession';
import { createHash } from 'crypto';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import Redis from 'ioredis';
import { Database, openDatabase, SqliteSynchronous } from '../db/client';
import { defaultDatabaseUrl } from '../db/databaseUrl';
import { ClipTokenizer } from '../engine/tokenizer/clipTokenizer';
import { lockDataDir, lockPostgresRunner } from './dataDirLock';
import { TokenAuthenticator } from './auth/tokens';
import { MemoryPubSub } from './events/memoryPubSub';
import { PubSub } from './events/pubsub';
import { RedisPubSub } from './events/redisPubSub';
import { EventBus } from './events/treeEvents';
import type { ImageStore } from './images/imageStore';
import { ImageStoreConfig, openImageStore } from './images/openImageStore';
import { loadSigningKey, UrlSigner } from './images/signedUrls';
import { InferenceBackend, ModelInfo } from './inference/backend';
import { EngineStateBudget, StateBudgetLimits, stateLimitsFromEnv } from './inference/stateBudget';
import { WorkerInferenceBackend, WorkerMode } from './inference/workerBackend';
import { PrismaJobQueue, RecoveryReport } from './jobs/jobQueue';
import { CONTROL_TOPIC, FORGET_TOPIC, JobRunner, type CancelRequest, type ForgetRequest, type ScaleOutWorker } from './jobs/jobRunner';
import { LeasedJobSource, RedisJobQueue } from './jobs/redisDispatch';
import { checkWorkerId, WorkerRegistry } from './jobs/workerRegistry';
import { TreeService } from './trees/treeService';
import { log } from './log';

export interface ServiceOptions {
  dataDir: string;
  modelDir: string;
  /** Default: SQLite file in dataDir. */
  databaseUrl?: string;
  /** Default: in-process. redis://… to share events between several API processes. */
  redisUrl?: string;
  sqliteSynchronous?: SqliteSynchronous;
  /** Inject another backend (tests); default: the engine in a worker thread. */
  backend?: InferenceBackend;
  /** Where the engine runs: a child process (default, crash-isolated) or a worker thread. */
  engineMode?: WorkerMode;
  intraOpNumThreads?: number;
  /** Where the engine's graphs run (default cpu); checked by the caller (fisedit serve) before this. */
  device?: EngineDevice;
  previewIntervalMs?: number;
  /** Jobs one user may have waiting at once (default 100). */
  maxQueuedPerUser?: number;
  /**
   * Names of the users who may queue jobs above priority 0 (default: env FISEDIT_PRIORITY_USERS, a
   * comma-separated list; else nobody). Everyone may use priority 0 or lower.
   */
  priorityUsers?: readonly string[];
  /**
   * Run queued jobs in this process (default true). With several API processes on one database, exactly
   * one runs jobs: start-up recovery treats every RUNNING job as interrupted, which is only true when
   * no other runner is alive. The others serve the API and relay events and cancels through Redis.
   */
  runJobs?: boolean;
  /** The engine state's disk budget (default: env FISEDIT_STATE_BYTES, FISEDIT_STATE_USER_BYTES, FISEDIT_MIN_FREE_BYTES). */
  stateLimits?: StateBudgetLimits;
  /** Resident bytes of the engine's activation cache (default: env FISEDIT_CACHE_BYTES, else 2 GiB). */
  cacheBytes?: number;
  /** Where image files live (default: the folder DATA/images); every process of a deployment names the same store. */
  images?: ImageStoreConfig;
  /**
   * Scale-out (docs/scaling.md): API replicas (role api: no jobs run here) and workers (role worker: jobs
   * only) share PostgreSQL and Redis; jobs travel through the Redis queue (jobs/redisDispatch.ts). Needs
   * redisUrl. Without it: the all-in-one server and its database queue.
   */
  scaleOut?: ScaleOutOptions;
  /** How long a revoked token keeps working at most, ms (default 10 s): HTTP, WebSocket operations and open sockets. */
  revocationMs?: number;
}

export interface ScaleOutOptions {
  role: 'api' | 'worker';
  /** A worker's name in the registry and its queue's (default: host name and a hash of the data dir, so a restart keeps it). */
  workerId?: string;
  /** How long an edit waits for the worker holding its parent's cache, ms (default 10 s; env FISEDIT_AFFINITY_WAIT_MS). */
  affinityWaitMs?: number;
  /**
   * A running job's lease, ms (default 30 s): a worker that stops renewing it for this long loses the job.
   * A worker's heartbeat in the registry lives as long: then its queue's edits fall back to any worker.
   */
  leaseMs?: number;
  /** Namespace of the deployment's Redis keys and queues (default: env FISEDIT_REDIS_PREFIX, else "fisedit"). */
  prefix?: string;
}

/** The default worker id: stable for one host and data dir (its engine state), so a restarted worker keeps its caches' announcements. */
export function defaultWorkerId(dataDir: string): string {
  const host = os.hostname().replace(/[^A-Za-z0-9._-]/g, '-').slice(0, 60) || 'host';
  return `${host}-${createHash('sha256').update(path.resolve(dataDir)).digest('hex').slice(0, 8)}`;
}

/** The engine's node store (roots recorded with activations, sparse edits) lives here, under the data dir. */
export const ENGINE_STATE_DIR = 'engine-state';
const DEFAULT_CACHE_BYTES = 2 * 2 ** 30;

/** FISEDIT_CACHE_BYTES: a positive integer number of bytes; anything else is refused with the variable named. */
export function cacheBytesFromEnv(env: NodeJS.ProcessEnv = process.env): number {
  const v = env.FISEDIT_CACHE_BYTES;
  if (v === undefined || v.trim() === '') return DEFAULT_CACHE_BYTES;
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n <= 0) throw new Error(`src/service/service.ts: FISEDIT_CACHE_BYTES must be a positive integer number of bytes (got ${JSON.stringify(v)})`);
  return n;
}

/** FISEDIT_AFFINITY_WAIT_MS: how long an edit waits for the worker holding its parent's cache (default 10 s). */
export function affinityWaitFromEnv(env: NodeJS.ProcessEnv = process.env): number {
  const v = env.FISEDIT_AFFINITY_WAIT_MS;
  if (v === undefined || v.trim() === '') return 10_000;
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 0) throw new Error(`src/service/service.ts: FISEDIT_AFFINITY_WAIT_MS must be a non-negative integer number of ms (got ${JSON.stringify(v)})`);
  return n;
}

/** FISEDIT_PRIORITY_USERS: comma-separated user names; blanks ignored. */
export function priorityUsersFromEnv(env: NodeJS.ProcessEnv = process.env): string[] {
  return (env.FISEDIT_PRIORITY_USERS ?? '').split(',').map((s) => s.trim()).filter((s) => s !== '');
}

export interface Service {
  database: Database;
  trees: TreeService;
  auth: TokenAuthenticator;
  bus: EventBus;
  pubsub: PubSub;
  images: ImageStore;
  signer: UrlSigner;
  runner: JobRunner;
  queue: PrismaJobQueue;
  backend: InferenceBackend;
  model: ModelInfo;
  recovery: RecoveryReport;
  /** The engine state's disk budget (usage shown in the model query). */
  stateBudget: EngineStateBudget;
  /** Scale-out: the Redis queue, and for a worker its id. */
  scaleOut: { queue: RedisJobQueue; workerId: string | null } | null;
  /** Stops the runner (handing a running job back to the queue), the worker, events and the database. */
  close(): Promise<void>;
}

function loadTokenizer(modelDir: string): ClipTokenizer | null {
  const dir = path.join(modelDir, 'tokenizer');
  const f = (n: string) => path.join(dir, n);
  if (!fs.existsSync(f('vocab.json')) || !fs.existsSync(f('merges.txt'))) return null;
  return ClipTokenizer.fromFiles(
    f('vocab.json'),
    f('merges.txt'),
    fs.existsSync(f('tokenizer_config.json')) ? f('tokenizer_config.json') : undefined,
    fs.existsSync(f('special_tokens_map.json')) ? f('special_tokens_map.json') : undefined,
  );
}

export async function createService(opts: ServiceOptions): Promise<Service> {
  const dataDir = path.resolve(opts.dataDir);
  fs.mkdirSync(dataDir, { recursive: true });
  // Recovery assumes this process is the only one running jobs on this data dir (see runJobs): a second
  // runner stops here, before it opens anything (DataDirLockedError).
  const scale = opts.scaleOut ?? null;
  if (scale && !opts.redisUrl) throw new Error(`a scale-out ${scale.role === 'api' ? 'API replica' : 'worker'} needs Redis (--redis-url): the job queue lives there`);
  const runJobs = scale ? scale.role === 'worker' : (opts.runJobs ?? true);
  const lock = runJobs ? lockDataDir(dataDir) : null;
  const cleanup: (() => Promise<void>)[] = [async () => lock?.release()];
  try {
    const database = await openDatabase({ url: opts.databaseUrl ?? defaultDatabaseUrl(dataDir), synchronous: opts.sqliteSynchronous });
    cleanup.unshift(() => database.close());
    if (runJobs && !scale && database.provider === 'postgresql') {
      const pgLock = await lockPostgresRunner(opts.databaseUrl!);
      cleanup.unshift(() => pgLock.release());
    }
    const backend =
      opts.backend ??
      new WorkerInferenceBackend({
        modelDir: opts.modelDir,
        mode: opts.engineMode,
        intraOpNumThreads: opts.intraOpNumThreads,
        device: opts.device,
        previewIntervalMs: opts.previewIntervalMs,
        stateDir: path.join(dataDir, ENGINE_STATE_DIR),
        cacheBytes: opts.cacheBytes ?? cacheBytesFromEnv(),
      });
    cleanup.unshift(() => backend.close());
    const model = await backend.start();
    const pubsub: PubSub = opts.redisUrl ? new RedisPubSub({ url: opts.redisUrl }) : new MemoryPubSub();
    cleanup.unshift(() => pubsub.close());
    const bus = new EventBus(pubsub, database.db);
    const images = openImageStore(opts.images, dataDir, database);
    const queue = new PrismaJobQueue(database.db);
    let redisQueue: RedisJobQueue | null = null;
    let source: LeasedJobSource | null = null;
    let worker: ScaleOutWorker | null = null;
    if (scale) {
      const prefix = scale.prefix ?? (process.env.FISEDIT_REDIS_PREFIX || 'fisedit');
      const redis = new Redis(opts.redisUrl!, { maxRetriesPerRequest: null });
      const registry = new WorkerRegistry(redis, { prefix: `${prefix}:`, aliveMs: scale.leaseMs ?? 30_000 });
      const rq = new RedisJobQueue(database.db, registry, { redisUrl: opts.redisUrl!, affinityWaitMs: scale.affinityWaitMs ?? affinityWaitFromEnv(), leaseMs: scale.leaseMs, prefix }, redis);
      redisQueue = rq;
      cleanup.unshift(() => rq.close());
      if (scale.role === 'worker') {
        const workerId = checkWorkerId(scale.workerId ?? defaultWorkerId(dataDir));
        const held = await registry.held(workerId);
        // Announcements of nodes whose engine state is no longer on this disk are withdrawn.
        const gone = [...held].filter(([, engineId]) => !fs.existsSync(path.join(dataDir, ENGINE_STATE_DIR, 'nodes', engineId))).map(([id]) => id);
        await registry.withdraw(workerId, gone);
        for (const id of gone) held.delete(id);
        worker = { workerId, registry, held };
        const src = new LeasedJobSource(rq, queue, workerId);
        source = src;
        cleanup.unshift(() => src.close());
        await registry.register(workerId);
        cleanup.unshift(() => registry.unregister(workerId));
      }
    }
    const recovery = runJobs ? await queue.recover(worker ? { worker: worker.workerId } : {}) : { requeued: [], failed: [], cancelled: [] };
    const stateBudget = new EngineStateBudget(database.db, backend, path.join(dataDir, ENGINE_STATE_DIR), opts.stateLimits ?? stateLimitsFromEnv());
    const runner = new JobRunner(database.db, queue, backend, bus, images, model.name, {
      stateBudget,
      ...(redisQueue ? { dispatch: redisQueue } : {}),
      ...(source && worker ? { source, scaleOut: worker, pollMs: 200 } : {}),
    });
    if (source) {
      source.onEnded = (n) => runner.ended(n);
      await source.start();
    }
    const trees = new TreeService(database.db, queue, runner, bus, images, model, loadTokenizer(opts.modelDir), opts.maxQueuedPerUser, new Set(opts.priorityUsers ?? priorityUsersFromEnv()));
    const signer = new UrlSigner(await loadSigningKey(database.db, dataDir));
    if (runJobs) runner.start(await pubsub.subscribe<CancelRequest>(CONTROL_TOPIC), worker ? await pubsub.subscribe<ForgetRequest>(FORGET_TOPIC) : undefined);
    // Measure (and bring within budget) what earlier runs left, without delaying the start.
    if (runJobs) stateBudget.enforce().catch((e) => log.error(`engine state budget: ${(e as Error).message}`));
    let closed = false;
    return {
      database, trees, auth: new TokenAuthenticator(database.db, opts.revocationMs), bus, pubsub, images, signer, runner, queue, backend, model, recovery, stateBudget,
      scaleOut: redisQueue ? { queue: redisQueue, workerId: worker?.workerId ?? null } : null,
      async close() {
        if (closed) return;
        closed = true;
        await runner.stop();
        for (const c of cleanup) await c().catch((e) => log.error(`service close: ${(e as Error).message}`));
      },
    };
  } catch (e) {
    for (const c of cleanup) await c().catch(() => undefined);
    throw e;
  }
}
