/** @jest-environment ./test/engine/runtime/ortTestEnvironment.js */
// The sparse decoder session keeps onnxruntime's memory arena by default (SPARSE_DECODER_ARENA, issue 20):
// reusing blocks from run to run must not change a value. On the sd-narrow fixture VAE: every pixel active
// with the image's own context is the plain decoder graph (the independent reference), after the arena
// has served larger and smaller decodes; and a sequence of discs of different sizes (blocks reused for
// other shapes) gives the bits a session without an arena gives.
import * as path from 'node:path';
import { buildVaeDecoderGraph } from '../../../src/engine/arch/vaeDecoder';
import type { BinaryMask } from '../../../src/engine/mask/binaryMask';
import { loadModelFolder } from '../../../src/engine/model/modelFolder';
import { planSparseDecode } from '../../../src/engine/pipeline/regionDecode';
import { RegionDecoder, SPARSE_DECODER_ARENA } from '../../../src/engine/pipeline/regionDecoder';
import { gaussianFloat32 } from '../../../src/engine/random/gaussian';
import { createSession, float32Tensor, type OrtModelSession } from '../../../src/engine/runtime/ortSession';
import { disc as discMask, rowsOf as latentRows } from '../sparse/decoderFixtures';

const SD_NARROW = path.resolve(__dirname, '../../fixtures/models/sd-narrow');
const H = 16;
const W = 16;
const F = 8;
let arena: RegionDecoder;
let noArena: RegionDecoder;
let plain: OrtModelSession;

beforeAll(async () => {
  const folder = loadModelFolder(SD_NARROW);
  arena = await RegionDecoder.create(folder.vae.config, folder.vae.weights, { intraOpNumThreads: 1 });
  noArena = await RegionDecoder.create(folder.vae.config, folder.vae.weights, { intraOpNumThreads: 1, sparseArena: false });
  plain = await createSession(buildVaeDecoderGraph(folder.vae.config, folder.vae.weights).g.build(), { intraOpNumThreads: 1 });
});
afterAll(async () => {
  await Promise.all([arena?.release(), noArena?.release(), plain?.release()]);
});

const disc = (cx: number, cy: number, r: number): BinaryMask => discMask(W, H, cx, cy, r);
/** z [4, H, W] at the active latent pixels, channels last. */
const rowsOf = (z: Float32Array, active: Int32Array) => latentRows(z, active, 4, H * W);
async function sparseDecode(d: RegionDecoder, parentZ: Float32Array, childZ: Float32Array, mask: BinaryMask) {
  const parent = await d.decodeRecording(parentZ, H, W);
  const plan = planSparseDecode(mask, F, d.levelMacs);
  const r = await d.decodeSparse(d.preparePyramid(plan.levels), rowsOf(childZ, plan.levels[3].active), parent.context, plan.changed, async (n) => parent.entries.get(n)!.data);
  return { rows: r.rows, plan };
}

test('the arena is the default', () => {
  expect(SPARSE_DECODER_ARENA).toBe(true);
});

test('discs of changing sizes on one session: the same bits with and without the arena', async () => {
  const parentZ = gaussianFloat32(41n, 4 * H * W);
  const other = gaussianFloat32(42n, 4 * H * W);
  for (const [cx, cy, r] of [[6, 8, 4.5], [10, 5, 1.5], [7, 7, 3], [9, 9, 5.5]]) {
    const mask = disc(cx, cy, r);
    const childZ = Float32Array.from(parentZ);
    for (let c = 0; c < 4; c++) for (let p = 0; p < H * W; p++) if (mask.data[p]) childZ[c * H * W + p] = other[c * H * W + p];
    const a = await sparseDecode(arena, parentZ, childZ, mask);
    const b = await sparseDecode(noArena, parentZ, childZ, mask);
    expect(a.plan.levels[0].fraction).toBeLessThan(1);
    expect(a.rows.length).toBe(3 * a.plan.levels[0].active.length);
    expect(Buffer.from(a.rows.buffer, a.rows.byteOffset, a.rows.byteLength).equals(Buffer.from(b.rows.buffer, b.rows.byteOffset, b.rows.byteLength))).toBe(true);
  }
});

test('after the arena served other shapes, every pixel active is still the plain decode', async () => {
  const z = gaussianFloat32(43n, 4 * H * W);
  const all = { width: W, height: H, data: new Uint8Array(H * W).fill(1) };
  const { rows, plan } = await sparseDecode(arena, z, z, all);
  expect(plan.levels.every((l) => l.fraction === 1)).toBe(true);
  const image = (await plain.run({ latents: float32Tensor(z, [1, 4, H, W]) })).image.data as Float32Array;
  const plane = H * F * W * F;
  let max = 0;
  plan.levels[0].active.forEach((p, r) => {
    for (let c = 0; c < 3; c++) max = Math.max(max, Math.abs(rows[r * 3 + c] - image[c * plane + p]));
  });
  // The parent's recorded halos are fp16, but with every pixel active no halo is read: float tolerance.
  expect(max).toBeLessThan(1e-4);
});
