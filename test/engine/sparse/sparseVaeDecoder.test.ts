/** @jest-environment ./test/engine/runtime/ortTestEnvironment.js */
// The sparse VAE decoder (src/engine/sparse/sparseVaeDecoder.ts through RegionDecoder.decodeSparse) on the
// sd-narrow fixture VAE (4 levels, ×8, mid attention), against the plain decoder graph:
// - every pixel active, the child's own statistics: the sparse decode IS the full decode (float tolerance);
// - the parent's own latents on a partial mask: its rows are the parent's decode (the halos are the
//   parent's recorded inputs, fp16);
// - a real change inside a disc: inside the affected region the sparse decode is at least as close to
//   the child's full decode as the box decode with the parent's context (regionDecoder.ts) it replaces,
//   and the child's deltas / context cover exactly its active rows / changed tokens.
import * as path from 'node:path';
import { buildVaeDecoderGraph } from '../../../src/engine/arch/vaeDecoder';
import type { BinaryMask } from '../../../src/engine/mask/binaryMask';
import { loadModelFolder } from '../../../src/engine/model/modelFolder';
import { RegionDecoder } from '../../../src/engine/pipeline/regionDecoder';
import { planRegionDecode, planSparseDecode } from '../../../src/engine/pipeline/regionDecode';
import { gaussianFloat32 } from '../../../src/engine/random/gaussian';
import { createSession, float32Tensor, type OrtModelSession } from '../../../src/engine/runtime/ortSession';
import { decoderLevelMacs, decoderLevelOfPath } from '../../../src/engine/sparse/sparseVaeDecoder';
import { disc as discMask, rowsOf as latentRows, maxDiff } from './decoderFixtures';

const SD_NARROW = path.resolve(__dirname, '../../fixtures/models/sd-narrow');
const H = 16;
const W = 16;
const F = 8;
let decoder: RegionDecoder;
let plain: OrtModelSession;

beforeAll(async () => {
  const folder = loadModelFolder(SD_NARROW);
  decoder = await RegionDecoder.create(folder.vae.config, folder.vae.weights, { intraOpNumThreads: 1 });
  plain = await createSession(buildVaeDecoderGraph(folder.vae.config, folder.vae.weights).g.build(), { intraOpNumThreads: 1 });
});
afterAll(async () => {
  await decoder?.release();
  await plain?.release();
});

const plainDecode = async (z: Float32Array) => (await plain.run({ latents: float32Tensor(z, [1, 4, H, W]) })).image.data as Float32Array;

const disc = (cx: number, cy: number, r: number): BinaryMask => discMask(W, H, cx, cy, r);
/** z [4, H, W] at the active latent pixels, channels last. */
const rowsOf = (z: Float32Array, active: Int32Array) => latentRows(z, active, 4, H * W);
/** The full decode [3, H·F, W·F] at level-0 active pixels → [N, 3]. */
const imageRows = (image: Float32Array, active: Int32Array) => latentRows(image, active, 3, H * F * W * F);


test('conv paths map to the decoder levels (image = 0, latent = 3) and the MACs per level follow the widths', () => {
  expect(decoderLevelOfPath('decoder.conv_in', 4)).toBe(3);
  expect(decoderLevelOfPath('decoder.mid_block.resnets.1.conv2', 4)).toBe(3);
  expect(decoderLevelOfPath('decoder.up_blocks.0.resnets.2.conv1', 4)).toBe(3);
  expect(decoderLevelOfPath('decoder.up_blocks.0.upsamplers.0.conv', 4)).toBe(2);
  expect(decoderLevelOfPath('decoder.up_blocks.3.resnets.0.conv1', 4)).toBe(0);
  expect(decoderLevelOfPath('decoder.conv_out', 4)).toBe(0);
  expect(() => decoderLevelOfPath('encoder.conv_in', 4)).toThrow(/no decoder level/);
  // SD 1.5's VAE at 256 px: ~304 GMAC, 70 % of it at the two finest levels
  const sd = decoderLevelMacs({ blockOutChannels: [128, 256, 512, 512], layersPerBlock: 2, latentChannels: 4, outChannels: 3, normNumGroups: 32 } as never, 256 * 256);
  const total = sd.reduce((a, b) => a + b, 0);
  expect(total / 1e9).toBeGreaterThan(290);
  expect(total / 1e9).toBeLessThan(320);
  expect((sd[0] + sd[1]) / total).toBeGreaterThan(0.65);
});

test('every pixel active with the child’s own context: the sparse decode is the full decode', async () => {
  const z = gaussianFloat32(21n, 4 * H * W);
  const rec = await decoder.decodeRecording(z, H, W);
  const all = { width: W, height: H, data: new Uint8Array(H * W).fill(1) };
  const plan = planSparseDecode(all, F, decoder.levelMacs);
  expect(plan.levels.every((l) => l.fraction === 1)).toBe(true);
  const feed = decoder.preparePyramid(plan.levels);
  const r = await decoder.decodeSparse(feed, rowsOf(z, plan.levels[3].active), rec.context, plan.changed, async (n) => rec.entries.get(n)!.data);
  expect(maxDiff(r.rows, imageRows(await plainDecode(z), plan.levels[0].active))).toBeLessThan(1e-4);
  expect(maxDiff(r.context.k, rec.context.k)).toBeLessThan(1e-4);
});

test("the parent's own latents on a partial mask: the rows are the parent's decode", async () => {
  const z = gaussianFloat32(22n, 4 * H * W);
  const rec = await decoder.decodeRecording(z, H, W);
  const plan = planSparseDecode(disc(5, 9, 3), F, decoder.levelMacs);
  expect(plan.levels[0].fraction).toBeLessThan(0.5);
  const feed = decoder.preparePyramid(plan.levels);
  const r = await decoder.decodeSparse(feed, rowsOf(z, plan.levels[3].active), rec.context, plan.changed, async (n) => rec.entries.get(n)!.data);
  // fp16 halos: ~1e-3 relative
  expect(maxDiff(r.rows, imageRows(rec.image, plan.levels[0].active))).toBeLessThan(2e-2);
  expect(r.deltas.size).toBe(decoder.convInputs.length);
  for (const e of decoder.convInputs) expect(r.deltas.get(e.name)!.rows).toBe(plan.levels[e.level].active);
});

test('a change inside a disc: at least as close to the child’s full decode as the box decode, and the child context changes only there', async () => {
  const parentZ = gaussianFloat32(23n, 4 * H * W);
  const mask = disc(6, 8, 2.5);
  const childZ = Float32Array.from(parentZ);
  const other = gaussianFloat32(24n, 4 * H * W);
  for (let c = 0; c < 4; c++) for (let p = 0; p < H * W; p++) if (mask.data[p]) childZ[c * H * W + p] = other[c * H * W + p];
  const parent = await decoder.decodeRecording(parentZ, H, W);
  const truth = await plainDecode(childZ);

  const plan = planSparseDecode(mask, F, decoder.levelMacs);
  const feed = decoder.preparePyramid(plan.levels);
  const sparse = await decoder.decodeSparse(feed, rowsOf(childZ, plan.levels[3].active), parent.context, plan.changed, async (n) => parent.entries.get(n)!.data);
  const box = planRegionDecode(mask, F, { mode: 'crop', dilate: 1 });
  expect(box.affected.data).toEqual(plan.affected.data);
  const crop = new Float32Array(4 * box.box.width * box.box.height);
  for (let c = 0; c < 4; c++) for (let y = 0; y < box.box.height; y++) for (let x = 0; x < box.box.width; x++) crop[(c * box.box.height + y) * box.box.width + x] = childZ[c * H * W + (box.box.y + y) * W + box.box.x + x];
  const boxed = await decoder.decodeBox(crop, box.box, parent.context, box.changed);

  const IW = W * F;
  const plane = H * F * IW;
  const bw = box.box.width * F;
  const bh = box.box.height * F;
  let sparseErr = 0;
  let boxErr = 0;
  let n = 0;
  for (let p = 0; p < plane; p++) {
    if (!plan.affected.data[p]) continue;
    const y = Math.floor(p / IW);
    const x = p % IW;
    const r = plan.levels[0].rowOf[p];
    const b = (y - box.box.y * F) * bw + (x - box.box.x * F);
    for (let c = 0; c < 3; c++) {
      sparseErr += Math.abs(sparse.rows[r * 3 + c] - truth[c * plane + p]);
      boxErr += Math.abs(boxed.image[c * bw * bh + b] - truth[c * plane + p]);
      n++;
    }
  }
  sparseErr /= n;
  boxErr /= n;
  // What is left is the parent's statistics and outside tokens standing in for the child's (both
  // decodes make that approximation): on this random-weight VAE with Gaussian latents ~5/255 even when
  // the box is the whole latent (bench/edit/decodeMargin.ts). In [-1, 1] units: 0.05 = 6.4/255.
  expect(sparseErr).toBeLessThan(0.05);
  expect(sparseErr).toBeLessThanOrEqual(boxErr * 1.05);
  expect(plan.macFraction).toBeLessThan(0.6);
  // context: keys replaced exactly at the changed tokens
  const C = decoder.attentionChannels;
  for (let t = 0; t < H * W; t++) {
    const same = sparse.context.k.subarray(t * C, (t + 1) * C).every((v, i) => v === parent.context.k[t * C + i]);
    expect([t, same]).toEqual([t, !plan.changed.data[t]]);
  }
  console.log(`sparse ${(sparseErr * 127.5).toFixed(2)}/255, box ${(boxErr * 127.5).toFixed(2)}/255, MAC share ${(100 * plan.macFraction).toFixed(1)} %`);
});
