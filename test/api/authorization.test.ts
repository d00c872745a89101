// Every operation, image URL and subscription refuses unauthenticated callers and users without the
// role it needs, with the documented extensions.code: a member whose role is too low gets FORBIDDEN, a
// non-member the answer of a missing id (NOT_FOUND), so ids reveal nothing (rolesAndLeaks.test.ts).
import { collect, gql, gqlOk, Harness, startHarness, waitForStatus, wsClient } from './harness';

let h: Harness;
let alice: string; // owner
let bob: string; // editor
let carol: string; // viewer
let mallory: string; // not a member
let treeId: string;
let rootId: string;
let childId: string;
let imageUrl: string;

beforeAll(async () => {
  h = await startHarness();
  [alice, bob, carol, mallory] = await Promise.all(['alice', 'bob', 'carol', 'mallory'].map((u) => h.token(u)));
  const g = await gqlOk(h.url, `mutation { generate(input: { prompt: "a red circle", seed: 1, steps: 2 }) { id tree { id } } }`, {}, alice);
  rootId = g.generate.id;
  treeId = g.generate.tree.id;
  await waitForStatus(h.url, alice, rootId, ['SUCCEEDED']);
  childId = (await gqlOk(h.url, `mutation($p: ID!) { edit(input: { parentId: $p, prompt: "a blue circle" }) { id } }`, { p: rootId }, alice)).edit.id;
  await waitForStatus(h.url, alice, childId, ['SUCCEEDED']);
  for (const [u, r] of [['bob', 'EDITOR'], ['carol', 'VIEWER']]) {
    await gqlOk(h.url, `mutation($t: ID!, $u: String!, $r: TreeRole!) { shareTree(treeId: $t, userName: $u, role: $r) { id } }`, { t: treeId, u, r }, alice);
  }
  imageUrl = (await gqlOk(h.url, `query($id: ID!) { node(id: $id) { image { url } } }`, { id: rootId }, alice)).node.image.url;
});
afterAll(async () => {
  await h?.stop();
});

/** Every HTTP operation, with valid arguments against the shared tree. */
/** Variables are functions: the ids exist only after beforeAll. */
function operations(): { name: string; query: string; variables: () => Record<string, unknown>; needs: 'any' | 'VIEWER' | 'EDITOR' | 'OWNER' }[] {
  return [
    { name: 'me', query: '{ me { id } }', variables: () => ({}), needs: 'any' },
    { name: 'trees', query: '{ trees { edges { cursor } } }', variables: () => ({}), needs: 'any' },
    { name: 'model', query: '{ model { name } }', variables: () => ({}), needs: 'any' },
    { name: 'tree', query: 'query($id: ID!) { tree(id: $id) { id } }', variables: () => ({ id: treeId }), needs: 'VIEWER' },
    { name: 'node', query: 'query($id: ID!) { node(id: $id) { id } }', variables: () => ({ id: rootId }), needs: 'VIEWER' },
    { name: 'generate', query: 'mutation { generate(input: { prompt: "x", steps: 1 }) { id } }', variables: () => ({}), needs: 'any' },
    { name: 'edit', query: 'mutation($p: ID!) { edit(input: { parentId: $p, prompt: "a green circle" }) { id } }', variables: () => ({ p: rootId }), needs: 'EDITOR' },
    { name: 'cancelJob', query: 'mutation($id: ID!) { cancelJob(nodeId: $id) { id } }', variables: () => ({ id: childId }), needs: 'EDITOR' },
    { name: 'retryNode', query: 'mutation($id: ID!) { retryNode(nodeId: $id) { id } }', variables: () => ({ id: childId }), needs: 'EDITOR' },
    { name: 'deleteNode', query: 'mutation($id: ID!) { deleteNode(nodeId: $id) }', variables: () => ({ id: childId }), needs: 'EDITOR' },
    { name: 'deleteNode (root)', query: 'mutation($id: ID!) { deleteNode(nodeId: $id) }', variables: () => ({ id: rootId }), needs: 'OWNER' },
    { name: 'shareTree', query: 'mutation($t: ID!) { shareTree(treeId: $t, userName: "mallory", role: VIEWER) { id } }', variables: () => ({ t: treeId }), needs: 'OWNER' },
  ];
}

describe.each(operations())('$name', ({ query, variables, needs }) => {
  it('without a token: UNAUTHENTICATED', async () => {
    const r = await gql(h.url, query, variables(), null);
    expect(r.errors?.[0].extensions?.code).toBe('UNAUTHENTICATED');
    expect(r.data?.[Object.keys(r.data ?? {})[0]] ?? null).toBeNull();
  });
  it('with a revoked or made-up token: UNAUTHENTICATED', async () => {
    const r = await gql(h.url, query, variables(), 'fse_0000000000000000000000000000000000000000000');
    expect(r.errors?.[0].extensions?.code).toBe('UNAUTHENTICATED');
  });
  if (needs !== 'any') {
    const rank = { VIEWER: 1, EDITOR: 2, OWNER: 3 };
    const tooLow = [
      ['a non-member', () => mallory, 0],
      ['a viewer', () => carol, 1],
      ['an editor', () => bob, 2],
    ].filter(([, , r]) => (r as number) < rank[needs]) as [string, () => string, number][];
    it.each(tooLow)('as %s: FORBIDDEN (a non-member: NOT_FOUND or null)', async (_who, token, rank) => {
      const r = await gql(h.url, query, variables(), token());
      if (rank === 0) {
        if (query.startsWith('query')) expect(r.data?.[Object.keys(r.data ?? {})[0]]).toBeNull();
        else expect(r.errors?.[0].extensions?.code).toBe('NOT_FOUND');
        return;
      }
      expect(r.errors?.[0].extensions?.code).toBe('FORBIDDEN');
      expect(r.errors?.[0].message).toMatch(/member|role/);
    });
  }
});

describe('roles that suffice', () => {
  it('a viewer reads the tree, its nodes and images', async () => {
    const r = await gqlOk(h.url, 'query($t: ID!) { tree(id: $t) { myRole nodes { id image { url } } } }', { t: treeId }, carol);
    expect(r.tree.myRole).toBe('VIEWER');
    expect((await fetch(r.tree.nodes[0].image.url)).status).toBe(200);
  });
  it('an editor edits and deletes a branch, not the root', async () => {
    const e = await gqlOk(h.url, 'mutation($p: ID!) { edit(input: { parentId: $p, prompt: "a red square", priority: 0 }) { id } }', { p: rootId }, bob);
    expect((await gqlOk(h.url, 'mutation($id: ID!) { deleteNode(nodeId: $id) }', { id: e.edit.id }, bob)).deleteNode).toBe(true);
  });
});

describe('image URLs', () => {
  const bare = () => imageUrl.split('?')[0];
  it('need credentials (401), membership and an existing node (both 404), and the right signature', async () => {
    expect((await fetch(bare())).status).toBe(401);
    expect((await fetch(bare(), { headers: { authorization: `Bearer ${mallory}` } })).status).toBe(404);
    expect((await fetch(bare(), { headers: { authorization: `Bearer ${carol}` } })).status).toBe(200);
    expect((await fetch(bare().replace(rootId, 'nope'), { headers: { authorization: `Bearer ${alice}` } })).status).toBe(404);
    expect((await fetch(imageUrl.replace(/sig=[^&]+/, 'sig=forged'))).status).toBe(401);
    // A signature is bound to its node and file.
    expect((await fetch(imageUrl.replace('image.png', 'thumb.webp'))).status).toBe(401);
    expect((await fetch(imageUrl.replace(rootId, childId))).status).toBe(401);
    expect((await fetch(`${h.url}/images/${rootId}/secrets.txt`, { headers: { authorization: `Bearer ${alice}` } })).status).toBe(404);
    // Conditional GET.
    const first = await fetch(imageUrl);
    const again = await fetch(imageUrl, { headers: { 'if-none-match': first.headers.get('etag')! } });
    expect(again.status).toBe(304);
  });
  it('follow the current role: a signed URL stops working for someone who is no longer a member', async () => {
    // mallory is shared in, gets a URL, then the tree's root is not theirs to see once removed.
    const t = (await gqlOk(h.url, 'mutation { generate(input: { prompt: "x", steps: 1 }) { id tree { id } } }', {}, alice)).generate;
    await waitForStatus(h.url, alice, t.id, ['SUCCEEDED']);
    await gqlOk(h.url, 'mutation($t: ID!) { shareTree(treeId: $t, userName: "mallory", role: VIEWER) { id } }', { t: t.tree.id }, alice);
    const url = (await gqlOk(h.url, 'query($id: ID!) { node(id: $id) { image { url } } }', { id: t.id }, mallory)).node.image.url;
    expect((await fetch(url)).status).toBe(200);
    await h.service.database.db.treeMember.deleteMany({ where: { treeId: t.tree.id, user: { name: 'mallory' } } });
    expect((await fetch(url)).status).toBe(404);
  });
});

describe('subscriptions', () => {
  it('refuse a connection without a valid token (close 4403)', async () => {
    for (const token of [null, 'fse_bogus']) {
      const client = wsClient(h.wsUrl, token);
      const s = collect<any>(client, 'subscription($t: ID!) { treeEvents(treeId: $t) { type } }', { t: treeId });
      await s.done;
      expect((s.errors[0] as { code?: number }).code).toBe(4403);
      await client.dispose();
    }
  });
  it.each([
    ['treeEvents', 'subscription($id: ID!) { treeEvents(treeId: $id) { type } }', () => treeId],
    ['nodeProgress', 'subscription($id: ID!) { nodeProgress(nodeId: $id) { step } }', () => rootId],
  ])('%s: NOT_FOUND for a non-member as for an unknown id, allowed for a viewer', async (_n, query, id) => {
    const client = wsClient(h.wsUrl, mallory);
    const s = collect<any>(client, query, { id: id() });
    await s.done;
    expect((s.errors[0] as any).extensions?.code).toBe('NOT_FOUND');
    const missing = collect<any>(client, query, { id: 'no-such-id' });
    await missing.done;
    expect((missing.errors[0] as any).extensions?.code).toBe('NOT_FOUND');
    await client.dispose();
    const viewer = wsClient(h.wsUrl, carol);
    const ok = collect<any>(viewer, query, { id: id() });
    if (query.includes('nodeProgress')) {
      await ok.done; // a finished node: its final state, then complete
      expect(ok.errors).toEqual([]);
      expect(ok.events).toHaveLength(1);
    } else {
      await new Promise((r) => setTimeout(r, 300));
      expect(ok.errors).toEqual([]);
      ok.unsubscribe();
    }
    await viewer.dispose();
  });
  it('run queries and mutations over WebSocket with the same checks', async () => {
    const client = wsClient(h.wsUrl, mallory);
    const s = collect<any>(client, 'mutation($id: ID!) { deleteNode(nodeId: $id) }', { id: rootId });
    await s.done;
    expect((s.errors[0] as any).extensions?.code).toBe('NOT_FOUND');
    await client.dispose();
  });
});
