// Fuzzing the API over real HTTP and WebSocket (fast-check): thousands of random operations, documents,
// variable values, bodies and URLs. The property: no response is a 5xx, no GraphQL error is an
// INTERNAL_SERVER_ERROR (a masked bug), no WebSocket is closed as an internal error, and the server
// still answers at the end. Counts are fixed (FUZZ_SCALE scales them; CI runs 0.6 of them beside the
// other suites); inputs come from one seed (FUZZ_SEED to replay; failures name it). Requests go 10 at a
// time: the suite is bound by round trips, not CPU.
import fc from 'fast-check';
import { collect, Harness, startHarness, waitForStatus, gqlOk, wsClient } from './harness';

const SCALE = Number(process.env.FUZZ_SCALE ?? (process.env.CI === 'true' ? 0.6 : 1));
const SEED = Number(process.env.FUZZ_SEED ?? Date.now() % 1e9);
const CONCURRENCY = 10;

/** The arbitrary's first n values for this run's seed. */
const draw = <T>(a: fc.Arbitrary<T>, n: number, salt: number): T[] => fc.sample(a, { numRuns: n, seed: SEED + salt });

async function inBatches<T>(items: T[], size: number, fn: (t: T) => Promise<void>): Promise<void> {
  for (let i = 0; i < items.length; i += size) await Promise.all(items.slice(i, i + size).map(fn));
}
const RUNS = {
  httpOperations: Math.round(1200 * SCALE),
  httpDocuments: Math.round(600 * SCALE),
  httpRaw: Math.round(700 * SCALE),
  wsOperations: Math.round(1000 * SCALE),
};

let h: Harness;
let alice: string;
let bob: string;
let rootId: string;
let treeId: string;
let imagePath: string;
beforeAll(async () => {
  // A small queue bound: valid random generates queue jobs; beyond it they are refused (CONFLICT).
  h = await startHarness({ maxQueuedPerUser: 5 });
  alice = await h.token('alice');
  bob = await h.token('bob');
  const g = await gqlOk(h.url, 'mutation { generate(input: { prompt: "a red circle", seed: 1, steps: 1 }) { id tree { id } } }', {}, alice);
  rootId = g.generate.id;
  treeId = g.generate.tree.id;
  await waitForStatus(h.url, alice, rootId, ['SUCCEEDED']);
  await gqlOk(h.url, 'mutation($t: ID!) { shareTree(treeId: $t, userName: "bob", role: VIEWER) { id } }', { t: treeId }, alice);
  imagePath = new URL((await gqlOk(h.url, 'query($id: ID!) { node(id: $id) { image { url } } }', { id: rootId }, alice)).node.image.url).pathname;
}, 120_000);
afterAll(async () => {
  await h?.stop();
});

// ---- value generators ----
const weirdString = fc.oneof(
  fc.string(),
  fc.string({ unit: 'binary', maxLength: 40 }), // any code point, lone surrogates included
  fc.constantFrom('', ' ', '\u0000', '\u001b[31m', '%', '%E0%A4%A', '../../etc/passwd', 'a'.repeat(2100), '\ud800', 'DROP TABLE "User";--', '__proto__', 'constructor'),
);
const weirdNumber = fc.oneof(fc.integer(), fc.integer({ min: -5, max: 200 }), fc.double(), fc.constantFrom(0, -0, 2 ** 31, 2 ** 53, -(2 ** 31) - 1, 1e308, Number.MAX_SAFE_INTEGER));
const anyValue: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 3, arbitrary: weirdString },
  { weight: 3, arbitrary: weirdNumber },
  fc.boolean(),
  fc.constant(null),
  { weight: 2, arbitrary: fc.jsonValue({ maxDepth: 3 }) },
);
const id = () => fc.oneof(fc.constantFrom(rootId, treeId, 'nope', ''), weirdString, anyValue);
const maybe = <T>(a: fc.Arbitrary<T>) => fc.option(a, { nil: undefined });
const generateInput = fc.oneof(
  fc.record(
    {
      prompt: fc.oneof(fc.constantFrom('a red circle', 'a blue square'), weirdString),
      negativePrompt: maybe(weirdString),
      seed: maybe(weirdNumber),
      steps: maybe(fc.oneof(fc.integer({ min: -2, max: 3 }), weirdNumber)),
      guidance: maybe(weirdNumber),
      scheduler: maybe(fc.oneof(fc.constantFrom('DDIM', 'EULER', 'DPMPP_2M'), weirdString)),
      width: maybe(fc.oneof(fc.constantFrom(8, 16, 32, 40), weirdNumber)),
      height: maybe(fc.oneof(fc.constantFrom(8, 16, 32), weirdNumber)),
      title: maybe(weirdString),
      priority: maybe(weirdNumber),
      extra: maybe(anyValue),
    },
    { requiredKeys: [] },
  ),
  anyValue,
);
const editInput = fc.oneof(
  fc.record(
    {
      parentId: id(),
      prompt: fc.oneof(fc.constant('a green circle'), weirdString),
      negativePrompt: maybe(weirdString),
      mask: maybe(fc.oneof(weirdString, fc.base64String({ maxLength: 200 }), fc.constant('data:image/png;base64,iVBORw0KGgo='))),
      strategy: maybe(fc.oneof(fc.constantFrom('AUTO', 'DENSE', 'SPARSE', 'ATTENTION'), weirdString)),
      priority: maybe(weirdNumber),
    },
    { requiredKeys: [] },
  ),
  anyValue,
);

/** Valid documents of every operation, with random variable values. */
function operation(): fc.Arbitrary<{ query: string; variables: Record<string, unknown> }> {
  const op = (query: string, variables: fc.Arbitrary<Record<string, unknown>>) => variables.map((v) => ({ query, variables: v }));
  const NODE = 'id status error prompt seed steps width height queuePosition image { url width } mask { url } stats { mode speedup } parent { id } children { id status } promptDiff { kind before after } tree { id title myRole }';
  return fc.oneof(
    op('{ me { id name createdAt } }', fc.constant({})),
    op('{ model { name maxWidth maxPromptTokens } }', fc.constant({})),
    op('query($f: Int, $a: String) { trees(first: $f, after: $a) { edges { cursor node { id title members { role user { name } } } } pageInfo { hasNextPage endCursor } } }', fc.record({ f: anyValue, a: anyValue }, { requiredKeys: [] })),
    op(`query($id: ID!) { node(id: $id) { ${NODE} } }`, fc.record({ id: id() }, { requiredKeys: [] })),
    op('query($id: ID!) { tree(id: $id) { id title myRole root { id } nodes { id status } members { role } } }', fc.record({ id: id() }, { requiredKeys: [] })),
    op('mutation($i: GenerateInput!) { generate(input: $i) { id status queuePosition } }', fc.record({ i: generateInput }, { requiredKeys: [] })),
    op('mutation($i: EditInput!) { edit(input: $i) { id status } }', fc.record({ i: editInput }, { requiredKeys: [] })),
    op('mutation($id: ID!) { cancelJob(nodeId: $id) { id status } }', fc.record({ id: id() })),
    op('mutation($id: ID!) { retryNode(nodeId: $id) { id status } }', fc.record({ id: id() })),
    op('mutation($id: ID!) { deleteNode(nodeId: $id) }', fc.record({ id: fc.oneof(fc.constantFrom('nope', ''), weirdString, anyValue) })), // never the fixture's own nodes
    op('mutation($t: ID!, $u: String!, $r: TreeRole!) { shareTree(treeId: $t, userName: $u, role: $r) { id } }', fc.record({ t: id(), u: fc.oneof(fc.constantFrom('bob', 'alice', 'carol'), weirdString), r: fc.oneof(fc.constantFrom('VIEWER', 'EDITOR'), anyValue) })),
    op('mutation($t: ID!, $u: String!) { unshareTree(treeId: $t, userName: $u) }', fc.record({ t: id(), u: fc.oneof(fc.constantFrom('zed', 'carol'), weirdString) })),
  );
}

/** Random documents: GraphQL-ish tokens in random order (parser, validator and limits). */
const TOKENS = ['{', '}', '(', ')', '[', ']', '...', 'query', 'mutation', 'subscription', 'fragment', 'F', 'on', 'Node', 'User', 'me', 'node', 'nodes', 'children', 'trees', 'edges', 'id', 'name', '$x', '$x: Int', ':', ',', '"s"', '"""b"""', '1', '-1', '1e999', 'true', 'null', '@include(if: true)', '@skip(if: $x)', '@deprecated', '__schema', '__type(name: "Node")', '__typename', 'a:', 'b:', 'first: 100', 'first: $x', 'generate(input: {prompt: "x"})', 'deleteNode(nodeId: "x")', '#c\n', '&', '|', '=', '!'];
const document = fc.oneof(
  fc.array(fc.constantFrom(...TOKENS), { maxLength: 60 }).map((t) => t.join(' ')),
  fc.string({ maxLength: 200 }),
  fc.array(fc.constantFrom('{ me { id } }', 'query { node(id: "x") { ...F } }', 'fragment F on Node { id children { ...F } }', 'fragment F on Node { parent { ...G } ...G } fragment G on Node { id ...F }', '{ __schema { types { fields { type { ofType { name } } } } } }'), { minLength: 1, maxLength: 4 }).map((t) => t.join(' ')),
);

interface Failure {
  what: string;
  detail: string;
}
const failures: Failure[] = [];
let sent = 0;
/** What the answers were (HTTP status / first error code), printed at the end: shows what the runs reached. */
const tally = new Map<string, number>();
const count = (key: string) => tally.set(key, (tally.get(key) ?? 0) + 1);

function checkGraphqlBody(what: string, status: number, text: string): void {
  sent++;
  count(`http ${status} ${/"code":"(\w+)"/.exec(text)?.[1] ?? (text.includes('"data"') ? 'data' : '-')}`);
  if (status >= 500) failures.push({ what, detail: `${status} ${text.slice(0, 300)}` });
  else if (text.includes('INTERNAL_SERVER_ERROR')) failures.push({ what, detail: text.slice(0, 300) });
}

async function postGraphql(body: unknown, token: string | null = alice): Promise<void> {
  const res = await fetch(`${h.url}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) }, body: JSON.stringify(body) });
  checkGraphqlBody(JSON.stringify(body).slice(0, 300), res.status, await res.text());
}

describe('fuzz', () => {
  it(`HTTP: ${RUNS.httpOperations} operations with random variable values, then ${RUNS.httpDocuments} random documents`, async () => {
    const ops = draw(fc.tuple(operation(), fc.constantFrom(alice, bob, null)), RUNS.httpOperations, 1);
    await inBatches(ops, CONCURRENCY, ([op, token]) => postGraphql(op, token));
    const docs = draw(fc.tuple(document, fc.option(fc.dictionary(fc.constantFrom('x', 'id', 'f'), anyValue))), RUNS.httpDocuments, 2);
    await inBatches(docs, CONCURRENCY, ([query, variables]) => postGraphql({ query, variables }));
    expect({ seed: SEED, failures }).toEqual({ seed: SEED, failures: [] });
  }, 300_000);

  it(`HTTP: ${RUNS.httpRaw} random requests (methods, content types, bodies, image URLs)`, async () => {
    const raw = fc.record({
      method: fc.constantFrom('GET', 'POST', 'PUT', 'DELETE', 'OPTIONS', 'HEAD'),
      path: fc.oneof(
        fc.constantFrom('/graphql', '/', '/healthz', '/images/', imagePath, `${imagePath}?sig=x&u=y&exp=99999999999`),
        fc.tuple(fc.oneof(fc.constantFrom(rootId, '%', '%E0%A4%A', '..', '%2e%2e'), fc.string({ maxLength: 20 })), fc.constantFrom('image.png', 'thumb.webp', 'mask.png', 'x')).map(([n, f]) => `/images/${n}/${f}`),
        fc.webPath(),
      ),
      contentType: fc.constantFrom('application/json', 'text/plain', 'application/graphql-response+json', 'multipart/form-data', ''),
      body: fc.oneof(fc.string({ maxLength: 300 }), fc.jsonValue().map((v) => JSON.stringify(v)), fc.constant('{"query": "{ me { id } }", "variables": "x"}'), fc.constant('[{"query":"{ me { id } }"}]')),
      auth: fc.constantFrom(`Bearer ${alice}`, 'Bearer fse_x', 'Basic abc', ''),
    });
    await inBatches(draw(raw, RUNS.httpRaw, 3), CONCURRENCY, async (r) => {
        const withBody = r.method === 'POST' || r.method === 'PUT' || r.method === 'DELETE';
        let res: Response;
        try {
          res = await fetch(`${h.url}${r.path}`, {
            method: r.method,
            headers: { ...(r.contentType ? { 'content-type': r.contentType } : {}), ...(r.auth ? { authorization: r.auth } : {}), 'apollo-require-preflight': '1' },
            body: withBody ? r.body : undefined,
          });
        } catch (e) {
          failures.push({ what: JSON.stringify(r).slice(0, 300), detail: `no response: ${(e as Error).message}` });
          return;
        }
        checkGraphqlBody(JSON.stringify(r).slice(0, 300), res.status, r.method === 'HEAD' ? '' : await res.text());
    });
    expect({ seed: SEED, failures }).toEqual({ seed: SEED, failures: [] });
  }, 300_000);

  it(`WebSocket: ${RUNS.wsOperations} operations and subscriptions with random variable values, 20 at a time`, async () => {
    const subscriptionOp = fc.oneof(
      fc.record({ id: id() }).map((v) => ({ query: 'subscription($id: ID!) { nodeProgress(nodeId: $id) { step phase status } }', variables: v })),
      fc.record({ id: id(), s: maybe(anyValue) }).map((v) => ({ query: 'subscription($id: ID!, $s: Int) { treeEvents(treeId: $id, afterSeq: $s) { type seq node { id error } } }', variables: v })),
    );
    const anyOp = fc.oneof({ weight: 3, arbitrary: operation() }, subscriptionOp, document.map((query) => ({ query, variables: {} })));
    const batches = draw(fc.array(anyOp, { minLength: 20, maxLength: 20 }), Math.ceil(RUNS.wsOperations / 20), 4);
    const client = wsClient(h.wsUrl, alice);
    for (const batch of batches) {
      const subs = batch.map((op) => ({ op, s: collect<any>(client, op.query, op.variables) }));
      await Promise.race([Promise.all(subs.map(({ s }) => s.done)), new Promise((r) => setTimeout(r, 150))]);
      for (const { op, s } of subs) {
        sent++;
        s.unsubscribe();
        count(`ws ${(s.errors[0] as any)?.extensions?.code ?? (s.events.length > 0 ? 'data' : s.errors.length > 0 ? 'error' : 'open')}`);
        const text = JSON.stringify(s.errors);
        const closed = s.errors.find((e: any) => typeof e?.code === 'number') as { code: number; reason?: string } | undefined;
        if (closed) failures.push({ what: JSON.stringify(op).slice(0, 300), detail: `socket closed ${closed.code} ${closed.reason ?? ''}` });
        else if (text.includes('INTERNAL_SERVER_ERROR')) failures.push({ what: JSON.stringify(op).slice(0, 300), detail: text.slice(0, 300) });
      }
      if (failures.length > 0) break;
    }
    await client.dispose();
    expect({ seed: SEED, failures }).toEqual({ seed: SEED, failures: [] });
  }, 300_000);

  it('the server is up and answers at the end', async () => {
    console.log(`fuzz: ${sent} requests; answers: ${[...tally].sort((a, b) => b[1] - a[1]).map(([k, n]) => `${k}: ${n}`).join(', ')}`);
    expect(sent).toBeGreaterThanOrEqual(RUNS.httpOperations + RUNS.httpDocuments + RUNS.httpRaw + RUNS.wsOperations);
    expect((await fetch(`${h.url}/healthz`)).status).toBe(200);
    expect((await gqlOk(h.url, 'query($id: ID!) { node(id: $id) { id status } }', { id: rootId }, alice)).node).toEqual({ id: rootId, status: 'SUCCEEDED' });
  });
});
