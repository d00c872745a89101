// The attention forms graph/nn.ts can build, on a device, against the MatMul/Softmax form on the CPU:
// accuracy (max abs difference, random unit q/k/v, seeded) and time per call. Forms:
//   mha         com.microsoft.MultiHeadAttention; on WebGPU its FlashAttention kernel from 32 queries on
//   matmul      MatMul/Softmax written out (what WebGPU graphs use by default)
//   mha-unfused MultiHeadAttention with the head size padded off a multiple of 4: the EP's unfused kernels
//   chunked:N   MatMul/Softmax over N slices of the queries in turn (score matrices N times smaller)
// The small cases picked runtime/deviceGraphs.ts's choice for WebGPU on lavapipe; the SD cases are the
// shapes of SD-1.5's attention at 512 px (CFG batch 2), where the written-out form builds a
// [2, 8, 4096, 4096] score matrix, so which form is right and fastest on a real GPU decides how fast a
// dense step can be. bench.ts runs it as phase 0 on a GPU machine.
//   XDG_RUNTIME_DIR=/tmp/xdg npx tsx bench/gpu/attentionForms.ts [--device webgpu] [--sd] [--forms mha,matmul,...]
import { attentionFeeds, maxAbsDifference, runAttentionForm, type AttentionCase } from '../../src/engine/runtime/attentionProbe';
import { parseAttentionForm } from '../../src/engine/runtime/deviceGraphs';
import { isEngineDevice, type EngineDevice } from '../../src/engine/runtime/ortSession';

export type { AttentionCase };

/** A form as FISEDIT_WEBGPU_ATTENTION spells it: mha, matmul, mha-unfused, chunked:N. */
export type AttentionForm = string;
export const DEFAULT_FORMS: readonly AttentionForm[] = ['mha', 'matmul', 'mha-unfused', 'chunked:8', 'chunked:64'];

export interface AttentionFormRow extends AttentionCase {
  device: EngineDevice;
  /** Max abs difference from MatMul/Softmax on the CPU, per form. */
  maxAbs: Record<AttentionForm, number>;
  /** Median ms per run on the device, per form. */
  ms: Record<AttentionForm, number>;
}

export const SMALL_CASES: AttentionCase[] = [[8, 8], [16, 16], [17, 17], [32, 32], [77, 77], [16, 77], [77, 16], [256, 77], [256, 256]].map(([L, M]) => ({ name: `${L}x${M}`, batch: 1, L, M, C: 64, heads: 4 }));

/** SD-1.5 at 512 px, CFG batch 2: self-attention at the two finest levels, cross-attention at the finest. */
export const SD_CASES: AttentionCase[] = [
  { name: 'self 64x64 (level 0)', batch: 2, L: 4096, M: 4096, C: 320, heads: 8 },
  { name: 'self 32x32 (level 1)', batch: 2, L: 1024, M: 1024, C: 640, heads: 8 },
  { name: 'cross 64x64 x 77 text', batch: 2, L: 4096, M: 77, C: 320, heads: 8 },
];

/** Each form on `device` for each case, against MatMul/Softmax on the CPU. A form that fails is NaN (and said). */
export async function measureAttentionForms(device: EngineDevice, cases: readonly AttentionCase[], reps = 3, forms: readonly AttentionForm[] = DEFAULT_FORMS): Promise<AttentionFormRow[]> {
  forms.forEach(parseAttentionForm);
  const rows: AttentionFormRow[] = [];
  for (const c of cases) {
    const feeds = attentionFeeds(c);
    const ref = (await runAttentionForm('matmul', 'cpu', c, feeds)).y;
    const row: AttentionFormRow = { ...c, device, maxAbs: {}, ms: {} };
    for (const form of forms) {
      try {
        const r = await runAttentionForm(form, device, c, feeds, reps);
        row.maxAbs[form] = maxAbsDifference(r.y, ref);
        row.ms[form] = r.ms;
      } catch (e) {
        process.stderr.write(`attention form ${form} on ${device}, ${c.name}: ${(e as Error).message}\n`);
        row.maxAbs[form] = NaN;
        row.ms[form] = NaN;
      }
    }
    rows.push(row);
  }
  return rows;
}

export function printAttentionForms(rows: readonly AttentionFormRow[]): void {
  const forms = [...new Set(rows.flatMap((r) => Object.keys(r.ms)))];
  console.log(`attention forms on ${rows[0]?.device ?? '?'} vs MatMul/Softmax on the CPU: max abs difference / median ms per form`);
  console.log(`  case                      B      L      M     C  heads | ${forms.map((f) => f.padStart(18)).join(' | ')}`);
  for (const r of rows) {
    const cells = forms.map((f) => `${(r.maxAbs[f] ?? NaN).toExponential(1).padStart(8)} ${(r.ms[f] ?? NaN).toFixed(2).padStart(9)}`);
    console.log(`  ${r.name.padEnd(24)} ${String(r.batch).padStart(2)} ${String(r.L).padStart(6)} ${String(r.M).padStart(6)} ${String(r.C).padStart(5)} ${String(r.heads).padStart(6)} | ${cells.join(' | ')}`);
  }
}

async function main(): Promise<void> {
  const arg = (name: string) => (process.argv.indexOf(name) >= 0 ? process.argv[process.argv.indexOf(name) + 1] : undefined);
  const device = arg('--device') ?? 'webgpu';
  if (!isEngineDevice(device)) throw new Error(`--device must be cpu, webgpu or cuda (got ${device})`);
  const forms = arg('--forms')?.split(',').filter(Boolean) ?? DEFAULT_FORMS;
  printAttentionForms(await measureAttentionForms(device, process.argv.includes('--sd') ? [...SMALL_CASES, ...SD_CASES] : SMALL_CASES, 3, forms));
}

// (require.main === module alone is also true inside the esbuild bundle of bench.ts, which includes this file)
if (require.main === module && /attentionForms\.[jt]s$/.test(process.argv[1] ?? '')) {
  main().catch((e) => {
    console.error(e);
    process.exit(1);
  });
}
