// The activation cache's device tier: whole entries of recent nodes kept in device memory (WebGPU
// buffers) so a sparse step feeds its parent's entries where they already are. Without it every sparse
// step assembles the parent's full entries on the host and uploads them: at SD-1.5 width and 512 px
// that is a fixed cost per step that no mask size removes (on an H200: 380–410 ms a step at 2–10 %
// of the image against a 515 ms dense step).
//
// The host cache (activationCache.ts) stays the record; this tier only mirrors steps written there, so
// losing it (eviction, a restart, another process) costs speed, never a result. Nodes are evicted
// whole, least recently used first, past `maxBytes`, except the node the last sparse step read (an
// edit's parent outranks the edit); a step that still does not fit is not kept. A child reuses its parent's GroupNorm statistics,
// so one tensor can belong to several nodes: tensors are counted and released when the last node that
// holds them goes.

import type { DeviceTensor } from '../runtime/ortSession';

const BYTES: Record<string, number> = { float32: 4, float16: 2, int32: 4, int64: 8, uint8: 1, bool: 1 };

export function deviceTensorBytes(t: DeviceTensor): number {
  return t.dims.reduce((a, b) => a * b, 1) * (BYTES[t.dtype] ?? 4);
}

export interface DeviceTierStats {
  nodes: number;
  bytes: number;
  maxBytes: number;
  /** Sparse steps fed from this tier / from the host cache since the tier was made. */
  hits: number;
  misses: number;
}

export class DeviceEntryTier {
  /** node → step → entry name → tensor; Map order is recency (oldest first). */
  private readonly nodes = new Map<string, Map<number, Map<string, DeviceTensor>>>();
  private readonly refs = new Map<DeviceTensor, number>();
  private bytes = 0;
  /** The node the last sparse step read: an edit's parent is never evicted to make room for the edit. */
  private lastRead: string | null = null;
  private hits = 0;
  private misses = 0;

  constructor(readonly maxBytes: number) {}

  /** Keep one step of `node` (replacing what the node held for that step). */
  put(node: string, step: number, entries: ReadonlyMap<string, DeviceTensor>): void {
    let steps = this.nodes.get(node);
    if (!steps) {
      steps = new Map();
      this.nodes.set(node, steps);
    }
    const old = steps.get(step);
    steps.set(step, new Map(entries));
    for (const t of entries.values()) this.ref(t);
    if (old) for (const t of old.values()) this.unref(t);
    this.touch(node);
    this.evictBeyond(this.maxBytes, node);
    // Still over with only this node left: this step is not kept (the host cache serves it), so the
    // tier never holds more than maxBytes.
    if (this.bytes > this.maxBytes) {
      steps.delete(step);
      for (const t of entries.values()) this.unref(t);
      if (!steps.size) this.nodes.delete(node);
    }
  }

  /** Every named entry of `node` at `step`, or null when any is missing (the caller reads the host cache). */
  get(node: string, step: number, names: readonly string[]): Map<string, DeviceTensor> | null {
    const entries = this.nodes.get(node)?.get(step);
    if (!entries || names.some((n) => !entries.has(n))) {
      this.misses++;
      return null;
    }
    this.hits++;
    this.lastRead = node;
    this.touch(node);
    return entries;
  }

  has(node: string): boolean {
    return this.nodes.has(node);
  }

  /** Drop a node (its cache was deleted or re-recorded). */
  drop(node: string): void {
    const steps = this.nodes.get(node);
    if (!steps) return;
    this.nodes.delete(node);
    if (this.lastRead === node) this.lastRead = null;
    for (const entries of steps.values()) for (const t of entries.values()) this.unref(t);
  }

  get stats(): DeviceTierStats {
    return { nodes: this.nodes.size, bytes: this.bytes, maxBytes: this.maxBytes, hits: this.hits, misses: this.misses };
  }

  release(): void {
    for (const node of [...this.nodes.keys()]) this.drop(node);
  }

  private touch(node: string): void {
    const steps = this.nodes.get(node)!;
    this.nodes.delete(node);
    this.nodes.set(node, steps);
  }

  /** Evict least recently used nodes until within `limit`; the node being written and the one being read stay. */
  private evictBeyond(limit: number, keep: string): void {
    for (const node of [...this.nodes.keys()]) {
      if (this.bytes <= limit) return;
      if (node !== keep && node !== this.lastRead) this.drop(node);
    }
  }

  private ref(t: DeviceTensor): void {
    const n = this.refs.get(t) ?? 0;
    if (n === 0) this.bytes += deviceTensorBytes(t);
    this.refs.set(t, n + 1);
  }

  private unref(t: DeviceTensor): void {
    const n = (this.refs.get(t) ?? 0) - 1;
    if (n > 0) {
      this.refs.set(t, n);
      return;
    }
    this.refs.delete(t);
    this.bytes -= deviceTensorBytes(t);
    t.release();
  }
}
