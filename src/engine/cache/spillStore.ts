// The spill seam: where the activation cache puts pages it evicts from memory, and where a state
// directory keeps a node's cache between processes. Pages are opaque bytes here (pageCodec.ts owns the
// format and detects damage). Implementations: MemorySpillStore (below) and DirectorySpillStore; both
// pass the conformance suite in test/engine/cache/spillStoreConformance.ts.
// All methods are async; none throws for a missing page or node (that is an answer, not an error).

import { checkNodeId, checkStep } from './cacheTypes';

export interface SpillNodeMeta {
  /** The node whose cache this node's deltas overlay; null for a self-contained node. */
  base: string | null;
}

export type SpillRead = { ok: true; bytes: Uint8Array } | { ok: false; reason: 'missing' | 'unreadable'; detail: string };

export interface SpilledNode {
  node: string;
  /** null when the node has pages but no (readable) metadata. */
  meta: SpillNodeMeta | null;
  /** Stored pages, ascending by step, with their size in bytes. */
  pages: Array<{ step: number; bytes: number }>;
}

export interface CacheSpillStore {
  /** For messages: "directory /path" or "memory". */
  readonly location: string;
  /** Store (or replace) a page. The store keeps its own copy: later changes to `bytes` do not reach it. Throws on I/O failure. */
  writePage(node: string, step: number, bytes: Uint8Array): Promise<void>;
  readPage(node: string, step: number): Promise<SpillRead>;
  /** No-op when absent. */
  deletePage(node: string, step: number): Promise<void>;
  /** Store (or replace) a node's metadata. Throws on I/O failure. */
  writeNode(node: string, meta: SpillNodeMeta): Promise<void>;
  /** Metadata and all pages of the node; no-op when absent. */
  deleteNode(node: string): Promise<void>;
  /** Every node with metadata or pages, ascending by id. */
  listNodes(): Promise<SpilledNode[]>;
}

/** In-process store: for tests, and for a process that wants eviction without a disk. */
export class MemorySpillStore implements CacheSpillStore {
  readonly location = 'memory';
  private readonly pages = new Map<string, Map<number, Uint8Array>>();
  private readonly metas = new Map<string, SpillNodeMeta>();

  async writePage(node: string, step: number, bytes: Uint8Array): Promise<void> {
    checkNodeId('MemorySpillStore.writePage', node);
    checkStep('MemorySpillStore.writePage', step);
    if (!this.pages.has(node)) this.pages.set(node, new Map());
    this.pages.get(node)!.set(step, bytes.slice());
  }

  async readPage(node: string, step: number): Promise<SpillRead> {
    checkNodeId('MemorySpillStore.readPage', node);
    const b = this.pages.get(node)?.get(step);
    return b ? { ok: true, bytes: b.slice() } : { ok: false, reason: 'missing', detail: `memory spill store has no page ${node}/${step}` };
  }

  async deletePage(node: string, step: number): Promise<void> {
    checkNodeId('MemorySpillStore.deletePage', node);
    this.pages.get(node)?.delete(step);
  }

  async writeNode(node: string, meta: SpillNodeMeta): Promise<void> {
    checkNodeId('MemorySpillStore.writeNode', node);
    this.metas.set(node, { base: meta.base });
  }

  async deleteNode(node: string): Promise<void> {
    checkNodeId('MemorySpillStore.deleteNode', node);
    this.pages.delete(node);
    this.metas.delete(node);
  }

  async listNodes(): Promise<SpilledNode[]> {
    const ids = new Set([...this.metas.keys(), ...[...this.pages].filter(([, p]) => p.size > 0).map(([n]) => n)]);
    return [...ids].sort().map((node) => ({
      node,
      meta: this.metas.has(node) ? { base: this.metas.get(node)!.base } : null,
      pages: [...(this.pages.get(node) ?? new Map<number, Uint8Array>())].map(([step, b]) => ({ step, bytes: b.length })).sort((a, b) => a.step - b.step),
    }));
  }
}
