// The composition root: database, events, inference worker, queue, runner and tree operations wired
// together. `createService` is what `fisedit serve` and the tests call; `close` undoes it in order.
//
// Start-up order matters for "the queue survives a restart": recovery runs before the runner takes
// its first job, so a job that was RUNNING when the last process died is re-queued (or failed, when it
// has used its attempts) and never left RUNNING.

import type { EngineDevice } from '../engine/runtime/ortSession';
import * as fs from 'fs';
import * as path from 'path';
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
import { CONTROL_TOPIC, JobRunner, type CancelRequest } from './jobs/jobRunner';
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
  /** How long a revoked token keeps working at most, ms (default 10 s): HTTP, WebSocket operations and open sockets. */
  revocationMs?: number;
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
  const runJobs = opts.runJobs ?? true;
  const lock = runJobs ? lockDataDir(dataDir) : null;
  const cleanup: (() => Promise<void>)[] = [async () => lock?.release()];
  try {
    const database = await openDatabase({ url: opts.databaseUrl ?? defaultDatabaseUrl(dataDir), synchronous: opts.sqliteSynchronous });
    cleanup.unshift(() => database.close());
    if (runJobs && database.provider === 'postgresql') {
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
    const recovery = runJobs ? await queue.recover() : { requeued: [], failed: [], cancelled: [] };
    const stateBudget = new EngineStateBudget(database.db, backend, path.join(dataDir, ENGINE_STATE_DIR), opts.stateLimits ?? stateLimitsFromEnv());
    const runner = new JobRunner(database.db, queue, backend, bus, images, model.name, { stateBudget });
    const trees = new TreeService(database.db, queue, runner, bus, images, model, loadTokenizer(opts.modelDir), opts.maxQueuedPerUser, new Set(opts.priorityUsers ?? priorityUsersFromEnv()));
    const signer = new UrlSigner(await loadSigningKey(database.db, dataDir));
    if (runJobs) runner.start(await pubsub.subscribe<CancelRequest>(CONTROL_TOPIC));
    // Measure (and bring within budget) what earlier runs left, without delaying the start.
    if (runJobs) stateBudget.enforce().catch((e) => log.error(`engine state budget: ${(e as Error).message}`));
    let closed = false;
    return {
      database, trees, auth: new TokenAuthenticator(database.db, opts.revocationMs), bus, pubsub, images, signer, runner, queue, backend, model, recovery, stateBudget,
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
