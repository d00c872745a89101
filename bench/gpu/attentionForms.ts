// The two attention forms graph/nn.ts can build (com.microsoft.MultiHeadAttention, MatMul/Softmax),
// on a device, against the MatMul/Softmax form on the CPU: accuracy (max abs difference, random unit
// q/k/v, seeded) and time per call. The small cases picked runtime/deviceGraphs.ts's choice for WebGPU on
// lavapipe; the SD cases are the shapes of SD-1.5's attention at 512 px (CFG batch 2), where the written-out
// form builds a [2, 8, 4096, 4096] score matrix, so whether the fused kernel is right on a real GPU decides
// how fast a dense step can be. bench.ts runs it as a phase on a GPU machine.
//   XDG_RUNTIME_DIR=/tmp/xdg npx tsx bench/gpu/attentionForms.ts [--device webgpu] [--sd]
import { GraphBuilder } from '../../src/engine/graph/graphBuilder';
import { attention } from '../../src/engine/graph/nn';
import { gaussianFloat32 } from '../../src/engine/random/gaussian';
import { createSession, float32Tensor, isEngineDevice, type EngineDevice } from '../../src/engine/runtime/ortSession';

export interface AttentionCase {
  name: string;
  batch: number;
  /** Queries L, keys M, channels C, heads. */
  L: number;
  M: number;
  C: number;
  heads: number;
}

export interface AttentionFormRow extends AttentionCase {
  device: EngineDevice;
  /** Max abs difference from MatMul/Softmax on the CPU, per form. */
  maxAbs: { mha: number; matmul: number };
  /** Median ms per run on the device, per form. */
  ms: { mha: number; matmul: number };
}

export const SMALL_CASES: AttentionCase[] = [[8, 8], [16, 16], [17, 17], [32, 32], [77, 77], [16, 77], [77, 16], [256, 77], [256, 256]].map(([L, M]) => ({ name: `${L}x${M}`, batch: 1, L, M, C: 64, heads: 4 }));

/** SD-1.5 at 512 px, CFG batch 2: self-attention at the two finest levels, cross-attention at the finest. */
export const SD_CASES: AttentionCase[] = [
  { name: 'self 64x64 (level 0)', batch: 2, L: 4096, M: 4096, C: 320, heads: 8 },
  { name: 'self 32x32 (level 1)', batch: 2, L: 1024, M: 1024, C: 640, heads: 8 },
  { name: 'cross 64x64 x 77 text', batch: 2, L: 4096, M: 77, C: 320, heads: 8 },
];

async function timedRun(form: 'mha' | 'matmul', dev: EngineDevice, c: AttentionCase, feeds: Record<string, Float32Array>, reps: number): Promise<{ y: Float32Array; ms: number }> {
  const g = new GraphBuilder('attention_form');
  const q = g.input('q', 'float32', [c.batch, c.L, c.C]);
  const k = g.input('k', 'float32', [c.batch, c.M, c.C]);
  const v = g.input('v', 'float32', [c.batch, c.M, c.C]);
  g.output('y', attention(g, q, k, v, c.C, c.heads, { impl: form }), 'float32');
  const s = await createSession(g.build(), { device: dev });
  try {
    const inputs = { q: float32Tensor(feeds.q, [c.batch, c.L, c.C]), k: float32Tensor(feeds.k, [c.batch, c.M, c.C]), v: float32Tensor(feeds.v, [c.batch, c.M, c.C]) };
    const first = await s.run(inputs);
    const times: number[] = [];
    for (let r = 0; r < reps; r++) {
      const t = performance.now();
      await s.run(inputs);
      times.push(performance.now() - t);
    }
    times.sort((a, b) => a - b);
    return { y: first.y.data as Float32Array, ms: times.length ? times[times.length >> 1] : NaN };
  } finally {
    await s.release();
  }
}

/** Both forms on `device` for each case, against MatMul/Softmax on the CPU. */
export async function measureAttentionForms(device: EngineDevice, cases: readonly AttentionCase[], reps = 3): Promise<AttentionFormRow[]> {
  const rows: AttentionFormRow[] = [];
  for (const c of cases) {
    const feeds = { q: gaussianFloat32(1n, c.batch * c.L * c.C), k: gaussianFloat32(2n, c.batch * c.M * c.C), v: gaussianFloat32(3n, c.batch * c.M * c.C) };
    const ref = (await timedRun('matmul', 'cpu', c, feeds, 0)).y;
    const diff = (a: Float32Array) => a.reduce((m, x, i) => Math.max(m, Math.abs(x - ref[i])), 0);
    const mha = await timedRun('mha', device, c, feeds, reps);
    const mm = await timedRun('matmul', device, c, feeds, reps);
    rows.push({ ...c, device, maxAbs: { mha: diff(mha.y), matmul: diff(mm.y) }, ms: { mha: mha.ms, matmul: mm.ms } });
  }
  return rows;
}

export function printAttentionForms(rows: readonly AttentionFormRow[]): void {
  console.log(`attention forms on ${rows[0]?.device ?? '?'} vs MatMul/Softmax on the CPU: max abs difference, median ms`);
  console.log('  case                      B      L      M     C  heads   MHA diff  MatMul diff    MHA ms  MatMul ms');
  for (const r of rows) {
    console.log(`  ${r.name.padEnd(24)} ${String(r.batch).padStart(2)} ${String(r.L).padStart(6)} ${String(r.M).padStart(6)} ${String(r.C).padStart(5)} ${String(r.heads).padStart(6)} ${r.maxAbs.mha.toExponential(2).padStart(10)} ${r.maxAbs.matmul.toExponential(2).padStart(12)} ${r.ms.mha.toFixed(2).padStart(9)} ${r.ms.matmul.toFixed(2).padStart(10)}`);
  }
}

async function main(): Promise<void> {
  const arg = process.argv.indexOf('--device');
  const device = arg >= 0 ? process.argv[arg + 1] : 'webgpu';
  if (!isEngineDevice(device)) throw new Error(`--device must be cpu, webgpu or cuda (got ${device})`);
  printAttentionForms(await measureAttentionForms(device, process.argv.includes('--sd') ? [...SMALL_CASES, ...SD_CASES] : SMALL_CASES));
}

if (require.main === module) {
  main().catch((e) => {
    console.error(e);
    process.exit(1);
  });
}
