// `fisedit worker` and `fisedit serve --workers 0` refuse what cannot work, before anything starts: exit 2
// (usage) with what is missing. No server is needed for these.
import { runServe } from '../../src/cli/serve';
import { runWorker, WORKER_HELP } from '../../src/cli/worker';

function bufferIo() {
  const out: string[] = [];
  const err: string[] = [];
  return { io: { stdout: { write: (s: string) => out.push(s) }, stderr: { write: (s: string) => err.push(s) } }, out, err };
}

const PG = 'postgres://postgres@127.0.0.1:5432/test';
const NO_ENV = { DATABASE_URL: undefined, REDIS_URL: undefined, FISEDIT_WORKERS: undefined };

let saved: NodeJS.ProcessEnv;
beforeEach(() => {
  saved = { ...process.env };
  for (const k of Object.keys(NO_ENV)) delete process.env[k];
});
afterEach(() => {
  process.env = saved;
});

it.each([
  [[], /--database-url postgres:\/\/… is required/],
  [['--database-url', 'file:/tmp/x.db', '--redis-url', 'redis://127.0.0.1:6379'], /--database-url postgres:\/\/… is required/],
  [['--database-url', PG], /--redis-url redis:\/\/… is required/],
  [['--database-url', PG, '--redis-url', 'redis://127.0.0.1:6379', '--lease-ms', '10'], /--lease-ms must be ≥ 300/],
  [['--database-url', PG, '--redis-url', 'redis://127.0.0.1:6379', '--engine', 'gpu'], /--engine must be process or thread/],
  [['--database-url', PG, '--redis-url', 'redis://127.0.0.1:6379', '--worker-id', 'a b'], /worker id "a b"/],
])('fisedit worker %j exits 2 saying why', async (argv, message) => {
  const b = bufferIo();
  expect(await runWorker(['--model', 'test/fixtures/models/tiny-2level', ...argv], b.io)).toBe(2);
  expect(b.err.join('')).toMatch(message);
});

it.each([
  [['--workers', '0'], /--workers 0 needs --redis-url/],
  [['--workers', '2', '--redis-url', 'redis://127.0.0.1:6379'], /--workers must be 0 .* or 1/],
  [['--workers', '0', '--redis-url', 'redis://127.0.0.1:6379', '--affinity-wait-ms=-1'], /--affinity-wait-ms must be ≥ 0/],
])('fisedit serve %j exits 2 saying why', async (argv, message) => {
  const b = bufferIo();
  expect(await runServe(['--port', '0', ...argv], b.io)).toBe(2);
  expect(b.err.join('')).toMatch(message);
});

it('fisedit worker --help says how leases, affinity and drain work', async () => {
  const b = bufferIo();
  expect(await runWorker(['--help'], b.io)).toBe(0);
  expect(b.out.join('')).toBe(WORKER_HELP);
  for (const flag of ['--lease-ms', '--affinity-wait-ms', '--drain-ms', '--worker-id', 'SIGTERM']) expect(WORKER_HELP).toContain(flag);
});
