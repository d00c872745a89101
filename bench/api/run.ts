// API responsiveness while the engine works (issue: "the API's p99 latency must not grow with the
// engine's load"). Runs the real server on a random port with the engine in its worker, then measures
//   1. mutation → QUEUED latency (generate over HTTP) with the engine idle and busy
//   2. query latency ({ me, node }) with the engine idle and busy
//   3. events per second delivered to 100 WebSocket subscribers of one tree while jobs run, and the
//      delivery delay (event timestamp → received)
//   4. the API thread's event-loop delay (perf_hooks) idle and busy: the direct check that no model
//      run ever holds the API thread (onnxruntime's run() would stall it for a whole UNet call).
// On a small shared machine, request latency also moves with CPU contention from the engine process;
// the event-loop delay separates that from blocking.
// Prints a table and writes bench/results/api.json.
//
//   npx tsx bench/api/run.ts [--model DIR] [--threads N] [--requests N] [--subscribers N] [--steps N]

import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { monitorEventLoopDelay } from 'perf_hooks';
import { parseArgs } from 'util';
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';
import { buildServer } from '../../src/api/server';
import { createToken } from '../../src/service/auth/tokens';
import { createService } from '../../src/service/service';

const { values: args } = parseArgs({
  options: {
    model: { type: 'string' },
    threads: { type: 'string' },
    requests: { type: 'string' },
    subscribers: { type: 'string' },
    steps: { type: 'string' },
    engine: { type: 'string' },
  },
});
const MODEL = path.resolve(args.model ?? path.join(__dirname, '../../test/fixtures/models/tiny-2level'));
const THREADS = Number(args.threads ?? 1);
const REQUESTS = Number(args.requests ?? 300);
const SUBSCRIBERS = Number(args.subscribers ?? 100);
const STEPS = Number(args.steps ?? 150);
const ENGINE = (args.engine ?? 'process') as 'process' | 'thread';

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
}
const summary = (xs: number[]) => ({ n: xs.length, p50: pct(xs, 50), p90: pct(xs, 90), p99: pct(xs, 99), max: Math.max(...xs) });
const fmt = (x: number) => x.toFixed(2).padStart(8);

async function post(url: string, token: string, query: string, variables: Record<string, unknown> = {}): Promise<any> {
  const r = await fetch(`${url}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` }, body: JSON.stringify({ query, variables }) });
  const body = (await r.json()) as any;
  if (body.errors) throw new Error(JSON.stringify(body.errors));
  return body.data;
}

async function timed(n: number, fn: (i: number) => Promise<unknown>): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await fn(i);
    out.push(performance.now() - t0);
  }
  return out;
}

async function main(): Promise<void> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fisedit-bench-api-'));
  const service = await createService({ dataDir, modelDir: MODEL, intraOpNumThreads: THREADS, engineMode: ENGINE, previewIntervalMs: 250, maxQueuedPerUser: 10_000 }); // the per-user quota is not what is measured
  const server = buildServer({ service });
  await server.start();
  const url = server.url;
  const { token } = await createToken(service.database.db, 'bench');
  const seedNode = (await post(url, token, 'mutation { generate(input: { prompt: "a red circle", steps: 1 }) { id tree { id } } }')).generate;
  while ((await post(url, token, 'query($id: ID!) { node(id: $id) { status } }', { id: seedNode.id })).node.status !== 'SUCCEEDED') await new Promise((r) => setTimeout(r, 50));
  const QUERY = 'query($id: ID!) { me { id } node(id: $id) { id status prompt children { id } } }';
  const GENERATE = 'mutation($p: String!) { generate(input: { prompt: $p, steps: 1, priority: -10 }) { id status } }';
  const warm = () => timed(30, () => post(url, token, QUERY, { id: seedNode.id }));
  await warm();

  const loop = monitorEventLoopDelay({ resolution: 5 });
  const loopStats = () => ({ p50: loop.percentile(50) / 1e6, p99: loop.percentile(99) / 1e6, max: loop.max / 1e6 });
  loop.enable();
  await new Promise((r) => setTimeout(r, 2000));
  const idleLoop = loopStats();
  loop.reset();

  // 1–2 with the engine idle. The generated jobs are cheap (1 step) and run while we measure: cancel them after.
  const idleQuery = await timed(REQUESTS, () => post(url, token, QUERY, { id: seedNode.id }));
  const idleMutation = await timed(Math.min(REQUESTS, 100), (i) => post(url, token, GENERATE, { p: `idle ${i}` }));
  await drain(url, token, service);

  // Busy: a stream of long jobs at high priority keeps the engine running the whole time.
  const busyJobs: string[] = [];
  for (let i = 0; i < 40; i++) busyJobs.push((await post(url, token, `mutation($e: EditInput!) { edit(input: $e) { id } }`, { e: { parentId: seedNode.id, prompt: `busy ${i}`, priority: 10 } })).edit.id);
  await service.database.db.node.updateMany({ where: { id: { in: busyJobs } }, data: { steps: STEPS } });
  while ((await service.database.db.node.count({ where: { id: { in: busyJobs }, status: 'RUNNING' } })) === 0) await new Promise((r) => setTimeout(r, 20));

  loop.reset();
  await new Promise((r) => setTimeout(r, 2000));
  const busyLoop = loopStats();
  const busyQuery = await timed(REQUESTS, () => post(url, token, QUERY, { id: seedNode.id }));
  const busyMutation = await timed(Math.min(REQUESTS, 100), (i) => post(url, token, GENERATE, { p: `busy ${i}` }));

  // 3. subscribers on the tree, counting what they receive while the busy jobs run.
  const clients = Array.from({ length: SUBSCRIBERS }, () => createClient({ url: server.wsUrl, webSocketImpl: WebSocket, connectionParams: { authorization: `Bearer ${token}` }, retryAttempts: 0 }));
  let received = 0;
  const delays: number[] = [];
  const unsubs = clients.map((c) =>
    c.subscribe<{ treeEvents: { at: string } }>(
      { query: 'subscription($t: ID!) { treeEvents(treeId: $t) { type at node { id status } } }', variables: { t: seedNode.tree.id } },
      {
        next: (v) => {
          received++;
          if (v.data) delays.push(Date.now() - new Date(v.data.treeEvents.at).getTime());
        },
        error: () => undefined,
        complete: () => undefined,
      },
    ),
  );
  await new Promise((r) => setTimeout(r, 1000));
  const t0 = Date.now();
  const received0 = received;
  const subsQuery = await timed(REQUESTS, () => post(url, token, QUERY, { id: seedNode.id }));
  await new Promise((r) => setTimeout(r, Math.max(0, 3000 - (Date.now() - t0))));
  const eventsPerSecond = ((received - received0) / (Date.now() - t0)) * 1000;
  const stillBusy = (await service.database.db.node.count({ where: { id: { in: busyJobs }, status: 'RUNNING' } })) > 0;
  for (const u of unsubs) u();
  await Promise.all(clients.map((c) => c.dispose()));

  await server.stop();
  await service.close();
  fs.rmSync(dataDir, { recursive: true, force: true });

  const rows = [
    ['query { me, node }', summary(idleQuery), summary(busyQuery)],
    ['generate → QUEUED', summary(idleMutation), summary(busyMutation)],
    [`query + ${SUBSCRIBERS} subscribers`, summary(idleQuery), summary(subsQuery)],
  ] as const;
  console.log(`\nAPI latency, ms (model ${path.basename(MODEL)}, engine ${ENGINE} with ${THREADS} thread(s), ${os.cpus().length} cores; busy = ${STEPS}-step jobs running${stillBusy ? '' : ' — WARNING: the engine went idle during the busy phase'})`);
  console.log('operation              engine  p50       p90       p99       max');
  for (const [name, idle, busy] of rows) {
    console.log(`${name.padEnd(22)} idle   ${fmt(idle.p50)}  ${fmt(idle.p90)}  ${fmt(idle.p99)}  ${fmt(idle.max)}`);
    console.log(`${''.padEnd(22)} busy   ${fmt(busy.p50)}  ${fmt(busy.p90)}  ${fmt(busy.p99)}  ${fmt(busy.max)}   p99 busy/idle ${(busy.p99 / idle.p99).toFixed(2)}×`);
  }
  console.log(`\nAPI thread event-loop delay, ms (2 s without requests): idle p50 ${idleLoop.p50.toFixed(2)} p99 ${idleLoop.p99.toFixed(2)} max ${idleLoop.max.toFixed(2)}; busy p50 ${busyLoop.p50.toFixed(2)} p99 ${busyLoop.p99.toFixed(2)} max ${busyLoop.max.toFixed(2)}`);
  console.log(`\ntree events to ${SUBSCRIBERS} WebSocket subscribers while busy: ${eventsPerSecond.toFixed(0)} events/s delivered; delivery delay p50 ${pct(delays, 50)} ms, p99 ${pct(delays, 99)} ms (n=${delays.length})`);
  const out = {
    date: new Date().toISOString(),
    machine: { cores: os.cpus().length, cpu: os.cpus()[0]?.model, node: process.version },
    model: path.basename(MODEL),
    engine: ENGINE,
    threads: THREADS,
    busySteps: STEPS,
    engineStayedBusy: stillBusy,
    latencyMs: { query: { idle: summary(idleQuery), busy: summary(busyQuery), busyWithSubscribers: summary(subsQuery) }, generateToQueued: { idle: summary(idleMutation), busy: summary(busyMutation) } },
    p99Ratio: { query: summary(busyQuery).p99 / summary(idleQuery).p99, generate: summary(busyMutation).p99 / summary(idleMutation).p99, queryWithSubscribers: summary(subsQuery).p99 / summary(idleQuery).p99 },
    eventLoopDelayMs: { idle: idleLoop, busy: busyLoop },
    subscribers: SUBSCRIBERS,
    eventsPerSecond,
    deliveryDelayMs: delays.length ? { p50: pct(delays, 50), p99: pct(delays, 99) } : null,
  };
  const file = path.join(__dirname, '../results/api.json');
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, JSON.stringify(out, null, 2) + '\n');
  console.log(`wrote ${path.relative(process.cwd(), file)}`);
}

/** Cancels every queued job (the idle phase's cheap jobs) so the busy phase measures only the long ones. */
async function drain(url: string, token: string, service: Awaited<ReturnType<typeof createService>>): Promise<void> {
  const queued = await service.database.db.node.findMany({ where: { status: 'QUEUED' }, select: { id: true } });
  for (const n of queued) await post(url, token, 'mutation($id: ID!) { cancelJob(nodeId: $id) { id } }', { id: n.id }).catch(() => undefined);
  while ((await service.database.db.node.count({ where: { status: 'RUNNING' } })) > 0) await new Promise((r) => setTimeout(r, 20));
}

main().catch((e) => {
  console.error(e);
  process.exit(1); // the server and the engine process would otherwise keep the bench alive
});
