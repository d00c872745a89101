import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as zlib from 'node:zlib';
import sharp from 'sharp';
import { crc32, imageTensorToRgb, insertTextChunks, parsePngText, PngError, readPngText, writePng } from '../../../src/engine/image/png';

const dir = mkdtempSync(join(tmpdir(), 'fisedit-png-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('imageTensorToRgb (diffusers postprocess)', () => {
  test('maps −1 → 0, 0 → 128 (127.5 rounds half to even), 1 → 255 and clamps outside [−1, 1]', () => {
    const img = new Float32Array([-1, 0, 1, -3, 2.5, 0.5]); // c=1, h=1, w=6
    expect(Array.from(imageTensorToRgb(img, 1, 1, 6))).toEqual([0, 128, 255, 0, 255, 191]); // 0.75·255 = 191.25
  });

  test('NCHW planes become interleaved HWC pixels', () => {
    // c=3, h=1, w=2: R plane [−1, 1], G plane [0, 0], B plane [1, −1]
    const img = new Float32Array([-1, 1, 0, 0, 1, -1]);
    expect(Array.from(imageTensorToRgb(img, 3, 1, 2))).toEqual([0, 128, 255, 255, 128, 0]);
  });

  test('agrees with a float64 (x/2+0.5)·255 to within rounding, and refuses NaN and bad sizes', () => {
    const img = Float32Array.from({ length: 3 * 4 * 5 }, (_, i) => Math.sin(i * 1.7) * 1.1);
    const rgb = imageTensorToRgb(img, 3, 4, 5);
    for (let p = 0; p < 20; p++) {
      for (let c = 0; c < 3; c++) {
        const want = Math.min(1, Math.max(0, img[c * 20 + p] / 2 + 0.5)) * 255;
        expect(Math.abs(rgb[p * 3 + c] - want)).toBeLessThanOrEqual(0.5 + 1e-4);
      }
    }
    expect(() => imageTensorToRgb(new Float32Array([NaN]), 1, 1, 1)).toThrow(/NaN/);
    expect(() => imageTensorToRgb(new Float32Array(5), 3, 1, 2)).toThrow(RangeError);
  });
});

describe('PNG with text metadata', () => {
  test('crc32 matches the check value and zlib', () => {
    expect(crc32(Buffer.from('123456789'))).toBe(0xcbf43926);
    const data = Buffer.from('IHDR and some more bytes \u00ff', 'latin1');
    expect(crc32(data)).toBe((zlib as unknown as { crc32(d: Uint8Array): number }).crc32(data));
  });

  test('round trip: pixels through sharp, text chunks right after IHDR, unicode via iTXt', async () => {
    const w = 7;
    const h = 5;
    const rgb = Uint8Array.from({ length: w * h * 3 }, (_, i) => (i * 37) % 256);
    const meta = { prompt: 'a red circle, café', negative: '', seed: '18446744073709551615', steps: '20', prompt2: '猫 on a mat ✓' };
    const file = join(dir, 'a.png');
    await writePng(file, rgb, w, h, meta);

    expect(readPngText(file)).toEqual(meta);

    const { data, info } = await sharp(file).raw().toBuffer({ resolveWithObject: true });
    expect([info.width, info.height, info.channels]).toEqual([w, h, 3]);
    expect(new Uint8Array(data)).toEqual(rgb);

    // chunk order: IHDR, then our five text chunks
    const buf = readFileSync(file);
    const types: string[] = [];
    for (let pos = 8; pos < buf.length; pos += 12 + buf.readUInt32BE(pos)) types.push(buf.toString('latin1', pos + 4, pos + 8));
    expect(types.slice(0, 6)).toEqual(['IHDR', 'tEXt', 'tEXt', 'tEXt', 'tEXt', 'iTXt']);
    expect(types[types.length - 1]).toBe('IEND');
  });

  test('reads zTXt and compressed iTXt written by other tools', async () => {
    const png = await sharp({ create: { width: 2, height: 2, channels: 3, background: '#102030' } }).png().toBuffer();
    const z = zlib.deflateSync(Buffer.from('zipped latin1 \u00e9', 'latin1'));
    const ztxt = Buffer.concat([Buffer.from('Comment\0\0', 'latin1'), z]);
    const itxt = Buffer.concat([Buffer.from('Title\0\x01\0en\0Titel\0', 'latin1'), zlib.deflateSync(Buffer.from('zipped utf8 ✓'))]);
    const chunk = (type: string, d: Buffer) => {
      const c = Buffer.alloc(12 + d.length);
      c.writeUInt32BE(d.length, 0);
      c.write(type, 4, 'latin1');
      d.copy(c, 8);
      c.writeUInt32BE(crc32(c.subarray(4, 8 + d.length)), 8 + d.length);
      return c;
    };
    const withText = Buffer.concat([png.subarray(0, 33), chunk('zTXt', ztxt), chunk('iTXt', itxt), png.subarray(33)]);
    expect(parsePngText(withText)).toEqual({ Comment: 'zipped latin1 é', Title: 'zipped utf8 ✓' });
  });

  test('corruption and bad keywords are reported with the file name', async () => {
    const png = insertTextChunks(await sharp({ create: { width: 1, height: 1, channels: 3, background: '#000' } }).png().toBuffer(), { k: 'v' });
    const bad = Buffer.from(png);
    bad[42] ^= 0xff; // inside the tEXt data (chunk at 33: length, type, then data from 41)
    const file = join(dir, 'bad.png');
    writeFileSync(file, bad);
    expect(() => readPngText(file)).toThrow(/bad\.png: CRC mismatch in chunk tEXt/);
    expect(() => readPngText(join(dir, 'missing.png'))).toThrow(PngError);
    expect(() => parsePngText(Buffer.from('not a png at all'))).toThrow(/bad signature/);
    expect(() => insertTextChunks(png, { ' lead': 'x' })).toThrow(/invalid PNG text keyword/);
    expect(() => insertTextChunks(png, { k: 'a\0b' })).toThrow(/NUL/);
  });

  test('refuses a pixel buffer that does not match the size', async () => {
    await expect(writePng(join(dir, 'x.png'), new Uint8Array(10), 2, 2)).rejects.toThrow(/cannot encode 10 bytes as a 2×2 image/);
  });
});
