// Kill -9 the server mid-job, start it again on the same data dir: every node is in a final or re-queued
// state (nothing stays RUNNING, nothing is lost), and the queue finishes the work.
import { ChildProcess, fork } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { openDatabase } from '../../src/db/client';
import { createToken } from '../../src/service/auth/tokens';
import { gqlOk, Harness, startHarness, TINY_MODEL, waitForStatus } from './harness';

let child: ChildProcess | null = null;
let h: Harness | null = null;
afterEach(async () => {
  child?.kill('SIGKILL');
  await h?.stop();
});

function startServeProcess(dataDir: string): Promise<{ proc: ChildProcess; url: string }> {
  const proc = fork(path.join(__dirname, 'serveProcess.ts'), ['--port', '0', '--data', dataDir, '--model', TINY_MODEL, '--threads', '1'], {
    execArgv: ['--require', require.resolve('tsx/cjs')],
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
  });
  return new Promise((resolve, reject) => {
    let out = '';
    let err = '';
    proc.stdout!.on('data', (d) => {
      out += d;
      const m = /FISEdit GraphQL API: (http:\/\/[^\s]+)\/graphql/.exec(out);
      if (m) resolve({ proc, url: m[1] });
    });
    proc.stderr!.on('data', (d) => (err += d));
    proc.on('exit', (code) => reject(new Error(`serve exited with ${code}: ${err}`)));
  });
}

it('recovers every job after the server is killed mid-job', async () => {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fisedit-crash-'));
  const db = await openDatabase({ url: `file:${dataDir}/fisedit.db` });
  const { token } = await createToken(db.db, 'alice');
  await db.close();

  const first = await startServeProcess(dataDir);
  child = first.proc;
  const G = `mutation($input: GenerateInput!) { generate(input: $input) { id } }`;
  const ids: string[] = [];
  for (const steps of [150, 3, 3]) ids.push((await gqlOk(first.url, G, { input: { prompt: `job ${steps}`, seed: 5, steps } }, token)).generate.id);
  await waitForStatus(first.url, token, ids[0], ['RUNNING']);
  first.proc.kill('SIGKILL');
  await new Promise((r) => first.proc.once('exit', r));
  child = null;

  // What the crash left: the first job RUNNING in the database (nobody could update it).
  const before = await openDatabase({ url: `file:${dataDir}/fisedit.db` });
  expect((await before.db.node.findUnique({ where: { id: ids[0] } }))?.status).toBe('RUNNING');
  await before.close();

  h = await startHarness({ dataDir });
  expect(h.service.recovery.requeued).toEqual([ids[0]]);
  const states = await h.service.database.db.node.findMany({ include: { job: true } });
  for (const n of states) expect(['QUEUED', 'RUNNING', 'SUCCEEDED']).toContain(n.status);
  for (const id of ids) await waitForStatus(h.url, token, id, ['SUCCEEDED'], 120_000);
  const job = await h.service.database.db.job.findUnique({ where: { nodeId: ids[0] } });
  expect(job?.attempts).toBe(2); // the interrupted attempt counted
}, 300_000); // two server processes and a kill -9: minutes on a loaded 2-core machine

it('fails a job cleanly when it was interrupted on its last attempt', async () => {
  h = await startHarness();
  const token = await h.token('alice');
  const { generate } = await gqlOk(h.url, `mutation { generate(input: { prompt: "x", steps: 1 }) { id } }`, {}, token);
  await waitForStatus(h.url, token, generate.id, ['SUCCEEDED']);
  const dataDir = h.dataDir;
  await h.stop();
  // Make it look like a crash during the last allowed attempt.
  const db = await openDatabase({ url: `file:${dataDir}/fisedit.db` });
  await db.db.job.update({ where: { nodeId: generate.id }, data: { status: 'RUNNING', attempts: 2, maxAttempts: 2 } });
  await db.db.node.update({ where: { id: generate.id }, data: { status: 'RUNNING' } });
  await db.close();
  h = await startHarness({ dataDir });
  expect(h.service.recovery.failed).toEqual([generate.id]);
  const n = await waitForStatus(h.url, token, generate.id, ['FAILED']);
  expect(n.error).toMatch(/interrupted/);
});
