// Safetensors reader that trusts nothing in the file.
//
// Layout: u64 LE header length N, N bytes of JSON header, then the data region. The header maps each
// tensor name to {dtype, shape, data_offsets: [start, end]} with offsets relative to the data region,
// plus an optional "__metadata__" string map. We return only F32/F16/BF16 tensors and require the tensors to
// tile the data region exactly: sorted by offset they must be contiguous (no gap, no overlap) and end
// at the last byte of the file. Anything else is a SafetensorsError naming the file and the reason.
//
// Reading large files: fs.readFileSync cannot return more than 2 GB, and SD 1.5's fp32 UNet file is
// 3.4 GB. We allocate ONE ArrayBuffer for the whole data region and fill it with fs.readSync in chunks
// (each call ≤ 1 GiB, well under readSync's 2^31−1 limit). Every tensor is a view into that buffer,
// so a graph builder can hand the region to onnxruntime as external data without copying. The cost is
// that one data region must fit in a single ArrayBuffer (buffer.constants.MAX_LENGTH, 4 GiB on
// Node 20); bigger files are refused with a clear message rather than failing inside V8.

import * as fs from 'fs';
import { constants as bufferConstants } from 'buffer';
import { BYTES_PER_ELEMENT, numel, WeightDType, WeightMap, WeightTensor } from './tensor';

export class SafetensorsError extends Error {
  constructor(readonly file: string, readonly reason: string) {
    super(`${file}: ${reason}`);
    this.name = 'SafetensorsError';
  }
}

/** Largest JSON header we accept. SD 1.5's UNet header is ~84 kB; 100 MB guards against garbage lengths. */
export const MAX_HEADER_BYTES = 100 * 1024 * 1024;
const DEFAULT_CHUNK_BYTES = 1 << 30;

export interface SafetensorsEntry {
  name: string;
  dtype: WeightDType;
  shape: number[];
  /** Byte range [start, end) relative to the start of the data region. */
  start: number;
  end: number;
}

export interface SafetensorsHeader {
  entries: SafetensorsEntry[];
  metadata: Record<string, string>;
  /** Absolute file offset of the data region (8 + header length). */
  dataOffset: number;
  dataLength: number;
}

export interface SafetensorsFile {
  tensors: WeightMap;
  metadata: Record<string, string>;
  /** The whole data region; every tensor's `data` is a view into it (byteOffset = tensor start). */
  data: Uint8Array;
}

const DTYPES: readonly WeightDType[] = ['F32', 'F16', 'BF16'];
/**
 * Byte sizes of the other standard safetensors dtypes. They are still refused as "unknown dtype", but a
 * caller may skip a tensor by name (e.g. CLIP's int64 position_ids buffer in older exports); its byte
 * range is then checked like any other so the file layout stays fully validated.
 */
const OTHER_DTYPE_BYTES: Record<string, number> = {
  BOOL: 1, U8: 1, I8: 1, F8_E5M2: 1, F8_E4M3: 1, I16: 2, U16: 2, I32: 4, U32: 4, F64: 8, I64: 8, U64: 8,
};

/** Names of tensors to validate but not return (their dtype may be any standard one). */
export type SkipTensor = (name: string) => boolean;

function isNonNegInt(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

/**
 * Validate a parsed header against the data region length. Pure: used by readSafetensorsHeader and by
 * tests that build headers in memory.
 */
export function parseSafetensorsHeader(json: string, dataLength: number, file: string, skip: SkipTensor = () => false): Omit<SafetensorsHeader, 'dataOffset'> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(json);
  } catch (e) {
    throw new SafetensorsError(file, `header is not valid JSON (${(e as Error).message})`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new SafetensorsError(file, 'header must be a JSON object');
  }
  const metadata: Record<string, string> = {};
  const entries: SafetensorsEntry[] = [];
  const ranges: { name: string; start: number; end: number }[] = [];
  for (const [name, raw] of Object.entries(parsed as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new SafetensorsError(file, '__metadata__ must be an object of strings');
      for (const [k, v] of Object.entries(raw as Record<string, unknown>)) {
        if (typeof v !== 'string') throw new SafetensorsError(file, `__metadata__ value for "${k}" must be a string`);
        metadata[k] = v;
      }
      continue;
    }
    const skipped = skip(name);
    const e = parseEntry(name, raw, file, skipped);
    ranges.push(e);
    if (!skipped) entries.push(e);
  }
  checkTiling(ranges, dataLength, file);
  return { entries, metadata, dataLength };
}

function parseEntry(name: string, raw: unknown, file: string, skipped: boolean): SafetensorsEntry {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new SafetensorsError(file, `tensor ${name}: entry must be an object`);
  const e = raw as Record<string, unknown>;
  const dtype = e['dtype'];
  const known = typeof dtype === 'string' && (DTYPES.includes(dtype as WeightDType) || (skipped && Object.hasOwn(OTHER_DTYPE_BYTES, dtype)));
  if (!known) {
    throw new SafetensorsError(file, `unknown dtype ${String(dtype)} for tensor ${name} (supported: ${DTYPES.join(', ')})`);
  }
  const shape = e['shape'];
  if (!Array.isArray(shape) || !shape.every(isNonNegInt)) throw new SafetensorsError(file, `tensor ${name}: shape must be a list of non-negative integers`);
  const offsets = e['data_offsets'];
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isNonNegInt)) {
    throw new SafetensorsError(file, `tensor ${name}: data_offsets must be [start, end] non-negative integers`);
  }
  const [start, end] = offsets as [number, number];
  if (end < start) throw new SafetensorsError(file, `tensor ${name}: data_offsets end ${end} < start ${start}`);
  const want = numel(shape) * (BYTES_PER_ELEMENT[dtype as WeightDType] ?? OTHER_DTYPE_BYTES[dtype as string]);
  if (end - start !== want) {
    throw new SafetensorsError(file, `tensor ${name}: shape [${shape.join(', ')}] × ${dtype} needs ${want} bytes but data_offsets span ${end - start}`);
  }
  // dtype is only outside WeightDType for skipped entries, which are never returned.
  return { name, dtype: dtype as WeightDType, shape: shape as number[], start, end };
}

/** Tensors must cover [0, dataLength) exactly once, in some order. */
function checkTiling(entries: { name: string; start: number; end: number }[], dataLength: number, file: string): void {
  const sorted = [...entries].sort((a, b) => a.start - b.start || a.end - b.end);
  let pos = 0;
  for (const e of sorted) {
    if (e.end > dataLength) throw new SafetensorsError(file, `tensor ${e.name}: data_offsets [${e.start}, ${e.end}] exceed the data region of ${dataLength} bytes (truncated file?)`);
    if (e.start < pos) throw new SafetensorsError(file, `tensor ${e.name}: data_offsets [${e.start}, ${e.end}] overlap the previous tensor ending at ${pos}`);
    if (e.start > pos) throw new SafetensorsError(file, `tensor ${e.name}: gap of ${e.start - pos} bytes before it (previous tensor ends at ${pos})`);
    pos = e.end;
  }
  if (pos !== dataLength) throw new SafetensorsError(file, `${dataLength - pos} trailing bytes after the last tensor (data region ${dataLength} bytes, tensors end at ${pos})`);
}

function readExactly(fd: number, target: Uint8Array, position: number, file: string, chunkBytes: number): void {
  let done = 0;
  while (done < target.byteLength) {
    const len = Math.min(chunkBytes, target.byteLength - done);
    const n = fs.readSync(fd, target, done, len, position + done);
    if (n === 0) throw new SafetensorsError(file, `unexpected end of file at byte ${position + done}`);
    done += n;
  }
}

function withFile<T>(file: string, fn: (fd: number, size: number) => T): T {
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch (e) {
    throw new SafetensorsError(file, `cannot open (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  try {
    return fn(fd, fs.fstatSync(fd).size);
  } finally {
    fs.closeSync(fd);
  }
}

function readHeaderFd(fd: number, size: number, file: string, skip?: SkipTensor): SafetensorsHeader {
  if (size < 8) throw new SafetensorsError(file, `file is ${size} bytes, too short for the 8-byte header length`);
  const lenBytes = Buffer.alloc(8);
  readExactly(fd, lenBytes, 0, file, DEFAULT_CHUNK_BYTES);
  const n = lenBytes.readBigUInt64LE(0);
  if (n > BigInt(MAX_HEADER_BYTES)) throw new SafetensorsError(file, `header length ${n} exceeds the ${MAX_HEADER_BYTES}-byte limit`);
  const headerLen = Number(n);
  if (8 + headerLen > size) throw new SafetensorsError(file, `header length ${headerLen} does not fit in the ${size}-byte file (truncated file?)`);
  const headerBytes = Buffer.alloc(headerLen);
  readExactly(fd, headerBytes, 8, file, DEFAULT_CHUNK_BYTES);
  const parsed = parseSafetensorsHeader(headerBytes.toString('utf8'), size - 8 - headerLen, file, skip);
  return { ...parsed, dataOffset: 8 + headerLen };
}

/** Read and validate only the header (cheap: lets callers check names and shapes before reading gigabytes). */
export function readSafetensorsHeader(file: string, skip?: SkipTensor): SafetensorsHeader {
  return withFile(file, (fd, size) => readHeaderFd(fd, size, file, skip));
}

export interface ReadSafetensorsOptions {
  /** Bytes per readSync call; tests lower it to exercise the chunked path. */
  chunkBytes?: number;
  /** Tensors to validate but leave out of the result. */
  skip?: SkipTensor;
}

export function readSafetensors(file: string, opts: ReadSafetensorsOptions = {}): SafetensorsFile {
  const chunkBytes = opts.chunkBytes ?? DEFAULT_CHUNK_BYTES;
  return withFile(file, (fd, size) => {
    const header = readHeaderFd(fd, size, file, opts.skip);
    if (header.dataLength > bufferConstants.MAX_LENGTH) {
      throw new SafetensorsError(file, `data region of ${header.dataLength} bytes exceeds the largest buffer Node can allocate (${bufferConstants.MAX_LENGTH})`);
    }
    const data = new Uint8Array(new ArrayBuffer(header.dataLength));
    readExactly(fd, data, header.dataOffset, file, chunkBytes);
    const tensors: WeightMap = new Map();
    for (const e of header.entries) tensors.set(e.name, entryTensor(e, data));
    return { tensors, metadata: header.metadata, data };
  });
}

function entryTensor(e: SafetensorsEntry, data: Uint8Array): WeightTensor {
  return { name: e.name, dtype: e.dtype, shape: [...e.shape], data: data.subarray(e.start, e.end) };
}
