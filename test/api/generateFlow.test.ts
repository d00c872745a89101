// The vertical slice over real HTTP and WebSocket: token → generate → progress subscription →
// SUCCEEDED with an image URL that serves the PNG (with its parameters) to members only.
import sharp from 'sharp';
import { parsePngText } from '../../src/engine/image/png';
import { collect, gql, gqlOk, Harness, NODE_FIELDS, startHarness, waitForStatus, wsClient } from './harness';

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

  // Without credentials: 401; with a Bearer token of a non-member: 404, as for a missing node; the owner's token: 200.
  const bare = done.image.url.split('?')[0];
  expect((await fetch(bare)).status).toBe(401);
  const mallory = await h.token('mallory');
  expect((await fetch(bare, { headers: { authorization: `Bearer ${mallory}` } })).status).toBe(404);
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

const EDIT = `mutation($input: EditInput!) { edit(input: $input) { ${NODE_FIELDS} } }`;
const NODE_WITH_MASK = `query($id: ID!) { node(id: $id) { ${NODE_FIELDS} mask { url fraction } } }`;

async function pixels(url: string): Promise<{ data: Buffer; width: number; height: number; channels: number }> {
  const res = await fetch(url);
  expect(res.status).toBe(200);
  const { data, info } = await sharp(Buffer.from(await res.arrayBuffer())).raw().toBuffer({ resolveWithObject: true });
  return { data, width: info.width, height: info.height, channels: info.channels };
}

it('runs an edit with a mask as a sparse FISEdit edit: the image outside the mask is the parent’s, bit for bit', async () => {
  const alice = await h.token('alice');
  const { generate: root } = await gqlOk(h.url, GENERATE, { input: { prompt: 'a red circle on the left', seed: 5, steps: 6 } }, alice);
  expect((await waitForStatus(h.url, alice, root.id, ['SUCCEEDED', 'FAILED'])).status).toBe('SUCCEEDED');

  // White (may change) in image pixels [4, 16) × [4, 16) of the 32×32 image: 36 of 256 latent pixels.
  const W = 32;
  const grey = Buffer.alloc(W * W);
  for (let y = 4; y < 16; y++) for (let x = 4; x < 16; x++) grey[y * W + x] = 255;
  const maskPng = await sharp(grey, { raw: { width: W, height: W, channels: 1 } }).png().toBuffer();
  const { edit } = await gqlOk(h.url, EDIT, { input: { parentId: root.id, prompt: 'a blue square on the left', mask: maskPng.toString('base64') } }, alice);
  expect((await waitForStatus(h.url, alice, edit.id, ['SUCCEEDED', 'FAILED'])).status).toBe('SUCCEEDED');

  const { node: parent } = await gqlOk(h.url, NODE_WITH_MASK, { id: root.id }, alice);
  const { node: child } = await gqlOk(h.url, NODE_WITH_MASK, { id: edit.id }, alice);
  expect(child.stats.mode).toBe('SPARSE');
  expect(child.stats.maskedFraction).toBeCloseTo(36 / 256, 6);
  expect(child.stats.wallMs).toBeGreaterThan(0);
  expect(child.stats.denseEstimateMs).toBeCloseTo(parent.stats.wallMs, 6);
  expect(child.mask.fraction).toBeCloseTo(36 / 256, 6);

  // The saved mask is the user's area at latent resolution (2×2 image pixels per latent pixel here).
  const m = await pixels(child.mask.url);
  expect([m.width, m.height]).toEqual([W, W]);
  const inMask = (x: number, y: number) => m.data[(y * W + x) * m.channels] > 127;
  let active = 0;
  for (let y = 0; y < W; y++) for (let x = 0; x < W; x++) if (inMask(x, y)) active++;
  expect(active).toBe(12 * 12);

  // Outside the mask dilated by one latent pixel (the region the decode may touch) every byte is the parent's.
  const a = await pixels(parent.image.url);
  const b = await pixels(child.image.url);
  expect([b.width, b.height, b.channels]).toEqual([a.width, a.height, a.channels]);
  let outside = 0;
  let differInside = 0;
  for (let y = 0; y < W; y++) {
    for (let x = 0; x < W; x++) {
      let near = false;
      for (let dy = -2; dy <= 2 && !near; dy++) for (let dx = -2; dx <= 2 && !near; dx++) near = x + dx >= 0 && x + dx < W && y + dy >= 0 && y + dy < W && inMask(x + dx, y + dy);
      for (let c = 0; c < a.channels; c++) {
        const o = (y * W + x) * a.channels + c;
        if (!near) {
          outside++;
          if (a.data[o] !== b.data[o]) throw new Error(`pixel (${x}, ${y}) channel ${c} outside the mask: parent ${a.data[o]}, edit ${b.data[o]}`);
        } else if (a.data[o] !== b.data[o]) differInside++;
      }
    }
  }
  expect(outside).toBe((W * W - 16 * 16) * a.channels);
  expect(differInside).toBeGreaterThan(0);

  // The same prompt again: nothing to recompute, the result is the parent (mode PARENT, same image).
  const { edit: same } = await gqlOk(h.url, EDIT, { input: { parentId: root.id, prompt: 'a red circle on the left' } }, alice);
  expect((await waitForStatus(h.url, alice, same.id, ['SUCCEEDED', 'FAILED'])).status).toBe('SUCCEEDED');
  const { node: unchanged } = await gqlOk(h.url, NODE_WITH_MASK, { id: same.id }, alice);
  expect(unchanged.stats.mode).toBe('PARENT');
  expect(unchanged.stats.maskedFraction).toBe(0);
  expect((await pixels(unchanged.image.url)).data.equals(a.data)).toBe(true);

  // An edit of the sparse edit runs from the engine's record of it (latent strategy: no mask given).
  const { edit: grand } = await gqlOk(h.url, EDIT, { input: { parentId: edit.id, prompt: 'a blue square on the right' } }, alice);
  expect((await waitForStatus(h.url, alice, grand.id, ['SUCCEEDED', 'FAILED'])).status).toBe('SUCCEEDED');
  const { node: g } = await gqlOk(h.url, NODE_WITH_MASK, { id: grand.id }, alice);
  expect(['SPARSE', 'DENSE']).toContain(g.stats.mode);
  expect(g.stats.maskedFraction).toBeGreaterThan(0);
  expect(g.mask.fraction).toBe(g.stats.maskedFraction);

  // ATTENTION: the area comes from where the changed words attend; still a finished child of the tree.
  const { edit: att } = await gqlOk(h.url, EDIT, { input: { parentId: root.id, prompt: 'a red square on the left', strategy: 'ATTENTION' } }, alice);
  expect((await waitForStatus(h.url, alice, att.id, ['SUCCEEDED', 'FAILED'])).status).toBe('SUCCEEDED');
  const { node: at } = await gqlOk(h.url, NODE_WITH_MASK, { id: att.id }, alice);
  expect(['SPARSE', 'DENSE']).toContain(at.stats.mode);
  expect(at.mask.fraction).toBe(at.stats.maskedFraction);
});
