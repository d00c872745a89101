// Query limits over real HTTP and WebSocket: fragment-spread bombs are measured in time linear in the
// document (they used to expand every spread: a stack overflow over HTTP, seconds of blocked event loop
// over WebSocket), the cost sees the variables, and both transports apply exactly the same limits,
// including introspection and suggestions where they are off.
import { parse, type OperationDefinitionNode } from 'graphql';
import { measureOperation, LIMITS } from '../../src/api/limits';
import { buildServer, FiseditServer, loadSchema } from '../../src/api/server';
import { collect, gql, Harness, startHarness, wsClient } from './harness';

let h: Harness;
let alice: string;
let closed: FiseditServer; // introspection off, on the same service
beforeAll(async () => {
  h = await startHarness();
  alice = await h.token('alice');
  closed = buildServer({ service: h.service, introspection: false });
  await closed.start();
});
afterAll(async () => {
  await closed?.stop();
  await h?.stop();
});

/** The first error of `query` over WebSocket (graphql-ws), or the data. */
async function overWs(wsUrl: string, query: string, variables: Record<string, unknown> = {}): Promise<{ errors: any[]; events: any[] }> {
  const client = wsClient(wsUrl, alice);
  const s = collect<any>(client, query, variables);
  await s.done;
  await client.dispose();
  return { errors: s.errors as any[], events: s.events };
}

/** F0 has 2 fields; each Fi spreads F(i-1) four times: `me { ...Fk }` expands to 2·4^k fields. */
function flatBomb(k: number): string {
  const frags = ['fragment F0 on User { id name }'];
  for (let i = 1; i <= k; i++) frags.push(`fragment F${i} on User { ...F${i - 1} ...F${i - 1} ...F${i - 1} ...F${i - 1} }`);
  return `query { me { ...F${k} } } ${frags.join(' ')}`;
}

/** Each level nests F(i-1) under four object fields: depth 2k+2, 4^k paths. */
function nestedBomb(k: number): string {
  const frags = ['fragment F0 on Node { id }'];
  for (let i = 1; i <= k; i++) frags.push(`fragment F${i} on Node { parent { ...F${i - 1} } tree { root { ...F${i - 1} } } ... on Node { parent { ...F${i - 1} } } children { ...F${i - 1} } }`);
  return `query { node(id: "x") { ...F${k} } } ${frags.join(' ')}`;
}

describe('fragment-spread bombs', () => {
  it('HTTP: a ~1 KB spread bomb is refused for its cost (400), measured exactly (1 + 2·4^9), not a 500', async () => {
    const q = flatBomb(9);
    expect(q.length).toBeLessThan(1100);
    const r = await gql(h.url, q, {}, alice);
    expect(r.status).toBe(400);
    expect(r.errors?.[0].extensions).toMatchObject({ code: 'BAD_USER_INPUT', limit: 'cost' });
    expect(r.errors?.[0].message).toContain(`query cost ${1 + 2 * 4 ** 9} exceeds`);
  });
  it('WebSocket: a nested bomb (4^14 paths; the old rule took minutes) is refused for depth at once, and the server keeps answering', async () => {
    const q = nestedBomb(14);
    const { errors } = await overWs(h.wsUrl, q);
    expect(errors[0].extensions).toMatchObject({ code: 'BAD_USER_INPUT', limit: 'depth' });
    expect(errors[0].message).toContain(`query depth ${2 * 14 + 2} exceeds`);
    expect((await fetch(`${h.url}/healthz`)).status).toBe(200);
  }, 15_000);
  it('measures by the closed form at every level (the sums saturate, never overflow)', () => {
    const schema = loadSchema();
    for (const k of [0, 1, 5, 9, 20]) {
      const doc = parse(flatBomb(k));
      expect(measureOperation(schema, doc, doc.definitions[0] as OperationDefinitionNode).cost).toBe(Math.min(1 + 2 * 4 ** k, Number.MAX_SAFE_INTEGER));
    }
    // A fragment cycle (refused by graphql-js's NoFragmentCyclesRule) does not loop here.
    const cyclic = parse('query { me { ...A } } fragment A on User { id ...B } fragment B on User { name ...A }');
    expect(measureOperation(schema, cyclic, cyclic.definitions[0] as OperationDefinitionNode)).toEqual({ depth: 2, cost: 3, aliases: 0 });
  });
});

describe('cost sees the variables', () => {
  // trees(first: F) { edges { node { root { children { 3 fields } } } } } = 1 + 1 + F·(1 + 1 + 1 + 20·3)
  const q = 'query($n: Int) { trees(first: $n) { edges { node { root { children { id prompt status } } } } } }';
  const cost = (f: number) => 2 + f * 63;
  it.each([
    [10, false],
    [100, true],
  ])('first: $n = %i → refused: %s, over HTTP and WebSocket alike', async (n, refused) => {
    expect(cost(n) > LIMITS.maxCost).toBe(refused);
    const http = await gql(h.url, q, { n }, alice);
    const ws = await overWs(h.wsUrl, q, { n });
    if (refused) {
      expect(http.errors?.[0].extensions).toMatchObject({ code: 'BAD_USER_INPUT', limit: 'cost' });
      expect(http.errors?.[0].message).toContain(`query cost ${cost(n)} exceeds`);
      expect(ws.errors[0].extensions).toMatchObject({ code: 'BAD_USER_INPUT', limit: 'cost' });
      expect(ws.errors[0].message).toBe(http.errors?.[0].message);
    } else {
      expect(http.errors).toBeUndefined();
      expect(ws.errors).toEqual([]);
      expect(ws.events).toHaveLength(1);
    }
  });
});

describe('the same limits on both transports', () => {
  it(`tokens: a document of more than ${LIMITS.maxTokens} tokens (under the character limit) is refused by the parser`, async () => {
    const q = `{ me { ${'id '.repeat(LIMITS.maxTokens)} } }`;
    const http = await gql(h.url, q, {}, alice);
    const ws = await overWs(h.wsUrl, q);
    expect(http.status).toBe(400);
    expect(http.errors?.[0].extensions?.code).toBe('GRAPHQL_PARSE_FAILED');
    expect(http.errors?.[0].message).toMatch(/tokens/);
    expect(ws.errors[0].extensions?.code).toBe('GRAPHQL_PARSE_FAILED');
    expect(ws.errors[0].message).toBe(http.errors?.[0].message);
  });
  it('with introspection off (NODE_ENV=production): introspection and suggestions are off over HTTP and WebSocket', async () => {
    const intro = '{ __schema { types { name } } }';
    const typo = '{ me { nam } }';
    for (const [url, wsUrl, on] of [[h.url, h.wsUrl, true], [closed.url, closed.wsUrl, false]] as const) {
      const http = await gql(url, intro, {}, alice);
      const ws = await overWs(wsUrl, intro);
      if (on) {
        expect(http.data?.__schema.types.length).toBeGreaterThan(10);
        expect(ws.events[0].types.length).toBe(http.data?.__schema.types.length);
      } else {
        expect(http.errors?.[0].extensions?.code).toBe('GRAPHQL_VALIDATION_FAILED');
        expect(http.errors?.[0].message).toMatch(/introspection/i);
        expect(ws.errors[0].extensions?.code).toBe('GRAPHQL_VALIDATION_FAILED');
        expect(ws.errors[0].message).toMatch(/introspection/i);
      }
      const httpTypo = await gql(url, typo, {}, alice);
      const wsTypo = await overWs(wsUrl, typo);
      for (const m of [httpTypo.errors?.[0].message, wsTypo.errors[0].message]) {
        expect(m).toMatch(/Cannot query field "nam"/);
        if (on) expect(m).toMatch(/Did you mean "name"\?/);
        else expect(m).not.toMatch(/Did you mean/);
      }
      // Variable coercion suggests too ("… Did you mean "title"?"): hidden alike.
      const badInput = 'mutation($i: GenerateInput!) { generate(input: $i) { id } }';
      const vars = { i: { prompt: 'x', titel: 'y' } };
      for (const m of [(await gql(url, badInput, vars, alice)).errors?.[0].message, (await overWs(wsUrl, badInput, vars)).errors[0].message]) {
        expect(m).toMatch(/titel/);
        if (!on) expect(m).not.toMatch(/Did you mean/);
      }
    }
  });
  it('NODE_ENV=production turns introspection off by default', async () => {
    const before = process.env.NODE_ENV;
    process.env.NODE_ENV = 'production';
    const prod = buildServer({ service: h.service });
    process.env.NODE_ENV = before;
    await prod.start();
    try {
      const ws = await overWs(prod.wsUrl, '{ __type(name: "Node") { name } }');
      expect(ws.errors[0].message).toMatch(/introspection/i);
    } finally {
      await prod.stop();
    }
  });
});
