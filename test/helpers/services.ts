// Reachability of the local PostgreSQL and Redis servers (127.0.0.1:5432 / :6379 on dev machines and CI).
// Tests of those paths skip, with the reason printed, when the server is absent.
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

/** `it` when the condition holds, otherwise a skipped test whose name says why. */
export function itIf(cond: boolean, reason: string): jest.It {
  if (cond) return it;
  const skipped = ((name: string, ...rest: unknown[]) => (it.skip as (n: string, ...r: unknown[]) => void)(`${name} [skipped: ${reason}]`, ...rest)) as unknown as jest.It;
  return skipped;
}
