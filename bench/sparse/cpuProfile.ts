// onnxruntime's CPU profile (SessionOptions.profileFilePrefix) as tables: kernel time per op type and per
// node, per run. Shared by the sparse UNet and sparse decoder profiles (profile.ts, decoderProfile.ts).
import * as fs from 'fs';
import * as path from 'path';

interface TraceEvent { cat?: string; name?: string; dur?: number; args?: { op_name?: string } }

export interface KernelTimes {
  /** µs summed over all runs, by op type and by "op node". */
  byOp: Map<string, number>;
  byNode: Map<string, number>;
}

/** The profile written beside `prefix` (after the session's endProfiling()). */
export function readKernelTimes(prefix: string): KernelTimes {
  const dir = path.dirname(prefix);
  const file = fs.readdirSync(dir).map((f) => path.join(dir, f)).find((f) => f.endsWith('.json'));
  if (!file) throw new Error('no profile written');
  const events = JSON.parse(fs.readFileSync(file, 'utf8')) as TraceEvent[];
  const byOp = new Map<string, number>();
  const byNode = new Map<string, number>();
  for (const e of events) {
    if (e.cat !== 'Node' || !e.name?.endsWith('_kernel_time')) continue;
    const op = e.args?.op_name ?? '?';
    const key = `${op} ${e.name.replace(/_kernel_time$/, '')}`;
    byOp.set(op, (byOp.get(op) ?? 0) + (e.dur ?? 0));
    byNode.set(key, (byNode.get(key) ?? 0) + (e.dur ?? 0));
  }
  return { byOp, byNode };
}

/** Kernel ms per run. */
export function kernelMsPerRun(t: KernelTimes, runs: number): number {
  return [...t.byOp.values()].reduce((a, b) => a + b, 0) / runs / 1000;
}

/** Prints the top `ops` op types (ms per run and share) and the slowest `nodes` nodes; `unit` names a run. */
export function printKernelTimes(t: KernelTimes, runs: number, unit: string, ops: number, nodes: number): void {
  const total = kernelMsPerRun(t, runs);
  console.log(`\nop type            ms/${unit}   share`);
  for (const [op, us] of [...t.byOp].sort((a, b) => b[1] - a[1]).slice(0, ops)) console.log(`${op.padEnd(18)} ${(us / runs / 1000).toFixed(1).padStart(8)}  ${((100 * us) / runs / 1000 / total).toFixed(1).padStart(5)}%`);
  console.log(`\nslowest nodes       ms/${unit}`);
  for (const [n, us] of [...t.byNode].sort((a, b) => b[1] - a[1]).slice(0, nodes)) console.log(`${(us / runs / 1000).toFixed(1).padStart(8)}  ${n}`);
}
