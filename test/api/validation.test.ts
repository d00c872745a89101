// Malformed values for every argument, query limits shared by HTTP and WebSocket, request size limits,
// and masking of internal errors.
import sharp from 'sharp';
import { createLogger, setLogger } from '../../src/service/log';
import { collect, gql, gqlOk, Harness, startHarness, waitForStatus, wsClient } from './harness';

let h: Harness;
let alice: string;
let rootId: string;
let treeId: string;
beforeAll(async () => {
  h = await startHarness();
  alice = await h.token('alice');
  await h.token('bob');
  const g = await gqlOk(h.url, 'mutation { generate(input: { prompt: "a red circle", seed: 1, steps: 2, guidance: 7 }) { id tree { id } } }', {}, alice);
  rootId = g.generate.id;
  treeId = g.generate.tree.id;
  await waitForStatus(h.url, alice, rootId, ['SUCCEEDED']);
});
afterAll(async () => {
  await h?.stop();
});

const GENERATE = 'mutation($input: GenerateInput!) { generate(input: $input) { id } }';
const EDIT = 'mutation($input: EditInput!) { edit(input: $input) { id } }';

async function code(query: string, variables: Record<string, unknown>): Promise<string | undefined> {
  const r = await gql(h.url, query, variables, alice);
  return r.errors?.[0]?.extensions?.code;
}

const png = (w: number, hgt: number, value: number) => sharp({ create: { width: w, height: hgt, channels: 3, background: { r: value, g: value, b: value } } }).png().toBuffer();

describe('generate(input)', () => {
  const base = { prompt: 'a red circle' };
  it.each<[string, Record<string, unknown>]>([
    ['prompt empty', { prompt: '' }],
    ['prompt blank', { prompt: '   ' }],
    ['prompt over 2000 characters', { prompt: 'a'.repeat(2001) }],
    ['prompt over the model’s 75 tokens', { prompt: Array(80).fill('red').join(' ') }],
    ['prompt with control characters', { prompt: 'a red\u0007 circle' }],
    ['prompt not a string', { prompt: 42 }],
    ['prompt null', { prompt: null }],
    ['negativePrompt without guidance', { negativePrompt: 'blur', guidance: 1 }],
    ['negativePrompt not a string', { negativePrompt: ['x'] }],
    ['seed negative', { seed: -1 }],
    ['seed above 2^31−1', { seed: 2 ** 31 }],
    ['seed fractional', { seed: 1.5 }],
    ['seed a string', { seed: '7' }],
    ['steps 0', { steps: 0 }],
    ['steps 151', { steps: 151 }],
    ['steps fractional', { steps: 2.5 }],
    ['guidance below 0', { guidance: -0.5 }],
    ['guidance above 30', { guidance: 30.5 }],
    ['guidance a string', { guidance: 'high' }],
    ['scheduler unknown', { scheduler: 'PLMS' }],
    ['width not a multiple of 8', { width: 36 }],
    ['width 0', { width: 0 }],
    ['width beyond the model', { width: 4096 }],
    ['height not a multiple of 8', { height: 20 }],
    ['height negative', { height: -32 }],
    ['title over 200 characters', { title: 't'.repeat(201) }],
    // Titles take what prompts take (settings.ts checkText): no NUL, no terminal escapes.
    ...[['NUL', '\u0000'], ['ESC sequences', '\u001b[2J\u001b[31m'], ['C1 CSI U+009B', '\u009b31m'], ['DEL', '\u007f']].flatMap(([name, c]): [string, Record<string, unknown>][] => [
      [`title with ${name}`, { title: `my tree${c}` }],
      [`prompt with ${name}`, { prompt: `a red${c} circle` }],
    ]),
    ['priority out of range', { priority: 11 }],
    ['unknown field', { colour: 'red' }],
  ])('%s → BAD_USER_INPUT', async (_name, over) => {
    expect(await code(GENERATE, { input: { ...base, ...over } })).toBe('BAD_USER_INPUT');
  });
  it('input missing → BAD_USER_INPUT; nothing was queued by any refused request', async () => {
    expect(await code(GENERATE, {})).toBe('BAD_USER_INPUT');
    expect(await h.service.database.db.node.count()).toBe(1);
  });
  it('names the argument and the limit in the message', async () => {
    const r = await gql(h.url, GENERATE, { input: { ...base, steps: 151 } }, alice);
    expect(r.errors?.[0].message).toMatch(/steps.*\[1, 150\]/);
    expect(r.errors?.[0].extensions?.argument).toBe('steps');
  });
});

describe('edit(input)', () => {
  it.each<[string, () => Promise<Record<string, unknown>>, string]>([
    ['parentId unknown', async () => ({ parentId: 'nope', prompt: 'x' }), 'NOT_FOUND'],
    ['prompt empty', async () => ({ parentId: rootId, prompt: '' }), 'BAD_USER_INPUT'],
    ['prompt too long', async () => ({ parentId: rootId, prompt: 'b'.repeat(2001) }), 'BAD_USER_INPUT'],
    ['negativePrompt too long', async () => ({ parentId: rootId, prompt: 'x', negativePrompt: 'n'.repeat(2001) }), 'BAD_USER_INPUT'],
    ['strategy unknown', async () => ({ parentId: rootId, prompt: 'x', strategy: 'FAST' }), 'BAD_USER_INPUT'],
    ['priority out of range', async () => ({ parentId: rootId, prompt: 'x', priority: -11 }), 'BAD_USER_INPUT'],
    ['mask not base64', async () => ({ parentId: rootId, prompt: 'x', mask: '!!!not base64!!!' }), 'BAD_USER_INPUT'],
    ['mask not a PNG', async () => ({ parentId: rootId, prompt: 'x', mask: Buffer.from('GIF89a....').toString('base64') }), 'BAD_USER_INPUT'],
    ['mask a broken PNG', async () => ({ parentId: rootId, prompt: 'x', mask: Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47]), Buffer.alloc(40)]).toString('base64') }), 'BAD_USER_INPUT'],
    ['mask of the wrong size', async () => ({ parentId: rootId, prompt: 'x', mask: (await png(64, 64, 255)).toString('base64') }), 'BAD_USER_INPUT'],
    ['mask marking nothing', async () => ({ parentId: rootId, prompt: 'x', mask: (await png(32, 32, 0)).toString('base64') }), 'BAD_USER_INPUT'],
    ['mask with strategy ATTENTION', async () => ({ parentId: rootId, prompt: 'x', mask: (await png(32, 32, 255)).toString('base64'), strategy: 'ATTENTION' }), 'BAD_USER_INPUT'],
    ['mask too large', async () => ({ parentId: rootId, prompt: 'x', mask: 'A'.repeat(1_000_004) }), 'BAD_USER_INPUT'],
  ])('%s → %s', async (_name, input, expected) => {
    expect(await code(EDIT, { input: await input() })).toBe(expected);
  });
  it('accepts a proper mask and keeps it as the node’s input mask', async () => {
    const mask = `data:image/png;base64,${(await png(32, 32, 255)).toString('base64')}`;
    const r = await gqlOk(h.url, 'mutation($input: EditInput!) { edit(input: $input) { id status } }', { input: { parentId: rootId, prompt: 'a blue circle', mask, strategy: 'DENSE' } }, alice);
    const n = await h.service.database.db.node.findUnique({ where: { id: r.edit.id } });
    expect(n?.inputMaskPath).toMatch(/input-mask\.png$/);
    await waitForStatus(h.url, alice, r.edit.id, ['SUCCEEDED']);
  });
});

describe('other arguments', () => {
  it.each<[string, string, () => Record<string, unknown>, string]>([
    ['trees(first: 0)', 'query($f: Int) { trees(first: $f) { pageInfo { hasNextPage } } }', () => ({ f: 0 }), 'BAD_USER_INPUT'],
    ['trees(first: 101)', 'query($f: Int) { trees(first: $f) { pageInfo { hasNextPage } } }', () => ({ f: 101 }), 'BAD_USER_INPUT'],
    ['trees(first: "x")', 'query($f: Int) { trees(first: $f) { pageInfo { hasNextPage } } }', () => ({ f: 'x' }), 'BAD_USER_INPUT'],
    ['trees(after: garbage)', 'query($a: String) { trees(after: $a) { pageInfo { hasNextPage } } }', () => ({ a: 'garbage' }), 'BAD_USER_INPUT'],
    ['tree(id: null)', 'query($id: ID!) { tree(id: $id) { id } }', () => ({ id: null }), 'BAD_USER_INPUT'],
    ['node(id: {})', 'query($id: ID!) { node(id: $id) { id } }', () => ({ id: {} }), 'BAD_USER_INPUT'],
    ['cancelJob(unknown)', 'mutation($id: ID!) { cancelJob(nodeId: $id) { id } }', () => ({ id: 'nope' }), 'NOT_FOUND'],
    ['cancelJob(finished)', 'mutation($id: ID!) { cancelJob(nodeId: $id) { id } }', () => ({ id: rootId }), 'CONFLICT'],
    ['retryNode(unknown)', 'mutation($id: ID!) { retryNode(nodeId: $id) { id } }', () => ({ id: 'nope' }), 'NOT_FOUND'],
    ['retryNode(succeeded)', 'mutation($id: ID!) { retryNode(nodeId: $id) { id } }', () => ({ id: rootId }), 'CONFLICT'],
    ['deleteNode(unknown)', 'mutation($id: ID!) { deleteNode(nodeId: $id) }', () => ({ id: 'nope' }), 'NOT_FOUND'],
    ['deleteNode(no id)', 'mutation($id: ID!) { deleteNode(nodeId: $id) }', () => ({}), 'BAD_USER_INPUT'],
    ['shareTree(unknown tree)', 'mutation($t: ID!) { shareTree(treeId: $t, userName: "bob", role: EDITOR) { id } }', () => ({ t: 'nope' }), 'NOT_FOUND'],
    // shareTree with an unknown name answers as with a known one (rolesAndLeaks.test.ts)
    ['unshareTree(unknown user)', 'mutation($t: ID!) { unshareTree(treeId: $t, userName: "zed") }', () => ({ t: treeId }), 'NOT_FOUND'],
    ['shareTree(bad user name)', 'mutation($t: ID!, $u: String!) { shareTree(treeId: $t, userName: $u, role: EDITOR) { id } }', () => ({ t: treeId, u: 'bad name!' }), 'BAD_USER_INPUT'],
    ['shareTree(role ADMIN)', 'mutation($t: ID!, $r: TreeRole!) { shareTree(treeId: $t, userName: "bob", role: $r) { id } }', () => ({ t: treeId, r: 'ADMIN' }), 'BAD_USER_INPUT'],
    ['shareTree(self)', 'mutation($t: ID!) { shareTree(treeId: $t, userName: "alice", role: VIEWER) { id } }', () => ({ t: treeId }), 'CONFLICT'],
  ])('%s → %s', async (_name, query, vars, expected) => {
    expect(await code(query, vars())).toBe(expected);
  });
  it('tree(id)/node(id) of an unknown id are null', async () => {
    expect(await gqlOk(h.url, 'query { tree(id: "nope") { id } node(id: "nope") { id } }', {}, alice)).toEqual({ tree: null, node: null });
  });
  it.each([
    ['nodeProgress', 'subscription($id: ID!) { nodeProgress(nodeId: $id) { step } }', { id: 'nope' }, 'NOT_FOUND'],
    ['nodeProgress(null)', 'subscription($id: ID!) { nodeProgress(nodeId: $id) { step } }', { id: null }, 'BAD_USER_INPUT'],
    ['treeEvents', 'subscription($id: ID!) { treeEvents(treeId: $id) { type } }', { id: 'nope' }, 'NOT_FOUND'],
  ])('subscription %s with a bad id → %s', async (_n, query, variables, expected) => {
    const client = wsClient(h.wsUrl, alice);
    const s = collect<any>(client, query, variables);
    await s.done;
    expect((s.errors[0] as any).extensions?.code).toBe(expected);
    await client.dispose();
  });
});

describe('limits', () => {
  const deep = `query($id: ID!) { node(id: $id) { children { children { children { children { children { children { children { children { children { children { id } } } } } } } } } } } }`;
  const costly = `{ trees(first: 100) { edges { node { nodes { children { children { id prompt } } } } } } }`;
  const aliased = `{ ${Array.from({ length: 31 }, (_, i) => `a${i}: me { id }`).join(' ')} }`;
  it.each([
    ['depth', deep, { id: 'x' }],
    ['cost', costly, {}],
    ['aliases', aliased, {}],
  ])('%s: refused over HTTP and over WebSocket with the same rule', async (limit, query, variables) => {
    const r = await gql(h.url, query, variables, alice);
    expect(r.errors?.[0].extensions).toMatchObject({ code: 'BAD_USER_INPUT', limit });
    const client = wsClient(h.wsUrl, alice);
    const s = collect<any>(client, query, variables);
    await s.done;
    expect((s.errors[0] as any).extensions).toMatchObject({ code: 'BAD_USER_INPUT', limit });
    await client.dispose();
  });
  it('one request queues at most 25 jobs (generate costs 200 of 5000)', async () => {
    const many = `mutation { ${Array.from({ length: 26 }, (_, i) => `g${i}: generate(input: { prompt: "x", steps: 1 }) { id }`).join(' ')} }`;
    const r = await gql(h.url, many, {}, alice);
    expect(r.errors?.[0].extensions?.code).toBe('BAD_USER_INPUT');
  });
  it('refuses bodies over 1 MiB and documents over 20,000 characters', async () => {
    const big = await fetch(`${h.url}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${alice}` }, body: JSON.stringify({ query: '{ me { id } }', variables: { pad: 'x'.repeat(1_100_000) } }) });
    expect(big.status).toBe(413);
    const longDoc = await gql(h.url, `{ me { id } } ${'#'.repeat(20_001)}`, {}, alice);
    expect(longDoc.status).toBe(413);
  });
  it('refuses batched requests, GET mutations and CSRF-able content types', async () => {
    const batch = await fetch(`${h.url}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${alice}` }, body: JSON.stringify([{ query: '{ me { id } }' }, { query: '{ me { id } }' }]) });
    expect(batch.status).toBe(400);
    const csrf = await fetch(`${h.url}/graphql`, { method: 'POST', headers: { 'content-type': 'text/plain', authorization: `Bearer ${alice}` }, body: JSON.stringify({ query: '{ me { id } }' }) });
    expect(csrf.status).toBe(400);
    const getMutation = await fetch(`${h.url}/graphql?query=${encodeURIComponent('mutation { deleteNode(nodeId: "x") }')}`, { headers: { authorization: `Bearer ${alice}`, 'apollo-require-preflight': '1' } });
    expect(getMutation.status).toBe(405);
    const notJson = await fetch(`${h.url}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"query": ' });
    expect(notJson.status).toBe(400);
  });
});

describe('internal errors', () => {
  it('are masked as INTERNAL_SERVER_ERROR with a reference, over HTTP and WebSocket', async () => {
    const original = h.service.trees.userById.bind(h.service.trees);
    h.service.trees.userById = async () => {
      throw new Error('SQLITE_CORRUPT: secret detail /var/lib/secret.db');
    };
    const logged: string[] = [];
    const previous = setLogger(createLogger({ destination: { write: (line: string) => void logged.push(line) } }));
    try {
      const r = await gql(h.url, 'query($id: ID!) { node(id: $id) { createdBy { name } } }', { id: rootId }, alice);
      expect(r.errors?.[0].extensions?.code).toBe('INTERNAL_SERVER_ERROR');
      expect(JSON.stringify(r)).not.toMatch(/secret|SQLITE|stack/i);
      expect(r.errors?.[0].message).toMatch(/^internal error \(ref [0-9a-f]{12}\)$/);
      const client = wsClient(h.wsUrl, alice);
      const s = collect<any>(client, 'query($id: ID!) { node(id: $id) { createdBy { name } } }', { id: rootId });
      await s.done;
      expect(JSON.stringify(s.errors)).not.toMatch(/secret|SQLITE/i);
      expect((s.errors[0] as any).extensions?.code).toBe('INTERNAL_SERVER_ERROR');
      await client.dispose();
      expect(logged.join('')).toMatch(/SQLITE_CORRUPT/); // the details went to the server log
    } finally {
      h.service.trees.userById = original;
      setLogger(previous);
    }
  });
});
