// Image output: the VAE decoder's [1, C, H, W] tensor in ~[−1, 1] → 8-bit pixels → PNG with text metadata.
// sharp encodes the pixels; it cannot write arbitrary text chunks, so we insert them ourselves right after
// IHDR (tEXt for Latin-1 values, iTXt/UTF-8 otherwise) and read them back with readPngText.
import { readFileSync, writeFileSync } from 'node:fs';
import { inflateSync } from 'node:zlib';
import sharp from 'sharp';

export class PngError extends Error {
  constructor(readonly file: string, reason: string) {
    super(`${file}: ${reason}`);
    this.name = 'PngError';
  }
}

/** numpy's round(): half to even. */
function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/**
 * diffusers' postprocess: (x/2 + 0.5).clamp(0, 1), then numpy_to_pil's (x·255).round() to uint8, all in
 * float32 with numpy's half-to-even rounding. Input NCHW [1, c, h, w]; output interleaved HWC [h, w, c].
 */
export function imageTensorToRgb(image: Float32Array, c: number, h: number, w: number): Uint8Array {
  if (image.length !== c * h * w) throw new RangeError(`imageTensorToRgb: expected ${c}·${h}·${w} = ${c * h * w} values, got ${image.length}`);
  const f32 = Math.fround;
  const out = new Uint8Array(h * w * c);
  const plane = h * w;
  for (let ch = 0; ch < c; ch++) {
    for (let p = 0; p < plane; p++) {
      const x = image[ch * plane + p];
      // NaN would pass a clamp written with comparisons; refuse to turn it into a silent black pixel.
      if (Number.isNaN(x)) throw new RangeError(`imageTensorToRgb: NaN in the decoded image (channel ${ch}, pixel ${p})`);
      const v = Math.min(1, Math.max(0, f32(f32(x / 2) + 0.5)));
      out[p * c + ch] = roundHalfEven(f32(v * 255));
    }
  }
  return out;
}

// ---- CRC-32 (ISO 3309 / PNG spec annex D) ----
const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

export function crc32(bytes: Uint8Array, crc = 0): number {
  let c = ~crc >>> 0;
  for (let i = 0; i < bytes.length; i++) c = CRC_TABLE[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return ~c >>> 0;
}

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

function makeChunk(type: string, data: Uint8Array): Buffer {
  const out = Buffer.alloc(12 + data.length);
  out.writeUInt32BE(data.length, 0);
  out.write(type, 4, 'latin1');
  out.set(data, 8);
  out.writeUInt32BE(crc32(out.subarray(4, 8 + data.length)), 8 + data.length);
  return out;
}

function isLatin1(s: string): boolean {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) > 0xff) return false;
  return true;
}

/** PNG keyword rule: 1–79 printable Latin-1 characters, no leading, trailing or double spaces. */
function checkKeyword(key: string, file: string): void {
  const ok =
    key.length >= 1 && key.length <= 79 && !key.startsWith(' ') && !key.endsWith(' ') && !key.includes('  ') &&
    [...key].every((ch) => {
      const c = ch.charCodeAt(0);
      return (c >= 32 && c <= 126) || (c >= 161 && c <= 255);
    });
  if (!ok) throw new PngError(file, `invalid PNG text keyword ${JSON.stringify(key)} (1–79 printable Latin-1 characters, single inner spaces)`);
}

/** tEXt when the value is Latin-1, else iTXt (uncompressed UTF-8, empty language tag). */
function textChunk(key: string, value: string, file: string): Buffer {
  checkKeyword(key, file);
  if (value.includes('\0')) throw new PngError(file, `text value for "${key}" contains a NUL character`);
  if (isLatin1(value)) return makeChunk('tEXt', Buffer.concat([Buffer.from(key, 'latin1'), Buffer.from([0]), Buffer.from(value, 'latin1')]));
  // keyword NUL compression-flag(0) compression-method(0) language-tag NUL translated-keyword NUL text
  return makeChunk('iTXt', Buffer.concat([Buffer.from(key, 'latin1'), Buffer.from([0, 0, 0, 0, 0]), Buffer.from(value, 'utf8')]));
}

/** Inserts text chunks right after IHDR of an encoded PNG (readers that stop early still see them). */
export function insertTextChunks(png: Uint8Array, text: Record<string, string>, file = '<png>'): Buffer {
  const buf = Buffer.from(png.buffer, png.byteOffset, png.byteLength);
  if (buf.length < 33 || !buf.subarray(0, 8).equals(PNG_SIGNATURE) || buf.toString('latin1', 12, 16) !== 'IHDR') {
    throw new PngError(file, 'not a PNG stream starting with IHDR');
  }
  const ihdrEnd = 8 + 12 + buf.readUInt32BE(8);
  const chunks = Object.entries(text).map(([k, v]) => textChunk(k, v, file));
  return Buffer.concat([buf.subarray(0, ihdrEnd), ...chunks, buf.subarray(ihdrEnd)]);
}

/** Encodes interleaved 8-bit pixels (1, 3 or 4 channels, inferred from the length) as PNG with text chunks. */
export async function encodePng(pixels: Uint8Array, width: number, height: number, text: Record<string, string> = {}): Promise<Buffer> {
  const channels = pixels.length / (width * height);
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1 || ![1, 3, 4].includes(channels)) {
    throw new PngError('<png>', `cannot encode ${pixels.length} bytes as a ${width}×${height} image with 1, 3 or 4 channels`);
  }
  const encoded = await sharp(Buffer.from(pixels.buffer, pixels.byteOffset, pixels.byteLength), {
    raw: { width, height, channels: channels as 1 | 3 | 4 },
  })
    .png()
    .toBuffer();
  return insertTextChunks(encoded, text);
}

export async function writePng(file: string, pixels: Uint8Array, width: number, height: number, text: Record<string, string> = {}): Promise<void> {
  const png = await encodePng(pixels, width, height, text);
  try {
    writeFileSync(file, png);
  } catch (e) {
    throw new PngError(file, `cannot write: ${(e as Error).message}`);
  }
}

/** Text metadata of a PNG (tEXt, zTXt, iTXt), verifying every chunk's CRC on the way. */
export function parsePngText(png: Uint8Array, file = '<png>'): Record<string, string> {
  const buf = Buffer.from(png.buffer, png.byteOffset, png.byteLength);
  if (buf.length < 8 || !buf.subarray(0, 8).equals(PNG_SIGNATURE)) throw new PngError(file, 'not a PNG file (bad signature)');
  const out: Record<string, string> = {};
  let pos = 8;
  while (pos < buf.length) {
    if (pos + 12 > buf.length) throw new PngError(file, `truncated chunk header at byte ${pos}`);
    const len = buf.readUInt32BE(pos);
    const type = buf.toString('latin1', pos + 4, pos + 8);
    const end = pos + 8 + len;
    if (end + 4 > buf.length) throw new PngError(file, `chunk ${type} at byte ${pos} runs past the end of the file`);
    if (crc32(buf.subarray(pos + 4, end)) !== buf.readUInt32BE(end)) throw new PngError(file, `CRC mismatch in chunk ${type} at byte ${pos}`);
    const data = buf.subarray(pos + 8, end);
    const nul = data.indexOf(0);
    if (type === 'tEXt' && nul > 0) {
      out[data.toString('latin1', 0, nul)] = data.toString('latin1', nul + 1);
    } else if (type === 'zTXt' && nul > 0) {
      out[data.toString('latin1', 0, nul)] = inflateSync(data.subarray(nul + 2)).toString('latin1');
    } else if (type === 'iTXt' && nul > 0) {
      const compressed = data[nul + 1] === 1;
      const langEnd = data.indexOf(0, nul + 3);
      const transEnd = langEnd < 0 ? -1 : data.indexOf(0, langEnd + 1);
      if (transEnd < 0) throw new PngError(file, `malformed iTXt chunk at byte ${pos}`);
      const body = data.subarray(transEnd + 1);
      out[data.toString('latin1', 0, nul)] = (compressed ? inflateSync(body) : body).toString('utf8');
    }
    pos = end + 4;
    if (type === 'IEND') break;
  }
  return out;
}

export function readPngText(file: string): Record<string, string> {
  let buf: Buffer;
  try {
    buf = readFileSync(file);
  } catch (e) {
    throw new PngError(file, `cannot read: ${(e as Error).message}`);
  }
  return parsePngText(buf, file);
}
