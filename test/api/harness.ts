// Test harness: the real service (engine worker on the tiny fixture model, SQLite in a temp dir) and the
// real server on a random port, with small GraphQL-over-HTTP and graphql-ws clients.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { createClient, type Client } from 'graphql-ws';
import WebSocket from 'ws';
import { buildServer, FiseditServer, ServerOptions } from '../../src/api/server';
import { createToken } from '../../src/service/auth/tokens';
import { createService, Service, ServiceOptions } from '../../src/service/service';
import { createLogger, setLogger } from '../../src/service/log';

// Server logs (one JSON line per request) would drown the test output: warnings and errors only, unless
// FISEDIT_LOG_LEVEL says otherwise. test/api/logging.test.ts captures them.
setLogger(createLogger({ level: process.env.FISEDIT_LOG_LEVEL ?? 'warn' }));

export const TINY_MODEL = path.join(__dirname, '../fixtures/models/tiny-2level');

export interface Harness {
  dataDir: string;
  service: Service;
  server: FiseditServer;
  url: string;
  wsUrl: string;
  token(user: string): Promise<string>;
  /** Stops server and service (graceful). */
  stop(): Promise<void>;
}

/** `server`: options of the HTTP/WebSocket server (timeouts, limits) beside the service's. */
export async function startHarness(opts: Partial<ServiceOptions> & { dataDir?: string; server?: Omit<ServerOptions, 'service'> } = {}): Promise<Harness> {
  const { server: serverOpts, ...serviceOpts } = opts;
  const dataDir = opts.dataDir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'fisedit-api-'));
  const service = await createService({ modelDir: TINY_MODEL, intraOpNumThreads: 1, previewIntervalMs: 0, ...serviceOpts, dataDir });
  const server = buildServer({ ...serverOpts, service });
  await server.start();
  return {
    dataDir,
    service,
    server,
    url: server.url,
    wsUrl: server.wsUrl,
    token: async (user) => (await createToken(service.database.db, user)).token,
    async stop() {
      await server.stop();
      await service.close();
    },
  };
}

export interface GqlResult<T = Record<string, any>> {
  status: number;
  data?: T;
  errors?: { message: string; extensions?: { code?: string; [k: string]: unknown }; path?: (string | number)[] }[];
}

export async function gql<T = Record<string, any>>(url: string, query: string, variables: Record<string, unknown> = {}, token?: string | null): Promise<GqlResult<T>> {
  const res = await fetch(`${url}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify({ query, variables }),
  });
  const body = (await res.json()) as GqlResult<T>;
  return { ...body, status: res.status };
}

/** The data, or a thrown error listing the GraphQL errors. */
export async function gqlOk<T = Record<string, any>>(url: string, query: string, variables: Record<string, unknown> = {}, token?: string | null): Promise<T> {
  const r = await gql<T>(url, query, variables, token);
  if (r.errors?.length || !r.data) throw new Error(`GraphQL errors: ${JSON.stringify(r.errors)}`);
  return r.data;
}

export function wsClient(wsUrl: string, token: string | null, extra: Record<string, unknown> = {}): Client {
  return createClient({
    url: wsUrl,
    webSocketImpl: WebSocket,
    connectionParams: token ? { authorization: `Bearer ${token}`, ...extra } : extra,
    retryAttempts: 0,
    lazy: true,
  });
}

export interface Collected<T> {
  events: T[];
  errors: unknown[];
  done: Promise<void>;
  /** Resolves when an event satisfies pred (or rejects after timeoutMs). */
  until(pred: (e: T) => boolean, timeoutMs?: number): Promise<T>;
  unsubscribe(): void;
}

export function collect<T = any>(client: Client, query: string, variables: Record<string, unknown>): Collected<T> {
  const events: T[] = [];
  const errors: unknown[] = [];
  const waiters: { pred: (e: T) => boolean; resolve: (e: T) => void }[] = [];
  let finish!: () => void;
  const done = new Promise<void>((r) => (finish = r));
  const unsubscribe = client.subscribe<T>(
    { query, variables },
    {
      next: (v) => {
        if (v.errors) errors.push(...v.errors);
        if (v.data) {
          const e = Object.values(v.data)[0] as T;
          events.push(e);
          for (const w of [...waiters]) if (w.pred(e)) (waiters.splice(waiters.indexOf(w), 1), w.resolve(e));
        }
      },
      error: (e) => {
        // graphql-ws hands over a GraphQL error list (from onSubscribe) or a close event.
        if (Array.isArray(e)) errors.push(...e);
        else errors.push(e);
        finish();
      },
      complete: () => finish(),
    },
  );
  return {
    events,
    errors,
    done,
    unsubscribe,
    until(pred, timeoutMs = 60_000) {
      const hit = events.find(pred);
      if (hit) return Promise.resolve(hit);
      return new Promise<T>((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`timed out; got ${JSON.stringify(events.map((e: any) => e.type ?? e.phase ?? e)).slice(0, 500)} errors ${JSON.stringify(errors).slice(0, 300)}`)), timeoutMs);
        waiters.push({ pred, resolve: (e) => (clearTimeout(t), resolve(e)) });
      });
    },
  };
}

/** Polls until the node reaches one of the statuses. */
export async function waitForStatus(url: string, token: string, nodeId: string, statuses: string[], timeoutMs = 60_000): Promise<Record<string, any>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const d = await gqlOk(url, 'query($id: ID!) { node(id: $id) { id status error } }', { id: nodeId }, token);
    if (statuses.includes(d.node?.status)) return d.node;
    if (Date.now() > deadline) throw new Error(`node ${nodeId} still ${d.node?.status} after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export const NODE_FIELDS = `id status error prompt negativePrompt seed steps guidance scheduler width height depth strategy
  image { url thumbnailUrl width height } stats { mode wallMs denseEstimateMs speedup maskedFraction }
  parent { id } children { id } tree { id title myRole } createdBy { name }`;
