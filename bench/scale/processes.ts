// What the scale benches share: a fresh PostgreSQL database, `fisedit` processes (serve, worker) on it
// with Redis, a small GraphQL client and percentiles. Every process is a real `fisedit` CLI process,
// started through bin/fisedit.js as a user would.
import { ChildProcess, spawn } from 'child_process';
import { randomBytes } from 'crypto';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { Client } from 'pg';

export const ROOT = path.resolve(__dirname, '../..');
export const TINY_MODEL = path.join(ROOT, 'test/fixtures/models/tiny-2level');
export const PG_URL = process.env.FISEDIT_BENCH_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
export const REDIS_URL = process.env.FISEDIT_BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379';

export interface FreshDatabase {
  url: string;
  drop(): Promise<void>;
}

/** A new database on the PostgreSQL server of PG_URL, dropped by drop(). */
export async function freshDatabase(): Promise<FreshDatabase> {
  const name = `fisedit_bench_${randomBytes(4).toString('hex')}`;
  const admin = new Client({ connectionString: PG_URL });
  await admin.connect().catch((e) => {
    throw new Error(`bench/scale needs PostgreSQL at ${PG_URL} (FISEDIT_BENCH_PG_URL): ${(e as Error).message}`);
  });
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const u = new URL(PG_URL);
  u.pathname = `/${name}`;
  return {
    url: u.toString(),
    async drop() {
      const c = new Client({ connectionString: PG_URL });
      await c.connect();
      await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await c.end();
    },
  };
}

export interface FiseditProcess {
  proc: ChildProcess;
  /** serve: http://host:port */
  url: string;
  stderr(): string;
  /** SIGTERM, then SIGKILL after 20 s. */
  stop(): Promise<void>;
}

/**
 * Starts `fisedit <args>`; resolves when stdout matches `ready` (serve: its "FISEdit GraphQL API" line),
 * with the URL it printed (if any).
 */
export function startFisedit(args: string[], ready: RegExp, env: NodeJS.ProcessEnv = {}): Promise<FiseditProcess> {
  const proc = spawn(process.execPath, [path.join(ROOT, 'bin/fisedit.js'), ...args], { cwd: ROOT, env: { ...process.env, FISEDIT_LOG_LEVEL: 'warn', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  proc.stderr!.on('data', (d) => (err += d));
  const stop = async () => {
    if (proc.exitCode !== null || proc.signalCode !== null) return;
    const gone = new Promise((r) => proc.once('exit', r));
    proc.kill('SIGTERM');
    const t = setTimeout(() => proc.kill('SIGKILL'), 20_000);
    await gone;
    clearTimeout(t);
  };
  return new Promise((resolve, reject) => {
    proc.stdout!.on('data', (d) => {
      out += d;
      const m = ready.exec(out);
      if (m) resolve({ proc, url: m[1] ?? '', stderr: () => err, stop });
    });
    proc.on('exit', (code) => reject(new Error(`fisedit ${args[0]} exited with ${code}: ${err.slice(-2000)}`)));
  });
}

export const SERVE_READY = /FISEdit GraphQL API: (http:\/\/[^\s]+)\/graphql/;

export function tempDir(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

export async function gql(url: string, token: string, query: string, variables: Record<string, unknown> = {}): Promise<any> {
  const r = await fetch(`${url}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` }, body: JSON.stringify({ query, variables }) });
  const body = (await r.json()) as { data?: any; errors?: unknown };
  if (body.errors || !body.data) throw new Error(`GraphQL errors: ${JSON.stringify(body.errors)}`);
  return body.data;
}

export async function waitForStatus(url: string, token: string, id: string, statuses: string[], timeoutMs = 300_000): Promise<any> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const { node } = await gql(url, token, 'query($id: ID!) { node(id: $id) { id status error stats { mode wallMs } } }', { id });
    if (statuses.includes(node.status)) return node;
    if (Date.now() > deadline) throw new Error(`node ${id} still ${node.status}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export function pct(xs: number[], p: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
}

/** Runs `concurrency` loops of fn for `seconds`; returns per-call latencies (ms) and calls per second. */
export async function closedLoop(seconds: number, concurrency: number, fn: () => Promise<void>): Promise<{ rps: number; p50: number; p99: number; n: number }> {
  const lat: number[] = [];
  const end = performance.now() + seconds * 1000;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < end) {
        const s = performance.now();
        await fn();
        lat.push(performance.now() - s);
      }
    }),
  );
  const wall = (performance.now() - t0) / 1000;
  return { rps: lat.length / wall, p50: pct(lat, 50), p99: pct(lat, 99), n: lat.length };
}

/** CPU time (user + system) a process has used, ms (Linux /proc; USER_HZ 100). */
export function cpuMs(pid: number): number {
  const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100;
}

/** CPU ms of a process and its live descendants (a worker's engine child process). */
export function treeCpuMs(pid: number): number {
  const children = new Map<number, number[]>();
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const ppid = Number(fs.readFileSync(`/proc/${d}/stat`, 'utf8').split(') ')[1].split(' ')[1]);
      children.set(ppid, [...(children.get(ppid) ?? []), Number(d)]);
    } catch {
      // gone meanwhile
    }
  }
  let total = 0;
  const walk = (p: number) => {
    try {
      total += cpuMs(p);
    } catch {
      return;
    }
    for (const c of children.get(p) ?? []) walk(c);
  };
  walk(pid);
  return total;
}

/** The machine's busy and total CPU time over all cores, ms (/proc/stat), to tell how saturated it was. */
export function machineCpuMs(): { busy: number; total: number } {
  const v = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  const total = v.reduce((a, b) => a + b, 0);
  const idle = v[3] + (v[4] ?? 0);
  return { busy: ((total - idle) * 1000) / 100, total: (total * 1000) / 100 };
}
