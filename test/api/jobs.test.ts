// Jobs over the real API: cancel (queued and running, at the next step), priority then FIFO, retry,
// deleting a subtree while its jobs run, and a graceful restart mid-job.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ENGINE_STATE_DIR } from '../../src/service/service';
import { collect, gql, gqlOk, Harness, startHarness, waitForStatus, wsClient } from './harness';

let h: Harness;
let alice: string;
beforeEach(async () => {
  // alice may queue above priority 0 (serve --priority-users).
  h = await startHarness({ priorityUsers: ['alice'] });
  alice = await h.token('alice');
});
afterEach(async () => {
  await h?.stop();
});

const GENERATE = `mutation($input: GenerateInput!) { generate(input: $input) { id status tree { id } } }`;
const EDIT = `mutation($input: EditInput!) { edit(input: $input) { id status } }`;
const CANCEL = `mutation($id: ID!) { cancelJob(nodeId: $id) { id status error } }`;
const RETRY = `mutation($id: ID!) { retryNode(nodeId: $id) { id status error image { url } } }`;
const DELETE = `mutation($id: ID!) { deleteNode(nodeId: $id) }`;
const NODE = `query($id: ID!) { node(id: $id) { id status error startedAt finishedAt queuePosition children { id } image { url } } }`;
const PROGRESS = `subscription($id: ID!) { nodeProgress(nodeId: $id) { seq step totalSteps phase status } }`;

async function generate(prompt: string, extra: Record<string, unknown> = {}): Promise<{ id: string; tree: { id: string } }> {
  return (await gqlOk(h.url, GENERATE, { input: { prompt, seed: 1, ...extra } }, alice)).generate;
}

it('cancels a running job at its next step, and a queued one before it starts', async () => {
  const running = await generate('a long job', { steps: 150 });
  const queued = await generate('waits behind it', { steps: 5 });
  const ws = wsClient(h.wsUrl, alice);
  const progress = collect<any>(ws, PROGRESS, { id: running.id });
  const seen = await progress.until((e) => e.phase === 'DENOISING' && e.step >= 3);

  expect((await gqlOk(h.url, NODE, { id: queued.id }, alice)).node.queuePosition).toBe(0);
  const c1 = await gqlOk(h.url, CANCEL, { id: queued.id }, alice);
  expect(c1.cancelJob.status).toBe('CANCELLED');

  const c2 = await gqlOk(h.url, CANCEL, { id: running.id }, alice);
  expect(c2.cancelJob.status).toBe('CANCELLED');
  const done = await progress.until((e) => e.phase === 'DONE');
  expect(done.status).toBe('CANCELLED');
  // It stopped at the next step(s), far from the end.
  expect(done.step).toBeLessThan(150);
  expect(done.step).toBeGreaterThanOrEqual(seen.step);
  await ws.dispose();

  // Cancelling again is a conflict; the queued one never started.
  expect((await gql(h.url, CANCEL, { id: running.id }, alice)).errors?.[0].extensions?.code).toBe('CONFLICT');
  expect((await gqlOk(h.url, NODE, { id: queued.id }, alice)).node.startedAt).toBeNull();

  // Retry queues it again and it completes.
  const r = await gqlOk(h.url, RETRY, { id: queued.id }, alice);
  expect(r.retryNode.status).toBe('QUEUED');
  await waitForStatus(h.url, alice, queued.id, ['SUCCEEDED']);
  expect((await gql(h.url, RETRY, { id: queued.id }, alice)).errors?.[0].extensions?.code).toBe('CONFLICT');
});

it('runs higher priority first, then first come first served', async () => {
  const blocker = await generate('blocker', { steps: 40 });
  await waitForStatus(h.url, alice, blocker.id, ['RUNNING']);
  const low1 = await generate('low 1', { steps: 1 });
  const low2 = await generate('low 2', { steps: 1 });
  const high = await generate('high', { steps: 1, priority: 5 });
  const lowest = await generate('lowest', { steps: 1, priority: -3 });
  expect((await gqlOk(h.url, NODE, { id: high.id }, alice)).node.queuePosition).toBe(0);
  expect((await gqlOk(h.url, NODE, { id: low2.id }, alice)).node.queuePosition).toBe(2);
  const order = [high, low1, low2, lowest];
  for (const n of order) await waitForStatus(h.url, alice, n.id, ['SUCCEEDED']);
  const started = await Promise.all(order.map(async (n) => new Date((await gqlOk(h.url, NODE, { id: n.id }, alice)).node.startedAt).getTime()));
  expect([...started].sort((a, b) => a - b)).toEqual(started);
});

it('deletes a subtree, stopping its running job, and tells the tree', async () => {
  // 150 steps: an edit keeps its parent's steps (a changed step count is refused), so the edit that must
  // still be running when its branch is deleted inherits them from the root.
  const root = await generate('a red circle', { steps: 150 });
  await waitForStatus(h.url, alice, root.id, ['SUCCEEDED']);
  const a = (await gqlOk(h.url, EDIT, { input: { parentId: root.id, prompt: 'a green circle' } }, alice)).edit;
  await waitForStatus(h.url, alice, a.id, ['SUCCEEDED']);
  const a1 = (await gqlOk(h.url, EDIT, { input: { parentId: a.id, prompt: 'a green square' } }, alice)).edit;
  const b = (await gqlOk(h.url, EDIT, { input: { parentId: root.id, prompt: 'a blue circle' } }, alice)).edit;
  await waitForStatus(h.url, alice, a1.id, ['SUCCEEDED']);
  await waitForStatus(h.url, alice, b.id, ['SUCCEEDED']);
  // A long job under a, running while we delete a's branch.
  const slow = (await gqlOk(h.url, EDIT, { input: { parentId: a1.id, prompt: 'a green triangle' } }, alice)).edit;
  await waitForStatus(h.url, alice, slow.id, ['RUNNING']);
  const imageOfA = (await gqlOk(h.url, NODE, { id: a.id }, alice)).node.image.url;
  // The engine recorded each finished node in its store (latents, activations): deleting frees them.
  const engineIds = async (ids: string[]) => (await h.service.database.db.node.findMany({ where: { id: { in: ids } }, select: { engineNodeId: true } })).map((n) => n.engineNodeId!);
  const engineNodes = path.join(h.dataDir, ENGINE_STATE_DIR, 'nodes');
  const [engA, engA1, engB] = [...(await engineIds([a.id])), ...(await engineIds([a1.id])), ...(await engineIds([b.id]))];
  for (const e of [engA, engA1, engB]) expect(fs.existsSync(path.join(engineNodes, e, 'node.json'))).toBe(true);

  const ws = wsClient(h.wsUrl, alice);
  // afterSeq 0 replays the tree's past events first: the first one shows the subscription is live.
  const events = collect<any>(ws, `subscription($t: ID!) { treeEvents(treeId: $t, afterSeq: 0) { type node { id } deletedNodeIds } }`, { t: root.tree.id });
  await events.until(() => true, 30_000);
  expect((await gqlOk(h.url, NODE, { id: slow.id }, alice)).node.status).toBe('RUNNING');
  expect((await gqlOk(h.url, DELETE, { id: a.id }, alice)).deleteNode).toBe(true);
  const del = await events.until((e) => e.type === 'DELETED');
  expect(del.node.id).toBe(a.id);
  expect(new Set(del.deletedNodeIds)).toEqual(new Set([a.id, a1.id, slow.id]));
  await ws.dispose();

  for (const id of [a.id, a1.id, slow.id]) expect((await gqlOk(h.url, NODE, { id }, alice)).node).toBeNull();
  expect((await gqlOk(h.url, NODE, { id: root.id }, alice)).node.children).toEqual([{ id: b.id }]);
  expect((await fetch(imageOfA)).status).toBe(404);
  expect(await h.service.database.db.job.count({ where: { nodeId: { in: [a.id, a1.id, slow.id] } } })).toBe(0);
  expect(h.service.runner.currentNodeId()).toBeNull();
  // ... after the worker's current run: the branch's engine nodes go, its sibling's stay
  for (let i = 0; i < 100 && fs.existsSync(path.join(engineNodes, engA1)); i++) await new Promise((r) => setTimeout(r, 100));
  expect([engA, engA1].map((e) => fs.existsSync(path.join(engineNodes, e)))).toEqual([false, false]);
  expect(fs.existsSync(path.join(engineNodes, engB, 'node.json'))).toBe(true);
  // Deleting it again: NOT_FOUND. Deleting the root deletes the tree.
  expect((await gql(h.url, DELETE, { id: a.id }, alice)).errors?.[0].extensions?.code).toBe('NOT_FOUND');
  expect((await gqlOk(h.url, DELETE, { id: root.id }, alice)).deleteNode).toBe(true);
  expect((await gqlOk(h.url, `query($t: ID!) { tree(id: $t) { id } }`, { t: root.tree.id }, alice)).tree).toBeNull();
});

it('a graceful restart mid-job puts the job back in the queue and the next start finishes it', async () => {
  const long = await generate('interrupted', { steps: 150 });
  const next = await generate('queued behind', { steps: 2 });
  await waitForStatus(h.url, alice, long.id, ['RUNNING']);
  const dataDir = h.dataDir;
  await h.stop();
  const db0 = await import('../../src/db/client').then((m) => m.openDatabase({ url: `file:${dataDir}/fisedit.db` }));
  const rows = await db0.db.node.findMany({ include: { job: true } });
  await db0.close();
  for (const r of rows) {
    expect(['QUEUED', 'SUCCEEDED']).toContain(r.status);
    if (r.id === long.id) expect(r.job?.attempts).toBe(0); // handed back: the attempt did not count
  }
  h = await startHarness({ dataDir });
  alice = await h.token('alice');
  await waitForStatus(h.url, alice, long.id, ['SUCCEEDED'], 120_000);
  await waitForStatus(h.url, alice, next.id, ['SUCCEEDED']);
});

it('bounds the queue per user (CONFLICT, reason QUEUE_FULL)', async () => {
  await h.stop();
  h = await startHarness({ maxQueuedPerUser: 2, runJobs: false });
  alice = await h.token('alice');
  await generate('one', { steps: 1 });
  await generate('two', { steps: 1 });
  const r = await gql(h.url, GENERATE, { input: { prompt: 'three', steps: 1 } }, alice);
  expect(r.errors?.[0].extensions).toMatchObject({ code: 'CONFLICT', reason: 'QUEUE_FULL' });
  // Another user still has room.
  const bob = await h.token('bob');
  expect((await gqlOk(h.url, GENERATE, { input: { prompt: 'bob', steps: 1 } }, bob)).generate.status).toBe('QUEUED');
});
