// Where a session's run time goes, from onnxruntime's own profiler (SessionOptions.profileFilePrefix →
// enableProfiling, a chrome-trace JSON). On the WebGPU EP that profile carries GPU time per kernel:
// with profiling on, the EP writes a timestamp query around every compute dispatch (Dawn's
// timestamp-query features; onnxruntime core/providers/webgpu/webgpu_context.cc) and reports each as an
// event of category "Api" named "<node>&<op type>&<program>", duration in µs, with the program's shapes.
// Events of category "Node" are the host side: "<node>_kernel_time" is the time the kernel's Compute()
// took on the CPU (for a WebGPU node: recording the dispatch, not running it; for a node the CPU EP took:
// the real work), with the provider named in args. Session "model_run" events are each run's wall time.
//
// summarizeProfile() splits those into runs (every run launches the same kernels), drops the warm-up
// runs, and reports per run (median): wall ms, the sum of GPU kernel ms, the GPU span (first kernel start
// to last kernel end), host ms inside kernels, and tables of GPU time by op type, by block (the node
// name's first two scopes, e.g. down_blocks.0/attentions.0) and by node, plus the nodes that ran on the
// CPU EP. Reading it: GPU kernel sum ≈ wall → the kernels are the cost (look at the op and node tables);
// GPU kernel sum ≪ wall → the GPU waits for the host (dispatch overhead, CPU-EP nodes, copies).
//
//   npx tsx bench/gpu/profile.ts TRACE.json [--runs 3 --skip 1]   (summarise a trace written elsewhere)
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import type { BuiltModel } from '../../src/engine/graph/graphBuilder';
import { createSession, type EngineDevice, type EngineTensor, type SessionOptions } from '../../src/engine/runtime/ortSession';

interface TraceEvent {
  cat: string;
  name: string;
  ts: number;
  dur: number;
  args?: Record<string, unknown>;
}

export interface ProfileRow {
  key: string;
  /** ms per run (median run's share of the summed runs: total / runs). */
  ms: number;
  /** Fraction of the GPU kernel time per run. */
  share: number;
  kernels: number;
}

export interface ProfileSummary {
  label: string;
  /** Runs summarised (after the skipped warm-ups). */
  runs: number;
  /** Wall ms of each summarised run (Session model_run events, profiling on). */
  wallMs: number[];
  /** GPU timestamps present (false: the adapter has no timestamp-query feature; only host times). */
  gpuTimestamps: boolean;
  /** Median per run: sum of GPU kernel durations, and first kernel start → last kernel end on the GPU. */
  gpuKernelMs: number;
  gpuSpanMs: number;
  kernelsPerRun: number;
  /** Median per run: host ms inside Compute() of nodes on the device EP, and of nodes on the CPU EP. */
  hostDeviceNodeMs: number;
  hostCpuNodeMs: number;
  /** Nodes the CPU EP ran (op types with counts), per run. */
  cpuNodes: { op: string; count: number; ms: number }[];
  byOp: ProfileRow[];
  byBlock: ProfileRow[];
  byNode: (ProfileRow & { op: string; shapes: string })[];
  byProgram: ProfileRow[];
  /** When the events did not split into equal runs (a warning, the numbers then average all runs). */
  note?: string;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.floor(s.length / 2)] : NaN;
};

/** Split `xs` into `runs` equal consecutive chunks, or null when it does not divide. */
function perRun<T>(xs: T[], runs: number): T[][] | null {
  if (runs <= 0 || xs.length % runs !== 0) return null;
  const n = xs.length / runs;
  return Array.from({ length: runs }, (_, i) => xs.slice(i * n, (i + 1) * n));
}

/** MatMuls of the attention (graph/nn.ts hints 'scores', 'attn_out') apart from the Linears. */
function opKey(node: string, op: string): string {
  if (op === 'MatMul' && /(^|\/)(scores|attn_out)(_\d+)?$/.test(node)) return 'MatMul (attention)';
  return op;
}

function blockKey(node: string): string {
  const parts = node.split('/');
  return parts.length > 2 ? parts.slice(0, 2).join('/') : parts.length === 2 ? parts[0] : '(top level)';
}

function table(rows: Map<string, { us: number; kernels: number }>, runs: number, totalUsPerRun: number, top: number): ProfileRow[] {
  return [...rows.entries()]
    .map(([key, v]) => ({ key, ms: v.us / runs / 1000, share: v.us / runs / totalUsPerRun, kernels: v.kernels / runs }))
    .sort((a, b) => b.ms - a.ms)
    .slice(0, top);
}

/** Summarise an ORT profile of `totalRuns` runs of one session, dropping the first `skipRuns`. */
export function summarizeProfile(events: TraceEvent[], totalRuns: number, skipRuns: number, label = '', top = 20): ProfileSummary {
  const runs = totalRuns - skipRuns;
  const notes: string[] = [];
  const modelRuns = events.filter((e) => e.cat === 'Session' && e.name === 'model_run');
  const wallMs = modelRuns.slice(skipRuns).map((e) => e.dur / 1000);
  const api = events.filter((e) => e.cat === 'Api' && e.name.split('&').length >= 3);
  const nodes = events.filter((e) => e.cat === 'Node' && e.name.endsWith('_kernel_time'));
  const split = <T>(xs: T[], what: string): T[] => {
    const chunks = perRun(xs, totalRuns);
    if (chunks) return chunks.slice(skipRuns).flat();
    notes.push(`${xs.length} ${what} events do not split into ${totalRuns} equal runs; all runs averaged`);
    return xs;
  };
  const kept = split(api, 'GPU kernel');
  const keptNodes = split(nodes, 'node');
  const div = kept === api ? totalRuns : runs;
  const divNodes = keptNodes === nodes ? totalRuns : runs;

  const byOp = new Map<string, { us: number; kernels: number }>();
  const byBlock = new Map<string, { us: number; kernels: number }>();
  const byNode = new Map<string, { us: number; kernels: number; op: string; shapes: string }>();
  const byProgram = new Map<string, { us: number; kernels: number }>();
  const add = (m: Map<string, { us: number; kernels: number }>, k: string, us: number) => {
    const v = m.get(k) ?? { us: 0, kernels: 0 };
    v.us += us;
    v.kernels += 1;
    m.set(k, v);
  };
  let totalUs = 0;
  for (const e of kept) {
    const [node, op, program] = e.name.split('&');
    totalUs += e.dur;
    add(byOp, opKey(node, op), e.dur);
    add(byBlock, blockKey(node), e.dur);
    add(byProgram, program, e.dur);
    const n = byNode.get(node) ?? { us: 0, kernels: 0, op, shapes: String(e.args?.shapes ?? '').trim() };
    n.us += e.dur;
    n.kernels += 1;
    byNode.set(node, n);
  }
  const perRunUs = totalUs / div || 1;
  // Per-run GPU sums and spans (timestamps are on the GPU's clock, relative to the first kernel).
  const chunks = perRun(api, totalRuns)?.slice(skipRuns) ?? [api];
  const gpuKernelMs = median(chunks.map((c) => c.reduce((s, e) => s + e.dur, 0) / 1000));
  const gpuSpanMs = median(chunks.map((c) => (c.length ? (Math.max(...c.map((e) => e.ts + e.dur)) - Math.min(...c.map((e) => e.ts))) / 1000 : 0)));

  const cpu = new Map<string, { count: number; us: number }>();
  let hostDeviceUs = 0;
  let hostCpuUs = 0;
  for (const e of keptNodes) {
    const provider = String(e.args?.provider ?? '');
    if (provider === 'CPUExecutionProvider') {
      hostCpuUs += e.dur;
      const op = String(e.args?.op_name ?? '?');
      const v = cpu.get(op) ?? { count: 0, us: 0 };
      v.count += 1;
      v.us += e.dur;
      cpu.set(op, v);
    } else hostDeviceUs += e.dur;
  }
  const nodeRows = [...byNode.entries()]
    .map(([key, v]) => ({ key, op: v.op, shapes: v.shapes, ms: v.us / div / 1000, share: v.us / div / perRunUs, kernels: v.kernels / div }))
    .sort((a, b) => b.ms - a.ms)
    .slice(0, top);
  return {
    label,
    runs,
    wallMs,
    gpuTimestamps: api.length > 0,
    gpuKernelMs: api.length ? gpuKernelMs : 0,
    gpuSpanMs: api.length ? gpuSpanMs : 0,
    kernelsPerRun: kept.length / div,
    hostDeviceNodeMs: hostDeviceUs / divNodes / 1000,
    hostCpuNodeMs: hostCpuUs / divNodes / 1000,
    cpuNodes: [...cpu.entries()].map(([op, v]) => ({ op, count: v.count / divNodes, ms: v.us / divNodes / 1000 })).sort((a, b) => b.ms - a.ms),
    byOp: table(byOp, div, perRunUs, top),
    byBlock: table(byBlock, div, perRunUs, top),
    byNode: nodeRows,
    byProgram: table(byProgram, div, perRunUs, top),
    note: notes.length ? notes.join('; ') : undefined,
  };
}

/** Human-readable tables (the bench prints them into run.log). */
export function formatProfile(p: ProfileSummary): string {
  const pct = (x: number) => `${(100 * x).toFixed(1).padStart(5)} %`;
  const ms = (x: number) => x.toFixed(2).padStart(9);
  const lines: string[] = [];
  lines.push(`profile ${p.label}: ${p.runs} runs after warm-up; wall (profiling on) ${p.wallMs.map((w) => w.toFixed(1)).join(' / ')} ms`);
  if (!p.gpuTimestamps) lines.push('  no GPU timestamps (the adapter lacks timestamp-query): host times only');
  else {
    const wall = median(p.wallMs);
    lines.push(`  GPU kernels ${p.gpuKernelMs.toFixed(1)} ms summed over ${p.kernelsPerRun.toFixed(0)} dispatches, GPU span ${p.gpuSpanMs.toFixed(1)} ms, ` + `wall ${wall.toFixed(1)} ms → GPU busy ${pct(p.gpuKernelMs / wall)} of the wall time`);
  }
  lines.push(`  host time inside kernels: device-EP nodes ${p.hostDeviceNodeMs.toFixed(1)} ms (dispatch recording), CPU-EP nodes ${p.hostCpuNodeMs.toFixed(1)} ms` + (p.cpuNodes.length ? ` (${p.cpuNodes.map((c) => `${c.op}×${c.count}`).join(', ')})` : ''));
  if (p.note) lines.push(`  note: ${p.note}`);
  if (!p.gpuTimestamps) return lines.join('\n');
  const section = (title: string, rows: ProfileRow[]) => {
    lines.push(`  ${title}`);
    for (const r of rows) lines.push(`    ${ms(r.ms)} ms ${pct(r.share)} ${r.kernels.toFixed(0).padStart(5)}×  ${r.key}`);
  };
  section('GPU time by op type (ms per run, share of GPU kernel time, dispatches)', p.byOp.slice(0, 12));
  section('by block', p.byBlock.slice(0, 12));
  section('by kernel program', p.byProgram.slice(0, 10));
  lines.push('  top nodes');
  for (const r of p.byNode.slice(0, 15)) lines.push(`    ${ms(r.ms)} ms ${pct(r.share)}  ${r.key} [${r.op}] ${r.shapes.slice(0, 110)}`);
  return lines.join('\n');
}

/**
 * Create a profiling session for `built` on `device`, run it `1 + runs` times (the first is the warm-up:
 * allocation, shader compilation), and summarise. The trace is read and deleted; `keepTrace` keeps a copy.
 */
export async function profileRuns(
  built: BuiltModel,
  feeds: Record<string, EngineTensor>,
  opts: { device: EngineDevice; runs?: number; label?: string; intraOpNumThreads?: number; keepTrace?: string; sessionOptions?: SessionOptions },
): Promise<ProfileSummary & { sessionMs: number }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fisedit-profile-'));
  const runs = opts.runs ?? 2;
  const t0 = performance.now();
  const sess = await createSession(built, { ...opts.sessionOptions, device: opts.device, intraOpNumThreads: opts.intraOpNumThreads, profileFilePrefix: path.join(dir, 'ort') });
  const sessionMs = performance.now() - t0;
  try {
    for (let r = 0; r < 1 + runs; r++) await sess.run(feeds);
    sess.endProfiling();
  } finally {
    await sess.release();
  }
  try {
    const file = fs.readdirSync(dir).find((f) => f.endsWith('.json'));
    if (!file) throw new Error(`onnxruntime wrote no profile in ${dir}`);
    const trace = path.join(dir, file);
    if (opts.keepTrace) fs.copyFileSync(trace, opts.keepTrace);
    const events = JSON.parse(fs.readFileSync(trace, 'utf8')) as TraceEvent[];
    return { ...summarizeProfile(events, 1 + runs, 1, opts.label ?? opts.device), sessionMs };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

function main(): void {
  const [file] = process.argv.slice(2).filter((a) => !a.startsWith('--'));
  const arg = (n: string, d: number) => (process.argv.includes(n) ? Number(process.argv[process.argv.indexOf(n) + 1]) : d);
  if (!file) throw new Error('usage: profile.ts TRACE.json [--runs N --skip K]');
  const events = JSON.parse(fs.readFileSync(file, 'utf8')) as TraceEvent[];
  const runs = arg('--runs', events.filter((e) => e.cat === 'Session' && e.name === 'model_run').length);
  console.log(formatProfile(summarizeProfile(events, runs, arg('--skip', 1), path.basename(file))));
}

// (require.main === module alone is also true inside the esbuild bundle of bench.ts, which includes this file)
if (require.main === module && /profile\.[jt]s$/.test(process.argv[1] ?? '')) main();
