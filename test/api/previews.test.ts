// Issue 15 item 5 over the real WebSocket: step previews show the model's own colours (the last preview
// is the final image), edits send previews too, and the ETA of a job comes from measured step times of
// that kind of job (known from its first step once one such job ran).
import sharp from 'sharp';
import { rgbPreviewDataUrl } from '../../src/service/inference/latentPreview';
import { collect, gqlOk, Harness, startHarness, waitForStatus, wsClient } from './harness';

let h: Harness;
let alice: string;
beforeAll(async () => {
  h = await startHarness();
  alice = await h.token('alice');
});
afterAll(async () => {
  await h?.stop();
});

const GENERATE = `mutation($input: GenerateInput!) { generate(input: $input) { id } }`;
const EDIT = `mutation($input: EditInput!) { edit(input: $input) { id } }`;
const PROGRESS = `subscription($id: ID!) { nodeProgress(nodeId: $id) { step totalSteps phase status etaMs preview } }`;
const IMAGE = `query($id: ID!) { node(id: $id) { image { url } } }`;

async function watch(id: string) {
  const ws = wsClient(h.wsUrl, alice);
  const sub = collect<any>(ws, PROGRESS, { id });
  await sub.until((e) => e.phase === 'DONE');
  await ws.dispose();
  return sub.events;
}

/** A preview data URL's pixels. */
async function previewPixels(preview: string) {
  return sharp(Buffer.from(preview.split(',')[1], 'base64')).removeAlpha().raw().toBuffer({ resolveWithObject: true });
}

/**
 * Mean absolute difference (0–255) between a preview and the node's final image at the preview's size, and
 * the floor for it: the final image itself sent through the preview's encoding (a 32-px lossy WebP alone
 * is ~5–12 off on the tiny model's noisy images).
 */
async function previewError(preview: string, nodeId: string): Promise<{ error: number; floor: number }> {
  const p = await previewPixels(preview);
  const { node } = await gqlOk(h.url, IMAGE, { id: nodeId }, alice);
  const png = Buffer.from(await (await fetch(node.image.url)).arrayBuffer());
  const full = await sharp(png).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  const img = await sharp(png).removeAlpha().resize(p.info.width, p.info.height, { kernel: 'cubic', fit: 'fill' }).raw().toBuffer();
  const viaPreview = await previewPixels(await rgbPreviewDataUrl(new Uint8Array(full.data), full.info.width, full.info.height, full.info.width, full.info.height, { maxSide: 256 }));
  const mad = (a: Buffer) => {
    let sum = 0;
    for (let i = 0; i < img.length; i++) sum += Math.abs(img[i] - a[i]);
    return sum / img.length;
  };
  return { error: mad(p.data), floor: mad(viaPreview.data) };
}

it('the last preview of a generation and of an edit is their final image; edits stream previews', async () => {
  const { generate: root } = await gqlOk(h.url, GENERATE, { input: { prompt: 'a red circle on the left', seed: 4, steps: 8 } }, alice);
  const gen = await watch(root.id);
  const genPreviews = gen.filter((e) => e.preview);
  expect(genPreviews.length).toBeGreaterThan(0);
  const lastGen = genPreviews[genPreviews.length - 1];
  expect(lastGen.step).toBe(8);
  // The tiny model's own decoder draws the preview: only WebP's loss remains (a linear map was ~20+ off).
  // The tiny model's own decoder draws the preview: the last one is the final image, up to its encoding.
  const g = await previewError(lastGen.preview, root.id);
  expect(g.error).toBeLessThanOrEqual(g.floor + 0.5);

  const { edit } = await gqlOk(h.url, EDIT, { input: { parentId: root.id, prompt: 'a blue square on the left' } }, alice);
  const ed = await watch(edit.id);
  expect(ed.some((e) => e.phase === 'DONE' && e.status === 'SUCCEEDED')).toBe(true);
  const edPreviews = ed.filter((e) => e.preview);
  expect(edPreviews.length).toBeGreaterThan(0);
  const lastEdit = edPreviews[edPreviews.length - 1];
  expect(lastEdit.step).toBe(lastEdit.totalSteps);
  // The edit's preview decodes its whole latent (the parent's outside the area); the result decodes the
  // area alone: a few levels of difference at the area's edge at most.
  const e = await previewError(lastEdit.preview, edit.id);
  expect(e.error).toBeLessThanOrEqual(e.floor + 3);
});

it('knows the ETA from the first step once a job of that kind has run', async () => {
  const run = async (seed: number) => {
    // Queued behind a longer job, so the subscription is live before this job's first step: a loaded
    // machine could otherwise run step 1 before the subscription starts, and the test would miss it.
    await gqlOk(h.url, GENERATE, { input: { prompt: 'a gray square', seed: 100 + seed, steps: 60, width: 32, height: 32 } }, alice);
    const { generate } = await gqlOk(h.url, GENERATE, { input: { prompt: 'a green circle', seed, steps: 10, width: 32, height: 32 } }, alice);
    const ev = await watch(generate.id);
    await waitForStatus(h.url, alice, generate.id, ['SUCCEEDED']);
    return ev.filter((e) => e.phase === 'DENOISING' || e.phase === 'DECODING');
  };
  await run(1);
  const second = await run(2);
  const first = second.find((e) => e.step >= 1)!;
  expect(first.step).toBe(1);
  expect(first.etaMs).not.toBeNull();
  expect(first.etaMs).toBeGreaterThan(0);
  // It falls as the steps go by (remaining steps × a measured per-step time + the tail).
  const etas = second.map((e) => e.etaMs as number);
  expect(etas[etas.length - 1]).toBeLessThan(etas[0]);
});
