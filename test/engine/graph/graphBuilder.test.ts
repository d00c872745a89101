/** @jest-environment ./test/engine/runtime/ortTestEnvironment.js */
// GraphBuilder: weight dtypes and transforms, external data (borrowed and derived), validation.

import { GraphBuilder, GraphBuilderOptions, GraphBuildError, BuiltModel } from '../../../src/engine/graph/graphBuilder';
import { linear } from '../../../src/engine/graph/nn';
import { createSession, float32Tensor } from '../../../src/engine/runtime/ortSession';
import { floatToHalf, halfToFloat, WeightTensor } from '../../../src/engine/model/tensor';
import { f32Weight, randArray } from './reference';

const [N, I, O] = [3, 40, 24]; // W is 960 floats: above the 1 KiB inline limit for external data
const x = randArray(N * I, 1);
const wF32 = randArray(O * I, 2);
const bias = randArray(O, 3);

/** Reference y = x·Wᵀ + b in float64. */
function refLinear(w: ArrayLike<number>): Float32Array {
  const y = new Float32Array(N * O);
  for (let n = 0; n < N; n++)
    for (let o = 0; o < O; o++) {
      let s = bias[o];
      for (let i = 0; i < I; i++) s += x[n * I + i] * w[o * I + i];
      y[n * O + o] = s;
    }
  return y;
}

function linearGraph(w: WeightTensor, opts: GraphBuilderOptions = {}): GraphBuilder {
  const g = new GraphBuilder('lin', opts);
  const xi = g.input('x', 'float32', ['N', I]);
  g.output('y', linear(g, xi, w, f32Weight('b', bias, [O])), 'float32');
  return g;
}

async function runLinear(built: BuiltModel): Promise<Float32Array> {
  const s = await createSession(built, { intraOpNumThreads: 1 });
  const out = await s.run({ x: float32Tensor(x, [N, I]) });
  await s.release();
  return out.y.data as Float32Array;
}

function expectClose(a: Float32Array, b: Float32Array, tol = 1e-5): void {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  expect(m).toBeLessThan(tol);
}

describe('weights', () => {
  it('F32 linear weights give x·Wᵀ+b with ORT-folded and JS transposes alike', async () => {
    const ref = refLinear(wF32);
    for (const weightTranspose of ['ort', 'js'] as const) {
      expectClose(await runLinear(linearGraph(f32Weight('w', wF32, [O, I]), { weightTranspose }).build()), ref);
    }
  });

  it('F16 weights: Cast in the graph and JS widening give the same values', async () => {
    const half = Uint16Array.from(wF32, floatToHalf);
    const w: WeightTensor = { name: 'w', dtype: 'F16', shape: [O, I], data: new Uint8Array(half.buffer) };
    const widened = Float32Array.from(half, halfToFloat);
    const ref = refLinear(widened);
    const cast = linearGraph(w, { f16Weights: 'cast' });
    expect(cast.stats().opCounts['Cast']).toBe(1);
    expectClose(await runLinear(cast.build()), ref);
    const widen = linearGraph(w, { f16Weights: 'widen', weightTranspose: 'js' });
    expect(widen.stats().opCounts['Cast']).toBeUndefined();
    expectClose(await runLinear(widen.build()), ref);
  });

  it('BF16 weights are widened exactly (bf16 = top 16 bits of f32)', async () => {
    const u32 = new Uint32Array(wF32.buffer.slice(0));
    const bf = Uint16Array.from(u32, (u) => u >>> 16);
    const truncated = new Float32Array(Uint32Array.from(bf, (b) => b << 16).buffer);
    const g = linearGraph({ name: 'w', dtype: 'BF16', shape: [O, I], data: new Uint8Array(bf.buffer) });
    expect(g.stats().opCounts['Cast']).toBeUndefined();
    expectClose(await runLinear(g.build()), refLinear(truncated));
  });

  it('rejects weights whose byte length does not match dtype × shape', () => {
    const g = new GraphBuilder('bad');
    expect(() => g.weight({ name: 'w', dtype: 'F32', shape: [4], data: new Uint8Array(12) })).toThrow(/12 bytes for F32 \[4\]/);
  });

  it('reuses one initializer per (weight, transform)', () => {
    const g = new GraphBuilder('cache');
    const w = f32Weight('w', wF32, [O, I]);
    expect(g.weight(w)).toBe(g.weight(w));
    expect(g.weight(w, { transpose: true })).not.toBe(g.weight(w));
    expect(g.constI64([0, -1])).toBe(g.constI64([0, -1]));
  });
});

describe('external data', () => {
  it('keeps everything inline below the threshold', () => {
    const built = linearGraph(f32Weight('w', wF32, [O, I])).build();
    expect(built.externalData).toBeUndefined();
  });

  it('references large weight buffers in place, packs derived tensors, and runs the same', async () => {
    // A 64 MiB "safetensors region" holding W at an offset, as the model loader produces.
    const region = new Uint8Array(64 * 1024 * 1024);
    const offset = 4096;
    region.set(new Uint8Array(wF32.buffer), offset);
    const view: WeightTensor = { name: 'w', dtype: 'F32', shape: [O, I], data: region.subarray(offset, offset + wF32.byteLength) };
    const ref = refLinear(wF32);
    // 'ort': W borrowed untouched (Transpose folded by ORT); 'js': Wᵀ is derived and packed.
    const borrowed = linearGraph(view, { weightTranspose: 'ort' }).build({ externalThresholdBytes: 0 });
    expect(borrowed.externalData!.map((e) => e.path)).toEqual(['weights-0.bin']);
    expect(borrowed.externalData![0].data.buffer).toBe(region.buffer); // no copy
    expect(borrowed.model.byteLength).toBeLessThan(2048); // bias (96 B) inline, W external
    expectClose(await runLinear(borrowed), ref);

    const derived = linearGraph(view, { weightTranspose: 'js' }).build({ externalThresholdBytes: 0 });
    expect(derived.externalData!.map((e) => e.path)).toEqual(['derived.bin']);
    expect(derived.externalData![0].data.byteLength).toBe(wF32.byteLength);
    expectClose(await runLinear(derived), ref);
  });

  it('reads tensors past the 2 GiB offset of an in-memory external buffer (SD-size safetensors regions)', async () => {
    // calloc'd and mostly untouched, so cheap: only the referenced 4 KiB page range is written/read.
    const region = new Uint8Array(2.3e9);
    const offset = 2.2e9;
    new Uint8Array(region.buffer, offset, wF32.byteLength).set(new Uint8Array(wF32.buffer));
    const view: WeightTensor = { name: 'w', dtype: 'F32', shape: [O, I], data: region.subarray(offset, offset + wF32.byteLength) };
    const built = linearGraph(view).build({ externalThresholdBytes: 0 });
    expect(built.externalData![0].data.byteLength).toBe(2.3e9);
    expectClose(await runLinear(built), refLinear(wF32));
  });

  it('onnxruntime copies in-memory external data at session creation (buffers may be dropped after)', async () => {
    const region = new Uint8Array(64 * 1024 * 1024);
    region.set(new Uint8Array(wF32.buffer), 0);
    const view: WeightTensor = { name: 'w', dtype: 'F32', shape: [O, I], data: region.subarray(0, wF32.byteLength) };
    const s = await createSession(linearGraph(view).build({ externalThresholdBytes: 0 }), { intraOpNumThreads: 1 });
    region.fill(0x7f);
    const out = await s.run({ x: float32Tensor(x, [N, I]) });
    expectClose(out.y.data as Float32Array, refLinear(wF32));
    await s.release();
  });
});

describe('validation', () => {
  it('requires f() for float attributes', () => {
    const g = new GraphBuilder('attr');
    const xi = g.input('x', 'float32', [1]);
    expect(() => g.op('LeakyRelu', [xi], { alpha: 0.5 })).toThrow(GraphBuildError);
    expect(() => g.op('LeakyRelu', [xi], { alpha: 0.5 })).toThrow(/wrap floats in f\(\)/);
  });

  it('rejects duplicate names and graphs without outputs', () => {
    const g = new GraphBuilder('names');
    const xi = g.input('x', 'float32', [1]);
    expect(() => g.input('x', 'float32', [1])).toThrow(/duplicate input name "x"/);
    expect(() => g.build()).toThrow(/has no outputs/);
    g.output('y', g.op('Relu', [xi]), 'float32');
    expect(() => g.output('y', xi, 'float32')).toThrow(/already used/);
  });

  it('prefixes value names with the module scope', () => {
    const g = new GraphBuilder('scopes');
    const xi = g.input('x', 'float32', [1]);
    const y = g.scope('down_blocks.0', () => g.scope('resnets.1', () => g.op('Relu', [xi])));
    expect(y).toBe('down_blocks.0/resnets.1/Relu');
  });
});
