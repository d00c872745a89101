/** @jest-environment ./test/engine/runtime/ortTestEnvironment.js */
// The onnxruntime adapter: feeds/fetches, dtype conversions, error messages, worker threads.

import * as path from 'path';
import { Worker } from 'worker_threads';
import { GraphBuilder } from '../../../src/engine/graph/graphBuilder';
import * as fs from 'fs';
import {
  checkDeviceAvailable,
  createSession,
  DeviceUnavailableError,
  float16Tensor,
  float32Tensor,
  int64Tensor,
  ortBindingDir,
  OrtSessionError,
} from '../../../src/engine/runtime/ortSession';
import { floatToHalf, halfToFloat } from '../../../src/engine/model/tensor';

function addOneGraph() {
  const g = new GraphBuilder('add1');
  const x = g.input('x', 'float32', ['N', 2]);
  g.output('y', g.op('Add', [x, g.constF32([1], [])]), 'float32', ['N', 2]);
  return g.build();
}

describe('OrtModelSession', () => {
  it('runs with a dynamic batch dimension and reports input/output names', async () => {
    const s = await createSession(addOneGraph(), { intraOpNumThreads: 1 });
    expect(s.inputNames).toEqual(['x']);
    expect(s.outputNames).toEqual(['y']);
    for (const n of [1, 3]) {
      const out = await s.run({ x: float32Tensor(new Float32Array(2 * n).fill(2), [n, 2]) });
      expect(out.y.dtype).toBe('float32');
      expect(out.y.dims).toEqual([n, 2]);
      expect(Array.from(out.y.data as Float32Array)).toEqual(new Array(2 * n).fill(3));
    }
    await s.release();
  });

  it('runs without the memory arena and memory pattern across changing shapes (sparse sessions use this)', async () => {
    const s = await createSession(addOneGraph(), { intraOpNumThreads: 1, enableCpuMemArena: false, enableMemPattern: false });
    for (const n of [5, 1, 64, 2]) {
      const x = Float32Array.from({ length: 2 * n }, (_, i) => i - n);
      const out = await s.run({ x: float32Tensor(x, [n, 2]) });
      expect(Array.from(out.y.data as Float32Array)).toEqual(Array.from(x, (v) => v + 1));
    }
    await s.release();
  });

  it('defaults intra-op threads to the machine parallelism', async () => {
    const s = await createSession(addOneGraph());
    expect(s.intraOpNumThreads).toBe(require('os').availableParallelism());
    await s.release();
  });

  it('names the missing, unknown or mis-sized input', async () => {
    const s = await createSession(addOneGraph(), { intraOpNumThreads: 1 });
    await expect(s.run({})).rejects.toThrow(/missing input "x"/);
    await expect(s.run({ x: float32Tensor(new Float32Array(2), [1, 2]), z: float32Tensor(new Float32Array(1), [1]) })).rejects.toThrow(/unknown input "z"/);
    await expect(s.run({ x: float32Tensor(new Float32Array(3), [1, 2]) })).rejects.toThrow(OrtSessionError);
    await expect(s.run({ x: float32Tensor(new Float32Array(3), [1, 2]) })).rejects.toThrow(/3 elements for dims \[1,2\]/);
    await s.release();
    await expect(s.run({ x: float32Tensor(new Float32Array(2), [1, 2]) })).rejects.toThrow(/after release/);
  });

  it('wraps graph load failures in OrtSessionError', async () => {
    const g = new GraphBuilder('bad');
    const x = g.input('x', 'float32', [2]);
    g.output('y', g.op('NoSuchOp', [x]), 'float32');
    await expect(createSession(g.build())).rejects.toThrow(/could not load the graph/);
  });

  it('passes int64 and float16 tensors (float16 as raw half bits)', async () => {
    const g = new GraphBuilder('types');
    const ids = g.input('ids', 'int64', [3]);
    const h = g.input('h', 'float16', [3]);
    g.output('ids_f', g.op('Cast', [ids], { to: 1 }), 'float32');
    g.output('h2', g.op('Add', [h, h]), 'float16');
    const s = await createSession(g.build(), { intraOpNumThreads: 1 });
    const halves = Uint16Array.from([0.5, -1.25, 3].map(floatToHalf));
    const out = await s.run({ ids: int64Tensor([7, -2, 40000000000], [3]), h: float16Tensor(halves, [3]) });
    expect(Array.from(out.ids_f.data as Float32Array)).toEqual([7, -2, 40000000000]);
    expect(out.h2.dtype).toBe('float16');
    expect(Array.from(out.h2.data as Uint16Array, halfToFloat)).toEqual([1, -2.5, 6]);
    await s.release();
  });

  it('runs inside a worker thread', async () => {
    const entry = path.join(__dirname, 'ortWorkerMain.ts');
    const worker = new Worker(`require('tsx/cjs'); require(${JSON.stringify(entry)});`, { eval: true, workerData: { values: [1, 2, 5] } });
    const result = await new Promise<unknown>((resolve, reject) => {
      worker.once('message', resolve);
      worker.once('error', reject);
    });
    await worker.terminate();
    expect(result).toEqual([3, 6, 15]);
  });
});

// Whether the CUDA provider libraries are installed is a fact of this checkout (npm ci skips them).
const cudaInstalled = fs.existsSync(path.join(ortBindingDir(), 'libonnxruntime_providers_cuda.so'));
if (cudaInstalled) console.log('ortSession.test: CUDA provider libraries are installed; the "not installed" tests are skipped');
const describeNoCuda = cudaInstalled ? describe.skip : describe;

describeNoCuda('device cuda without the provider libraries', () => {
  it('checkDeviceAvailable says which files are missing and how to install them', async () => {
    const err = await checkDeviceAvailable('cuda').then(() => null, (e: unknown) => e);
    expect(err).toBeInstanceOf(DeviceUnavailableError);
    expect((err as DeviceUnavailableError).device).toBe('cuda');
    expect((err as Error).message).toContain('libonnxruntime_providers_cuda.so');
    expect((err as Error).message).toContain('ONNXRUNTIME_NODE_INSTALL=cuda12 npm ci');
    expect((err as Error).message).toContain('npm rebuild onnxruntime-node');
  });

  it('createSession fails with the same error before ORT tries to load the library', async () => {
    await expect(createSession(addOneGraph(), { device: 'cuda' })).rejects.toThrow(DeviceUnavailableError);
  });
});

describe('device cpu', () => {
  it('is always available and is the default', async () => {
    await expect(checkDeviceAvailable('cpu')).resolves.toBeUndefined();
    const s = await createSession(addOneGraph(), { intraOpNumThreads: 1 });
    expect(s.device).toBe('cpu');
    await s.release();
  });
});
