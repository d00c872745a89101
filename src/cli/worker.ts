// `fisedit worker`: a scale-out worker (docs/scaling.md). It runs no HTTP server: it takes jobs from the
// Redis queue (its own queue first: edits of nodes whose engine state it holds, then the shared one),
// runs them on its engine and records them in the shared PostgreSQL database.
//   --data DIR           FISEDIT_DATA    ./data  its local engine state (node store, activation caches)
//   --database-url URL   DATABASE_URL    postgres://… (required: every replica and worker share it)
//   --redis-url URL      REDIS_URL       redis://… (required: the queue, events, the worker registry)
//   --worker-id ID       FISEDIT_WORKER_ID  host name + hash of the data dir (stable across restarts)
//   --device, --threads, --engine, --model, --image-store, --images-dir: as fisedit serve
//   --affinity-wait-ms N FISEDIT_AFFINITY_WAIT_MS 10000
//   --lease-ms N         FISEDIT_LEASE_MS 30000 (a worker that stops renewing its job's lease this long loses it)
//   --drain-ms N         FISEDIT_DRAIN_MS 60000 (SIGTERM: how long the running job may finish before it is handed back)
import * as path from 'path';
import { DataDirLockedError } from '../service/dataDirLock';
import { checkWorkerId } from '../service/jobs/workerRegistry';
import { createService } from '../service/service';
import { parseDatabaseUrl } from '../db/databaseUrl';
import type { CliIo } from './commands/io';
import { CliError, EXIT, inPhase, usageError } from './exitCodes';
import { DEVICE_OPTION, parseDevice, requireDevice } from './device';
import { IMAGE_STORE_HELP, IMAGE_STORE_OPTIONS, imageStoreConfigFrom } from './imageStoreOptions';
import { resolveModelDir } from './modelDir';
import { optionalInt, parseOptions } from './options';
import { terminationSignal } from './serve';

export const WORKER_HELP = `Usage: fisedit worker --database-url postgres://… --redis-url redis://… [--data DIR] [--model DIR]
                      [--device cpu|webgpu|cuda] [--threads N] [--engine process|thread] [--worker-id ID]
                      [--affinity-wait-ms N] [--lease-ms N] [--drain-ms N] [--image-store directory|database] [--images-dir DIR]

A scale-out worker: claims jobs from the Redis queue and runs them on its engine; API replicas are
\`fisedit serve --workers 0\` on the same database and Redis (docs/scaling.md). --data holds this worker's engine
state (recorded nodes and their activation caches): edits of those nodes are routed here first.
Leases: the running job's lease is renewed every third of --lease-ms (30000); a worker that dies loses it after
that and another worker re-runs the job, once. SIGINT/SIGTERM drain: no new job is taken, the running one may
finish within --drain-ms (60000), else it is stopped and handed back to the queue.
Environment: FISEDIT_DATA, FISEDIT_MODEL, DATABASE_URL, REDIS_URL, FISEDIT_WORKER_ID, FISEDIT_DEVICE, FISEDIT_THREADS,
FISEDIT_AFFINITY_WAIT_MS, FISEDIT_LEASE_MS, FISEDIT_DRAIN_MS, FISEDIT_CACHE_BYTES, FISEDIT_DEVICE_CACHE_BYTES.
${IMAGE_STORE_HELP}
`;

const SPEC = {
  data: { type: 'string' },
  model: { type: 'string' },
  'database-url': { type: 'string' },
  'redis-url': { type: 'string' },
  'worker-id': { type: 'string' },
  threads: { type: 'string' },
  ...DEVICE_OPTION,
  engine: { type: 'string' },
  'affinity-wait-ms': { type: 'string' },
  'lease-ms': { type: 'string' },
  'drain-ms': { type: 'string' },
  ...IMAGE_STORE_OPTIONS,
  help: { type: 'boolean', short: 'h' },
} as const;

const defaultIo: CliIo = { stdout: process.stdout, stderr: process.stderr };

export interface RunWorkerHooks {
  /** Resolves to drain and stop (tests); default: SIGINT or SIGTERM. */
  stopSignal?: Promise<unknown>;
}

function nonNegative(v: number | undefined, flag: string, min = 0): number | undefined {
  if (v !== undefined && v < min) throw usageError(`--${flag} must be ≥ ${min} (got ${v})`);
  return v;
}

export async function runWorker(argv: string[], io: CliIo = defaultIo, hooks: RunWorkerHooks = {}): Promise<number> {
  try {
    const o = parseOptions(argv, SPEC, 'worker');
    if (o.help) {
      io.stdout.write(WORKER_HELP);
      return EXIT.ok;
    }
    const env = process.env;
    const databaseUrl = o['database-url'] ?? env.DATABASE_URL;
    const redisUrl = o['redis-url'] ?? env.REDIS_URL;
    if (!databaseUrl || parseDatabaseUrl(databaseUrl).provider !== 'postgresql') throw usageError('--database-url postgres://… is required: workers and API replicas share one PostgreSQL database');
    if (!redisUrl) throw usageError('--redis-url redis://… is required: the job queue lives in Redis');
    const threads = optionalInt(o.threads ?? env.FISEDIT_THREADS, 'threads');
    const device = parseDevice(o.device, 'worker', env);
    const engine = o.engine ?? 'process';
    if (engine !== 'process' && engine !== 'thread') throw usageError(`--engine must be process or thread (got ${JSON.stringify(engine)})`);
    const affinityWaitMs = nonNegative(optionalInt(o['affinity-wait-ms'] ?? env.FISEDIT_AFFINITY_WAIT_MS, 'affinity-wait-ms'), 'affinity-wait-ms');
    const leaseMs = nonNegative(optionalInt(o['lease-ms'] ?? env.FISEDIT_LEASE_MS, 'lease-ms'), 'lease-ms', 300);
    const drainMs = nonNegative(optionalInt(o['drain-ms'] ?? env.FISEDIT_DRAIN_MS, 'drain-ms'), 'drain-ms') ?? 60_000;
    const workerId = o['worker-id'] ?? env.FISEDIT_WORKER_ID;
    if (workerId !== undefined) {
      try {
        checkWorkerId(workerId);
      } catch (e) {
        throw usageError(`--worker-id: ${(e as Error).message}`);
      }
    }
    const dataDir = path.resolve(o.data ?? env.FISEDIT_DATA ?? 'data');
    const modelDir = resolveModelDir(o.model ?? env.FISEDIT_MODEL);
    const images = imageStoreConfigFrom(o, env);
    await requireDevice(device, 'worker');
    io.stderr.write(`fisedit worker: loading model ${modelDir} …\n`);
    const service = await inPhase(EXIT.model, () =>
      createService({
        dataDir,
        modelDir,
        databaseUrl,
        redisUrl,
        intraOpNumThreads: threads,
        device,
        engineMode: engine,
        images,
        scaleOut: { role: 'worker', workerId, affinityWaitMs, leaseMs },
      }).catch((e) => {
        throw e instanceof DataDirLockedError ? new CliError(EXIT.io, e.message) : e;
      }),
    );
    const id = service.scaleOut?.workerId;
    const r = service.recovery;
    if (r.requeued.length + r.failed.length + r.cancelled.length > 0) {
      io.stderr.write(`fisedit worker: recovered this worker's interrupted jobs: ${r.requeued.length} re-queued, ${r.failed.length} failed, ${r.cancelled.length} cancelled\n`);
    }
    io.stdout.write(`fisedit worker ${id}: ready (model ${service.model.name}, device ${service.model.device}, engine state in ${dataDir})\n`);
    if (service.model.attention) io.stdout.write(`fisedit worker ${id}: ${service.model.device} attention ${service.model.attention.form} (${service.model.attention.reason})\n`);
    await (hooks.stopSignal ?? terminationSignal());
    io.stderr.write(`fisedit worker ${id}: draining (up to ${drainMs} ms) …\n`);
    const how = await service.runner.drain(drainMs);
    io.stderr.write(`fisedit worker ${id}: stopped (${how === 'idle' ? 'no job was running' : how === 'finished' ? 'its job finished' : 'its job was handed back to the queue'})\n`);
    await service.close();
    return EXIT.ok;
  } catch (e) {
    if (e instanceof CliError) {
      io.stderr.write(`fisedit: ${e.message}\n`);
      return e.exitCode;
    }
    throw e;
  }
}
