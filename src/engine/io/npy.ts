// NumPy .npy (format 1.0/2.0) reader and writer for float32/float16/int64/int32 arrays, C order,
// little-endian. Used for --init-latents/--save-latents and for golden tensors from the PyTorch reference.
import { readFileSync, writeFileSync } from 'node:fs';

export type NpyDtype = 'float32' | 'float16' | 'int64' | 'int32' | 'uint8';
export interface NpyArray {
  dtype: NpyDtype;
  shape: number[];
  data: Float32Array | Uint16Array | BigInt64Array | Int32Array | Uint8Array;
}

const DESCR: Record<string, NpyDtype> = { '<f4': 'float32', '<f2': 'float16', '<i8': 'int64', '<i4': 'int32', '|u1': 'uint8', '<u1': 'uint8' };
const DESCR_OF: Record<NpyDtype, string> = { float32: '<f4', float16: '<f2', int64: '<i8', int32: '<i4', uint8: '|u1' };
const BYTES: Record<NpyDtype, number> = { float32: 4, float16: 2, int64: 8, int32: 4, uint8: 1 };

export class NpyFormatError extends Error {
  constructor(readonly file: string, reason: string) {
    super(`${file}: not a usable .npy file: ${reason}`);
    this.name = 'NpyFormatError';
  }
}

export function parseNpy(buf: Uint8Array, file = '<buffer>'): NpyArray {
  const magic = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59];
  if (buf.length < 10 || magic.some((b, i) => buf[i] !== b)) throw new NpyFormatError(file, 'bad magic');
  const major = buf[6];
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const headerLen = major === 1 ? dv.getUint16(8, true) : dv.getUint32(8, true);
  const start = major === 1 ? 10 : 12;
  if (start + headerLen > buf.length) throw new NpyFormatError(file, 'header runs past end of file');
  const header = Buffer.from(buf.subarray(start, start + headerLen)).toString('latin1');
  const descr = /'descr':\s*'([^']+)'/.exec(header)?.[1];
  const fortran = /'fortran_order':\s*(True|False)/.exec(header)?.[1];
  const shapeStr = /'shape':\s*\(([^)]*)\)/.exec(header)?.[1];
  if (!descr || !fortran || shapeStr === undefined) throw new NpyFormatError(file, `unparseable header ${header.trim()}`);
  if (fortran === 'True') throw new NpyFormatError(file, 'fortran_order arrays are not supported');
  const dtype = DESCR[descr];
  if (!dtype) throw new NpyFormatError(file, `unsupported dtype ${descr}`);
  const shape = shapeStr.split(',').map((s) => s.trim()).filter((s) => s.length > 0).map(Number);
  const count = shape.reduce((a, b) => a * b, 1);
  const dataStart = start + headerLen;
  const nbytes = count * BYTES[dtype];
  if (buf.length - dataStart !== nbytes) {
    throw new NpyFormatError(file, `expected ${nbytes} data bytes for shape [${shape}] ${dtype}, found ${buf.length - dataStart}`);
  }
  // Copy so the typed array is aligned regardless of the header length.
  const raw = new Uint8Array(buf.subarray(dataStart, dataStart + nbytes)).buffer;
  const data =
    dtype === 'float32' ? new Float32Array(raw)
    : dtype === 'float16' ? new Uint16Array(raw)
    : dtype === 'int64' ? new BigInt64Array(raw)
    : dtype === 'int32' ? new Int32Array(raw)
    : new Uint8Array(raw);
  return { dtype, shape, data };
}

export function readNpy(file: string): NpyArray {
  let buf: Buffer;
  try {
    buf = readFileSync(file);
  } catch (e) {
    throw new NpyFormatError(file, (e as Error).message);
  }
  return parseNpy(buf, file);
}

export function encodeNpy(arr: NpyArray): Uint8Array {
  const shapeStr = arr.shape.length === 1 ? `(${arr.shape[0]},)` : `(${arr.shape.join(', ')})`;
  let header = `{'descr': '${DESCR_OF[arr.dtype]}', 'fortran_order': False, 'shape': ${shapeStr}, }`;
  const total = 10 + header.length + 1;
  header += ' '.repeat((64 - (total % 64)) % 64) + '\n';
  const out = new Uint8Array(10 + header.length + arr.data.byteLength);
  out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0], 0);
  new DataView(out.buffer).setUint16(8, header.length, true);
  out.set(Buffer.from(header, 'latin1'), 10);
  out.set(new Uint8Array(arr.data.buffer, arr.data.byteOffset, arr.data.byteLength), 10 + header.length);
  return out;
}

export function writeNpy(file: string, arr: NpyArray): void {
  writeFileSync(file, encodeNpy(arr));
}
