// Byte format of one spilled page (all entries of one node at one step). Little-endian hosts only
// (x86-64, arm64): typed arrays are written and read in native order.
//
//   0   4 bytes  magic "FSAC"
//   4   u32      format version (1)
//   8   u32      header length H (bytes of UTF-8 JSON)
//   12  u32      CRC-32 of everything from byte 16 to the end
//   16  H bytes  header JSON {node, step, entries: [{name, kind, shape, rowAxis, rowsAt?, rowCount?, dataAt, dataLength}]}
//   …   blobs    per entry: row indices (Int32, deltas only) then data (Uint16); every blob starts 4-aligned
// Offsets (rowsAt, dataAt) are from the start of the page. Any inconsistency is a PageDecodeError with
// the reason; the cache turns it into a 'spill-corrupt' miss.

import * as zlib from 'node:zlib';
import { CacheEntry } from './cacheTypes';
import { RowGeometry, rowGeometry } from './rows';

const MAGIC = 0x43415346; // "FSAC" read as a little-endian u32
const VERSION = 1;

export class PageDecodeError extends Error {
  constructor(readonly reason: string) {
    super(`not a valid cache page: ${reason}`);
    this.name = 'PageDecodeError';
  }
}

let crcTable: Uint32Array | undefined;
/** CRC-32 (zlib polynomial); zlib.crc32 where Node has it (≥ 20.15), a table loop otherwise. */
export function crc32(bytes: Uint8Array): number {
  const native = (zlib as unknown as { crc32?: (d: Uint8Array) => number }).crc32;
  if (native) return native(bytes) >>> 0;
  if (!crcTable) {
    crcTable = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c >>> 0;
    }
  }
  let c = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) c = crcTable[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

interface HeaderEntry {
  name: string;
  kind: 'full' | 'delta';
  shape: number[];
  rowAxis: number;
  rowsAt?: number;
  rowCount?: number;
  dataAt: number;
  dataLength: number;
}

const align4 = (n: number) => (n + 3) & ~3;

export function encodePage(node: string, step: number, entries: ReadonlyMap<string, CacheEntry>): Uint8Array {
  // Header offsets depend on the header's own length: lay out blobs relative to the data start first.
  const layout: HeaderEntry[] = [];
  let rel = 0;
  for (const [name, e] of entries) {
    const h: HeaderEntry = { name, kind: e.kind, shape: e.shape, rowAxis: e.rowAxis, dataAt: 0, dataLength: e.data.length };
    if (e.kind === 'delta') {
      h.rowsAt = rel;
      h.rowCount = e.rows.length;
      rel = align4(rel + e.rows.byteLength);
    }
    h.dataAt = rel;
    rel = align4(rel + e.data.byteLength);
    layout.push(h);
  }
  // Offsets are absolute, so the header's length depends on itself: grow the data start until it fits.
  const headerFor = (base: number) =>
    Buffer.from(JSON.stringify({ node, step, entries: layout.map((h) => ({ ...h, dataAt: h.dataAt + base, rowsAt: h.rowsAt === undefined ? undefined : h.rowsAt + base })) }), 'utf8');
  let base = align4(16 + headerFor(0).length);
  let json = headerFor(base);
  while (16 + json.length > base) {
    base = align4(16 + json.length);
    json = headerFor(base);
  }
  const out = new Uint8Array(base + rel);
  out.set(json, 16);
  out.fill(0x20, 16 + json.length, base); // spaces: still valid JSON
  let i = 0;
  for (const e of entries.values()) {
    const h = layout[i++];
    if (e.kind === 'delta') out.set(new Uint8Array(e.rows.buffer, e.rows.byteOffset, e.rows.byteLength), base + h.rowsAt!);
    out.set(new Uint8Array(e.data.buffer, e.data.byteOffset, e.data.byteLength), base + h.dataAt);
  }
  const dv = new DataView(out.buffer);
  dv.setUint32(0, MAGIC, true);
  dv.setUint32(4, VERSION, true);
  dv.setUint32(8, base - 16, true);
  dv.setUint32(12, crc32(out.subarray(16)), true);
  return out;
}

/** Decode and verify; the returned arrays are views into `bytes` (copied first if misaligned). */
export function decodePage(bytes: Uint8Array, node: string, step: number): Map<string, CacheEntry> {
  if (bytes.byteOffset % 4 !== 0) bytes = bytes.slice();
  if (bytes.length < 16) throw new PageDecodeError(`${bytes.length} bytes is shorter than the 16-byte preamble`);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (dv.getUint32(0, true) !== MAGIC) throw new PageDecodeError('bad magic');
  if (dv.getUint32(4, true) !== VERSION) throw new PageDecodeError(`format version ${dv.getUint32(4, true)}, expected ${VERSION}`);
  const hLen = dv.getUint32(8, true);
  if (16 + hLen > bytes.length) throw new PageDecodeError('header runs past the end (truncated file?)');
  if (crc32(bytes.subarray(16)) !== dv.getUint32(12, true)) throw new PageDecodeError('checksum mismatch (truncated or damaged file)');
  let header: { node: unknown; step: unknown; entries: HeaderEntry[] };
  try {
    header = JSON.parse(Buffer.from(bytes.subarray(16, 16 + hLen)).toString('utf8'));
  } catch {
    throw new PageDecodeError('header is not JSON');
  }
  if (!header || !Array.isArray(header.entries)) throw new PageDecodeError('header has no entry list');
  if (header.node !== node || header.step !== step) {
    throw new PageDecodeError(`page holds node ${JSON.stringify(header.node)} step ${header.step}, expected node "${node}" step ${step}`);
  }
  const out = new Map<string, CacheEntry>();
  for (const h of header.entries) {
    let g: RowGeometry;
    try {
      g = rowGeometry(`entry ${h.name}`, h.shape, h.rowAxis);
    } catch (e) {
      throw new PageDecodeError((e as Error).message);
    }
    const inBounds = (at: number, len: number) => at % 4 === 0 && at >= 16 + hLen && at + len <= bytes.length;
    if (!inBounds(h.dataAt, h.dataLength * 2)) throw new PageDecodeError(`entry ${h.name}: data outside the page`);
    const data = new Uint16Array(bytes.buffer, bytes.byteOffset + h.dataAt, h.dataLength);
    if (h.kind === 'full') {
      if (h.dataLength !== g.outer * g.rows * g.inner) throw new PageDecodeError(`entry ${h.name}: ${h.dataLength} values for shape [${h.shape.join(', ')}]`);
      out.set(h.name, { kind: 'full', shape: h.shape, rowAxis: h.rowAxis, data });
    } else {
      const n = h.rowCount ?? -1;
      if (h.rowsAt === undefined || n < 0 || !inBounds(h.rowsAt, n * 4)) throw new PageDecodeError(`entry ${h.name}: row indices outside the page`);
      if (h.dataLength !== g.outer * n * g.inner) throw new PageDecodeError(`entry ${h.name}: ${h.dataLength} values for ${n} rows of shape [${h.shape.join(', ')}]`);
      out.set(h.name, { kind: 'delta', shape: h.shape, rowAxis: h.rowAxis, rows: new Int32Array(bytes.buffer, bytes.byteOffset + h.rowsAt, n), data });
    }
  }
  return out;
}
