// Requests per second one API replica serves (docs/scaling.md, "Capacity model"). One real `fisedit
// serve` process on PostgreSQL + Redis with the tiny model; the load comes from this process over
// loopback. Per image store (database, shared folder), side by side in one run:
//   1. node reads: `concurrency` closed loops of the node query a tree view polls
//   2. image GETs: closed loops of GET /images/<node>/image.png (Bearer)
// Then, on the first deployment, subscriptions:
//   3. reconnect storm: S treeEvents(afterSeq 0) subscriptions opened at once, each replaying the tree's
//      log: subscriptions per second until every one has its replay
//   4. fan-out: E events published once on the tree's Redis channel (as another replica would), delivered
//      to all S subscribers: deliveries per second and publish → delivery latency
// The load generator shares the machine's cores with the replica (2 cores here), so the rates are a
// floor for a replica with its own cores; the replica process's own CPU time per request (from
// /proc/<pid>/stat, the engine child excluded) is the figure that carries over: requests per core-second. Prints a table and writes bench/results/scale-replica.json.
//
//   npx tsx bench/scale/replicaLoad.ts [--seconds 5] [--concurrency 16] [--subscribers 400] [--events 100]
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { parseArgs } from 'util';
import Redis from 'ioredis';
import { createClient, type Client } from 'graphql-ws';
import WebSocket from 'ws';
import { openDatabase } from '../../src/db/client';
import { createToken } from '../../src/service/auth/tokens';
import { closedLoop, cpuMs, freshDatabase, gql, pct, REDIS_URL, ROOT, SERVE_READY, startFisedit, tempDir, TINY_MODEL, waitForStatus } from './processes';

const { values: args } = parseArgs({ options: { seconds: { type: 'string' }, concurrency: { type: 'string' }, subscribers: { type: 'string' }, events: { type: 'string' } } });
const SECONDS = Number(args.seconds ?? 5);
const CONCURRENCY = Number(args.concurrency ?? 16);
const SUBSCRIBERS = Number(args.subscribers ?? 400);
const EVENTS = Number(args.events ?? 100);
// Fan-out events carry timestamps in 2000, which no real event has.
const BENCH_YEAR = '2000-';
const SUBS_PER_SOCKET = 100; // the server's default bound per connection
const SOCKETS_PER_USER = 20; // … and per user

const NODE_QUERY = 'query($id: ID!) { node(id: $id) { id status prompt seed steps image { url thumbnailUrl } stats { mode wallMs maskedFraction } parent { id } children { id } } }';
const TREE_EVENTS = 'subscription($t: ID!, $after: Int) { treeEvents(treeId: $t, afterSeq: $after) { type seq at node { id status } } }';

type Loop = Awaited<ReturnType<typeof closedLoop>> & { cpuMsPerRequest: number };
interface StoreResult {
  store: string;
  nodeReads: Loop;
  imageGets: Loop;
  imageBytes: number;
}

/** closedLoop, plus the replica's CPU ms per request. */
async function measured(pid: number, fn: () => Promise<Awaited<ReturnType<typeof closedLoop>>>): Promise<Awaited<ReturnType<typeof closedLoop>> & { cpuMsPerRequest: number }> {
  const c0 = cpuMs(pid);
  const r = await fn();
  return { ...r, cpuMsPerRequest: (cpuMs(pid) - c0) / r.n };
}

async function seedTree(url: string, token: string): Promise<{ treeId: string; nodeIds: string[] }> {
  const { generate } = await gql(url, token, 'mutation { generate(input: { prompt: "a red circle", seed: 1, steps: 4 }) { id tree { id } } }');
  await waitForStatus(url, token, generate.id, ['SUCCEEDED']);
  const ids = [generate.id as string];
  for (const p of ['a green circle', 'a blue circle', 'a red square']) {
    const { edit } = await gql(url, token, 'mutation($p: ID!, $q: String!) { edit(input: { parentId: $p, prompt: $q }) { id } }', { p: generate.id, q: p });
    await waitForStatus(url, token, edit.id, ['SUCCEEDED']);
    ids.push(edit.id);
  }
  return { treeId: generate.tree.id, nodeIds: ids };
}

function socket(wsUrl: string, token: string): Client {
  return createClient({ url: wsUrl, webSocketImpl: WebSocket, connectionParams: { authorization: `Bearer ${token}` }, retryAttempts: 0, lazy: false });
}

async function subscriptions(url: string, dbUrl: string, treeId: string, pid: number): Promise<Record<string, number>> {
  const wsUrl = `${url.replace(/^http/, 'ws')}/graphql`;
  const db = await openDatabase({ url: dbUrl });
  const sockets: Client[] = [];
  const users = Math.ceil(SUBSCRIBERS / SUBS_PER_SOCKET / SOCKETS_PER_USER);
  const tokens: string[] = [];
  const { user: owner } = await createToken(db.db, 'bench');
  for (let u = 0; u < users; u++) {
    const { token, user } = await createToken(db.db, `viewer${u}`);
    await db.db.treeMember.create({ data: { treeId, userId: user.id, role: 'VIEWER' } });
    tokens.push(token);
  }
  void owner;
  const logged = await db.db.treeEvent.findMany({ where: { treeId }, orderBy: { seq: 'asc' } });
  const lastSeq = logged.at(-1)!.seq;
  const template = JSON.parse(logged.at(-1)!.payload);
  await db.close();
  for (let i = 0; i < Math.ceil(SUBSCRIBERS / SUBS_PER_SOCKET); i++) sockets.push(socket(wsUrl, tokens[Math.floor(i / SOCKETS_PER_USER)]));

  // 3. reconnect storm: every subscription replays the log from seq 0.
  const received: number[] = new Array(SUBSCRIBERS).fill(0);
  const liveAt: number[][] = Array.from({ length: SUBSCRIBERS }, () => []);
  let replayed = 0;
  let allReplayed!: () => void;
  const replayDone = new Promise<void>((r) => (allReplayed = r));
  let liveTotal = 0;
  let allLive!: () => void;
  const liveDone = new Promise<void>((r) => (allLive = r));
  const t0 = performance.now();
  const c0 = cpuMs(pid);
  for (let s = 0; s < SUBSCRIBERS; s++) {
    sockets[Math.floor(s / SUBS_PER_SOCKET)].subscribe(
      { query: TREE_EVENTS, variables: { t: treeId, after: 0 } },
      {
        next: (v) => {
          const e = (v.data as any)?.treeEvents;
          if (!e) throw new Error(JSON.stringify(v.errors));
          if (e.type === 'PROGRESSED' && e.at.startsWith(BENCH_YEAR)) {
            liveAt[s].push(performance.now());
            if (++liveTotal === SUBSCRIBERS * EVENTS) allLive();
            return;
          }
          if (++received[s] === lastSeq && ++replayed === SUBSCRIBERS) allReplayed();
        },
        error: (e) => console.error('subscription error', e),
        complete: () => undefined,
      },
    );
  }
  await replayDone;
  const stormMs = performance.now() - t0;
  const c1 = cpuMs(pid);

  // 4. fan-out: events published on the tree's channel as another replica publishes them (PROGRESSED:
  // unnumbered, so the replica forwards them without reading the log).
  const redis = new Redis(REDIS_URL);
  const sentAt: number[] = [];
  const p0 = performance.now();
  for (let i = 0; i < EVENTS; i++) {
    sentAt.push(performance.now());
    await redis.publish(`fisedit:tree-events:${treeId}`, JSON.stringify({ ...template, type: 'PROGRESSED', seq: lastSeq, at: new Date(Date.UTC(2000, 0, 1) + i).toISOString(), progress: null }));
  }
  const timeout = setTimeout(() => allLive(), 60_000);
  await liveDone;
  clearTimeout(timeout);
  const fanMs = performance.now() - p0;
  const c2 = cpuMs(pid);
  const lat: number[] = [];
  for (const xs of liveAt) xs.forEach((t, i) => lat.push(t - sentAt[i]));
  redis.disconnect();
  for (const c of sockets) await c.dispose();
  return {
    subscribers: SUBSCRIBERS,
    sockets: sockets.length,
    replayEventsEach: lastSeq,
    stormMs,
    subscriptionsPerS: SUBSCRIBERS / (stormMs / 1000),
    cpuMsPerSubscription: (c1 - c0) / SUBSCRIBERS,
    events: EVENTS,
    delivered: liveTotal,
    fanOutMs: fanMs,
    deliveriesPerS: liveTotal / (fanMs / 1000),
    cpuMsPerDelivery: (c2 - c1) / Math.max(1, liveTotal),
    latencyP50Ms: pct(lat, 50),
    latencyP99Ms: pct(lat, 99),
  };
}

async function main(): Promise<void> {
  const stores: [string, string[]][] = [
    ['database', ['--image-store', 'database']],
    ['shared folder', ['--images-dir', tempDir('fisedit-bench-images-')]],
  ];
  const results: StoreResult[] = [];
  let subs: Record<string, number> | null = null;
  for (const [store, flags] of stores) {
    const db = await freshDatabase();
    const serve = await startFisedit(['serve', '--port', '0', '--data', tempDir('fisedit-bench-replica-'), '--model', TINY_MODEL, '--threads', '1', '--database-url', db.url, '--redis-url', REDIS_URL, ...flags], SERVE_READY);
    try {
      const d = await openDatabase({ url: db.url });
      const { token } = await createToken(d.db, 'bench');
      await d.close();
      const { treeId, nodeIds } = await seedTree(serve.url, token);
      let i = 0;
      await closedLoop(1, 4, async () => void (await gql(serve.url, token, NODE_QUERY, { id: nodeIds[i++ % nodeIds.length] }))); // warm-up
      const pid = serve.proc.pid!;
      const nodeReads = await measured(pid, () => closedLoop(SECONDS, CONCURRENCY, async () => void (await gql(serve.url, token, NODE_QUERY, { id: nodeIds[i++ % nodeIds.length] }))));
      let imageBytes = 0;
      const imageGets = await measured(pid, () =>
        closedLoop(SECONDS, CONCURRENCY, async () => {
          const r = await fetch(`${serve.url}/images/${nodeIds[i++ % nodeIds.length]}/image.png`, { headers: { authorization: `Bearer ${token}` } });
          if (r.status !== 200) throw new Error(`image GET ${r.status}`);
          imageBytes = (await r.arrayBuffer()).byteLength;
        }),
      );
      results.push({ store, nodeReads, imageGets, imageBytes });
      if (!subs) subs = await subscriptions(serve.url, db.url, treeId, pid);
    } finally {
      await serve.stop();
      await db.drop();
    }
  }

  const f = (x: number, d = 0) => x.toFixed(d);
  console.log(`\nOne API replica (fisedit serve, PostgreSQL + Redis, tiny model), ${os.cpus().length} cores shared with the load generator (load average ${os.loadavg()[0].toFixed(1)}); ${CONCURRENCY} closed loops, ${SECONDS} s each\n`);
  console.log('| image store | node reads/s | p50 / p99 ms | replica CPU ms / read | image GETs/s | p50 / p99 ms | replica CPU ms / GET | image bytes |');
  console.log('|---|---|---|---|---|---|---|---|');
  for (const r of results) console.log(`| ${r.store} | ${f(r.nodeReads.rps)} | ${f(r.nodeReads.p50, 1)} / ${f(r.nodeReads.p99, 1)} | ${f(r.nodeReads.cpuMsPerRequest, 2)} | ${f(r.imageGets.rps)} | ${f(r.imageGets.p50, 1)} / ${f(r.imageGets.p99, 1)} | ${f(r.imageGets.cpuMsPerRequest, 2)} | ${r.imageBytes} |`);
  if (subs) {
    console.log(`\nSubscriptions (${subs.subscribers} on ${subs.sockets} sockets, one tree):`);
    console.log(`  reconnect storm: ${subs.subscribers} treeEvents(afterSeq 0) replaying ${subs.replayEventsEach} events each in ${f(subs.stormMs)} ms = ${f(subs.subscriptionsPerS)} subscriptions/s; replica CPU ${f(subs.cpuMsPerSubscription, 2)} ms per subscription`);
    console.log(`  fan-out: ${subs.events} events × ${subs.subscribers} = ${subs.delivered} deliveries in ${f(subs.fanOutMs)} ms = ${f(subs.deliveriesPerS)} deliveries/s; publish → delivery p50 ${f(subs.latencyP50Ms, 1)} ms, p99 ${f(subs.latencyP99Ms, 1)} ms; replica CPU ${f(subs.cpuMsPerDelivery * 1000, 1)} µs per delivery`);
  }
  const out = path.join(ROOT, 'bench/results/scale-replica.json');
  fs.writeFileSync(out, JSON.stringify({ date: new Date().toISOString(), machine: { cores: os.cpus().length, cpu: os.cpus()[0]?.model, node: process.version, loadAverage: os.loadavg() }, seconds: SECONDS, concurrency: CONCURRENCY, stores: results, subscriptions: subs }, null, 2) + '\n');
  console.log(`\nwrote ${path.relative(ROOT, out)}`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
