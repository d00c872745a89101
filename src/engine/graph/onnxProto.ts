// Minimal protobuf WRITER for the subset of onnx.proto the engine emits: ModelProto → GraphProto →
// NodeProto / TensorProto / ValueInfoProto / AttributeProto. Field numbers follow onnx/onnx.proto
// (proto2). We never parse ONNX, so there is no reader.
//
// Encoding strategy: every message is encoded into a list of byte chunks plus its total length, so
// large raw_data buffers are referenced, not copied, until the one final concatenation in
// encodeModel(). Repeated scalars are written unpacked (the proto2 default that every parser accepts).

const enum WireType {
  Varint = 0,
  Fixed64 = 1,
  LengthDelimited = 2,
  Fixed32 = 5,
}

/** onnx.TensorProto.DataType values. */
export enum OnnxDataType {
  FLOAT = 1,
  UINT8 = 2,
  INT8 = 3,
  UINT16 = 4,
  INT16 = 5,
  INT32 = 6,
  INT64 = 7,
  STRING = 8,
  BOOL = 9,
  FLOAT16 = 10,
  DOUBLE = 11,
  UINT32 = 12,
  UINT64 = 13,
  BFLOAT16 = 16,
}

/** onnx.AttributeProto.AttributeType values (only the kinds we write). */
const enum AttrType {
  FLOAT = 1,
  INT = 2,
  STRING = 3,
  TENSOR = 4,
  FLOATS = 6,
  INTS = 7,
}

export class OnnxEncodeError extends Error {
  constructor(reason: string) {
    super(`graph/onnxProto.ts: ${reason}`);
    this.name = 'OnnxEncodeError';
  }
}

/** Accumulates one message as chunks; nested messages are appended without copying their chunks. */
class ProtoWriter {
  readonly chunks: Uint8Array[] = [];
  length = 0;
  private scratch: number[] = [];

  private flushScratch(): void {
    if (this.scratch.length === 0) return;
    const b = Uint8Array.from(this.scratch);
    this.chunks.push(b);
    this.length += b.length;
    this.scratch = [];
  }

  private pushBytes(b: Uint8Array): void {
    if (b.length === 0) return;
    // Small byte strings go through scratch to avoid thousands of tiny chunks.
    if (b.length < 64) {
      for (let i = 0; i < b.length; i++) this.scratch.push(b[i]);
      return;
    }
    this.flushScratch();
    this.chunks.push(b);
    this.length += b.length;
  }

  /** Varint of an unsigned value (< 2^53) or an int64 as BigInt (negatives in two's complement, 10 bytes). */
  varint(v: number | bigint): void {
    if (typeof v === 'number') {
      if (!Number.isSafeInteger(v)) throw new OnnxEncodeError(`varint value ${v} is not a safe integer`);
      if (v < 0) {
        this.varint(BigInt(v));
        return;
      }
      while (v >= 0x80) {
        this.scratch.push((v % 0x80) | 0x80);
        v = Math.floor(v / 0x80);
      }
      this.scratch.push(v);
      return;
    }
    let u = BigInt.asUintN(64, v);
    while (u >= 0x80n) {
      this.scratch.push(Number(u & 0x7fn) | 0x80);
      u >>= 7n;
    }
    this.scratch.push(Number(u));
  }

  tag(field: number, wire: WireType): void {
    this.varint(field * 8 + wire);
  }

  int64Field(field: number, v: number | bigint): void {
    this.tag(field, WireType.Varint);
    this.varint(v);
  }

  floatField(field: number, v: number): void {
    this.tag(field, WireType.Fixed32);
    const b = new Uint8Array(4);
    new DataView(b.buffer).setFloat32(0, v, true);
    for (let i = 0; i < 4; i++) this.scratch.push(b[i]);
  }

  bytesField(field: number, b: Uint8Array): void {
    this.tag(field, WireType.LengthDelimited);
    this.varint(b.length);
    this.pushBytes(b);
  }

  stringField(field: number, s: string): void {
    this.bytesField(field, textEncoder.encode(s));
  }

  messageField(field: number, m: ProtoWriter): void {
    m.flushScratch();
    this.tag(field, WireType.LengthDelimited);
    this.varint(m.length);
    this.flushScratch();
    for (const c of m.chunks) this.chunks.push(c);
    this.length += m.length;
  }

  finish(): ProtoWriter {
    this.flushScratch();
    return this;
  }
}

const textEncoder = new TextEncoder();

// ---------------------------------------------------------------------------------------------
// Plain data descriptions of the messages we write.

export type AttributeValue =
  | { kind: 'int'; value: number | bigint }
  | { kind: 'float'; value: number }
  | { kind: 'ints'; value: readonly (number | bigint)[] }
  | { kind: 'floats'; value: readonly number[] }
  | { kind: 'string'; value: string }
  | { kind: 'tensor'; value: TensorSpec };

export interface NodeSpec {
  opType: string;
  inputs: readonly string[];
  outputs: readonly string[];
  name?: string;
  /** '' (or absent) = ai.onnx. */
  domain?: string;
  attributes?: Readonly<Record<string, AttributeValue>>;
}

export interface ExternalLocation {
  /** Name of the external "file" (resolved by onnxruntime against externalData paths). */
  location: string;
  offset: number;
  length: number;
}

export interface TensorSpec {
  name: string;
  dataType: OnnxDataType;
  dims: readonly number[];
  /** Little-endian element bytes (raw_data). Exactly one of rawData / external. */
  rawData?: Uint8Array;
  external?: ExternalLocation;
}

/** A dimension: a fixed size, or a symbolic name (dim_param) for dynamic axes. */
export type Dim = number | string;

export interface ValueInfoSpec {
  name: string;
  elemType: OnnxDataType;
  /** undefined = unknown rank. */
  dims?: readonly Dim[];
}

export interface GraphSpec {
  name: string;
  nodes: readonly NodeSpec[];
  initializers: readonly TensorSpec[];
  inputs: readonly ValueInfoSpec[];
  outputs: readonly ValueInfoSpec[];
}

export interface OpsetImport {
  domain: string;
  version: number;
}

export interface ModelSpec {
  irVersion: number;
  opsetImports: readonly OpsetImport[];
  producerName: string;
  producerVersion?: string;
  graph: GraphSpec;
}

// ---------------------------------------------------------------------------------------------
// Encoders (field numbers from onnx.proto).

function encodeTensor(t: TensorSpec): ProtoWriter {
  const w = new ProtoWriter();
  for (const d of t.dims) w.int64Field(1, d); // dims
  w.int64Field(2, t.dataType); // data_type
  w.stringField(8, t.name); // name
  if ((t.rawData === undefined) === (t.external === undefined)) {
    throw new OnnxEncodeError(`tensor "${t.name}" needs exactly one of rawData / external`);
  }
  if (t.rawData) {
    w.bytesField(9, t.rawData); // raw_data
  } else if (t.external) {
    const entries: [string, string][] = [
      ['location', t.external.location],
      ['offset', String(t.external.offset)],
      ['length', String(t.external.length)],
    ];
    for (const [k, v] of entries) {
      const e = new ProtoWriter();
      e.stringField(1, k); // StringStringEntryProto.key
      e.stringField(2, v); // StringStringEntryProto.value
      w.messageField(13, e.finish()); // external_data
    }
    w.int64Field(14, 1); // data_location = EXTERNAL
  }
  return w.finish();
}

function encodeAttribute(name: string, a: AttributeValue): ProtoWriter {
  const w = new ProtoWriter();
  w.stringField(1, name);
  switch (a.kind) {
    case 'float':
      w.floatField(2, a.value);
      w.int64Field(20, AttrType.FLOAT);
      break;
    case 'int':
      w.int64Field(3, a.value);
      w.int64Field(20, AttrType.INT);
      break;
    case 'string':
      w.stringField(4, a.value);
      w.int64Field(20, AttrType.STRING);
      break;
    case 'tensor':
      w.messageField(5, encodeTensor(a.value));
      w.int64Field(20, AttrType.TENSOR);
      break;
    case 'floats':
      for (const f of a.value) w.floatField(7, f);
      w.int64Field(20, AttrType.FLOATS);
      break;
    case 'ints':
      for (const i of a.value) w.int64Field(8, i);
      w.int64Field(20, AttrType.INTS);
      break;
  }
  return w.finish();
}

function encodeNode(n: NodeSpec): ProtoWriter {
  const w = new ProtoWriter();
  for (const i of n.inputs) w.stringField(1, i);
  for (const o of n.outputs) w.stringField(2, o);
  if (n.name) w.stringField(3, n.name);
  w.stringField(4, n.opType);
  for (const [k, v] of Object.entries(n.attributes ?? {})) w.messageField(5, encodeAttribute(k, v));
  if (n.domain) w.stringField(7, n.domain);
  return w.finish();
}

function encodeValueInfo(v: ValueInfoSpec): ProtoWriter {
  const tensorType = new ProtoWriter();
  tensorType.int64Field(1, v.elemType); // TypeProto.Tensor.elem_type
  if (v.dims) {
    const shape = new ProtoWriter();
    for (const d of v.dims) {
      const dim = new ProtoWriter();
      if (typeof d === 'number') dim.int64Field(1, d); // dim_value
      else dim.stringField(2, d); // dim_param
      shape.messageField(1, dim.finish()); // TensorShapeProto.dim
    }
    tensorType.messageField(2, shape.finish()); // TypeProto.Tensor.shape
  }
  const type = new ProtoWriter();
  type.messageField(1, tensorType.finish()); // TypeProto.tensor_type
  const w = new ProtoWriter();
  w.stringField(1, v.name);
  w.messageField(2, type.finish());
  return w.finish();
}

function encodeGraph(g: GraphSpec): ProtoWriter {
  const w = new ProtoWriter();
  for (const n of g.nodes) w.messageField(1, encodeNode(n));
  w.stringField(2, g.name);
  for (const t of g.initializers) w.messageField(5, encodeTensor(t));
  for (const i of g.inputs) w.messageField(11, encodeValueInfo(i));
  for (const o of g.outputs) w.messageField(12, encodeValueInfo(o));
  return w.finish();
}

/** Serialise a ModelProto. Throws OnnxEncodeError past protobuf's 2 GiB message limit. */
export function encodeModel(m: ModelSpec): Uint8Array {
  const w = new ProtoWriter();
  w.int64Field(1, m.irVersion);
  w.stringField(2, m.producerName);
  if (m.producerVersion) w.stringField(3, m.producerVersion);
  w.messageField(7, encodeGraph(m.graph));
  for (const op of m.opsetImports) {
    const o = new ProtoWriter();
    if (op.domain) o.stringField(1, op.domain);
    o.int64Field(2, op.version);
    w.messageField(8, o.finish());
  }
  w.finish();
  if (w.length >= 2 ** 31) {
    throw new OnnxEncodeError(`model is ${w.length} bytes, over protobuf's 2 GiB limit; move initializers to external data`);
  }
  const out = new Uint8Array(w.length);
  let off = 0;
  for (const c of w.chunks) {
    out.set(c, off);
    off += c.length;
  }
  return out;
}
