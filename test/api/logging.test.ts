// Structured server logs over real HTTP and WebSocket: one JSON object per line (pino), the request's id
// on every line written for it (returned as X-Request-Id), internal errors logged with the reference
// the client sees, and the engine child's exit logged.
import { createLogger, setLogger, type Logger } from '../../src/service/log';
import type { WorkerInferenceBackend } from '../../src/service/inference/workerBackend';
import { collect, Harness, startHarness, waitForStatus, gqlOk, wsClient } from './harness';

interface Line {
  level: number;
  msg: string;
  reqId?: string;
  [k: string]: any;
}

let h: Harness;
let alice: string;
let rootId: string;
let previous: Logger;
const lines: Line[] = [];
beforeAll(async () => {
  previous = setLogger(createLogger({ level: 'info', destination: { write: (s: string) => void lines.push(JSON.parse(s)) } }));
  h = await startHarness();
  alice = await h.token('alice');
  const g = await gqlOk(h.url, 'mutation { generate(input: { prompt: "a red circle", seed: 1, steps: 1 }) { id } }', {}, alice);
  rootId = g.generate.id;
  await waitForStatus(h.url, alice, rootId, ['SUCCEEDED']);
});
afterAll(async () => {
  await h?.stop();
  setLogger(previous);
});

/** Makes reading a node's creator fail as a broken database would, for the duration of fn. */
async function withBrokenUserLookup(fn: () => Promise<void>): Promise<void> {
  const original = h.service.trees.userById.bind(h.service.trees);
  h.service.trees.userById = async () => {
    throw new Error('SQLITE_CORRUPT: detail for the log only');
  };
  try {
    await fn();
  } finally {
    h.service.trees.userById = original;
  }
}

const QUERY = 'query($id: ID!) { node(id: $id) { createdBy { name } } }';

describe('HTTP', () => {
  it('every line of a request carries its id (the client’s X-Request-Id, returned), the internal error with its reference', async () => {
    await withBrokenUserLookup(async () => {
      const res = await fetch(`${h.url}/graphql`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${alice}`, 'x-request-id': 'client-req-42' },
        body: JSON.stringify({ query: QUERY, variables: { id: rootId } }),
      });
      expect(res.headers.get('x-request-id')).toBe('client-req-42');
      const body = (await res.json()) as { errors: { message: string }[] };
      const ref = /ref ([0-9a-f]{12})/.exec(body.errors[0].message)![1];
      await new Promise((r) => setTimeout(r, 50)); // the access line is written when the response closes
      const mine = lines.filter((l) => l.reqId === 'client-req-42');
      const internal = mine.find((l) => l.msg === 'internal error');
      expect(internal).toMatchObject({ level: 50, ref, path: 'node.createdBy' });
      expect(internal!.err.stack).toMatch(/SQLITE_CORRUPT/);
      expect(mine.find((l) => l.msg === 'request')).toMatchObject({ method: 'POST', path: '/graphql', status: 200 });
      // Nothing about this request was logged without its id.
      expect(lines.filter((l) => !l.reqId && (l.ref === ref || l.msg === 'request'))).toEqual([]);
    });
  });
  it('makes up an id when the client sends none (or an unusable one), and never logs query strings', async () => {
    for (const header of [undefined, 'bad id with spaces']) {
      const res = await fetch(`${h.url}/healthz?secret=sig123`, { headers: header ? { 'x-request-id': header } : {} });
      const id = res.headers.get('x-request-id')!;
      expect(id).toMatch(/^[0-9a-f]{16}$/);
      await new Promise((r) => setTimeout(r, 50));
      expect(lines.find((l) => l.reqId === id && l.msg === 'request')).toMatchObject({ path: '/healthz', status: 200 });
    }
    expect(JSON.stringify(lines)).not.toContain('sig123');
  });
});

describe('WebSocket', () => {
  it('an operation’s lines carry its connection’s id and the operation id', async () => {
    await withBrokenUserLookup(async () => {
      const client = wsClient(h.wsUrl, alice);
      const s = collect<any>(client, QUERY, { id: rootId });
      await s.done;
      await client.dispose();
      const ref = /ref ([0-9a-f]{12})/.exec((s.errors[0] as any).message)![1];
      const internal = lines.find((l) => l.msg === 'internal error' && l.ref === ref);
      expect(internal?.reqId).toMatch(/^[0-9a-f]{12}\/.+/);
      const connId = internal!.reqId!.split('/')[0];
      expect(lines.find((l) => l.msg === 'websocket connected' && l.reqId === connId)).toMatchObject({ user: 'alice' });
    });
  });
});

describe('the engine child process', () => {
  it('its exit is logged: a crash as an error with the signal, and the server keeps going', async () => {
    const backend = h.service.backend as WorkerInferenceBackend;
    await backend.crashForTest();
    await new Promise((r) => setTimeout(r, 100));
    expect(lines.find((l) => l.msg === 'engine worker gone')).toMatchObject({ level: 50, engine: 'process', reason: 'killed by SIGKILL' });
    // The next job starts a new engine.
    const g = await gqlOk(h.url, 'mutation { generate(input: { prompt: "a blue square", seed: 2, steps: 1 }) { id } }', {}, alice);
    await waitForStatus(h.url, alice, g.generate.id, ['SUCCEEDED']);
  });
});
