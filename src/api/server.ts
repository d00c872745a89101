// One HTTP server for everything a frontend needs:
//   POST/GET /graphql        Apollo Server 5 (queries, mutations)
//   WS       /graphql        graphql-ws 6 (subscriptions; also queries and mutations)
//   GET      /images/:nodeId/{image.png,thumb.webp,mask.png,input-mask.png}
//   GET      /healthz
//   GET      /, /graphql (browsers: Accept text/html)   the web client and the GraphQL explorer (webClient.ts)
// Both GraphQL transports share the schema, the context (same token check), the parse options (tokens),
// the validation rules (depth, aliases, introspection), the cost check with variables (limits.ts) and
// the error formatter (masking; suggestions hidden where introspection is off). `buildServer` returns { url, start, stop } so tests run
// the real thing on a random port.

import { randomBytes } from 'crypto';
import * as fs from 'fs';
import * as http from 'http';
import type { AddressInfo } from 'net';
import { ApolloServer, HeaderMap, HTTPGraphQLRequest } from '@apollo/server';
import { ApolloServerPluginDrainHttpServer } from '@apollo/server/plugin/drainHttpServer';
import { makeExecutableSchema } from '@graphql-tools/schema';
import { execute, getOperationAST, GraphQLError, parse, specifiedRules, subscribe, validate, type ExecutionArgs, type GraphQLSchema } from 'graphql';
import { getVariableValues } from 'graphql/execution/values';
import { useServer } from 'graphql-ws/use/ws';
import { WebSocketServer } from 'ws';
import type { User } from '../generated/sqlite/client';
import { bearerToken } from '../service/auth/tokens';
import { log, withRequestId } from '../service/log';
import type { Service } from '../service/service';
import { ApiContext } from './context';
import { errorFormatter } from './errors';
import { CLOSE_RESTART, CLOSE_REVOKED, CLOSE_TOO_MANY, OpenSockets } from './openSockets';
import { serveImage } from './images';
import { isWebClientPath, serveWebClient, wantsExplorer } from './webClient';
import { checkCost, MAX_QUERY_CHARS, PARSE_OPTIONS, validationRules } from './limits';
import { resolvers } from './resolvers';

export interface ServerOptions {
  service: Service;
  /** 0 (default) picks a free port. */
  port?: number;
  /** Default 127.0.0.1; "0.0.0.0" to listen on every interface. */
  host?: string;
  /** Base of absolute image URLs (behind a proxy: the public origin). Default: the listening address. */
  publicUrl?: string;
  /** Schema introspection (default: on unless NODE_ENV=production). */
  introspection?: boolean;
  /** Largest HTTP request body, bytes (default 1 MiB; an edit's mask travels in it). */
  maxBodyBytes?: number;
  /** Largest WebSocket message, bytes (default 1 MiB). */
  maxWsPayloadBytes?: number;
  maxSubscriptionsPerSocket?: number;
  /** Open WebSockets one user may hold at once (default 20); one more is closed with 4429. */
  maxSocketsPerUser?: number;
  /** Time to receive a request's headers, ms (default 10 s); a slower client gets 408 and is closed. */
  headersTimeoutMs?: number;
  /** Time to receive a whole request, headers and body, ms (default 30 s). */
  requestTimeoutMs?: number;
  /** Idle time of a kept-alive connection between requests, ms (default 5 s). */
  keepAliveTimeoutMs?: number;
  /** Access-Control-Allow-Origin (default "*": auth is a Bearer token, never a cookie). */
  corsOrigin?: string;
}

export interface FiseditServer {
  /** http://host:port (after start()). */
  readonly url: string;
  readonly wsUrl: string;
  readonly httpServer: http.Server;
  start(): Promise<void>;
  stop(): Promise<void>;
}

export const SCHEMA_PATH = require.resolve('../../schema.graphql');

export function loadSchema(): GraphQLSchema {
  return makeExecutableSchema({ typeDefs: fs.readFileSync(SCHEMA_PATH, 'utf8'), resolvers: resolvers as never });
}

class HttpError extends Error {
  constructor(readonly status: number, message: string, readonly code: string) {
    super(message);
  }
}

function readBody(req: http.IncomingMessage, max: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length'] ?? 0);
    if (declared > max) {
      reject(new HttpError(413, `request body is ${declared} bytes; at most ${max}`, 'BAD_REQUEST'));
      req.resume();
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > max) {
        reject(new HttpError(413, `request body exceeds ${max} bytes`, 'BAD_REQUEST'));
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    // The client went away or the request timeout (408) cut it off: nothing to answer, nothing to log.
    req.on('error', () => reject(new HttpError(400, 'request aborted before its body was complete', 'BAD_REQUEST')));
  });
}

/** The client's X-Request-Id when it is a plain token (proxies set one), else a fresh one. */
function requestIdOf(req: http.IncomingMessage): string {
  const given = req.headers['x-request-id'];
  return typeof given === 'string' && /^[\w.:-]{1,64}$/.test(given) ? given : randomBytes(8).toString('hex');
}

function sendJsonError(res: http.ServerResponse, status: number, message: string, code: string): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8' });
  res.end(JSON.stringify({ errors: [{ message, extensions: { code } }] }));
}

export function buildServer(opts: ServerOptions): FiseditServer {
  const { service } = opts;
  const maxBody = opts.maxBodyBytes ?? 1 << 20;
  const maxSubs = opts.maxSubscriptionsPerSocket ?? 100;
  const schema = loadSchema();
  const headersTimeout = opts.headersTimeoutMs ?? 10_000;
  const httpServer = http.createServer({
    headersTimeout,
    requestTimeout: Math.max(opts.requestTimeoutMs ?? 30_000, headersTimeout),
    keepAliveTimeout: opts.keepAliveTimeoutMs ?? 5_000,
    // Node checks the two timeouts above only this often (its default is 30 s).
    connectionsCheckingInterval: Math.min(1000, Math.max(50, Math.floor(headersTimeout / 4))),
  });
  const sockets = new OpenSockets(service.auth, opts.maxSocketsPerUser ?? 20);
  let baseUrl = opts.publicUrl?.replace(/\/+$/, '') ?? '';
  const introspection = opts.introspection ?? process.env.NODE_ENV !== 'production';
  const rules = validationRules({ introspection });
  const formatError = errorFormatter({ hideSchemaDetails: !introspection });

  const apollo = new ApolloServer<ApiContext>({
    schema,
    formatError,
    parseOptions: PARSE_OPTIONS,
    validationRules: rules,
    // `rules` refuses introspection where it is off, for both transports (limits.ts).
    introspection: true,
    includeStacktraceInErrorResponses: false,
    hideSchemaDetailsFromClientErrors: !introspection,
    allowBatchedHttpRequests: false,
    persistedQueries: false,
    csrfPrevention: true,
    maxRecursiveSelections: true,
    stopOnTerminationSignals: false,
    plugins: [
      ApolloServerPluginDrainHttpServer({ httpServer }),
      // Cost depends on the variables, so it is checked per request (validation is cached per document).
      {
        async requestDidStart() {
          return {
            async didResolveOperation({ request, document, operation }) {
              const errors = operation ? checkCost(schema, document, operation, request.variables) : [];
              if (errors.length > 0) throw errors[0];
            },
          };
        },
      },
      { async serverWillStart() { return { async drainServer() { await wsCleanup?.dispose(); } }; } },
    ],
  });

  async function contextFor(authorization: unknown): Promise<ApiContext> {
    const token = bearerToken(typeof authorization === 'string' ? authorization : null);
    const user: User | null = token ? await service.auth.authenticate(token) : null;
    return { user, service, baseUrl };
  }

  const cors = (res: http.ServerResponse) => {
    res.setHeader('access-control-allow-origin', opts.corsOrigin ?? '*');
    res.setHeader('access-control-allow-headers', 'authorization, content-type, apollo-require-preflight, x-apollo-operation-name');
    res.setHeader('access-control-allow-methods', 'GET, POST, OPTIONS');
    res.setHeader('access-control-max-age', '600');
  };

  async function handleGraphql(req: http.IncomingMessage, res: http.ServerResponse, url: URL): Promise<void> {
    const raw = req.method === 'POST' ? await readBody(req, maxBody) : '';
    const headers = new HeaderMap();
    for (const [k, v] of Object.entries(req.headers)) if (v !== undefined) headers.set(k, Array.isArray(v) ? v.join(', ') : v);
    let body: unknown = raw;
    if (req.method === 'POST' && (headers.get('content-type') ?? '').toLowerCase().startsWith('application/json')) {
      try {
        body = raw === '' ? {} : JSON.parse(raw);
      } catch {
        throw new HttpError(400, 'request body is not valid JSON', 'BAD_REQUEST');
      }
    }
    const query = (body as { query?: unknown })?.query ?? url.searchParams.get('query');
    if (typeof query === 'string' && query.length > MAX_QUERY_CHARS) throw new HttpError(413, `query is ${query.length} characters; at most ${MAX_QUERY_CHARS}`, 'BAD_REQUEST');
    const request: HTTPGraphQLRequest = { method: req.method ?? 'GET', headers, search: url.search, body };
    const result = await apollo.executeHTTPGraphQLRequest({ httpGraphQLRequest: request, context: () => contextFor(req.headers.authorization) });
    res.statusCode = result.status ?? 200;
    for (const [k, v] of result.headers) res.setHeader(k, v);
    if (result.body.kind === 'complete') {
      res.end(result.body.string);
      return;
    }
    for await (const chunk of result.body.asyncIterator) res.write(chunk);
    res.end();
  }

  httpServer.on('request', (req, res) => {
    cors(res);
    // Every log line about this request carries its id (service/log.ts); the client gets it back.
    const reqId = requestIdOf(req);
    res.setHeader('x-request-id', reqId);
    const started = performance.now();
    res.once('close', () =>
      // The path only: query strings hold image signatures and GraphQL variables.
      withRequestId(reqId, () => log.info({ method: req.method, path: (req.url ?? '').split('?')[0].slice(0, 200), status: res.statusCode, ms: Math.round(performance.now() - started) }, 'request')),
    );
    const route = async () => {
      let url: URL;
      try {
        url = new URL(req.url ?? '/', 'http://localhost');
      } catch {
        throw new HttpError(400, 'malformed request URL', 'BAD_REQUEST');
      }
      if (req.method === 'OPTIONS') {
        res.writeHead(204).end();
      } else if (url.pathname === '/graphql' && wantsExplorer(req)) {
        await serveWebClient(req, res, url.pathname);
      } else if (url.pathname === '/graphql') {
        if (req.method !== 'GET' && req.method !== 'POST') throw new HttpError(405, 'use GET or POST', 'BAD_REQUEST');
        await handleGraphql(req, res, url);
      } else if (url.pathname.startsWith('/images/')) {
        await serveImage(req, res, url, service);
      } else if (url.pathname === '/healthz') {
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ ok: true, model: service.model.name }));
      } else if (isWebClientPath(url.pathname)) {
        await serveWebClient(req, res, url.pathname);
      } else {
        throw new HttpError(404, `no route ${url.pathname}`, 'NOT_FOUND');
      }
    };
    void withRequestId(reqId, () =>
      route().catch((e) => {
        if (e instanceof HttpError) return sendJsonError(res, e.status, e.message, e.code);
        log.error({ err: e }, 'request failed');
        sendJsonError(res, 500, 'internal error', 'INTERNAL_SERVER_ERROR');
      }),
    );
  });

  // ---- WebSocket: graphql-ws ----
  const wss = new WebSocketServer({ server: httpServer, path: '/graphql', maxPayload: opts.maxWsPayloadBytes ?? 1 << 20 });
  type Extra = { user?: User; token?: string; subscriptions?: Set<string>; connId?: string };
  // A WebSocket operation's request id: its connection's id and the client's operation id.
  const opId = (ctx: { extra: Extra }, id: string) => `${ctx.extra.connId ?? '-'}/${id.replace(/[^\w.:-]/g, '_').slice(0, 64)}`;
  let wsCleanup: { dispose: () => void | Promise<void> } | null = useServer<Record<string, unknown> | undefined, Extra>(
    {
      schema,
      connectionInitWaitTimeout: 3000,
      execute: (args) => withRequestId((args.contextValue as ApiContext).reqId ?? '-', () => execute(args)),
      subscribe: (args) => withRequestId((args.contextValue as ApiContext).reqId ?? '-', () => subscribe(args)),
      onConnect: async (ctx) => {
        const token = bearerToken(typeof ctx.connectionParams?.authorization === 'string' ? ctx.connectionParams.authorization : null);
        const user = token ? await service.auth.authenticate(token) : null;
        if (!user || !token) return false; // closes with 4403 Forbidden
        if (!sockets.add(ctx.extra.socket, user.id, token)) {
          ctx.extra.socket.close(CLOSE_TOO_MANY, `at most ${sockets.maxPerUser} open connections per user`);
          return false;
        }
        ctx.extra.user = user;
        ctx.extra.token = token;
        ctx.extra.subscriptions = new Set();
        ctx.extra.connId = randomBytes(6).toString('hex');
        withRequestId(ctx.extra.connId, () => log.info({ user: user.name }, 'websocket connected'));
        return { user: user.name };
      },
      onSubscribe: async (ctx, id, payload) => {
        // The token may have been revoked since the connection opened (the cache bounds how long ago).
        const user = await service.auth.authenticate(ctx.extra.token);
        if (!user) {
          ctx.extra.socket.close(CLOSE_REVOKED, 'token revoked');
          return [new GraphQLError('invalid or revoked token', { extensions: { code: 'UNAUTHENTICATED' } })];
        }
        const subs = ctx.extra.subscriptions!;
        if (subs.size >= maxSubs) return [new GraphQLError(`at most ${maxSubs} operations per connection`, { extensions: { code: 'BAD_USER_INPUT', limit: 'subscriptions' } })];
        if (typeof payload.query !== 'string' || payload.query.length > MAX_QUERY_CHARS) {
          return [new GraphQLError(`query must be a string of at most ${MAX_QUERY_CHARS} characters`, { extensions: { code: 'BAD_USER_INPUT', limit: 'document' } })];
        }
        let document;
        try {
          document = parse(payload.query, PARSE_OPTIONS);
        } catch (e) {
          return [new GraphQLError((e as Error).message, { extensions: { code: 'GRAPHQL_PARSE_FAILED' } })];
        }
        const errors = validate(schema, document, [...specifiedRules, ...rules]);
        if (errors.length > 0) {
          return errors.map((e) => (e.extensions?.code ? e : new GraphQLError(e.message, { nodes: e.nodes, extensions: { code: 'GRAPHQL_VALIDATION_FAILED' } })));
        }
        // Variable coercion errors are the client's input, as Apollo reports them over HTTP.
        const op = getOperationAST(document, payload.operationName ?? undefined);
        if (op) {
          const coerced = getVariableValues(schema, op.variableDefinitions ?? [], payload.variables ?? {}, { maxErrors: 50 });
          if (coerced.errors) return coerced.errors.map((e) => new GraphQLError(e.message, { nodes: e.nodes, extensions: { code: 'BAD_USER_INPUT' } }));
          const costErrors = checkCost(schema, document, op, coerced.coerced);
          if (costErrors.length > 0) return costErrors;
        }
        subs.add(id);
        const args: ExecutionArgs = {
          schema,
          document,
          variableValues: payload.variables ?? undefined,
          operationName: payload.operationName ?? undefined,
          contextValue: { user, service, baseUrl, reqId: opId(ctx, id) } satisfies ApiContext,
        };
        return args;
      },
      onComplete: (ctx, id) => {
        ctx.extra.subscriptions?.delete(id);
      },
      onNext: (ctx, id, _payload, _args, result) => {
        if (!result.errors) return result;
        return withRequestId(opId(ctx, id), () => ({ ...result, errors: result.errors!.map((e) => formatError(e as never, e)) }));
      },
      onError: (ctx, id, _payload, errors) => withRequestId(opId(ctx, id), () => errors.map((e) => formatError(e as never, e))) as never,
    },
    wss,
  );

  let url = '';
  let stopped = false;
  return {
    get url() {
      return url;
    },
    get wsUrl() {
      return url.replace(/^http/, 'ws') + '/graphql';
    },
    httpServer,
    async start() {
      await apollo.start();
      await new Promise<void>((resolve, reject) => {
        httpServer.once('error', reject);
        httpServer.listen(opts.port ?? 0, opts.host ?? '127.0.0.1', () => resolve());
      });
      const addr = httpServer.address() as AddressInfo;
      const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
      url = `http://${host === '0.0.0.0' ? '127.0.0.1' : host}:${addr.port}`;
      if (!opts.publicUrl) baseUrl = url;
      sockets.start(service.auth.ttlMs);
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      if (!url) return; // never started
      sockets.stop();
      // A reconnectable close (1012) lets clients move to another replica and replay what they missed
      // (treeEvents afterSeq); sockets that do not answer the close within a second are cut.
      for (const client of wss.clients) client.close(CLOSE_RESTART, 'server restarting: reconnect');
      const deadline = Date.now() + 1000;
      while ([...wss.clients].some((c) => c.readyState !== c.CLOSED) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      for (const client of wss.clients) client.terminate();
      await apollo.stop(); // drains HTTP (plugin) and disposes graphql-ws
      wsCleanup = null;
      await new Promise<void>((resolve) => wss.close(() => resolve()));
      if (httpServer.listening) await new Promise<void>((resolve) => httpServer.close(() => resolve()));
    },
  };
}
