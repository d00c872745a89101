// The engine state's disk budget over real HTTP: cold caches are evicted to keep the total and each user's
// bytes under budget (node folders and images stay; an edit re-records the evicted parent), usage shows in
// the model query; with the disk full, logins and reads keep working, the running job fails saying why,
// cancel and retry work. The full disk is real: a small tmpfs over DATA/engine-state in a private mount
// namespace (unshare), with `fisedit serve` in its own process.
import { ChildProcess, spawn, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import sharp from 'sharp';
import { openDatabase } from '../../src/db/client';
import { createToken } from '../../src/service/auth/tokens';
import { ENGINE_STATE_DIR } from '../../src/service/service';
import { gql, gqlOk, Harness, startHarness, TINY_MODEL, waitForStatus } from './harness';

const G = 'mutation($input: GenerateInput!) { generate(input: $input) { id } }';
const USAGE = '{ model { engineState { usedBytes cacheBytes budgetBytes yourBytes perUserBudgetBytes freeDiskBytes minFreeBytes evictedCaches measuredAt } } }';
const MB = 2 ** 20;

let h: Harness | null = null;
afterEach(async () => {
  await h?.stop();
  h = null;
});

async function generate(url: string, token: string, prompt: string, steps = 4): Promise<string> {
  const { generate: g } = await gqlOk(url, G, { input: { prompt, seed: 3, steps } }, token);
  await waitForStatus(url, token, g.id, ['SUCCEEDED']);
  return g.id;
}

async function engineId(hh: Harness, nodeId: string): Promise<string> {
  const n = await hh.service.database.db.node.findUnique({ where: { id: nodeId } });
  expect(n?.engineNodeId).toBeTruthy();
  return n!.engineNodeId!;
}

const cacheDir = (dataDir: string, id: string) => path.join(dataDir, ENGINE_STATE_DIR, 'cache', id);
const folder = (dataDir: string, id: string) => path.join(dataDir, ENGINE_STATE_DIR, 'nodes', id);

async function until(what: string, pred: () => boolean | Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await pred())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function duBytes(dir: string): number {
  if (!fs.existsSync(dir)) return 0;
  let n = 0;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) n += e.isDirectory() ? duBytes(path.join(dir, e.name)) : fs.statSync(path.join(dir, e.name)).size;
  return n;
}

it('evicts the coldest cache over the total budget; the node and its image stay and an edit re-records it', async () => {
  // A 4-step node of the tiny model: ~0.1 MB folder + ~4.8 MB cache. Two fit in 12 MB, three do not.
  h = await startHarness({ stateLimits: { totalBytes: 12 * MB, perUserBytes: 1024 * MB, minFreeBytes: 0 } });
  const token = await h.token('alice');
  const a = await generate(h.url, token, 'a red circle on the left');
  const b = await generate(h.url, token, 'a blue square on the right');
  const [ea, eb] = [await engineId(h, a), await engineId(h, b)];
  expect(fs.existsSync(cacheDir(h.dataDir, ea))).toBe(true);
  const c = await generate(h.url, token, 'a green triangle in the center');
  const ec = await engineId(h, c);

  // a is the coldest: its cache goes, b's and c's stay; every folder stays.
  await until("a's cache evicted", () => !fs.existsSync(cacheDir(h!.dataDir, ea)));
  expect([fs.existsSync(cacheDir(h.dataDir, eb)), fs.existsSync(cacheDir(h.dataDir, ec))]).toEqual([true, true]);
  for (const id of [ea, eb, ec]) expect(fs.existsSync(path.join(folder(h.dataDir, id), 'node.json'))).toBe(true);
  const onDisk = duBytes(path.join(h.dataDir, ENGINE_STATE_DIR, 'nodes')) + duBytes(path.join(h.dataDir, ENGINE_STATE_DIR, 'cache'));
  expect(onDisk).toBeLessThanOrEqual(12 * MB);

  const usage = (await gqlOk(h.url, USAGE, {}, token)).model.engineState;
  expect(usage.budgetBytes).toBe(12 * MB);
  expect(usage.evictedCaches).toBe(1);
  expect(usage.usedBytes).toBeLessThanOrEqual(12 * MB);
  expect(usage.usedBytes).toBeGreaterThan(usage.cacheBytes);
  expect(usage.yourBytes).toBe(usage.usedBytes); // alice made every node
  expect(usage.freeDiskBytes).toBeGreaterThan(0);

  // The evicted node is still readable, image included.
  const node = (await gqlOk(h.url, 'query($id: ID!) { node(id: $id) { status image { url } } }', { id: a }, token)).node;
  expect(node.status).toBe('SUCCEEDED');
  const img = await fetch(node.image.url, { headers: { authorization: `Bearer ${token}` } });
  expect(img.status).toBe(200);

  // A sparse edit of it (a user mask: it must read the parent's activations) re-records its cache from the
  // stored latents and succeeds.
  const W = 32;
  const grey = Buffer.alloc(W * W);
  for (let y = 4; y < 16; y++) for (let x = 4; x < 16; x++) grey[y * W + x] = 255;
  const mask = (await sharp(grey, { raw: { width: W, height: W, channels: 1 } }).png().toBuffer()).toString('base64');
  const E = 'mutation($input: EditInput!) { edit(input: $input) { id } }';
  const { edit } = await gqlOk(h.url, E, { input: { parentId: a, prompt: 'a yellow circle on the left', mask } }, token);
  await waitForStatus(h.url, token, edit.id, ['SUCCEEDED']);
  const stats = (await gqlOk(h.url, 'query($id: ID!) { node(id: $id) { stats { mode fallbackReason } } }', { id: edit.id }, token)).node.stats;
  expect(stats.mode).toBe('SPARSE');
  expect(stats.fallbackReason).toMatch(/re-recorded \d+ steps of the parent/);
  expect(fs.existsSync(cacheDir(h.dataDir, ea))).toBe(true);
}, 180_000);

it('keeps each user under the per-user budget, evicting that user’s coldest cache and nobody else’s', async () => {
  h = await startHarness({ stateLimits: { totalBytes: 1024 * MB, perUserBytes: 8 * MB, minFreeBytes: 0 } });
  const alice = await h.token('alice');
  const bob = await h.token('bob');
  const b1 = await generate(h.url, bob, 'a red circle'); // the coldest of all, but bob is under his budget
  const a1 = await generate(h.url, alice, 'a blue circle');
  const a2 = await generate(h.url, alice, 'a green circle');
  const [eb1, ea1, ea2] = [await engineId(h, b1), await engineId(h, a1), await engineId(h, a2)];
  await until("alice's first cache evicted", () => !fs.existsSync(cacheDir(h!.dataDir, ea1)));
  expect([fs.existsSync(cacheDir(h.dataDir, eb1)), fs.existsSync(cacheDir(h.dataDir, ea2))]).toEqual([true, true]);
  const au = (await gqlOk(h.url, USAGE, {}, alice)).model.engineState;
  const bu = (await gqlOk(h.url, USAGE, {}, bob)).model.engineState;
  expect(au.perUserBudgetBytes).toBe(8 * MB);
  expect(au.yourBytes).toBeLessThanOrEqual(8 * MB);
  expect(bu.yourBytes).toBeGreaterThan(4 * MB); // bob's cache is whole
  expect(au.yourBytes + bu.yourBytes).toBe(au.usedBytes);
}, 180_000);

it('authenticates and reads while the database cannot be written (its token bookkeeping is best effort)', async () => {
  h = await startHarness();
  const { token, user } = await createToken(h.service.database.db, 'carol');
  const id = await generate(h.url, token, 'a red circle');
  // A token last used long ago: authenticating it tries to record the use.
  await h.service.database.db.apiToken.updateMany({ where: { userId: user.id }, data: { lastUsedAt: new Date(Date.now() - 3_600_000) } });
  h.service.auth.forget();
  // The database refuses every write from now on, as it does when its disk is full.
  await h.service.database.db.$queryRawUnsafe('PRAGMA query_only = 1');
  await expect(h.service.database.db.user.create({ data: { name: 'dave' } })).rejects.toThrow(/readonly|read-only|query_only/i);
  const r = await gql(h.url, 'query($id: ID!) { me { name } node(id: $id) { status } }', { id }, token);
  expect(r.errors).toBeUndefined();
  expect(r.data).toEqual({ me: { name: 'carol' }, node: { status: 'SUCCEEDED' } });
  await h.service.database.db.$queryRawUnsafe('PRAGMA query_only = 0');
}, 120_000);

// ---- a real full disk ----

const UNSHARE = spawnSync('unshare', ['--mount', '--propagation', 'private', 'sh', '-c', 'd=$(mktemp -d) && mount -t tmpfs -o size=1m tmpfs "$d" && umount "$d"'], { stdio: 'ignore' }).status === 0;
if (!UNSHARE) console.warn('skipping the full-disk test: cannot mount a tmpfs in a private mount namespace here (unshare --mount needs root or user namespaces)');
const itWithTmpfs = UNSHARE ? it : it.skip;

let proc: ChildProcess | null = null;
afterEach(() => {
  proc?.kill('SIGKILL');
  proc = null;
});

/** `fisedit serve` whose DATA/engine-state is a tmpfs of `sizeMb`, visible only to that process. */
function serveOnSmallDisk(dataDir: string, sizeMb: number, env: Record<string, string>): Promise<string> {
  const state = path.join(dataDir, ENGINE_STATE_DIR);
  fs.mkdirSync(state, { recursive: true });
  const serve = [process.execPath, '--require', require.resolve('tsx/cjs'), path.join(__dirname, 'serveProcess.ts'), '--port', '0', '--data', dataDir, '--model', TINY_MODEL, '--threads', '1'];
  const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
  proc = spawn('unshare', ['--mount', '--propagation', 'private', 'sh', '-c', `mount -t tmpfs -o size=${sizeMb}m tmpfs ${q(state)} && exec ${serve.map(q).join(' ')}`], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...env },
  });
  return new Promise((resolve, reject) => {
    let out = '';
    let err = '';
    proc!.stdout!.on('data', (d) => {
      out += d;
      const m = /FISEdit GraphQL API: (http:\/\/[^\s]+)\/graphql/.exec(out);
      if (m) resolve(m[1]);
    });
    proc!.stderr!.on('data', (d) => (err += d));
    proc!.on('exit', (code) => reject(new Error(`serve exited with ${code}: ${err}`)));
  });
}

itWithTmpfs('with the disk full: logins and reads work, the job fails saying why, cancel and retry work', async () => {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fisedit-full-'));
  const db = await openDatabase({ url: `file:${dataDir}/fisedit.db` });
  const { token } = await createToken(db.db, 'alice');
  await db.close();
  // A 10-step node: ~0.12 MB folder + ~11.5 MB cache. The first fits 16 MB, a second does not.
  const url = await serveOnSmallDisk(dataDir, 16, { FISEDIT_MIN_FREE_BYTES: '0' });

  const { generate: a } = await gqlOk(url, G, { input: { prompt: 'a red circle', seed: 1, steps: 10 } }, token);
  await waitForStatus(url, token, a.id, ['SUCCEEDED'], 120_000);
  const { generate: b } = await gqlOk(url, G, { input: { prompt: 'a blue square', seed: 2, steps: 10 } }, token);
  const failed = await waitForStatus(url, token, b.id, ['FAILED', 'SUCCEEDED'], 120_000);
  expect(failed.status).toBe('FAILED');
  expect(failed.error).toMatch(/^the server's disk is full \(.* free, 0\.0 MiB kept free for the engine state\); cold caches were evicted — retry the job once space is freed$/);
  expect(failed.error).not.toContain(dataDir);

  // Logins and reads: a new token's first request, the tree and the first node's image.
  const db2 = await openDatabase({ url: `file:${dataDir}/fisedit.db` });
  const { token: fresh } = await createToken(db2.db, 'bob');
  await db2.close();
  expect((await gqlOk(url, '{ me { name } }', {}, fresh)).me.name).toBe('bob');
  const read = (await gqlOk(url, 'query($id: ID!) { node(id: $id) { status image { url } } }', { id: a.id }, token)).node;
  expect(read.status).toBe('SUCCEEDED');
  expect((await fetch(read.image.url, { headers: { authorization: `Bearer ${token}` } })).status).toBe(200);
  expect((await gqlOk(url, USAGE, {}, token)).model.engineState.evictedCaches).toBeGreaterThanOrEqual(1);

  // Cancel: a long job stops. On this full disk the job also fails by itself at its first spill of the
  // cache; a cancel that arrives after that finds it FAILED, saying why (1 CI run in 2 once the engine's
  // steps got faster). Either way cancelJob answers with the job ended, and nothing runs on.
  const { generate: c } = await gqlOk(url, G, { input: { prompt: 'a long one', seed: 4, steps: 150 } }, token);
  await waitForStatus(url, token, c.id, ['RUNNING'], 60_000);
  const cancelled = (await gqlOk(url, 'mutation($id: ID!) { cancelJob(nodeId: $id) { status error } }', { id: c.id }, token)).cancelJob;
  if (cancelled.status === 'FAILED') expect(cancelled.error).toMatch(/^the server's disk is full \(/);
  else expect(cancelled.status).toBe('CANCELLED');
  await waitForStatus(url, token, c.id, [cancelled.status], 60_000);

  // Retry: the eviction made room, so the failed job now succeeds.
  expect((await gqlOk(url, 'mutation($id: ID!) { retryNode(nodeId: $id) { status } }', { id: b.id }, token)).retryNode.status).toBe('QUEUED');
  expect((await waitForStatus(url, token, b.id, ['SUCCEEDED', 'FAILED'], 120_000)).status).toBe('SUCCEEDED');
}, 400_000);
