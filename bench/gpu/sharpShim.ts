// Stand-in for `sharp` inside the offline GPU bundle only (bench/gpu/bundle.ts aliases the import here).
// sharp's libvips is 6 MB compressed, which the 64 MiB that travel to the GPU machine cannot spare, and
// the engine only asks it for 8-bit PNG encode/decode. This covers exactly those calls (the engine's
// writes, and reading back PNGs it wrote: 8-bit grey / RGB / RGBA, non-interlaced, any filter) and
// throws on anything else. Checked against sharp itself in test/bench/gpuBundle.test.ts.

import * as fs from 'fs';
import * as zlib from 'zlib';

const SIGNATURE = Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]);
const COLOR_TYPE: Record<number, number> = { 1: 0, 2: 4, 3: 2, 4: 6 };
const CHANNELS: Record<number, number> = { 0: 1, 4: 2, 2: 3, 6: 4 };

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

function crc32(buf: Uint8Array): number {
  let c = 0xffffffff;
  for (let i = 0; i < buf.length; i++) c = CRC_TABLE[(c ^ buf[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function chunk(type: string, data: Uint8Array): Buffer {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const body = Buffer.concat([Buffer.from(type, 'latin1'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body));
  return Buffer.concat([len, body, crc]);
}

export function encodePngRaw(pixels: Uint8Array, width: number, height: number, channels: number): Buffer {
  if (COLOR_TYPE[channels] === undefined || pixels.length !== width * height * channels) throw new Error(`sharpShim: cannot encode ${pixels.length} bytes as ${width}x${height}x${channels}`);
  const stride = width * channels;
  const raw = Buffer.alloc((stride + 1) * height);
  for (let y = 0; y < height; y++) raw.set(pixels.subarray(y * stride, (y + 1) * stride), y * (stride + 1) + 1); // filter 0
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8;
  ihdr[9] = COLOR_TYPE[channels];
  return Buffer.concat([SIGNATURE, chunk('IHDR', ihdr), chunk('IDAT', zlib.deflateSync(raw, { level: 6 })), chunk('IEND', new Uint8Array(0))]);
}

function paeth(a: number, b: number, c: number): number {
  const p = a + b - c;
  const pa = Math.abs(p - a);
  const pb = Math.abs(p - b);
  const pc = Math.abs(p - c);
  return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
}

export function decodePngRaw(png: Uint8Array): { data: Buffer; width: number; height: number; channels: number } {
  const buf = Buffer.from(png.buffer, png.byteOffset, png.byteLength);
  if (buf.length < 8 || !buf.subarray(0, 8).equals(SIGNATURE)) throw new Error('sharpShim: not a PNG');
  let pos = 8;
  let width = 0;
  let height = 0;
  let channels = 0;
  const idat: Buffer[] = [];
  while (pos + 12 <= buf.length) {
    const len = buf.readUInt32BE(pos);
    const type = buf.toString('latin1', pos + 4, pos + 8);
    const data = buf.subarray(pos + 8, pos + 8 + len);
    if (type === 'IHDR') {
      width = data.readUInt32BE(0);
      height = data.readUInt32BE(4);
      channels = CHANNELS[data[9]];
      if (data[8] !== 8 || !channels || data[12] !== 0) throw new Error(`sharpShim: only 8-bit non-interlaced grey/RGB/RGBA PNGs (bit depth ${data[8]}, colour type ${data[9]}, interlace ${data[12]})`);
    } else if (type === 'IDAT') idat.push(data);
    else if (type === 'IEND') break;
    pos += 12 + len;
  }
  const raw = zlib.inflateSync(Buffer.concat(idat));
  const stride = width * channels;
  const out = Buffer.alloc(stride * height);
  for (let y = 0; y < height; y++) {
    const f = raw[y * (stride + 1)];
    const src = y * (stride + 1) + 1;
    const row = y * stride;
    for (let x = 0; x < stride; x++) {
      const a = x >= channels ? out[row + x - channels] : 0;
      const b = y > 0 ? out[row - stride + x] : 0;
      const c = x >= channels && y > 0 ? out[row - stride + x - channels] : 0;
      const v = raw[src + x];
      out[row + x] = (f === 0 ? v : f === 1 ? v + a : f === 2 ? v + b : f === 3 ? v + ((a + b) >> 1) : f === 4 ? v + paeth(a, b, c) : NaN) & 0xff;
      if (f > 4) throw new Error(`sharpShim: bad PNG filter ${f}`);
    }
  }
  return { data: out, width, height, channels };
}

interface RawInput {
  raw: { width: number; height: number; channels: number };
}

class Pipeline {
  private alpha = false;
  constructor(
    private readonly input: Uint8Array,
    private readonly rawInput: RawInput['raw'] | null,
  ) {}
  png(): this {
    return this;
  }
  raw(): this {
    return this;
  }
  toColourspace(space: string): this {
    if (space !== 'srgb') throw new Error(`sharpShim: colour space ${space}`);
    return this;
  }
  ensureAlpha(): this {
    this.alpha = true;
    return this;
  }
  private decoded(): { data: Buffer; width: number; height: number; channels: number } {
    const d = this.rawInput ? { data: Buffer.from(this.input), ...this.rawInput } : decodePngRaw(this.input);
    if (!this.alpha || d.channels === 4) return d;
    const n = d.width * d.height;
    const out = Buffer.alloc(n * 4);
    for (let p = 0; p < n; p++) {
      const src = p * d.channels;
      const grey = d.channels <= 2;
      out[4 * p] = d.data[src];
      out[4 * p + 1] = grey ? d.data[src] : d.data[src + 1];
      out[4 * p + 2] = grey ? d.data[src] : d.data[src + 2];
      out[4 * p + 3] = d.channels === 2 ? d.data[src + 1] : 255;
    }
    return { data: out, width: d.width, height: d.height, channels: 4 };
  }
  async toBuffer(opts?: { resolveWithObject?: boolean }): Promise<Buffer | { data: Buffer; info: { width: number; height: number; channels: number } }> {
    if (this.rawInput) {
      const png = encodePngRaw(this.input, this.rawInput.width, this.rawInput.height, this.rawInput.channels);
      return opts?.resolveWithObject ? { data: png, info: { ...this.rawInput } } : png;
    }
    const d = this.decoded();
    return opts?.resolveWithObject ? { data: d.data, info: { width: d.width, height: d.height, channels: d.channels } } : d.data;
  }
  async toFile(file: string): Promise<void> {
    fs.writeFileSync(file, (await this.toBuffer()) as Buffer);
  }
}

export default function sharp(input: Uint8Array, opts?: RawInput): Pipeline {
  return new Pipeline(input, opts?.raw ?? null);
}
