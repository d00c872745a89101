// The vertical slice over real HTTP and WebSocket: token → generate → progress subscription →
// SUCCEEDED with an image URL that serves the PNG (with its parameters) to members only.
import { parsePngText } from '../../src/engine/image/png';
import { collect, gql, gqlOk, Harness, NODE_FIELDS, startHarness, wsClient } from './harness';

let h: Harness;
beforeAll(async () => {
  h = await startHarness();
});
afterAll(async () => {
  await h?.stop();
});

const GENERATE = `mutation($input: GenerateInput!) { generate(input: $input) { ${NODE_FIELDS} } }`;
const PROGRESS = `subscription($id: ID!) { nodeProgress(nodeId: $id) { nodeId seq step totalSteps phase status etaMs preview maskedFraction } }`;

it('generates: QUEUED at once, progress with previews over WebSocket, then SUCCEEDED with a served PNG', async () => {
  const alice = await h.token('alice');
  // The mutation answers before any work is done (latency itself is measured by bench/api).
  const { generate: node } = await gqlOk(h.url, GENERATE, { input: { prompt: 'a red circle on the left', seed: 42, steps: 8, title: 'circles' } }, alice);
  expect(node.status).toBe('QUEUED');
  expect(node).toMatchObject({ prompt: 'a red circle on the left', seed: 42, steps: 8, guidance: 7.5, scheduler: 'DPMPP_2M', width: 32, height: 32, depth: 0, image: null, parent: null });
  expect(node.tree).toMatchObject({ title: 'circles', myRole: 'OWNER' });

  const client = wsClient(h.wsUrl, alice);
  const sub = collect<any>(client, PROGRESS, { id: node.id });
  const last = await sub.until((e) => e.phase === 'DONE');
  await sub.done;
  await client.dispose();
  expect(sub.errors).toEqual([]);
  expect(last.status).toBe('SUCCEEDED');
  const seqs = sub.events.map((e) => e.seq);
  expect([...seqs].sort((a, b) => a - b)).toEqual(seqs);
  expect(new Set(seqs).size).toBe(seqs.length);
  // The subscription may start after some steps ran; whatever it saw is ordered and ends at step 8.
  const steps = sub.events.filter((e) => e.phase === 'DENOISING' || e.phase === 'DECODING').map((e) => e.step);
  expect([...steps].sort((a, b) => a - b)).toEqual(steps);
  expect(last.step).toBe(8);
  expect(sub.events.some((e) => typeof e.preview === 'string' && e.preview.startsWith('data:image/webp;base64,')) || steps.length === 0).toBe(true);

  const { node: done } = await gqlOk(h.url, `query($id: ID!) { node(id: $id) { ${NODE_FIELDS} } }`, { id: node.id }, alice);
  expect(done.status).toBe('SUCCEEDED');
  expect(done.stats.mode).toBe('DENSE');
  expect(done.stats.wallMs).toBeGreaterThan(0);
  expect(done.image).toMatchObject({ width: 32, height: 32 });

  // The signed URL works without a header (an <img> tag) and carries the parameters in the PNG.
  const img = await fetch(done.image.url);
  expect(img.status).toBe(200);
  expect(img.headers.get('content-type')).toBe('image/png');
  const png = new Uint8Array(await img.arrayBuffer());
  expect(parsePngText(png)).toMatchObject({ prompt: 'a red circle on the left', seed: '42', steps: '8', scheduler: 'dpmpp-2m' });
  const thumb = await fetch(done.image.thumbnailUrl);
  expect(thumb.status).toBe(200);
  expect(thumb.headers.get('content-type')).toBe('image/webp');

  // Without credentials: 401; with a Bearer token of a non-member: 403; the owner's token: 200.
  const bare = done.image.url.split('?')[0];
  expect((await fetch(bare)).status).toBe(401);
  const mallory = await h.token('mallory');
  expect((await fetch(bare, { headers: { authorization: `Bearer ${mallory}` } })).status).toBe(403);
  expect((await fetch(bare, { headers: { authorization: `Bearer ${alice}` } })).status).toBe(200);
  // A tampered signature is refused.
  expect((await fetch(done.image.url.replace(/sig=[^&]+/, 'sig=AAAA'))).status).toBe(401);
});

it('answers unauthenticated requests with UNAUTHENTICATED', async () => {
  const r = await gql(h.url, '{ me { name } }', {}, null);
  expect(r.errors?.[0].extensions?.code).toBe('UNAUTHENTICATED');
  const bad = await gql(h.url, '{ me { name } }', {}, 'fse_not-a-real-token');
  expect(bad.errors?.[0].extensions?.code).toBe('UNAUTHENTICATED');
});
