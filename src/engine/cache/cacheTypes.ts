// Types shared by the activation cache, its page codec and its spill stores.
//
// An ENTRY is one recorded tensor of one node at one denoising step, named by the layer it feeds
// (e.g. "down.0.resnet.0.conv1.in"), stored as float16 bits (Uint16Array), row-major with `shape`.
// One axis, `rowAxis`, is the pixel/token axis: a ROW is everything one pixel carries. Flatten h, w into
// one axis (h·w) before storing; e.g. a CFG conv input [2, h·w, C] has rowAxis 1, latents [4, h·w] rowAxis 1.
// A FULL entry holds the whole tensor. A DELTA entry (child nodes) holds only some rows:
// rows = pixel indices ascending, data = the tensor restricted to those rows, [...outer, rows.length, ...inner].
// A PAGE is all entries of one node at one step: the unit of LRU eviction and of spilling.

export interface FullEntry {
  kind: 'full';
  shape: number[];
  rowAxis: number;
  data: Uint16Array;
}

export interface DeltaEntry {
  kind: 'delta';
  /** Shape of the FULL tensor this delta overlays. */
  shape: number[];
  rowAxis: number;
  /** Row indices along rowAxis, strictly increasing. */
  rows: Int32Array;
  /** [...shape before rowAxis, rows.length, ...shape after rowAxis]. */
  data: Uint16Array;
}

export type CacheEntry = FullEntry | DeltaEntry;

/** What is known about an entry without its data (kept while the data is spilled or lost). */
export interface EntryMeta {
  kind: 'full' | 'delta';
  shape: number[];
  rowAxis: number;
  /** Row count of a delta; the full row count for a full entry. */
  rowCount: number;
  /** Bytes the entry holds in memory: data, plus 4 per row index for a delta. */
  bytes: number;
}

export type CacheMissReason =
  | 'unknown-node' // the node (or one of its bases) was never created, or was deleted
  | 'not-recorded' // no node of the chain holds a full entry for this step and name
  | 'evicted' // the page was evicted with no spill store (or the spill write failed)
  | 'spill-missing' // the page was spilled but the spill store no longer has it
  | 'spill-corrupt'; // the spill store returned bytes that do not decode to the expected page

export interface CacheMiss {
  /** The node that was read. */
  node: string;
  step: number;
  name: string;
  reason: CacheMissReason;
  /** The node whose data is missing: `node` itself or one of its bases. */
  missingNode: string;
  /** A full sentence for logs and the edit report. */
  message: string;
}

export type CacheRead =
  | {
      ok: true;
      shape: number[];
      rowAxis: number;
      /** The full tensor. READ-ONLY: may be the stored array itself when no delta applies. */
      data: Uint16Array;
      /** Nodes whose entries were combined, newest first; the last one holds the full entry. */
      chain: string[];
    }
  | { ok: false; miss: CacheMiss };

export type CacheCheck = { ok: true } | { ok: false; misses: CacheMiss[] };

/** Programming errors (bad shapes, unknown base at creation, bad ids): thrown, never a cache miss. */
export class CacheUsageError extends Error {
  constructor(readonly where: string, readonly reason: string) {
    super(`${where}: ${reason}`);
    this.name = 'CacheUsageError';
  }
}

/** Node ids become directory names in a spill store: keep them to a safe alphabet. */
const NODE_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

export function checkNodeId(where: string, node: string): void {
  if (typeof node !== 'string' || !NODE_ID.test(node)) {
    throw new CacheUsageError(where, `node id ${JSON.stringify(node)} must match ${NODE_ID} (it names a spill directory)`);
  }
}

export function checkStep(where: string, step: number): void {
  if (!Number.isInteger(step) || step < 0) throw new CacheUsageError(where, `step must be a non-negative integer, got ${step}`);
}
