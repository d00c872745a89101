// Connections a client holds: a revoked token loses its open WebSockets within the revocation bound
// (operations refused, subscriptions ended), one user cannot open sockets without limit, and a slow
// client cannot keep an HTTP connection by trickling its headers or body.
import * as net from 'net';
import { CLOSE_REVOKED, CLOSE_TOO_MANY } from '../../src/api/openSockets';
import { revokeToken } from '../../src/service/auth/tokens';
import { collect, gql, gqlOk, Harness, startHarness, waitForStatus, wsClient } from './harness';

const REVOCATION_MS = 400;
const MAX_SOCKETS = 3;
let h: Harness;
let treeId: string;
beforeAll(async () => {
  h = await startHarness({ revocationMs: REVOCATION_MS, server: { maxSocketsPerUser: MAX_SOCKETS, headersTimeoutMs: 300, requestTimeoutMs: 600 } });
  const owner = await h.token('owner');
  await h.token('alice');
  await h.token('bob');
  const g = await gqlOk(h.url, 'mutation { generate(input: { prompt: "a red circle", seed: 1, steps: 1 }) { id tree { id } } }', {}, owner);
  treeId = g.generate.tree.id;
  await waitForStatus(h.url, owner, g.generate.id, ['SUCCEEDED']);
  for (const [u, r] of [['alice', 'EDITOR'], ['bob', 'VIEWER']]) {
    await gqlOk(h.url, 'mutation($t: ID!, $u: String!, $r: TreeRole!) { shareTree(treeId: $t, userName: $u, role: $r) { id } }', { t: treeId, u, r }, owner);
  }
});
afterAll(async () => {
  await h?.stop();
});

const TREE_EVENTS = 'subscription($t: ID!) { treeEvents(treeId: $t) { type } }';

/** Resolves with what ended the subscription, or rejects after ms. */
function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  return Promise.race([p, new Promise<T>((_, reject) => setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms))]);
}

describe('revoking a token', () => {
  it(`reaches open WebSockets within the bound (${REVOCATION_MS} ms here): subscriptions end with 4401, operations are refused`, async () => {
    const token = await h.token('alice');
    const watcher = wsClient(h.wsUrl, token);
    const worker = wsClient(h.wsUrl, token);
    const events = collect<any>(watcher, TREE_EVENTS, { t: treeId });
    const me = collect<any>(worker, '{ me { name } }', {});
    await me.done;
    expect(me.events[0]).toEqual({ name: 'alice' });
    await new Promise((r) => setTimeout(r, 100)); // the subscription is live
    expect(events.errors).toEqual([]);
    const nodesBefore = await h.service.database.db.node.count();

    expect(await revokeToken(h.service.database.db, token)).toBe(1);
    const revokedAt = Date.now();
    await within(events.done, 3 * REVOCATION_MS + 500, 'the subscription did not end');
    expect(Date.now() - revokedAt).toBeLessThanOrEqual(2 * REVOCATION_MS + 500);
    expect((events.errors[0] as { code?: number }).code).toBe(CLOSE_REVOKED);

    // The other socket was closed as well: a generate on it is not accepted.
    const gen = collect<any>(worker, 'mutation { generate(input: { prompt: "x", steps: 1 }) { id } }', {});
    await within(gen.done, 2000, 'the generate did not answer');
    expect(gen.events).toEqual([]);
    expect(await h.service.database.db.node.count()).toBe(nodesBefore);
    // New connections and HTTP requests with the token are refused too.
    const again = wsClient(h.wsUrl, token);
    const refused = collect<any>(again, '{ me { name } }', {});
    await refused.done;
    expect((refused.errors[0] as { code?: number }).code).toBe(4403);
    expect((await gql(h.url, '{ me { name } }', {}, token)).errors?.[0].extensions?.code).toBe('UNAUTHENTICATED');
    await Promise.all([watcher.dispose(), worker.dispose(), again.dispose()]);
  });
  it('refuses an operation on an open socket even before the periodic check closes it', async () => {
    const token = await h.token('alice');
    const client = wsClient(h.wsUrl, token);
    const held = collect<any>(client, TREE_EVENTS, { t: treeId }); // keeps the lazy client's socket open
    const first = collect<any>(client, '{ me { name } }', {});
    await first.done;
    expect(first.events).toEqual([{ name: 'alice' }]);
    await revokeToken(h.service.database.db, token);
    h.service.auth.forget(); // as if the cache entry had just expired
    const op = collect<any>(client, '{ me { name } }', {});
    await within(op.done, 2000, 'the operation did not answer');
    expect(op.events).toEqual([]);
    const err = op.errors[0] as { code?: number; extensions?: { code?: string } };
    // Either the refusal or the close that follows it reaches the client first.
    expect(err.extensions?.code === 'UNAUTHENTICATED' || err.code === CLOSE_REVOKED).toBe(true);
    await within(held.done, 2000, 'the subscription did not end');
    await client.dispose();
  });
});

describe('open sockets per user', () => {
  it(`allows ${MAX_SOCKETS} per user; one more is closed with 4429; others and a freed slot are not affected`, async () => {
    const token = await h.token('bob');
    const clients = Array.from({ length: MAX_SOCKETS }, () => wsClient(h.wsUrl, token));
    // A lazy graphql-ws client keeps its socket while an operation runs: hold each with a subscription.
    // afterSeq 0 replays the tree's past events: a socket's first event shows it is open and counted
    // (a fixed pause let a slow connect lose its slot to the extra socket on a loaded machine).
    const held = clients.map((c) => collect<any>(c, 'subscription($t: ID!) { treeEvents(treeId: $t, afterSeq: 0) { type } }', { t: treeId }));
    await Promise.all(held.map((s) => s.until(() => true, 30_000)));
    for (const s of held) expect(s.errors).toEqual([]);
    const extra = wsClient(h.wsUrl, token);
    const over = collect<any>(extra, '{ me { name } }', {});
    await over.done;
    expect((over.errors[0] as { code?: number }).code).toBe(CLOSE_TOO_MANY);
    const other = wsClient(h.wsUrl, await h.token('carol'));
    const fine = collect<any>(other, '{ me { name } }', {});
    await fine.done;
    expect(fine.events).toEqual([{ name: 'carol' }]);
    await clients[0].dispose();
    await new Promise((r) => setTimeout(r, 100));
    const next = wsClient(h.wsUrl, token);
    const ok = collect<any>(next, '{ me { name } }', {});
    await ok.done;
    expect(ok.events).toEqual([{ name: 'bob' }]);
    await Promise.all([...clients.slice(1), extra, other, next].map((c) => c.dispose()));
  });
});

describe('slow HTTP clients', () => {
  /** Writes `data` on a raw connection and resolves with what the server sent before it closed. */
  function trickle(data: string): Promise<{ reply: string; ms: number }> {
    const { port } = new URL(h.url);
    return new Promise((resolve, reject) => {
      const started = Date.now();
      const socket = net.connect(Number(port), '127.0.0.1', () => socket.write(data));
      let reply = '';
      socket.on('data', (d) => (reply += d.toString('utf8')));
      socket.on('close', () => resolve({ reply, ms: Date.now() - started }));
      socket.on('error', reject);
      setTimeout(() => (socket.destroy(), reject(new Error(`still open after 5 s; got ${JSON.stringify(reply)}`))), 5000).unref();
    });
  }
  it('headers that never finish: 408 and closed after the headers timeout', async () => {
    const r = await trickle(`GET /healthz HTTP/1.1\r\nHost: x\r\n`);
    expect(r.reply).toMatch(/^HTTP\/1\.1 408/);
    expect(r.ms).toBeLessThan(3000);
  });
  it('a body that never finishes: 408 and closed after the request timeout', async () => {
    const r = await trickle(`POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"query":`);
    expect(r.reply).toMatch(/^HTTP\/1\.1 408/);
    expect(r.ms).toBeLessThan(3000);
  });
});
