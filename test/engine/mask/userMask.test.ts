import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import sharp from 'sharp';
import { maskFromRgba, readUserMask, UserMaskError, writeMaskPng } from '../../../src/engine/mask/userMask';

let dir: string;
beforeAll(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), 'usermask-'))));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

async function writeGrey(file: string, w: number, h: number, value: (x: number, y: number) => number): Promise<string> {
  const px = Buffer.alloc(w * h);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) px[y * w + x] = value(x, y);
  const f = path.join(dir, file);
  await sharp(px, { raw: { width: w, height: h, channels: 1 } }).png().toFile(f);
  return f;
}

describe('readUserMask', () => {
  test('grey PNG: threshold at 50 %, any pixel of an 8×8 patch activates the latent pixel', async () => {
    // 64×64 image → 8×8 latent. One pixel at 128 in patch (1, 2); 127 in patch (5, 5) stays off; a block in (0, 0).
    const f = await writeGrey('a.png', 64, 64, (x, y) => (x === 13 && y === 17 ? 128 : x === 45 && y === 44 ? 127 : x < 3 && y < 3 ? 255 : 0));
    const m = await readUserMask(f, { imageWidth: 64, imageHeight: 64, factor: 8 });
    expect([m.width, m.height]).toEqual([8, 8]);
    const on = Array.from(m.data.keys()).filter((p) => m.data[p]);
    expect(on).toEqual([0, 2 * 8 + 1]);
  });

  test('RGBA PNG: transparent means keep even if the colour is white; opaque white means edit', async () => {
    const w = 16;
    const px = Buffer.alloc(w * w * 4);
    for (let p = 0; p < w * w; p++) {
      px.fill(255, p * 4, p * 4 + 3); // white everywhere
      px[p * 4 + 3] = p % w < 8 ? 255 : 0; // opaque on the left half only
    }
    const f = path.join(dir, 'rgba.png');
    await sharp(px, { raw: { width: w, height: w, channels: 4 } }).png().toFile(f);
    const m = await readUserMask(f, { imageWidth: 16, imageHeight: 16, factor: 2 });
    for (let y = 0; y < 8; y++) for (let x = 0; x < 8; x++) expect(m.data[y * 8 + x]).toBe(x < 4 ? 1 : 0);
  });

  test('16-bit grey PNG is read at 8 bits: 128·257 on, 127·257 off', async () => {
    const w = 16;
    const px = Uint16Array.from({ length: w * 8 }, (_, i) => ((i % w) < 8 ? 128 * 257 : 127 * 257));
    const f = path.join(dir, 'grey16.png');
    await sharp(px, { raw: { width: w, height: 8, channels: 1 } }) // a Uint16Array input makes sharp read 16-bit samples
      .toColourspace('grey16').png().toFile(f);
    expect((await sharp(f).metadata()).depth).toBe('ushort');
    const m = await readUserMask(f, { imageWidth: 16, imageHeight: 8, factor: 4 });
    expect(Array.from(m.data)).toEqual([1, 1, 0, 0, 1, 1, 0, 0]);
  });

  test('maskFromRgba: BT.601 luma × alpha against 127.5', () => {
    const rgba = Uint8Array.from([255, 255, 255, 255, 255, 0, 0, 255, 0, 255, 0, 255, 255, 255, 255, 127, 255, 255, 255, 128]);
    // white → on; pure red (luma 76) → off; pure green (luma 150) → on; white at alpha 127 → off; 128 → on.
    expect(Array.from(maskFromRgba(rgba, 5, 1).data)).toEqual([1, 0, 1, 0, 1]);
  });

  test('a mask of the wrong size names both sizes', async () => {
    const f = await writeGrey('wrong.png', 100, 80, () => 255);
    const err = await readUserMask(f, { imageWidth: 64, imageHeight: 64, factor: 8 }).catch((e) => e);
    expect(err).toBeInstanceOf(UserMaskError);
    expect(err.message).toBe(`${f}: mask is 100x80, the image is 64x64`);
  });

  test('missing, unreadable and misaligned inputs are UserMaskErrors', async () => {
    const missing = path.join(dir, 'nope.png');
    await expect(readUserMask(missing, { imageWidth: 64, imageHeight: 64, factor: 8 })).rejects.toThrow(/cannot read the mask file/);
    const junk = path.join(dir, 'junk.png');
    fs.writeFileSync(junk, 'not a png');
    await expect(readUserMask(junk, { imageWidth: 64, imageHeight: 64, factor: 8 })).rejects.toThrow(/not a readable image/);
    await expect(readUserMask(junk, { imageWidth: 60, imageHeight: 64, factor: 8 })).rejects.toThrow(/not divisible by the latent factor 8/);
  });

  test('writeMaskPng then readUserMask round-trips a latent mask', async () => {
    const m = { width: 8, height: 4, data: Uint8Array.from({ length: 32 }, (_, i) => ((i * 7) % 5 === 0 ? 1 : 0)) };
    const f = path.join(dir, 'saved.png');
    await writeMaskPng(m, f, 8);
    const meta = await sharp(f).metadata();
    expect([meta.width, meta.height]).toEqual([64, 32]);
    const back = await readUserMask(f, { imageWidth: 64, imageHeight: 32, factor: 8 });
    expect(Array.from(back.data)).toEqual(Array.from(m.data));
  });
});
