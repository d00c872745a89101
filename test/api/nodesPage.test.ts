// Tree.nodes a page at a time (first/after, nodeCount), its cost following `first` (literal, variable or
// the schema default), and per-request DataLoaders: a list of nodes asking for children and queuePosition
// makes one batched read per field, not one per node. Jobs do not run here (runJobs: false): every node
// stays QUEUED, which is what queuePosition needs.
import { gql, gqlOk, Harness, startHarness } from './harness';

let h: Harness;
let token: string;
let treeId: string;
let all: string[];

beforeAll(async () => {
  h = await startHarness({ runJobs: false, maxQueuedPerUser: 50 });
  token = await h.token('alice');
  const root = (await gqlOk(h.url, 'mutation { generate(input: { prompt: "a red circle", steps: 1 }) { id tree { id } } }', {}, token)).generate;
  treeId = root.tree.id;
  const E = 'mutation($p: ID!, $prompt: String!) { edit(input: { parentId: $p, prompt: $prompt }) { id } }';
  const a = (await gqlOk(h.url, E, { p: root.id, prompt: 'a blue circle' }, token)).edit.id;
  const b = (await gqlOk(h.url, E, { p: root.id, prompt: 'a green circle' }, token)).edit.id;
  const a1 = (await gqlOk(h.url, E, { p: a, prompt: 'a blue square' }, token)).edit.id;
  const a2 = (await gqlOk(h.url, E, { p: a, prompt: 'a blue triangle' }, token)).edit.id;
  all = [root.id, a, b, a1, a2]; // depth, then creation order
}, 120_000);
afterAll(() => h.stop());

const PAGE = 'query($t: ID!, $n: Int, $after: ID) { tree(id: $t) { nodeCount nodes(first: $n, after: $after) { id depth } } }';

it('pages through every node once, parents before children', async () => {
  const seen: string[] = [];
  let after: string | null = null;
  for (let i = 0; i < 10; i++) {
    const t: any = (await gqlOk(h.url, PAGE, { t: treeId, n: 2, after }, token)).tree;
    expect(t.nodeCount).toBe(5);
    seen.push(...t.nodes.map((n: { id: string }) => n.id));
    if (t.nodes.length < 2) break;
    after = t.nodes[t.nodes.length - 1].id;
  }
  expect(seen).toEqual(all);
  // Without arguments: the first 20, i.e. all five here (backward compatible for small trees).
  expect((await gqlOk(h.url, 'query($t: ID!) { tree(id: $t) { nodes { id } } }', { t: treeId }, token)).tree.nodes.map((n: { id: string }) => n.id)).toEqual(all);
});

it('refuses a page size out of range and a cursor from elsewhere', async () => {
  for (const n of [0, 101]) {
    const r = await gql(h.url, PAGE, { t: treeId, n }, token);
    expect(r.errors?.[0].extensions?.code).toBe('BAD_USER_INPUT');
  }
  const other = (await gqlOk(h.url, 'mutation { generate(input: { prompt: "another tree", steps: 1 }) { id } }', {}, token)).generate.id;
  const r = await gql(h.url, PAGE, { t: treeId, n: 2, after: other }, token);
  expect(r.errors?.[0].extensions?.code).toBe('BAD_USER_INPUT');
  expect(r.errors?.[0].message).toMatch(/after/);
});

it('costs nodes by its first argument: literal, variable, or the schema default of 20', async () => {
  // Per node: id + children(20 × (id + children(20 × id))) = 1 + 1 + 20 × 22 = 442.
  const heavy = (args: string) => `query($t: ID!${args.includes('$n') ? ', $n: Int' : ''}) { tree(id: $t) { nodes${args} { id children { id children { id } } } } }`;
  const run = (q: string, vars: Record<string, unknown>) => gql(h.url, q, { t: treeId, ...vars }, token);
  const refusedForCost = (r: Awaited<ReturnType<typeof run>>) => r.errors?.length === 1 && r.errors[0].extensions?.limit === 'cost' && r.errors[0].extensions?.code === 'BAD_USER_INPUT';
  for (const [args, vars] of [['(first: 5)', {}], ['(first: $n)', { n: 5 }]] as const) {
    const r = await run(heavy(args), vars); // ≈ 2,212
    expect(r.errors).toBeUndefined();
    expect(r.data?.tree.nodes).toHaveLength(5);
  }
  for (const [args, vars] of [['(first: 20)', {}], ['(first: $n)', { n: 20 }], ['', {}]] as const) {
    expect(refusedForCost(await run(heavy(args), vars))).toBe(true); // ≈ 8,842 > 5,000; no first = the default 20
  }
});

it('reads children and queue positions of a whole page in one batched call each', async () => {
  const children = jest.spyOn(h.service.trees, 'childrenOf');
  const positions = jest.spyOn(h.service.trees, 'queuePositions');
  try {
    const t = (await gqlOk(h.url, 'query($t: ID!) { tree(id: $t) { nodes { id queuePosition children { id } } } }', { t: treeId }, token)).tree;
    expect(children).toHaveBeenCalledTimes(1);
    expect(positions).toHaveBeenCalledTimes(1);
    expect([...children.mock.calls[0][0]].sort()).toEqual([...all].sort());
    // The batched answers are the per-node ones: children as the tree was built, positions as the queue's own.
    const byId = new Map(t.nodes.map((n: any) => [n.id, n]));
    expect((byId.get(all[0]) as any).children.map((c: any) => c.id)).toEqual([all[1], all[2]]);
    expect((byId.get(all[1]) as any).children.map((c: any) => c.id)).toEqual([all[3], all[4]]);
    for (const id of all) expect((byId.get(id) as any).queuePosition).toBe(await h.service.queue.position(id));
    expect(new Set(all.map((id) => (byId.get(id) as any).queuePosition)).size).toBe(5);
  } finally {
    children.mockRestore();
    positions.mockRestore();
  }
});
