// The two attention forms graph/nn.ts can build (com.microsoft.MultiHeadAttention, MatMul/Softmax),
// on each device, against the MatMul/Softmax form on the CPU, over query/key lengths: what picked
// runtime/deviceGraphs.ts's choice for WebGPU. Random q/k/v (seeded), heads of 16 channels.
//   XDG_RUNTIME_DIR=/tmp/xdg npx tsx bench/gpu/attentionForms.ts [--device webgpu]
import { GraphBuilder } from '../../src/engine/graph/graphBuilder';
import { attention } from '../../src/engine/graph/nn';
import { gaussianFloat32 } from '../../src/engine/random/gaussian';
import { createSession, float32Tensor, isEngineDevice, type EngineDevice } from '../../src/engine/runtime/ortSession';

const arg = process.argv.indexOf('--device');
const device = arg >= 0 ? process.argv[arg + 1] : 'webgpu';
if (!isEngineDevice(device)) throw new Error(`--device must be cpu, webgpu or cuda (got ${device})`);

async function run(form: 'mha' | 'matmul', dev: EngineDevice, L: number, M: number, C: number, heads: number, feeds: Record<string, Float32Array>): Promise<Float32Array> {
  const g = new GraphBuilder('attention_form');
  const q = g.input('q', 'float32', [1, L, C]);
  const k = g.input('k', 'float32', [1, M, C]);
  const v = g.input('v', 'float32', [1, M, C]);
  g.output('y', attention(g, q, k, v, C, heads, { impl: form }), 'float32');
  const s = await createSession(g.build(), { device: dev, intraOpNumThreads: 1 });
  const out = await s.run({ q: float32Tensor(feeds.q, [1, L, C]), k: float32Tensor(feeds.k, [1, M, C]), v: float32Tensor(feeds.v, [1, M, C]) });
  await s.release();
  return out.y.data as Float32Array;
}

async function main(): Promise<void> {
  console.log(`attention forms on ${device} vs MatMul/Softmax on the CPU: max abs difference`);
  console.log('  L (queries)  M (keys)  heads  MultiHeadAttention  MatMul/Softmax');
  for (const [L, M, C] of [[8, 8, 64], [16, 16, 64], [17, 17, 64], [32, 32, 64], [77, 77, 64], [16, 77, 64], [77, 16, 64], [256, 77, 64], [256, 256, 64]]) {
    const heads = C / 16;
    const feeds = { q: gaussianFloat32(1n, L * C), k: gaussianFloat32(2n, M * C), v: gaussianFloat32(3n, M * C) };
    const ref = await run('matmul', 'cpu', L, M, C, heads, feeds);
    const diff = (a: Float32Array) => a.reduce((m, x, i) => Math.max(m, Math.abs(x - ref[i])), 0).toExponential(2);
    const mha = await run('mha', device as EngineDevice, L, M, C, heads, feeds);
    const mm = await run('matmul', device as EngineDevice, L, M, C, heads, feeds);
    console.log(`  ${String(L).padStart(11)}  ${String(M).padStart(8)}  ${String(heads).padStart(5)}  ${diff(mha).padStart(18)}  ${diff(mm).padStart(14)}`);
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
