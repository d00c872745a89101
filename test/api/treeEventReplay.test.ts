// Issue 15 item 7 over the real WebSocket: tree events are numbered per tree where they are committed,
// and treeEvents(treeId, afterSeq) replays what a client missed, then goes live without gaps or
// duplicates.
import { collect, gql, gqlOk, Harness, startHarness, waitForStatus, wsClient } from './harness';

let h: Harness;
let alice: string;
beforeAll(async () => {
  h = await startHarness();
  alice = await h.token('alice');
});
afterAll(async () => {
  await h?.stop();
});

const GENERATE = `mutation($input: GenerateInput!) { generate(input: $input) { id tree { id eventSeq } } }`;
const EDIT = `mutation($input: EditInput!) { edit(input: $input) { id } }`;
const EVENTS = `subscription($t: ID!, $after: Int) { treeEvents(treeId: $t, afterSeq: $after) { type seq node { id status } } }`;
const STATE = (e: { type: string }) => e.type !== 'PROGRESSED';

it('a client subscribing after generate returns still sees CREATED and STARTED (afterSeq 0)', async () => {
  const { generate: root } = await gqlOk(h.url, GENERATE, { input: { prompt: 'a red circle', seed: 1, steps: 4 } }, alice);
  await waitForStatus(h.url, alice, root.id, ['SUCCEEDED']);
  const ws = wsClient(h.wsUrl, alice);
  const sub = collect<any>(ws, EVENTS, { t: root.tree.id, after: 0 });
  await sub.until((e) => e.type === 'SUCCEEDED');
  sub.unsubscribe();
  await ws.dispose();
  expect(sub.errors).toEqual([]);
  const state = sub.events.filter(STATE);
  expect(state.map((e) => [e.type, e.seq, e.node.id])).toEqual([
    ['CREATED', 1, root.id],
    ['STARTED', 2, root.id],
    ['SUCCEEDED', 3, root.id],
  ]);
  expect(state[0].node.status).toBe('QUEUED');
});

it('after a dropped socket, afterSeq replays exactly what was missed, then the stream is live', async () => {
  const { generate: root } = await gqlOk(h.url, GENERATE, { input: { prompt: 'a red circle', seed: 2, steps: 3 } }, alice);
  const treeId = root.tree.id;
  const ws1 = wsClient(h.wsUrl, alice);
  const first = collect<any>(ws1, EVENTS, { t: treeId, after: 0 });
  await first.until((e) => e.type === 'SUCCEEDED');
  const seen = Math.max(...first.events.filter(STATE).map((e) => e.seq));
  await ws1.dispose(); // the connection drops

  // Meanwhile: an edit runs, another is cancelled while queued behind a long job, a branch is deleted.
  const { edit: a } = await gqlOk(h.url, EDIT, { input: { parentId: root.id, prompt: 'a green circle' } }, alice);
  await waitForStatus(h.url, alice, a.id, ['SUCCEEDED']);
  const { generate: other } = await gqlOk(h.url, GENERATE, { input: { prompt: 'a long job', seed: 1, steps: 150 } }, alice);
  const { edit: b } = await gqlOk(h.url, EDIT, { input: { parentId: root.id, prompt: 'a blue circle' } }, alice);
  await gqlOk(h.url, `mutation($id: ID!) { cancelJob(nodeId: $id) { id } }`, { id: b.id }, alice);
  await gqlOk(h.url, `mutation($id: ID!) { deleteNode(nodeId: $id) }`, { id: a.id }, alice);
  await gql(h.url, `mutation($id: ID!) { cancelJob(nodeId: $id) { id } }`, { id: other.id }, alice);

  const { tree } = await gqlOk(h.url, `query($id: ID!) { tree(id: $id) { eventSeq } }`, { id: treeId }, alice);
  const ws2 = wsClient(h.wsUrl, alice);
  const again = collect<any>(ws2, EVENTS, { t: treeId, after: seen });
  await again.until((e) => e.seq === tree.eventSeq && STATE(e));
  expect(again.events.filter(STATE).map((e) => [e.type, e.seq, e.node.id])).toEqual([
    ['CREATED', seen + 1, a.id],
    ['STARTED', seen + 2, a.id],
    ['SUCCEEDED', seen + 3, a.id],
    ['CREATED', seen + 4, b.id],
    ['CANCELLED', seen + 5, b.id],
    ['DELETED', seen + 6, a.id],
  ]);
  expect(tree.eventSeq).toBe(seen + 6);

  // Live from there: the next edit's events follow with the next numbers, none twice.
  const { edit: c } = await gqlOk(h.url, EDIT, { input: { parentId: root.id, prompt: 'a yellow circle' } }, alice);
  await again.until((e) => e.type === 'SUCCEEDED' && e.node.id === c.id);
  const state = again.events.filter(STATE);
  expect(state.map((e) => e.seq)).toEqual(Array.from({ length: state.length }, (_, i) => seen + 1 + i));
  expect(state.slice(-3).map((e) => [e.type, e.node.id])).toEqual([['CREATED', c.id], ['STARTED', c.id], ['SUCCEEDED', c.id]]);
  again.unsubscribe();
  await ws2.dispose();
  expect(again.errors).toEqual([]);
});

it('refuses an afterSeq that is negative or ahead of the tree (BAD_USER_INPUT)', async () => {
  const { generate: root } = await gqlOk(h.url, GENERATE, { input: { prompt: 'a red circle', seed: 3, steps: 1 } }, alice);
  const ws = wsClient(h.wsUrl, alice);
  for (const after of [-1, 1000]) {
    const sub = collect<any>(ws, EVENTS, { t: root.tree.id, after });
    await sub.done;
    expect((sub.errors[0] as any).extensions?.code).toBe('BAD_USER_INPUT');
  }
  await ws.dispose();
});
