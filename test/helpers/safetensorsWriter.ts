// Minimal safetensors writer for tests: well-formed files from named tensors, and raw files from an
// arbitrary header + data so tests can build every kind of broken file.

import * as fs from 'fs';
import { BYTES_PER_ELEMENT, floatToHalf, numel, WeightDType } from '../../src/engine/model/tensor';

export interface TensorSpec {
  name: string;
  dtype?: WeightDType; // default F32
  shape: number[];
  /** Values (converted to dtype) or raw little-endian bytes. Default: a deterministic ramp 0, 0.01, 0.02, … */
  values?: ArrayLike<number> | Uint8Array;
}

function encodeValues(spec: TensorSpec): Uint8Array {
  const dtype = spec.dtype ?? 'F32';
  const n = numel(spec.shape);
  if (spec.values instanceof Uint8Array) return spec.values;
  const vals = spec.values ?? Array.from({ length: n }, (_, i) => i * 0.01);
  if (vals.length !== n) throw new Error(`test writer: ${spec.name} has ${vals.length} values for shape [${spec.shape}]`);
  const out = Buffer.alloc(n * BYTES_PER_ELEMENT[dtype]);
  const f32 = new Float32Array(1);
  const u32 = new Uint32Array(f32.buffer);
  for (let i = 0; i < n; i++) {
    if (dtype === 'F32') out.writeFloatLE(vals[i], i * 4);
    else if (dtype === 'F16') out.writeUInt16LE(floatToHalf(vals[i]), i * 2);
    else {
      f32[0] = vals[i];
      out.writeUInt16LE(u32[0] >>> 16, i * 2); // bf16 by truncation: exact for the values tests use
    }
  }
  return out;
}

/** Header object + data bytes → file bytes. headerLength overrides the u64 length field (for bad files). */
export function encodeRawSafetensors(header: unknown, data: Uint8Array, headerLength?: bigint): Buffer {
  const json = Buffer.from(typeof header === 'string' ? header : JSON.stringify(header), 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(headerLength ?? BigInt(json.length));
  return Buffer.concat([len, json, data]);
}

/** Well-formed file: tensors laid out contiguously in the given order. */
export function encodeSafetensors(tensors: TensorSpec[], metadata?: Record<string, string>): Buffer {
  const header: Record<string, unknown> = {};
  if (metadata) header['__metadata__'] = metadata;
  const chunks: Uint8Array[] = [];
  let pos = 0;
  for (const t of tensors) {
    const bytes = encodeValues(t);
    header[t.name] = { dtype: t.dtype ?? 'F32', shape: t.shape, data_offsets: [pos, pos + bytes.length] };
    chunks.push(bytes);
    pos += bytes.length;
  }
  return encodeRawSafetensors(header, Buffer.concat(chunks));
}

export function writeSafetensors(file: string, tensors: TensorSpec[], metadata?: Record<string, string>): void {
  fs.writeFileSync(file, encodeSafetensors(tensors, metadata));
}

/** Tensors with the given names and shapes (ramp values): handy for building model folders from expected-key lists. */
export function specsFromShapes(shapes: Map<string, number[]> | [string, number[]][], dtype: WeightDType = 'F32'): TensorSpec[] {
  return [...shapes].map(([name, shape]) => ({ name, shape, dtype, values: new Uint8Array(numel(shape) * BYTES_PER_ELEMENT[dtype]) }));
}
