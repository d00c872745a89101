// Issue 17 items 4 and 5 with real processes: two API replicas (fisedit serve --workers 0) and a worker
// (fisedit worker) on one PostgreSQL database and one Redis, users on different replicas sharing a tree.
//   - a client on either replica sees the events the other replica caused, in commit order, without gaps;
//   - any replica serves any node's image (images in the database), and a URL one signed works on the other;
//   - kill -9 a replica: its client reconnects to the other and replays what it missed (afterSeq).
// Skips visibly without PostgreSQL or Redis; fails under CI=true.
import { ChildProcess, fork } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import sharp from 'sharp';
import { createToken } from '../../src/service/auth/tokens';
import { describeWithService, postgresProbe, REDIS_URL, redisProbe } from '../helpers/services';
import { postgresTestDatabase, TestDatabase } from '../helpers/testDatabases';
import { collect, Collected, gqlOk, TINY_MODEL, waitForStatus, wsClient } from './harness';

interface Replica {
  proc: ChildProcess;
  url: string;
  wsUrl: string;
}

function startProcess(script: string, args: string[], ready: RegExp): Promise<{ proc: ChildProcess; url: string }> {
  const proc = fork(script, args, { execArgv: ['--require', require.resolve('tsx/cjs')], stdio: ['ignore', 'pipe', 'pipe', 'ipc'] });
  return new Promise((resolve, reject) => {
    let out = '';
    let err = '';
    proc.stdout!.on('data', (d) => {
      out += d;
      const m = ready.exec(out);
      if (m) resolve({ proc, url: m[1] ?? '' });
    });
    proc.stderr!.on('data', (d) => (err += d));
    proc.on('exit', (code) => reject(new Error(`${path.basename(script)} ${args[0]} exited with ${code}: ${err.slice(-2000)}`)));
  });
}

const common = (databaseUrl: string, imageStore: string[]) => ['--data', fs.mkdtempSync(path.join(os.tmpdir(), 'fisedit-replica-')), '--model', TINY_MODEL, '--threads', '1', '--database-url', databaseUrl, '--redis-url', REDIS_URL, '--engine', 'thread', ...imageStore];

/** An API replica: fisedit serve --workers 0 (GraphQL, subscriptions, images; runs no jobs). */
async function startReplica(databaseUrl: string, imageStore: string[]): Promise<Replica> {
  const { proc, url } = await startProcess(path.join(__dirname, '../../src/cli/main.ts'), ['serve', '--workers', '0', '--port', '0', ...common(databaseUrl, imageStore)], /FISEdit GraphQL API: (http:\/\/[^\s]+)\/graphql/);
  return { proc, url, wsUrl: `${url.replace(/^http/, 'ws')}/graphql` };
}

/** fisedit worker: runs the jobs the replicas queue. */
async function startWorker(databaseUrl: string, imageStore: string[]): Promise<ChildProcess> {
  return (await startProcess(path.join(__dirname, '../../src/cli/main.ts'), ['worker', ...common(databaseUrl, imageStore)], /fisedit worker (\S+): ready/)).proc;
}

const GENERATE = `mutation($input: GenerateInput!) { generate(input: $input) { id tree { id } } }`;
const EDIT = `mutation($input: EditInput!) { edit(input: $input) { id } }`;
const EVENTS = `subscription($t: ID!, $after: Int) { treeEvents(treeId: $t, afterSeq: $after) { type seq node { id status } } }`;
const STATE = (e: { type: string }) => e.type !== 'PROGRESSED';
type Ev = { type: string; seq: number; node: { id: string; status: string } };
const states = (c: Collected<Ev>) => c.events.filter(STATE).map((e) => [e.seq, e.type, e.node.id]);

// Images in the database, or in a folder both replicas mount (each replica has its own data dir).
const IMAGE_STORES: [string, () => string[]][] = [
  ['images in the database', () => ['--image-store', 'database']],
  ['images in a shared folder', () => ['--images-dir', fs.mkdtempSync(path.join(os.tmpdir(), 'fisedit-shared-images-'))]],
];

describeWithService(postgresProbe(), 'API replicas on one PostgreSQL', () => {
  describeWithService(redisProbe(), 'and one Redis', () => {
    describe.each(IMAGE_STORES)('%s', (_name, imageStore) => {
      let pg: TestDatabase;
      let a: Replica;
      let b: Replica;
      let worker: ChildProcess;
      let alice: string;
      let bob: string;
      let treeId: string;
      let rootId: string;

      /** The tree's event log in the database: [seq, type, node id] in seq order. */
      async function logged(afterSeq = 0): Promise<[number, string, string][]> {
        const d = await pg.open();
        try {
          const rows = await d.db.treeEvent.findMany({ where: { treeId, seq: { gt: afterSeq } }, orderBy: { seq: 'asc' } });
          return rows.map((r) => [r.seq, r.type, (JSON.parse(r.payload) as Ev).node.id]);
        } finally {
          await d.close();
        }
      }

      beforeAll(async () => {
        pg = await postgresTestDatabase();
        const d = await pg.open();
        alice = (await createToken(d.db, 'alice')).token;
        bob = (await createToken(d.db, 'bob')).token;
        await d.close();
        const images = imageStore();
        a = await startReplica(pg.url, images);
        b = await startReplica(pg.url, images);
        worker = await startWorker(pg.url, images);
      }, 180_000);
      afterAll(async () => {
        for (const p of [a?.proc, b?.proc, worker]) p?.kill('SIGKILL');
        await pg?.destroy();
      });

      it('users on different replicas see each other\'s events live, in commit order, without gaps', async () => {
        const { generate: root } = await gqlOk(b.url, GENERATE, { input: { prompt: 'a red circle', seed: 4, steps: 3 } }, alice);
        rootId = root.id;
        treeId = root.tree.id;
        await gqlOk(b.url, 'mutation($t: ID!) { shareTree(treeId: $t, userName: "bob", role: EDITOR) { id } }', { t: treeId }, alice);
        const wsA = wsClient(a.wsUrl, alice);
        const wsB = wsClient(b.wsUrl, bob);
        const onA = collect<Ev>(wsA, EVENTS, { t: treeId, after: 0 });
        const onB = collect<Ev>(wsB, EVENTS, { t: treeId, after: 0 });
        await onA.until((e) => e.type === 'SUCCEEDED');
        await onB.until((e) => e.type === 'SUCCEEDED');

        // Four edits at once, two through each replica: their events are committed by both processes.
        const edits = await Promise.all([
          gqlOk(a.url, EDIT, { input: { parentId: rootId, prompt: 'a green circle' } }, alice),
          gqlOk(b.url, EDIT, { input: { parentId: rootId, prompt: 'a blue circle' } }, bob),
          gqlOk(b.url, EDIT, { input: { parentId: rootId, prompt: 'a yellow circle' } }, alice),
          gqlOk(a.url, EDIT, { input: { parentId: rootId, prompt: 'a red square' } }, bob),
        ]);
        const ids = edits.map((e) => e.edit.id as string);
        for (const c of [onA, onB]) for (const id of ids) await c.until((e) => e.type === 'SUCCEEDED' && e.node.id === id);

        const log = await logged();
        expect(log.map((r) => r[0])).toEqual(Array.from({ length: 3 + 3 * ids.length }, (_, i) => i + 1));
        expect(states(onA)).toEqual(log);
        expect(states(onB)).toEqual(log);
        for (const id of [rootId, ...ids]) expect(log.filter((r) => r[2] === id).map((r) => r[1])).toEqual(['CREATED', 'STARTED', 'SUCCEEDED']);
        // The replicas ran nothing: the worker did.
        const { node } = await gqlOk(a.url, 'query($id: ID!) { node(id: $id) { stats { worker } } }', { id: rootId }, alice);
        expect(node.stats.worker).toEqual(expect.any(String));
        onA.unsubscribe();
        onB.unsubscribe();
        await wsA.dispose();
        await wsB.dispose();
        expect([...onA.errors, ...onB.errors]).toEqual([]);
      }, 180_000);

      it('any replica serves any node\'s image; a URL signed by one works on the other', async () => {
        const q = 'query($id: ID!) { node(id: $id) { image { url thumbnailUrl width height } } }';
        const { node } = await gqlOk(b.url, q, { id: rootId }, alice);
        const signedOnB = new URL(node.image.url);
        expect(signedOnB.origin).toBe(b.url);
        const fromA = await fetch(`${a.url}${signedOnB.pathname}${signedOnB.search}`); // no Authorization: the signature alone
        const fromB = await fetch(node.image.url);
        expect([fromA.status, fromA.headers.get('content-type')]).toEqual([200, 'image/png']);
        const [bytesA, bytesB] = [Buffer.from(await fromA.arrayBuffer()), Buffer.from(await fromB.arrayBuffer())];
        expect(bytesA.equals(bytesB)).toBe(true);
        expect(fromA.headers.get('etag')).toBe(fromB.headers.get('etag'));
        const meta = await sharp(bytesA).metadata();
        expect([meta.width, meta.height]).toEqual([node.image.width, node.image.height]);
        const thumb = new URL(node.image.thumbnailUrl);
        const t = await fetch(`${a.url}${thumb.pathname}`, { headers: { authorization: `Bearer ${bob}` } });
        expect([t.status, t.headers.get('content-type')]).toEqual([200, 'image/webp']);
        // A signature for alice's URL does not open another node, on either replica.
        const tampered = await fetch(`${a.url}/images/not-a-node/image.png${signedOnB.search}`);
        expect(tampered.status).toBe(401);
      }, 60_000);

      it('kill -9 a replica: its client reconnects to the other and replays what it missed', async () => {
        const wsB = wsClient(b.wsUrl, bob);
        const before = collect<Ev>(wsB, EVENTS, { t: treeId, after: 0 });
        const last = (await logged()).at(-1)![0];
        await before.until((e) => e.seq === last && STATE(e));
        const seen = Math.max(...before.events.filter(STATE).map((e) => e.seq));

        b.proc.kill('SIGKILL');
        await before.done; // the socket dropped
        expect(before.errors.length).toBeGreaterThan(0);

        // While bob is away, alice edits through replica A.
        const missed: string[] = [];
        for (const prompt of ['a purple circle', 'a green square']) {
          const { edit } = await gqlOk(a.url, EDIT, { input: { parentId: rootId, prompt } }, alice);
          await waitForStatus(a.url, alice, edit.id, ['SUCCEEDED']);
          missed.push(edit.id);
        }

        const wsA = wsClient(a.wsUrl, bob);
        const again = collect<Ev>(wsA, EVENTS, { t: treeId, after: seen });
        const log = await logged(seen);
        await again.until((e) => e.seq === log.at(-1)![0] && STATE(e));
        expect(states(again)).toEqual(log);
        expect(log.map((r) => [r[1], r[2]])).toEqual(missed.flatMap((id) => [['CREATED', id], ['STARTED', id], ['SUCCEEDED', id]]));

        // …and is live again from there.
        const { edit: next } = await gqlOk(a.url, EDIT, { input: { parentId: rootId, prompt: 'a white circle' } }, alice);
        await again.until((e) => e.type === 'SUCCEEDED' && e.node.id === next.id);
        expect(states(again)).toEqual(await logged(seen));
        again.unsubscribe();
        await wsA.dispose();
        expect(again.errors).toEqual([]);
      }, 180_000);
    });
  });
});
