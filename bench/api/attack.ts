// Event-loop delay of the API thread under a mixed load, without and with attacker connections open
// (issue 16 "Verify": bench/api's event-loop delay p99 under a mixed load with an attacker connection).
// The real server on 127.0.0.1 (loopback only) in its own process (attackServer.ts: the event-loop delay
// measured there is the server's alone, not the load generators'), the engine in its own process on the
// tiny model; an idle phase, then two phases of the same length and the same client load:
//   load      HTTP queries (me, node, a page of tree nodes with children and queue positions), generate
//             mutations (1-step jobs), and WebSocket subscribers to the tree's events and a node's progress;
//   + attack  the same, plus: a fragment-spread bomb (10 fragments each spreading the previous one 4 times:
//             4⁹ fields if expanded) sent over HTTP and over WebSocket in a loop, and slow-loris sockets that
//             send an HTTP request header one byte a second and never finish it.
// Everything is bounded: PHASE_S seconds per phase, at most BOMBS bombs, LORIS slow sockets.
// perf_hooks.monitorEventLoopDelay (1 ms resolution) in the server process measures its API thread;
// a validation that expanded the spreads (the old cost rule) showed up here as seconds.
// Prints a table and writes bench/results/api-attack.json.
//
//   npx tsx bench/api/attack.ts [--model DIR] [--seconds N] [--bombs N] [--loris N] [--subscribers N]

import { fork, type ChildProcess } from 'child_process';
import * as fs from 'fs';
import * as net from 'net';
import * as os from 'os';
import * as path from 'path';
import { parseArgs } from 'util';
import { createClient, type Client } from 'graphql-ws';
import WebSocket from 'ws';

const { values: args } = parseArgs({
  options: { model: { type: 'string' }, seconds: { type: 'string' }, bombs: { type: 'string' }, loris: { type: 'string' }, subscribers: { type: 'string' } },
});
const MODEL = path.resolve(args.model ?? path.join(__dirname, '../../test/fixtures/models/tiny-2level'));
const PHASE_S = Number(args.seconds ?? 15);
const BOMBS = Number(args.bombs ?? 400);
const LORIS = Number(args.loris ?? 50);
const SUBSCRIBERS = Number(args.subscribers ?? 20);

/** 10 fragments, each spreading the previous 4 times: under 800 characters, 4⁹ = 262,144 fields expanded. */
function spreadBomb(): string {
  const frags = ['fragment F0 on Query { me { id name } }'];
  for (let i = 1; i < 10; i++) frags.push(`fragment F${i} on Query { ...F${i - 1} ...F${i - 1} ...F${i - 1} ...F${i - 1} }`);
  return `query Bomb { ...F9 }\n${frags.join('\n')}`;
}

function pct(xs: number[], p: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
}
const summary = (xs: number[]) => ({ n: xs.length, p50: pct(xs, 50), p99: pct(xs, 99), max: xs.length ? Math.max(...xs) : NaN });

async function post(url: string, token: string, query: string, variables: Record<string, unknown> = {}): Promise<{ status: number; body: any }> {
  const r = await fetch(`${url}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` }, body: JSON.stringify({ query, variables }) });
  return { status: r.status, body: await r.json().catch(() => null) };
}

interface PhaseResult {
  loopMs: { p50: number; p99: number; max: number };
  queryMs: ReturnType<typeof summary>;
  mutationMs: ReturnType<typeof summary>;
  events: number;
  errors5xx: number;
  attack: null | { bombsHttp: number; bombsWs: number; bombStatuses: Record<string, number>; bombMs: ReturnType<typeof summary>; lorisOpened: number; lorisClosedByServer: number };
}

/** Sends a command to the server process and waits for the reply of the given type. */
function ask<T = any>(proc: ChildProcess, cmd: string | null, type: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const on = (m: any) => {
      if (m?.type !== type) return;
      proc.off('message', on);
      resolve(m);
    };
    proc.on('message', on);
    proc.once('exit', (code) => reject(new Error(`bench server exited with ${code}`)));
    if (cmd) proc.send({ cmd });
  });
}

async function main(): Promise<void> {
  const proc = fork(path.join(__dirname, 'attackServer.ts'), [MODEL], { execArgv: ['--require', require.resolve('tsx/cjs')], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const { url, wsUrl, token, attackerToken } = await ask<{ url: string; wsUrl: string; token: string; attackerToken: string }>(proc, null, 'ready');
  type Loop = { p50: number; p99: number; max: number };
  const measure = () => ask(proc, 'measure', 'measuring');
  const stop = async (): Promise<Loop> => {
    const { p50, p99, max } = await ask<Loop>(proc, 'stop', 'loop');
    return { p50, p99, max };
  };
  const root = (await post(url, token, 'mutation { generate(input: { prompt: "a red circle", steps: 1 }) { id tree { id } } }')).body.data.generate;
  const treeId: string = root.tree.id;
  const QUERY = 'query($id: ID!, $t: ID!) { me { id } node(id: $id) { id status prompt } tree(id: $t) { nodeCount nodes(first: 20) { id status queuePosition children { id } } } }';
  const GENERATE = 'mutation($p: String!, $t: ID!) { edit(input: { parentId: $t, prompt: $p }) { id status } }';
  /** The event-loop delay with no client at all: what this machine's scheduling adds by itself. */
  async function idle(): Promise<PhaseResult['loopMs']> {
    await measure();
    await new Promise((r) => setTimeout(r, PHASE_S * 1000));
    return stop();
  }

  async function phase(withAttack: boolean): Promise<PhaseResult> {
    const until = Date.now() + PHASE_S * 1000;
    let events = 0;
    let errors5xx = 0;
    const queryMs: number[] = [];
    const mutationMs: number[] = [];
    const clients: Client[] = Array.from({ length: SUBSCRIBERS }, () => createClient({ url: wsUrl, webSocketImpl: WebSocket, connectionParams: { authorization: `Bearer ${token}` }, retryAttempts: 0 }));
    const unsubs = clients.flatMap((c) => [
      c.subscribe({ query: 'subscription($t: ID!) { treeEvents(treeId: $t) { type seq node { id status } } }', variables: { t: treeId } }, { next: () => void events++, error: () => undefined, complete: () => undefined }),
    ]);
    // Clients: two query loops, one mutation loop (a 1-step edit every 250 ms), until the phase ends.
    const queryLoop = async () => {
      while (Date.now() < until) {
        const t0 = performance.now();
        const r = await post(url, token, QUERY, { id: root.id, t: treeId });
        queryMs.push(performance.now() - t0);
        if (r.status >= 500) errors5xx++;
      }
    };
    const mutationLoop = async () => {
      for (let i = 0; Date.now() < until; i++) {
        const t0 = performance.now();
        const r = await post(url, token, GENERATE, { p: `a blue circle ${i}`, t: root.id });
        mutationMs.push(performance.now() - t0);
        if (r.status >= 500) errors5xx++;
        await new Promise((res) => setTimeout(res, 250));
      }
    };
    // The attacker: spread bombs over HTTP and WebSocket (bounded), and slow-loris sockets.
    let attack: PhaseResult['attack'] = null;
    const attackTasks: Promise<unknown>[] = [];
    const sockets: net.Socket[] = [];
    if (withAttack) {
      const a = { bombsHttp: 0, bombsWs: 0, bombStatuses: {} as Record<string, number>, bombMs: summary([]), lorisOpened: 0, lorisClosedByServer: 0 };
      attack = a;
      const bombMs: number[] = [];
      const bomb = spreadBomb();
      const ws = createClient({ url: wsUrl, webSocketImpl: WebSocket, connectionParams: { authorization: `Bearer ${attackerToken}` }, retryAttempts: 0 });
      attackTasks.push(
        (async () => {
          for (let i = 0; i < BOMBS / 2 && Date.now() < until; i++) {
            const t0 = performance.now();
            const r = await post(url, attackerToken, bomb);
            bombMs.push(performance.now() - t0);
            a.bombsHttp++;
            const code = String(r.body?.errors?.[0]?.extensions?.code ?? r.status);
            a.bombStatuses[code] = (a.bombStatuses[code] ?? 0) + 1;
            if (r.status >= 500) errors5xx++;
          }
        })(),
        (async () => {
          for (let i = 0; i < BOMBS / 2 && Date.now() < until; i++) {
            await new Promise<void>((resolve) => ws.subscribe({ query: bomb }, { next: () => undefined, error: () => resolve(), complete: () => resolve() }));
            a.bombsWs++;
          }
          await ws.dispose();
        })(),
      );
      for (let i = 0; i < LORIS; i++) {
        const s = net.connect({ host: '127.0.0.1', port: Number(new URL(url).port) });
        sockets.push(s);
        a.lorisOpened++;
        s.on('error', () => undefined);
        s.on('close', () => void a.lorisClosedByServer++);
        const header = `POST /graphql HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${attackerToken}\r\nContent-Type: application/json\r\nX-Slow: `;
        let k = 0;
        const t = setInterval(() => {
          if (s.destroyed || Date.now() >= until) return clearInterval(t);
          s.write(header[k % header.length] ?? 'a');
          k++;
        }, 1000);
        t.unref();
      }
      attackTasks.push(new Promise((r) => setTimeout(r, PHASE_S * 1000)).then(() => void (a.bombMs = summary(bombMs))));
    }
    await measure();
    await Promise.all([queryLoop(), queryLoop(), mutationLoop(), ...attackTasks]);
    const loopMs = await stop();
    const closedByServer = attack ? attack.lorisClosedByServer : 0;
    for (const s of sockets) s.destroy();
    if (attack) attack.lorisClosedByServer = closedByServer;
    for (const u of unsubs) u();
    await Promise.all(clients.map((c) => c.dispose()));
    // Let the queue drain between phases, so both start alike.
    await ask(proc, 'drain', 'drained');
    return { loopMs, queryMs: summary(queryMs), mutationMs: summary(mutationMs), events, errors5xx, attack };
  }

  const idleLoop = await idle();
  const load = await phase(false);
  const attacked = await phase(true);
  const alive = (await post(url, token, '{ me { name } }')).body?.data?.me?.name === 'bench';
  proc.send({ cmd: 'exit' });
  await new Promise((r) => proc.once('exit', r));

  const f = (x: number) => (Number.isFinite(x) ? x.toFixed(2) : '—').padStart(9);
  console.log(`\nAPI under mixed load, ${PHASE_S} s per phase (model ${path.basename(MODEL)}, ${os.cpus().length} cores, ${SUBSCRIBERS} subscribers; attack: ≤ ${BOMBS} spread bombs over HTTP+WS, ${LORIS} slow-loris sockets)`);
  console.log('phase      event-loop delay ms (p50 / p99 / max)   query ms (n, p50, p99)        mutation ms (n, p50, p99)   events  5xx');
  console.log(`${'idle'.padEnd(10)} ${f(idleLoop.p50)} ${f(idleLoop.p99)} ${f(idleLoop.max)}       (no clients: the machine's own scheduling noise)`);
  for (const [name, r] of [['load', load], ['+ attack', attacked]] as const) {
    console.log(
      `${name.padEnd(10)} ${f(r.loopMs.p50)} ${f(r.loopMs.p99)} ${f(r.loopMs.max)}       ${String(r.queryMs.n).padStart(5)} ${f(r.queryMs.p50)} ${f(r.queryMs.p99)}   ${String(r.mutationMs.n).padStart(4)} ${f(r.mutationMs.p50)} ${f(r.mutationMs.p99)}  ${String(r.events).padStart(6)}  ${r.errors5xx}`,
    );
  }
  const a = attacked.attack!;
  console.log(`attacker: ${a.bombsHttp} HTTP bombs (answers ${JSON.stringify(a.bombStatuses)}, p50 ${a.bombMs.p50.toFixed(1)} ms, max ${a.bombMs.max.toFixed(1)} ms), ${a.bombsWs} WebSocket bombs; ${a.lorisOpened} slow-loris sockets, ${a.lorisClosedByServer} closed by the server within the phase; server answering afterwards: ${alive}`);
  const out = {
    date: new Date().toISOString(),
    machine: { cores: os.cpus().length, cpu: os.cpus()[0]?.model, node: process.version },
    model: path.basename(MODEL),
    phaseSeconds: PHASE_S,
    subscribers: SUBSCRIBERS,
    attack: { bombs: BOMBS, loris: LORIS },
    loadAverage: os.loadavg(),
    idle: { loopMs: idleLoop },
    load,
    attacked,
    serverAnsweringAfterwards: alive,
  };
  const file = path.join(__dirname, '../results/api-attack.json');
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, JSON.stringify(out, null, 2) + '\n');
  console.log(`wrote ${path.relative(process.cwd(), file)}`);
}

main().then(
  () => process.exit(0),
  (e) => {
    console.error(e);
    process.exit(1); // the server and the engine process would otherwise keep the bench alive
  },
);
