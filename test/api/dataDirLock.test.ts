// Two `fisedit serve` processes on one data directory: the second must exit at once, non-zero, naming the
// holder, before crash recovery — the first server's RUNNING job stays its own (one attempt, not re-queued).
// Also the lock file's rules in-process: stale locks (dead pid, reused pid) are taken over, live ones refused.
import { ChildProcess, fork, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { openDatabase } from '../../src/db/client';
import { createToken } from '../../src/service/auth/tokens';
import { DatabaseLockedError, DataDirLockedError, LOCK_FILE, lockDataDir } from '../../src/service/dataDirLock';
import { createService } from '../../src/service/service';
import { describeWithService, postgresProbe } from '../helpers/services';
import { postgresTestDatabase } from '../helpers/testDatabases';
import { gqlOk, TINY_MODEL, waitForStatus } from './harness';

const children: ChildProcess[] = [];
afterEach(() => {
  for (const c of children.splice(0)) c.kill('SIGKILL');
});

interface Served {
  proc: ChildProcess;
  /** Resolves with the URL once listening, or rejects with the exit code and stderr. */
  listening: Promise<string>;
  exited: Promise<{ code: number | null; stderr: string; ms: number }>;
}

function serve(dataDir: string, port = '0'): Served {
  const t0 = Date.now();
  const proc = fork(path.join(__dirname, 'serveProcess.ts'), ['--port', port, '--data', dataDir, '--model', TINY_MODEL, '--threads', '1'], {
    execArgv: ['--require', require.resolve('tsx/cjs')],
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
  });
  children.push(proc);
  let out = '';
  let err = '';
  proc.stderr!.on('data', (d) => (err += d));
  const exited = new Promise<{ code: number | null; stderr: string; ms: number }>((resolve) => proc.on('exit', (code) => resolve({ code, stderr: err, ms: Date.now() - t0 })));
  const listening = new Promise<string>((resolve, reject) => {
    proc.stdout!.on('data', (d) => {
      out += d;
      const m = /FISEdit GraphQL API: (http:\/\/[^\s]+)\/graphql/.exec(out);
      if (m) resolve(m[1]);
    });
    void exited.then((e) => reject(new Error(`serve exited with ${e.code}: ${e.stderr}`)));
  });
  listening.catch(() => undefined);
  return { proc, listening, exited };
}

it('a second server on the same data dir exits at once, non-zero, and leaves the running job alone', async () => {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fisedit-lock-'));
  const db0 = await openDatabase({ url: `file:${dataDir}/fisedit.db` });
  const { token } = await createToken(db0.db, 'alice');
  await db0.close();

  const first = serve(dataDir);
  const url = await first.listening;
  const lock = JSON.parse(fs.readFileSync(path.join(dataDir, LOCK_FILE), 'utf8'));
  expect(lock.pid).toBe(first.proc.pid);
  const G = `mutation($input: GenerateInput!) { generate(input: $input) { id } }`;
  const { generate } = await gqlOk(url, G, { input: { prompt: 'a long job', seed: 5, steps: 150 } }, token);
  await waitForStatus(url, token, generate.id, ['RUNNING']);

  // Same data dir, another port: refused by the lock.
  const second = serve(dataDir);
  const e = await second.exited;
  expect(e.code).toBe(4);
  expect(e.stderr).toContain(`data directory ${dataDir} is in use by process ${first.proc.pid}`);
  expect(e.stderr).not.toMatch(/recovered interrupted jobs/);

  // Same port as the first (another data dir): refused before anything else starts.
  const third = serve(fs.mkdtempSync(path.join(os.tmpdir(), 'fisedit-lock-')), new URL(url).port);
  const e3 = await third.exited;
  expect(e3.code).toBe(4);
  expect(e3.stderr).toMatch(/port \d+ on 127\.0\.0\.1 is in use/);

  // Nothing changed: the job is still the first server's single attempt, and it finishes there.
  const db = await openDatabase({ url: `file:${dataDir}/fisedit.db` });
  const job = await db.db.job.findUnique({ where: { nodeId: generate.id } });
  expect(job?.status).toBe('RUNNING');
  expect(job?.attempts).toBe(1);
  await db.close();
  expect(JSON.parse(fs.readFileSync(path.join(dataDir, LOCK_FILE), 'utf8')).pid).toBe(first.proc.pid);
  await gqlOk(url, 'mutation($id: ID!) { cancelJob(nodeId: $id) { status } }', { id: generate.id }, token);
  await waitForStatus(url, token, generate.id, ['CANCELLED']);

  // A graceful stop removes the lock; a new server then starts on the data dir.
  first.proc.kill('SIGTERM');
  expect((await first.exited).code).toBe(0);
  expect(fs.existsSync(path.join(dataDir, LOCK_FILE))).toBe(false);
}, 240_000);

describe('lockDataDir', () => {
  const dir = () => fs.mkdtempSync(path.join(os.tmpdir(), 'fisedit-lockfile-'));
  const write = (d: string, content: object) => fs.writeFileSync(path.join(d, LOCK_FILE), JSON.stringify(content));

  it('refuses a second lock in the same process and frees it on release', () => {
    const d = dir();
    const a = lockDataDir(d);
    expect(() => lockDataDir(d)).toThrow(DataDirLockedError);
    a.release();
    lockDataDir(d).release();
    expect(fs.existsSync(path.join(d, LOCK_FILE))).toBe(false);
  });

  it('takes over the lock of a dead process', () => {
    const d = dir();
    const dead = spawnSync('true');
    write(d, { pid: dead.pid, hostname: os.hostname(), startedAt: new Date().toISOString() });
    const l = lockDataDir(d);
    expect(JSON.parse(fs.readFileSync(l.file, 'utf8')).pid).toBe(process.pid);
    l.release();
  });

  it('refuses the lock of a live process that predates it, takes over one whose pid was reused later', () => {
    const d = dir();
    // This jest worker's parent is alive and started before now.
    write(d, { pid: process.ppid, hostname: os.hostname(), startedAt: new Date().toISOString() });
    expect(() => lockDataDir(d)).toThrow(new RegExp(`in use by process ${process.ppid}`));
    // The same live pid, but the lock was written a day before that process started: a reused pid.
    write(d, { pid: process.ppid, hostname: os.hostname(), startedAt: new Date(Date.now() - 86_400_000).toISOString() });
    const l = lockDataDir(d);
    expect(JSON.parse(fs.readFileSync(l.file, 'utf8')).pid).toBe(process.pid);
    l.release();
  });

  it('refuses a lock from another host, saying how to clear it', () => {
    const d = dir();
    write(d, { pid: 1, hostname: 'elsewhere.example', startedAt: new Date().toISOString() });
    expect(() => lockDataDir(d)).toThrow(/on host elsewhere\.example .*delete .*runner\.lock/);
  });
});

describeWithService(postgresProbe(), 'two job runners on one PostgreSQL database (different data dirs)', () => {
  it('refuses the second before recovery, and takes the lock once the first has stopped', async () => {
    const pg = await postgresTestDatabase();
    const dbUrl = pg.url;
    const dir = () => fs.mkdtempSync(path.join(os.tmpdir(), 'fisedit-pglock-'));
    const first = await createService({ dataDir: dir(), modelDir: TINY_MODEL, databaseUrl: dbUrl, engineMode: 'thread', intraOpNumThreads: 1 });
    try {
      await expect(createService({ dataDir: dir(), modelDir: TINY_MODEL, databaseUrl: dbUrl, engineMode: 'thread', intraOpNumThreads: 1 })).rejects.toThrow(DatabaseLockedError);
      // A server that only serves (no jobs) may share the database.
      const frontend = await createService({ dataDir: dir(), modelDir: TINY_MODEL, databaseUrl: dbUrl, engineMode: 'thread', intraOpNumThreads: 1, runJobs: false });
      await frontend.close();
    } finally {
      await first.close();
    }
    const again = await createService({ dataDir: dir(), modelDir: TINY_MODEL, databaseUrl: dbUrl, engineMode: 'thread', intraOpNumThreads: 1 });
    await again.close();
    await pg.destroy();
  }, 180_000);
});
