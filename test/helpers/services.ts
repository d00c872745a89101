// Reachability of the local PostgreSQL and Redis servers (127.0.0.1:5432 / :6379 on dev machines and CI).
// Tests of those paths skip visibly (describe.skip chosen when the file loads, the reason printed and in
// the test names) when the server is absent — and fail under CI=true, where the servers must be up.
import { spawnSync } from 'child_process';
import * as net from 'net';

export const PG_URL = process.env.FISEDIT_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
export const REDIS_URL = process.env.FISEDIT_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

export function portOpen(host: string, port: number, timeoutMs = 500): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host, port });
    const done = (ok: boolean) => {
      s.destroy();
      resolve(ok);
    };
    s.setTimeout(timeoutMs, () => done(false));
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
  });
}

function hostPort(url: string, defaultPort: number): [string, number] {
  const u = new URL(url);
  return [u.hostname || '127.0.0.1', Number(u.port || defaultPort)];
}

export async function postgresAvailable(): Promise<boolean> {
  return portOpen(...hostPort(PG_URL, 5432));
}

export async function redisAvailable(): Promise<boolean> {
  return portOpen(...hostPort(REDIS_URL, 6379));
}

export interface ServiceProbe {
  /** "PostgreSQL", "Redis". */
  name: string;
  url: string;
  up: boolean;
}

/**
 * Whether host:port accepts a connection, decided synchronously (a one-off child process), so that a test
 * file can choose describe or describe.skip while it loads. Cached per process.
 */
function probeSync(name: string, url: string, defaultPort: number): ServiceProbe {
  const [host, port] = hostPort(url, defaultPort);
  const script = `const s=require('net').connect({host:${JSON.stringify(host)},port:${port}});s.setTimeout(1000,()=>process.exit(1));s.on('connect',()=>process.exit(0));s.on('error',()=>process.exit(1));`;
  const r = spawnSync(process.execPath, ['-e', script], { timeout: 5000, stdio: 'ignore' });
  return { name, url, up: r.status === 0 };
}

let pgCached: ServiceProbe | null = null;
let redisCached: ServiceProbe | null = null;
export const postgresProbe = (): ServiceProbe => (pgCached ??= probeSync('PostgreSQL', PG_URL, 5432));
export const redisProbe = (): ServiceProbe => (redisCached ??= probeSync('Redis', REDIS_URL, 6379));

/** True under CI=true, where PostgreSQL and Redis must be running (a missing one fails the run). */
export const servicesRequired = (): boolean => process.env.CI === 'true';

/**
 * describe(name, fn) when the service is up. Otherwise: under CI=true one failing test that says which
 * server is missing; elsewhere describe.skip, with the reason printed and in the suite's name.
 */
export function describeWithService(probe: ServiceProbe, name: string, fn: () => void): void {
  if (probe.up) {
    describe(name, fn);
    return;
  }
  const reason = `no ${probe.name} server at ${probe.url}`;
  if (servicesRequired()) {
    describe(name, () => {
      it(`needs ${probe.name} (CI=true: the server must be running)`, () => {
        throw new Error(`${reason}; CI=true requires it (start it, or run without CI=true to skip these tests)`);
      });
    });
    return;
  }
  console.warn(`skipping "${name}": ${reason}`);
  describe.skip(`${name} [skipped: ${reason}]`, fn);
}
