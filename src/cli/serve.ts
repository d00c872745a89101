// `fisedit serve`: the GraphQL service on one HTTP port (queries, mutations, subscriptions, images).
// Settings come from flags, then environment variables, then defaults:
//   --port N            PORT            4000
//   --host ADDR         FISEDIT_HOST    127.0.0.1 (use 0.0.0.0 to accept remote clients)
//   --data DIR          FISEDIT_DATA    ./data (SQLite database, images unless --images-dir/--image-store say otherwise)
//   --model DIR         FISEDIT_MODEL   the bundled model (models/default)
//   --database-url URL  DATABASE_URL    file:<data>/fisedit.db; postgres://… for PostgreSQL
//   --redis-url URL     REDIS_URL       none (in-process events); redis://… to share events between processes
//   --public-url URL    FISEDIT_PUBLIC_URL  the listening address (set it behind a proxy)
//   --threads N         FISEDIT_THREADS onnxruntime intra-op threads (default: all cores)
//   --device NAME       FISEDIT_DEVICE  cpu (default) | webgpu | cuda: where the engine's graphs run
//   --sqlite-sync FULL|NORMAL            FULL
//   --engine process|thread              process (the engine in a child process; thread: a worker thread)
//   --priority-users A,B FISEDIT_PRIORITY_USERS  none (users who may queue above priority 0)
//   --image-store, --images-dir          where images live (cli/imageStoreOptions.ts)
//   --workers 0|1       FISEDIT_WORKERS 1 (jobs run in this process); 0: an API replica of a scale-out
//                                       deployment (needs --redis-url; jobs run on `fisedit worker`s)
//   --affinity-wait-ms N FISEDIT_AFFINITY_WAIT_MS  10000 (scale-out: how long an edit waits for the worker
//                                       holding its parent's cache)
// SIGINT/SIGTERM stop it gracefully: a running job goes back to the queue and runs again at the next start;
// open WebSockets are closed with 1012 (service restart), which graphql-ws clients reconnect after.

import * as net from 'net';
import * as path from 'path';
import { buildServer } from '../api/server';
import { DatabaseLockedError, DataDirLockedError } from '../service/dataDirLock';
import { createService, priorityUsersFromEnv } from '../service/service';
import type { CliIo } from './commands/io';
import { CliError, EXIT, inPhase, usageError } from './exitCodes';
import { resolveModelDir } from './modelDir';
import { optionalInt, parseOptions } from './options';
import { DEVICE_OPTION, parseDevice, requireDevice } from './device';
import { IMAGE_STORE_HELP, IMAGE_STORE_OPTIONS, imageStoreConfigFrom } from './imageStoreOptions';

export const SERVE_HELP = `Usage: fisedit serve [--port N] [--host ADDR] [--data DIR] [--model DIR] [--database-url URL]
                     [--redis-url URL] [--public-url URL] [--threads N] [--device cpu|webgpu|cuda]
                     [--sqlite-sync FULL|NORMAL] [--engine process|thread] [--priority-users NAME,NAME]
                     [--image-store directory|database] [--images-dir DIR] [--workers 0|1] [--affinity-wait-ms N]

Runs the GraphQL API (HTTP POST /graphql, WebSocket graphql-transport-ws on /graphql) and serves images, the web
client at / and, to browsers, a GraphQL explorer at /graphql.
Environment: PORT, FISEDIT_HOST, FISEDIT_DATA, FISEDIT_MODEL, DATABASE_URL, REDIS_URL, FISEDIT_PUBLIC_URL,
FISEDIT_THREADS, FISEDIT_DEVICE, FISEDIT_PRIORITY_USERS. Jobs run by priority, users taking turns at equal priority;
only the users named by --priority-users may queue above priority 0. Engine state on disk (bytes): FISEDIT_STATE_BYTES
(20 GiB), FISEDIT_STATE_USER_BYTES (5 GiB per user), FISEDIT_MIN_FREE_BYTES (1 GiB kept free); cold caches are evicted.
Activation caches in memory (bytes): FISEDIT_CACHE_BYTES (host, 2 GiB), FISEDIT_DEVICE_CACHE_BYTES (WebGPU device
memory for recent nodes, 6 GiB; 0: off).
One server runs jobs per data dir (DATA/runner.lock); a second exits with code 4.
Scale-out (docs/scaling.md): --workers 0 serves the API only (GraphQL, subscriptions, images) and hands jobs to the
Redis queue (--redis-url, with --database-url postgres://…), where \`fisedit worker\` processes run them; an edit waits
--affinity-wait-ms (env FISEDIT_AFFINITY_WAIT_MS, 10000) for the worker holding its parent's cache. On SIGTERM open
WebSockets close with code 1012 (service restart): clients reconnect, to another replica behind a load balancer.
${IMAGE_STORE_HELP}
Create an API token with: fisedit token create --user NAME [--data DIR]
`;

const SPEC = {
  port: { type: 'string' },
  host: { type: 'string' },
  data: { type: 'string' },
  model: { type: 'string' },
  'database-url': { type: 'string' },
  'redis-url': { type: 'string' },
  'public-url': { type: 'string' },
  threads: { type: 'string' },
  ...DEVICE_OPTION,
  'sqlite-sync': { type: 'string' },
  engine: { type: 'string' },
  'priority-users': { type: 'string' },
  workers: { type: 'string' },
  'affinity-wait-ms': { type: 'string' },
  ...IMAGE_STORE_OPTIONS,
  help: { type: 'boolean', short: 'h' },
} as const;

const defaultIo: CliIo = { stdout: process.stdout, stderr: process.stderr };

export interface RunServeHooks {
  /** Resolves to stop the server (tests); default: SIGINT or SIGTERM. */
  stopSignal?: Promise<unknown>;
  /** Called once the server listens. */
  onListening?: (url: string) => void;
}

export async function runServe(argv: string[], io: CliIo = defaultIo, hooks: RunServeHooks = {}): Promise<number> {
  try {
    const o = parseOptions(argv, SPEC, 'serve');
    if (o.help) {
      io.stdout.write(SERVE_HELP);
      return EXIT.ok;
    }
    const env = process.env;
    const port = optionalInt(o.port ?? env.PORT, 'port') ?? 4000;
    if (port < 0 || port > 65535) throw usageError(`--port must be in [0, 65535] (got ${port})`);
    const threads = optionalInt(o.threads ?? env.FISEDIT_THREADS, 'threads');
    const device = parseDevice(o.device, 'serve', env);
    const sync = (o['sqlite-sync'] ?? 'FULL').toUpperCase();
    if (sync !== 'FULL' && sync !== 'NORMAL') throw usageError(`--sqlite-sync must be FULL or NORMAL (got ${JSON.stringify(o['sqlite-sync'])})`);
    const engine = o.engine ?? 'process';
    if (engine !== 'process' && engine !== 'thread') throw usageError(`--engine must be process or thread (got ${JSON.stringify(engine)})`);
    const dataDir = path.resolve(o.data ?? env.FISEDIT_DATA ?? 'data');
    const modelDir = resolveModelDir(o.model ?? env.FISEDIT_MODEL);
    const images = imageStoreConfigFrom(o, env);
    const workers = optionalInt(o.workers ?? env.FISEDIT_WORKERS, 'workers') ?? 1;
    if (workers !== 0 && workers !== 1) throw usageError(`--workers must be 0 (API only; jobs run on fisedit worker processes) or 1 (jobs run here) (got ${workers})`);
    const redisUrl = o['redis-url'] ?? env.REDIS_URL;
    if (workers === 0 && !redisUrl) throw usageError('--workers 0 needs --redis-url: the API replica hands jobs to workers through the Redis queue');
    const affinityWaitMs = optionalInt(o['affinity-wait-ms'] ?? env.FISEDIT_AFFINITY_WAIT_MS, 'affinity-wait-ms');
    if (affinityWaitMs !== undefined && affinityWaitMs < 0) throw usageError(`--affinity-wait-ms must be ≥ 0 (got ${affinityWaitMs})`);

    const host = o.host ?? env.FISEDIT_HOST ?? '127.0.0.1';
    // The port first, then the data dir's lock (in createService), then crash recovery: a second server
    // on a taken port or a data dir in use exits here, before it has changed anything.
    const reserved = await inPhase(EXIT.io, () => reservePort(port, host));
    // A device that cannot run here fails now, in this process, with what to install (exit 3).
    await requireDevice(device, 'serve').catch(async (e) => {
      await reserved.close();
      throw e;
    });
    io.stderr.write(`fisedit serve: loading model ${modelDir} …\n`);
    const service = await inPhase(EXIT.model, () =>
      createService({
        dataDir,
        modelDir,
        databaseUrl: o['database-url'] ?? env.DATABASE_URL,
        redisUrl,
        intraOpNumThreads: threads,
        device,
        sqliteSynchronous: sync,
        engineMode: engine,
        priorityUsers: priorityUsersFromEnv({ FISEDIT_PRIORITY_USERS: o['priority-users'] ?? env.FISEDIT_PRIORITY_USERS }),
        images,
        ...(workers === 0 ? { scaleOut: { role: 'api' as const, affinityWaitMs } } : {}),
      }).catch((e) => {
        throw e instanceof DataDirLockedError || e instanceof DatabaseLockedError ? new CliError(EXIT.io, e.message) : e;
      }),
    ).finally(() => reserved.close());
    const server = buildServer({ service, port: reserved.port, host, publicUrl: o['public-url'] ?? env.FISEDIT_PUBLIC_URL });
    try {
      await inPhase(EXIT.io, () => server.start());
    } catch (e) {
      await service.close();
      throw e;
    }
    const r = service.recovery;
    if (r.requeued.length + r.failed.length + r.cancelled.length > 0) {
      io.stderr.write(`fisedit serve: recovered interrupted jobs: ${r.requeued.length} re-queued, ${r.failed.length} failed, ${r.cancelled.length} cancelled\n`);
    }
    io.stdout.write(
      [
        `FISEdit GraphQL API: ${server.url}/graphql  (WebSocket: ${server.wsUrl})`,
        `web client: ${server.url}/  (GraphQL explorer: ${server.url}/graphql in a browser)`,
        `model ${service.model.name} (${service.model.defaultWidth}×${service.model.defaultHeight}), data in ${dataDir} (${service.database.provider}), images in ${service.images.description}`,
        ...(service.model.attention ? [`${service.model.device} attention: ${service.model.attention.form} (${service.model.attention.reason})`] : []),
        `authenticate: fisedit token create --user NAME --data ${dataDir}`,
        `  then send "Authorization: Bearer <token>" (WebSocket: connectionParams { authorization: "Bearer <token>" })`,
        '',
      ].join('\n'),
    );
    hooks.onListening?.(server.url);
    await (hooks.stopSignal ?? terminationSignal());
    io.stderr.write('fisedit serve: stopping …\n');
    await server.stop();
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

/** Holds host:port (port 0: a free one) until close(), so that a taken port is found before anything starts. */
function reservePort(port: number, host: string): Promise<{ port: number; close(): Promise<void> }> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', (e: NodeJS.ErrnoException) =>
      reject(new Error(e.code === 'EADDRINUSE' ? `port ${port} on ${host} is in use (another fisedit serve?); choose another with --port` : `cannot listen on ${host}:${port}: ${e.message}`)),
    );
    srv.listen({ port, host, exclusive: true }, () => {
      const bound = (srv.address() as net.AddressInfo).port;
      resolve({ port: bound, close: () => new Promise<void>((r) => srv.close(() => r())) });
    });
  });
}

/** Resolves at the first SIGINT or SIGTERM (fisedit serve, fisedit worker). */
export function terminationSignal(): Promise<string> {
  return new Promise((resolve) => {
    const on = (s: string) => {
      process.off('SIGINT', on);
      process.off('SIGTERM', on);
      resolve(s);
    };
    process.on('SIGINT', on);
    process.on('SIGTERM', on);
  });
}
