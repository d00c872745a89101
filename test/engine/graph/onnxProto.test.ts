/** @jest-environment ./test/engine/runtime/ortTestEnvironment.js */
// The protobuf writer: exact bytes for a minimal model (field numbers from onnx.proto), and every
// attribute kind / dim kind accepted by onnxruntime with the intended meaning.

import { encodeModel, OnnxDataType } from '../../../src/engine/graph/onnxProto';
import { GraphBuilder, f, fs } from '../../../src/engine/graph/graphBuilder';
import { createSession, float32Tensor } from '../../../src/engine/runtime/ortSession';

const ascii = (s: string) => Array.from(Buffer.from(s));

describe('encodeModel', () => {
  it('writes the exact protobuf bytes for a one-node model', () => {
    const bytes = encodeModel({
      irVersion: 8,
      producerName: 'p',
      opsetImports: [{ domain: '', version: 17 }],
      graph: {
        name: 'g',
        nodes: [{ opType: 'Relu', inputs: ['x'], outputs: ['y'] }],
        initializers: [],
        inputs: [{ name: 'x', elemType: OnnxDataType.FLOAT, dims: ['N'] }],
        outputs: [{ name: 'y', elemType: OnnxDataType.FLOAT, dims: [3] }],
      },
    });
    // NodeProto: input(1) "x", output(2) "y", op_type(4) "Relu"
    const node = [0x0a, 1, ...ascii('x'), 0x12, 1, ...ascii('y'), 0x22, 4, ...ascii('Relu')];
    // ValueInfoProto: name(1), type(2) → TypeProto.tensor_type(1) → elem_type(1)=1, shape(2) → dim(1) → dim_param(2) / dim_value(1)
    const vi = (name: string, dim: number[]) => {
      const shape = [0x0a, dim.length, ...dim];
      const tensor = [0x08, 1, 0x12, shape.length, ...shape];
      const type = [0x0a, tensor.length, ...tensor];
      return [0x0a, 1, ...ascii(name), 0x12, type.length, ...type];
    };
    const x = vi('x', [0x12, 1, ...ascii('N')]);
    const y = vi('y', [0x08, 3]);
    // GraphProto: node(1), name(2), input(11), output(12)
    const graph = [0x0a, node.length, ...node, 0x12, 1, ...ascii('g'), 0x5a, x.length, ...x, 0x62, y.length, ...y];
    // ModelProto: ir_version(1), producer_name(2), graph(7), opset_import(8) → version(2)
    const model = [0x08, 8, 0x12, 1, ...ascii('p'), 0x3a, graph.length, ...graph, 0x42, 2, 0x10, 17];
    expect(Array.from(bytes)).toEqual(model);
  });

  it('encodes negative int64 attributes as 10-byte varints that ORT reads back', async () => {
    const g = new GraphBuilder('neg');
    const x = g.input('x', 'float32', [2, 3]);
    g.output('y', g.op('ReduceMean', [x], { axes: [-1], keepdims: 0 }), 'float32');
    g.output('z', g.op('Softmax', [x], { axis: -2 }), 'float32');
    const s = await createSession(g.build(), { intraOpNumThreads: 1 });
    const out = await s.run({ x: float32Tensor(Float32Array.from([1, 2, 3, 4, 5, 9]), [2, 3]) });
    expect(Array.from(out.y.data as Float32Array)).toEqual([2, 6]);
    const z = out.z.data as Float32Array; // softmax over rows: column pairs sum to 1
    for (let c = 0; c < 3; c++) expect(z[c] + z[3 + c]).toBeCloseTo(1, 6);
  });

  it('round-trips float, floats, string and tensor attributes', async () => {
    const g = new GraphBuilder('attrs');
    const x = g.input('x', 'float32', [4]);
    g.output('leaky', g.op('LeakyRelu', [x], { alpha: f(0.25) }), 'float32');
    const scale = g.op('Constant', [], { value: { kind: 'tensor', value: { name: 'c', dataType: OnnxDataType.FLOAT, dims: [4], rawData: new Uint8Array(Float32Array.from([1, 2, 3, 4]).buffer) } } });
    g.output('scaled', g.op('Mul', [x, scale]), 'float32');
    const x4 = g.op('Reshape', [x, g.constI64([1, 1, 2, 2])]);
    g.output('up', g.op('Resize', [x4, '', g.constF32([1, 1, 1, 2], [4])], { mode: 'nearest', nearest_mode: 'floor', coordinate_transformation_mode: 'asymmetric' }), 'float32');
    g.output('floats', g.op('Constant', [], { value_floats: fs([0.5, 1.5]) }), 'float32');
    const s = await createSession(g.build(), { intraOpNumThreads: 1 });
    const out = await s.run({ x: float32Tensor(Float32Array.from([-4, -1, 2, 8]), [4]) });
    expect(Array.from(out.leaky.data as Float32Array)).toEqual([-1, -0.25, 2, 8]);
    expect(Array.from(out.scaled.data as Float32Array)).toEqual([-4, -2, 6, 32]);
    expect(Array.from(out.up.data as Float32Array)).toEqual([-4, -4, -1, -1, 2, 2, 8, 8]);
    expect(Array.from(out.floats.data as Float32Array)).toEqual([0.5, 1.5]);
  });
});
