// GraphBuilder: records ONNX nodes, graph inputs/outputs and initializers, then serialises a ModelProto.
//
// Values are identified by their ONNX names (strings). op() returns the (unique) output name.
// Weights (weight()): the safetensors bytes are used untouched wherever possible and ORT does the
// rest at session creation, where constant folding runs in C++:
// - F32: the initializer is a view of the weight bytes.
// - F16: kept float16 + Cast to float32 (ORT folds the Cast; model bytes and JS heap stay half size).
// - BF16: widened to F32 in JS (we do not depend on ORT's bfloat16 Cast on CPU).
// - Linear weights [out,in]: Transpose node on the untouched initializer, folded by ORT into the
//   [in,out] constant that MatMul prepacks. Measured on a 142M-param UNet (ORT 1.30, 2 cores):
//   same run time as transposing in JS, 2× faster graph build and ~0.5 GB less peak RSS.
//
// Large models: protobuf messages are limited to 2 GiB. When the initializers total more than
// externalThresholdBytes, every initializer ≥ 1 KiB moves to external data. Tensors that are views into
// a large buffer (a safetensors data region) are referenced in place (no copy); derived tensors
// (transposed, widened, constants) are packed into one "derived.bin" blob. Pass the returned
// externalData list to the session (runtime/ortSession.ts) and keep it alive with the session.

import { encodeModel, NodeSpec, OnnxDataType, TensorSpec, ValueInfoSpec, AttributeValue, Dim } from './onnxProto';
import { WeightTensor, numel, BYTES_PER_ELEMENT } from '../model/tensor';

export type { Dim } from './onnxProto';
export type DType = 'float32' | 'float16' | 'int64' | 'int32' | 'bool' | 'uint8';

const ONNX_TYPE: Record<DType, OnnxDataType> = {
  float32: OnnxDataType.FLOAT,
  float16: OnnxDataType.FLOAT16,
  int64: OnnxDataType.INT64,
  int32: OnnxDataType.INT32,
  bool: OnnxDataType.BOOL,
  uint8: OnnxDataType.UINT8,
};

export class GraphBuildError extends Error {
  constructor(reason: string) {
    super(`graph/graphBuilder.ts: ${reason}`);
    this.name = 'GraphBuildError';
  }
}

/** Attribute shorthand: integer number → INT, number[] → INTS, string → STRING; use f()/fs() for floats. */
export type AttrInput = number | bigint | readonly (number | bigint)[] | string | AttributeValue;
export const f = (value: number): AttributeValue => ({ kind: 'float', value });
export const fs = (value: readonly number[]): AttributeValue => ({ kind: 'floats', value });

function toAttr(name: string, a: AttrInput): AttributeValue {
  if (typeof a === 'string') return { kind: 'string', value: a };
  if (typeof a === 'bigint') return { kind: 'int', value: a };
  if (typeof a === 'number') {
    if (!Number.isInteger(a)) throw new GraphBuildError(`attribute ${name}=${a} is not an integer; wrap floats in f()`);
    return { kind: 'int', value: a };
  }
  if (Array.isArray(a)) {
    for (const v of a) {
      if (typeof v === 'number' && !Number.isInteger(v)) throw new GraphBuildError(`attribute ${name} has non-integer ${v}; wrap floats in fs()`);
    }
    return { kind: 'ints', value: a as (number | bigint)[] };
  }
  return a as AttributeValue;
}

export interface ExternalDataFile {
  path: string;
  data: Uint8Array;
}

export interface BuiltModel {
  model: Uint8Array;
  externalData?: ExternalDataFile[];
  inputs: ValueInfoSpec[];
  outputs: ValueInfoSpec[];
}

export interface BuildOptions {
  /** Move initializers to external data when they total more than this (default 1.5 GB). */
  externalThresholdBytes?: number;
}

export interface GraphBuilderOptions {
  /** ai.onnx opset (default 17: LayerNormalization is the newest op we rely on). */
  opset?: number;
  /** How F16 weights enter the graph: 'cast' keeps float16 initializers + Cast (default); 'widen' converts in JS. */
  f16Weights?: 'cast' | 'widen';
  /**
   * Where Linear weights get transposed to [in,out]: 'ort' (default) emits a Transpose on the
   * untouched initializer, which ORT constant-folds at session creation (C++; the weight bytes stay
   * borrowed, no JS copy); 'js' transposes at build time (for sessions without constant folding).
   */
  weightTranspose?: 'ort' | 'js';
  /**
   * The form nn.attention() builds unless told otherwise: 'mha' (one com.microsoft.MultiHeadAttention
   * node, default), 'matmul' (MatMul/Softmax written out), or the WebGPU candidates 'chunked' and
   * 'mha-unfused' (see graph/nn.ts AttentionOptions). runtime/deviceGraphs.ts picks it per device.
   */
  attention?: AttentionImpl;
  /** Query chunks of the 'chunked' form (default 16). */
  attentionChunks?: number;
  /**
   * How the large weight matrices of Linear layers and convolutions are stored: 'fp32' (default) or
   * 'int8', block-quantised (graph/quantizedWeights.ts): a quarter of the bytes a step streams.
   */
  weights?: WeightFormat;
  /**
   * Convolutions whose input channels are not a multiple of this get zero channels (and zero weight taps)
   * appended up to one (default 1: none). runtime/deviceGraphs.ts sets 4 for WebGPU, whose Conv is wrong
   * at 6 input channels.
   */
  convChannelMultiple?: number;
}

export type WeightFormat = 'fp32' | 'int8';
/** The op forms nn.attention() can build (see there). */
export type AttentionImpl = 'mha' | 'matmul' | 'chunked' | 'mha-unfused';
export const WEIGHT_FORMATS: readonly WeightFormat[] = ['fp32', 'int8'];

interface Initializer {
  name: string;
  dtype: DType;
  dims: number[];
  bytes: Uint8Array;
  /** true when bytes is a view into a caller-owned buffer (e.g. safetensors region) we may reference in place. */
  borrowed: boolean;
}

const MIN_EXTERNAL_BYTES = 1024;
/** Buffers at least this large are referenced in place as external data instead of copied. */
const BORROW_BUFFER_BYTES = 64 * 1024 * 1024;
const EXTERNAL_ALIGN = 64;

export interface WeightOptions {
  /** Transpose a 2-D [out, in] weight to [in, out] (Linear as MatMul). */
  transpose?: boolean;
  /** Reinterpret as this shape (same numel), e.g. squeeze a 1×1 conv to [out, in]. */
  reshape?: number[];
}

export class GraphBuilder {
  readonly opset: number;
  private readonly f16Mode: 'cast' | 'widen';
  private readonly transposeMode: 'ort' | 'js';
  readonly attention: AttentionImpl;
  readonly attentionChunks: number;
  readonly weightFormat: WeightFormat;
  readonly convChannelMultiple: number;
  private readonly nodes: NodeSpec[] = [];
  private readonly inits: Initializer[] = [];
  private readonly inputs: ValueInfoSpec[] = [];
  private readonly outputs: ValueInfoSpec[] = [];
  private readonly names = new Set<string>();
  private readonly constCache = new Map<string, string>();
  private readonly weightCache = new Map<string, string>();
  private readonly usedDomains = new Map<string, number>();
  private readonly scopes: string[] = [];
  private counter = 0;

  constructor(readonly name: string, opts: GraphBuilderOptions = {}) {
    this.opset = opts.opset ?? 17;
    this.f16Mode = opts.f16Weights ?? 'cast';
    this.transposeMode = opts.weightTranspose ?? 'ort';
    this.attention = opts.attention ?? 'mha';
    this.attentionChunks = opts.attentionChunks ?? 16;
    this.weightFormat = opts.weights ?? 'fp32';
    this.convChannelMultiple = opts.convChannelMultiple ?? 1;
  }

  /** Unique value name derived from a hint. */
  fresh(hint: string): string {
    const base = (this.scopes.length ? this.scopes.join('/') + '/' : '') + hint;
    let n = base;
    while (this.names.has(n)) n = `${base}_${++this.counter}`;
    this.names.add(n);
    return n;
  }

  /** Run fn with a name prefix (e.g. the diffusers module path) for readable node/value names. */
  scope<T>(name: string, fn: () => T): T {
    this.scopes.push(name);
    try {
      return fn();
    } finally {
      this.scopes.pop();
    }
  }

  input(name: string, dtype: DType, dims: readonly Dim[]): string {
    if (this.names.has(name)) throw new GraphBuildError(`duplicate input name "${name}"`);
    this.names.add(name);
    this.inputs.push({ name, elemType: ONNX_TYPE[dtype], dims });
    return name;
  }

  /** Declare `value` as graph output `name` (an Identity is inserted when the names differ). */
  output(name: string, value: string, dtype: DType, dims?: readonly Dim[]): void {
    let v = value;
    if (v !== name) {
      if (this.names.has(name)) throw new GraphBuildError(`output name "${name}" is already used`);
      this.names.add(name);
      this.nodes.push({ opType: 'Identity', inputs: [value], outputs: [name], name: `${name}_identity` });
      v = name;
    }
    this.outputs.push({ name: v, elemType: ONNX_TYPE[dtype], dims });
  }

  /** Names of the inputs declared so far, in order. */
  inputNames(): string[] {
    return this.inputs.map((i) => i.name);
  }

  /** Names of the outputs declared so far, in order. */
  outputNames(): string[] {
    return this.outputs.map((o) => o.name);
  }

  /** Add one node with a single output; returns the output name. */
  op(type: string, inputs: readonly string[], attrs: Record<string, AttrInput> = {}, opts: { domain?: string; hint?: string } = {}): string {
    return this.opN(type, inputs, 1, attrs, opts)[0];
  }

  /** Add one node with n outputs. Empty-string inputs denote omitted optional inputs. */
  opN(type: string, inputs: readonly string[], n: number, attrs: Record<string, AttrInput> = {}, opts: { domain?: string; hint?: string } = {}): string[] {
    const outputs = Array.from({ length: n }, (_, i) => this.fresh((opts.hint ?? type) + (n > 1 ? `_o${i}` : '')));
    const attributes: Record<string, AttributeValue> = {};
    for (const [k, v] of Object.entries(attrs)) attributes[k] = toAttr(k, v);
    if (opts.domain) this.usedDomains.set(opts.domain, 1);
    this.nodes.push({ opType: type, inputs, outputs, name: outputs[0], domain: opts.domain, attributes });
    return outputs;
  }

  /** Raw initializer from bytes (dims in elements). */
  initializer(hint: string, dtype: DType, dims: readonly number[], bytes: Uint8Array, borrowed = false): string {
    const name = this.fresh(hint);
    this.inits.push({ name, dtype, dims: [...dims], bytes, borrowed });
    return name;
  }

  /** float32 constant (deduplicated for small constants). */
  constF32(values: ArrayLike<number>, dims: readonly number[], hint = 'const'): string {
    const arr = Float32Array.from(values as ArrayLike<number>);
    if (arr.length !== numel(dims)) throw new GraphBuildError(`constF32 ${hint}: ${arr.length} values for dims [${dims}]`);
    const key = arr.length <= 64 ? `f32|${dims.join(',')}|${Array.from(arr).join(',')}` : '';
    if (key && this.constCache.has(key)) return this.constCache.get(key)!;
    const name = this.initializer(hint, 'float32', dims, new Uint8Array(arr.buffer));
    if (key) this.constCache.set(key, name);
    return name;
  }

  /** int64 1-D constant (shapes, axes); deduplicated. */
  constI64(values: readonly number[], hint = 'shape', dims?: readonly number[]): string {
    const d = dims ?? [values.length];
    const key = `i64|${d.join(',')}|${values.join(',')}`;
    const hit = this.constCache.get(key);
    if (hit) return hit;
    const arr = BigInt64Array.from(values.map((v) => BigInt(v)));
    const name = this.initializer(hint, 'int64', d, new Uint8Array(arr.buffer));
    this.constCache.set(key, name);
    return name;
  }

  /**
   * A model weight as a float32 value. F32 is used as is (borrowed when untransformed), F16 is kept
   * half and Cast (or widened, per options), BF16 is widened. Cached per (tensor, transform).
   */
  weight(w: WeightTensor, opts: WeightOptions = {}): string {
    const key = `${w.name}|${opts.transpose ? 'T' : ''}|${opts.reshape?.join(',') ?? ''}`;
    const hit = this.weightCache.get(key);
    if (hit) return hit;
    let dims = [...w.shape];
    if (opts.reshape) {
      if (numel(opts.reshape) !== numel(dims)) throw new GraphBuildError(`weight ${w.name}: cannot reshape [${dims}] to [${opts.reshape}]`);
      dims = [...opts.reshape];
    }
    const expectBytes = numel(w.shape) * BYTES_PER_ELEMENT[w.dtype];
    if (w.data.byteLength !== expectBytes) {
      throw new GraphBuildError(`weight ${w.name}: ${w.data.byteLength} bytes for ${w.dtype} [${w.shape}] (want ${expectBytes})`);
    }
    let bytes = w.data;
    let borrowed = true;
    let dtype: DType = w.dtype === 'F16' ? 'float16' : 'float32';
    if (w.dtype === 'BF16' || (w.dtype === 'F16' && this.f16Mode === 'widen')) {
      bytes = widenToF32(w);
      borrowed = false;
      dtype = 'float32';
    }
    let graphTranspose = false;
    if (opts.transpose) {
      if (dims.length !== 2) throw new GraphBuildError(`weight ${w.name}: transpose needs a 2-D tensor, got [${dims}]`);
      if (this.transposeMode === 'ort') {
        graphTranspose = true;
      } else {
        bytes = transpose2d(bytes, dims[0], dims[1], dtype === 'float16' ? 2 : 4);
        borrowed = false;
        dims = [dims[1], dims[0]];
      }
    }
    const hint = w.name + (opts.transpose ? '.T' : '');
    let name = this.initializer(hint, dtype, dims, bytes, borrowed);
    if (graphTranspose) name = this.op('Transpose', [name], { perm: [1, 0] }, { hint: hint + '.t' });
    if (dtype === 'float16') name = this.op('Cast', [name], { to: OnnxDataType.FLOAT }, { hint: hint + '.f32' });
    this.weightCache.set(key, name);
    return name;
  }

  /** Serialise. Inputs/outputs are validated; initializers go external above the threshold. */
  build(opts: BuildOptions = {}): BuiltModel {
    if (this.outputs.length === 0) throw new GraphBuildError(`graph "${this.name}" has no outputs`);
    const threshold = opts.externalThresholdBytes ?? 1.5e9;
    const total = this.inits.reduce((s, i) => s + i.bytes.byteLength, 0);
    const goExternal = total > threshold;
    const tensors: TensorSpec[] = [];
    let externalData: ExternalDataFile[] | undefined;

    if (!goExternal) {
      for (const i of this.inits) tensors.push({ name: i.name, dataType: ONNX_TYPE[i.dtype], dims: i.dims, rawData: i.bytes });
    } else {
      externalData = [];
      const bufferFiles = new Map<ArrayBufferLike, string>();
      const derived: { init: Initializer; offset: number }[] = [];
      let derivedLen = 0;
      for (const i of this.inits) {
        if (i.bytes.byteLength < MIN_EXTERNAL_BYTES) {
          tensors.push({ name: i.name, dataType: ONNX_TYPE[i.dtype], dims: i.dims, rawData: i.bytes });
          continue;
        }
        if (i.borrowed && i.bytes.buffer.byteLength >= BORROW_BUFFER_BYTES) {
          let path = bufferFiles.get(i.bytes.buffer);
          if (!path) {
            path = `weights-${bufferFiles.size}.bin`;
            bufferFiles.set(i.bytes.buffer, path);
            externalData.push({ path, data: new Uint8Array(i.bytes.buffer as ArrayBuffer) });
          }
          tensors.push({
            name: i.name,
            dataType: ONNX_TYPE[i.dtype],
            dims: i.dims,
            external: { location: path, offset: i.bytes.byteOffset, length: i.bytes.byteLength },
          });
          continue;
        }
        derivedLen = Math.ceil(derivedLen / EXTERNAL_ALIGN) * EXTERNAL_ALIGN;
        derived.push({ init: i, offset: derivedLen });
        tensors.push({
          name: i.name,
          dataType: ONNX_TYPE[i.dtype],
          dims: i.dims,
          external: { location: 'derived.bin', offset: derivedLen, length: i.bytes.byteLength },
        });
        derivedLen += i.bytes.byteLength;
      }
      if (derived.length) {
        const blob = new Uint8Array(derivedLen);
        for (const d of derived) blob.set(d.init.bytes, d.offset);
        externalData.push({ path: 'derived.bin', data: blob });
      }
    }

    const opsetImports = [{ domain: '', version: this.opset }];
    for (const d of this.usedDomains.keys()) opsetImports.push({ domain: d, version: 1 });
    const model = encodeModel({
      irVersion: 8,
      opsetImports,
      producerName: 'fisedit',
      graph: { name: this.name, nodes: this.nodes, initializers: tensors, inputs: this.inputs, outputs: this.outputs },
    });
    return { model, externalData, inputs: [...this.inputs], outputs: [...this.outputs] };
  }

  /** Counts for reports and tests. */
  stats(): { nodes: number; initializers: number; initializerBytes: number; opCounts: Record<string, number> } {
    const opCounts: Record<string, number> = {};
    for (const n of this.nodes) opCounts[n.opType] = (opCounts[n.opType] ?? 0) + 1;
    return {
      nodes: this.nodes.length,
      initializers: this.inits.length,
      initializerBytes: this.inits.reduce((s, i) => s + i.bytes.byteLength, 0),
      opCounts,
    };
  }
}

/** F16/BF16/F32 weight bytes → fresh float32 bytes. */
export function widenToF32(w: WeightTensor): Uint8Array {
  const n = numel(w.shape);
  const out = new Float32Array(n);
  if (w.dtype === 'F32') {
    new Uint8Array(out.buffer).set(w.data);
  } else {
    const src = new Uint16Array(n);
    new Uint8Array(src.buffer).set(w.data); // copy: the source view may be unaligned
    if (w.dtype === 'BF16') {
      const u = new Uint32Array(out.buffer);
      for (let i = 0; i < n; i++) u[i] = src[i] << 16;
    } else {
      for (let i = 0; i < n; i++) out[i] = HALF_TABLE[src[i]];
    }
  }
  return new Uint8Array(out.buffer);
}

// Lookup table for half → float (65536 entries, 256 KiB): widening SD-size F16 weights element by
// element through a function call is ~10× slower.
const HALF_TABLE: Float32Array = (() => {
  const t = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const s = h & 0x8000 ? -1 : 1;
    const e = (h >> 10) & 0x1f;
    const m = h & 0x3ff;
    t[h] = e === 0 ? s * m * 2 ** -24 : e === 31 ? (m ? NaN : s * Infinity) : s * (1 + m / 1024) * 2 ** (e - 15);
  }
  return t;
})();

/** Row-major [rows, cols] → [cols, rows] for 2- or 4-byte elements. */
function transpose2d(bytes: Uint8Array, rows: number, cols: number, elemBytes: 2 | 4): Uint8Array {
  const n = rows * cols;
  const copy = new Uint8Array(n * elemBytes);
  copy.set(bytes); // aligned copy of a possibly unaligned view
  if (elemBytes === 4) {
    const src = new Uint32Array(copy.buffer);
    const dst = new Uint32Array(n);
    for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) dst[c * rows + r] = src[r * cols + c];
    return new Uint8Array(dst.buffer);
  }
  const src = new Uint16Array(copy.buffer);
  const dst = new Uint16Array(n);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) dst[c * rows + r] = src[r * cols + c];
  return new Uint8Array(dst.buffer);
}
