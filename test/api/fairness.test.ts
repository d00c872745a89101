// Issue 16 item 6 over the real API: one user's backlog does not hold another user's job back (users
// take turns at equal priority), and only the users the server names may queue above priority 0.
import { gql, gqlOk, Harness, startHarness, waitForStatus } from './harness';

let h: Harness;
beforeAll(async () => {
  h = await startHarness({ priorityUsers: ['boss'] });
});
afterAll(async () => {
  await h?.stop();
});

const GENERATE = `mutation($input: GenerateInput!) { generate(input: $input) { id } }`;
const NODE = `query($id: ID!) { node(id: $id) { status queuePosition startedAt } }`;

it('runs a newcomer’s job after one job of a user with 20 waiting, and says so in queuePosition', async () => {
  const [carol, bob, ann] = [await h.token('carol'), await h.token('bob'), await h.token('ann')];
  const { generate: blocker } = await gqlOk(h.url, GENERATE, { input: { prompt: 'a long job', seed: 1, steps: 150 } }, carol);
  await waitForStatus(h.url, carol, blocker.id, ['RUNNING']);
  const bobs: string[] = [];
  for (let i = 0; i < 20; i++) bobs.push((await gqlOk(h.url, GENERATE, { input: { prompt: `bob ${i}`, seed: i, steps: 1 } }, bob)).generate.id);
  const { generate: mine } = await gqlOk(h.url, GENERATE, { input: { prompt: 'ann', seed: 1, steps: 1 } }, ann);
  // Bob's first job has waited longer, so it goes first; then ann's: one job ahead, not twenty.
  expect((await gqlOk(h.url, NODE, { id: mine.id }, ann)).node.queuePosition).toBe(1);
  expect((await gqlOk(h.url, NODE, { id: bobs[1] }, bob)).node.queuePosition).toBe(2);
  await gqlOk(h.url, `mutation($id: ID!) { cancelJob(nodeId: $id) { id } }`, { id: blocker.id }, carol);
  await waitForStatus(h.url, ann, mine.id, ['SUCCEEDED']);
  for (const id of bobs) await waitForStatus(h.url, bob, id, ['SUCCEEDED']);
  const started = async (id: string, tok: string) => new Date((await gqlOk(h.url, NODE, { id }, tok)).node.startedAt).getTime();
  const annAt = await started(mine.id, ann);
  expect(await started(bobs[0], bob)).toBeLessThanOrEqual(annAt);
  expect(await started(bobs[1], bob)).toBeGreaterThanOrEqual(annAt);
});

it('lets only the users named by --priority-users queue above 0 (FORBIDDEN otherwise); anyone may go lower', async () => {
  const [mallory, boss] = [await h.token('mallory'), await h.token('boss')];
  const r = await gql(h.url, GENERATE, { input: { prompt: 'me first', steps: 1, priority: 10 } }, mallory);
  expect(r.errors?.[0].extensions).toMatchObject({ code: 'FORBIDDEN', reason: 'PRIORITY_NOT_ALLOWED' });
  expect((await gql(h.url, GENERATE, { input: { prompt: 'after you', steps: 1, priority: -2 } }, mallory)).errors).toBeUndefined();
  expect((await gql(h.url, GENERATE, { input: { prompt: 'urgent', steps: 1, priority: 10 } }, boss)).errors).toBeUndefined();
  // No job was queued by the refused request.
  expect(await h.service.database.db.node.count({ where: { prompt: 'me first' } })).toBe(0);
});
