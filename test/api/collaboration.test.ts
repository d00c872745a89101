// Two users share a tree: one edits, the other watches the edit's progress and the tree's events over
// WebSocket; a viewer can read and watch but not edit.
import { collect, gql, gqlOk, Harness, NODE_FIELDS, startHarness, waitForStatus, wsClient } from './harness';

let h: Harness;
let alice: string;
let bob: string;
let carol: string;
beforeAll(async () => {
  h = await startHarness();
  [alice, bob, carol] = await Promise.all([h.token('alice'), h.token('bob'), h.token('carol')]);
});
afterAll(async () => {
  await h?.stop();
});

const GENERATE = `mutation($input: GenerateInput!) { generate(input: $input) { id tree { id } } }`;
const EDIT = `mutation($input: EditInput!) { edit(input: $input) { ${NODE_FIELDS} promptDiff { kind before after tokenStart tokenEnd } } }`;
const SHARE = `mutation($t: ID!, $u: String!, $r: TreeRole!) { shareTree(treeId: $t, userName: $u, role: $r) { id members { user { name } role } } }`;
const TREE_EVENTS = `subscription($t: ID!) { treeEvents(treeId: $t) { type treeId seq node { id status prompt parent { id } } progress { step totalSteps phase preview } deletedNodeIds } }`;
const PROGRESS = `subscription($id: ID!) { nodeProgress(nodeId: $id) { nodeId seq step totalSteps phase status etaMs preview } }`;

it('one user edits, the other receives the progress and the tree events', async () => {
  const { generate: root } = await gqlOk(h.url, GENERATE, { input: { prompt: 'a red circle on the left', seed: 3, steps: 6 } }, alice);
  await waitForStatus(h.url, alice, root.id, ['SUCCEEDED']);
  const treeId = root.tree.id;

  const shared = await gqlOk(h.url, SHARE, { t: treeId, u: 'bob', r: 'EDITOR' }, alice);
  await gqlOk(h.url, SHARE, { t: treeId, u: 'carol', r: 'VIEWER' }, alice);
  expect(shared.shareTree.members).toEqual([
    { user: { name: 'alice' }, role: 'OWNER' },
    { user: { name: 'bob' }, role: 'EDITOR' },
  ]);

  // Alice and Carol watch the tree.
  const aliceWs = wsClient(h.wsUrl, alice);
  const carolWs = wsClient(h.wsUrl, carol);
  const aliceTree = collect<any>(aliceWs, TREE_EVENTS, { t: treeId });
  const carolTree = collect<any>(carolWs, TREE_EVENTS, { t: treeId });
  // A subscription is live once its first event can arrive; make sure both are registered first.
  await waitForSubscribers(h, `tree-events:${treeId}`, 2);

  // Bob edits; Alice subscribes to the new node's progress.
  // SPARSE: the found area always runs sparse. Under AUTO the random 16² test model's found area, grown
  // over the object's edge plus its ring, crosses the 0.6 dense threshold, and the edit runs dense.
  const { edit: child } = await gqlOk(h.url, EDIT, { input: { parentId: root.id, prompt: 'a green circle on the left', strategy: 'SPARSE' } }, bob);
  expect(child).toMatchObject({ status: 'QUEUED', depth: 1, seed: 3, steps: 6, guidance: 7.5, scheduler: 'DPMPP_2M', parent: { id: root.id }, createdBy: { name: 'bob' }, strategy: 'SPARSE' });
  expect(child.promptDiff.filter((d: any) => d.kind !== 'EQUAL')).toEqual([{ kind: 'REPLACE', before: 'red', after: 'green', tokenStart: 1, tokenEnd: 2 }]);
  const aliceProgress = collect<any>(aliceWs, PROGRESS, { id: child.id });

  const done = await aliceProgress.until((e) => e.phase === 'DONE');
  expect(done.status).toBe('SUCCEEDED');
  expect(aliceProgress.errors).toEqual([]);
  const succeeded = await aliceTree.until((e) => e.type === 'SUCCEEDED' && e.node.id === child.id);
  expect(succeeded.node.status).toBe('SUCCEEDED');
  const carolSaw = await carolTree.until((e) => e.type === 'SUCCEEDED' && e.node.id === child.id);
  expect(carolSaw.node.parent.id).toBe(root.id);

  for (const t of [aliceTree, carolTree]) {
    const types = t.events.filter((e) => e.node.id === child.id).map((e) => e.type);
    expect(types[0]).toBe('CREATED');
    expect(types).toContain('STARTED');
    expect(types).toContain('PROGRESSED');
    expect(types[types.length - 1]).toBe('SUCCEEDED');
    const seqs = t.events.map((e) => e.seq);
    expect([...seqs].sort((a, b) => a - b)).toEqual(seqs);
    expect(t.events.find((e) => e.type === 'PROGRESSED')?.progress.totalSteps).toBe(6);
  }

  // The edit's stats say how it ran: a FISEdit sparse edit over the area the changed word touches.
  const { node } = await gqlOk(h.url, `query($id: ID!) { node(id: $id) { status stats { mode wallMs maskedFraction } mask { fraction } image { url } promptDiff { kind } } }`, { id: child.id }, carol);
  expect(node.stats.mode).toBe('SPARSE');
  expect(node.stats.maskedFraction).toBeGreaterThan(0);
  expect(node.stats.maskedFraction).toBeLessThanOrEqual(0.6);
  expect(node.mask.fraction).toBe(node.stats.maskedFraction);
  expect((await fetch(node.image.url)).status).toBe(200);

  // The viewer cannot edit, cancel, retry, delete or share.
  const forbidden = await gql(h.url, EDIT, { input: { parentId: root.id, prompt: 'a blue circle' } }, carol);
  expect(forbidden.errors?.[0].extensions?.code).toBe('FORBIDDEN');

  aliceTree.unsubscribe();
  carolTree.unsubscribe();
  await aliceWs.dispose();
  await carolWs.dispose();
});

it('lists a user’s trees newest first with Relay pagination', async () => {
  const dave = await h.token('dave');
  for (let i = 0; i < 5; i++) await gqlOk(h.url, GENERATE, { input: { prompt: `a square ${i}`, steps: 1, title: `t${i}` } }, dave);
  const Q = `query($first: Int, $after: String) { trees(first: $first, after: $after) { edges { cursor node { title myRole } } pageInfo { hasNextPage hasPreviousPage endCursor } } }`;
  const p1 = (await gqlOk(h.url, Q, { first: 2 }, dave)).trees;
  expect(p1.edges.map((e: any) => e.node.title)).toEqual(['t4', 't3']);
  expect(p1.pageInfo).toMatchObject({ hasNextPage: true, hasPreviousPage: false });
  const p2 = (await gqlOk(h.url, Q, { first: 2, after: p1.pageInfo.endCursor }, dave)).trees;
  expect(p2.edges.map((e: any) => e.node.title)).toEqual(['t2', 't1']);
  const p3 = (await gqlOk(h.url, Q, { first: 2, after: p2.pageInfo.endCursor }, dave)).trees;
  expect(p3.edges.map((e: any) => e.node.title)).toEqual(['t0']);
  expect(p3.pageInfo.hasNextPage).toBe(false);
  // Alice's trees are not Dave's.
  expect((await gqlOk(h.url, Q, { first: 100 }, dave)).trees.edges).toHaveLength(5);
});

async function waitForSubscribers(h: Harness, topic: string, n: number): Promise<void> {
  const ps = h.service.pubsub as unknown as { subscriberCount?: (t: string) => number };
  for (let i = 0; i < 200 && (ps.subscriberCount?.(topic) ?? n) < n; i++) await new Promise((r) => setTimeout(r, 20));
}
