// The memory side of the activation cache: pages of every node, which of them are resident, the LRU
// order, the byte budget, pins, and moving pages to and from the spill store. activationCache.ts
// decides WHAT to read and write; this file decides WHERE the bytes live.
//
// A page is in one of three conditions, per entry:
//   resident      data in memory (page.data), counted in residentBytes, listed in the LRU
//   spilled       data only in the spill store (page.spillValid), index kept in page.meta
//   lost          data gone (evicted without spill, spill write failed, spill copy missing or damaged):
//                 page.lost says why, per name; page.lostAll when the page was never indexed
// A page restored from a spill store starts unindexed (meta = null) until first read.

import { CacheEntry, CacheMissReason, EntryMeta } from './cacheTypes';
import { decodePage, encodePage } from './pageCodec';
import { CacheSpillStore } from './spillStore';

export class CacheSpillError extends Error {
  constructor(readonly location: string, readonly reason: string) {
    super(`cache spill store (${location}): ${reason}`);
    this.name = 'CacheSpillError';
  }
}

export interface Lost {
  meta: EntryMeta | null;
  reason: CacheMissReason;
  detail: string;
}

export interface Page {
  node: string;
  step: number;
  /** Index of the entries held in memory or in the spill store; null = restored, not yet read. */
  meta: Map<string, EntryMeta> | null;
  /** Entry data when resident, else null. */
  data: Map<string, CacheEntry> | null;
  /** The spill store holds exactly this page's current entries. */
  spillValid: boolean;
  lost: Map<string, Lost>;
  lostAll: Omit<Lost, 'meta'> | null;
  /** Bytes of the entries in meta (resident or spilled). */
  bytes: number;
}

/** One node of the activation cache: its base (the node its deltas overlay) and its pages by step. */
export interface CachePageNode {
  base: string | null;
  pages: Map<number, Page>;
}

export interface CacheCounters {
  evictions: number;
  spilledPages: number;
  droppedPages: number;
  spillLoads: number;
  spillWriteFailures: number;
  overBudgetEvents: number;
}

export function metaOf(e: CacheEntry): EntryMeta {
  const delta = e.kind === 'delta';
  return { kind: e.kind, shape: [...e.shape], rowAxis: e.rowAxis, rowCount: delta ? e.rows.length : e.shape[e.rowAxis], bytes: e.data.byteLength + (delta ? e.rows.byteLength : 0) };
}

export function newPage(node: string, step: number): Page {
  return { node, step, meta: new Map(), data: new Map(), spillValid: false, lost: new Map(), lostAll: null, bytes: 0 };
}

export class PageTable {
  readonly nodes = new Map<string, CachePageNode>();
  readonly counters: CacheCounters = { evictions: 0, spilledPages: 0, droppedPages: 0, spillLoads: 0, spillWriteFailures: 0, overBudgetEvents: 0 };
  residentBytes = 0;
  /** Resident pages, least recently used first (Map keeps insertion order; touch re-inserts). */
  private readonly lru = new Map<string, Page>();
  private readonly pins = new Map<string, number>();

  constructor(readonly budgetBytes: number, readonly spill: CacheSpillStore | undefined) {}

  private key(p: Page): string {
    return `${p.node}/${p.step}`;
  }

  touch(p: Page): void {
    const k = this.key(p);
    this.lru.delete(k);
    this.lru.set(k, p);
  }

  /** Make a page resident and empty-able for writing (after a failed load, or a lost page). */
  makeResident(p: Page): void {
    if (p.data) return;
    p.data = new Map();
    p.meta ??= new Map();
    p.bytes = 0;
    this.touch(p);
  }

  setEntry(p: Page, name: string, entry: CacheEntry): void {
    const old = p.data!.get(name);
    if (old) this.adjust(p, -metaOf(old).bytes);
    const meta = metaOf(entry);
    p.data!.set(name, entry);
    p.meta!.set(name, meta);
    p.lost.delete(name);
    p.spillValid = false;
    this.adjust(p, meta.bytes);
    this.touch(p);
  }

  private adjust(p: Page, delta: number): void {
    p.bytes += delta;
    this.residentBytes += delta;
  }

  /** Drop the in-memory data (the page keeps its index). */
  forgetResident(p: Page): void {
    if (p.data) this.residentBytes -= p.bytes;
    this.lru.delete(this.key(p));
    p.data = null;
  }

  pin(nodes: readonly string[], by: 1 | -1): void {
    for (const n of nodes) this.pins.set(n, Math.max(0, (this.pins.get(n) ?? 0) + by));
  }

  /** Read a spilled page back. On failure its entries move to `lost` (or lostAll when never indexed). */
  async load(page: Page): Promise<void> {
    const fail = (reason: CacheMissReason, detail: string) => {
      page.spillValid = false;
      if (page.meta) {
        for (const [n, meta] of page.meta) page.lost.set(n, { meta, reason, detail });
        page.meta = new Map();
      } else page.lostAll = { reason, detail };
      page.bytes = 0;
    };
    if (!this.spill) return fail('evicted', 'no spill store');
    const r = await this.spill.readPage(page.node, page.step);
    if (!r.ok) return fail(r.reason === 'missing' ? 'spill-missing' : 'spill-corrupt', r.detail);
    let entries: Map<string, CacheEntry>;
    try {
      entries = decodePage(r.bytes, page.node, page.step);
    } catch (e) {
      return fail('spill-corrupt', `${this.spill.location}: ${(e as Error).message}`);
    }
    if (page.meta && [...page.meta.keys()].some((n) => !entries.has(n))) {
      return fail('spill-corrupt', `${this.spill.location}: the stored page lacks entries the index expects`);
    }
    this.counters.spillLoads++;
    page.data = entries;
    page.meta = new Map([...entries].map(([n, e]) => [n, metaOf(e)]));
    page.bytes = [...page.meta.values()].reduce((s, m) => s + m.bytes, 0);
    this.residentBytes += page.bytes;
    this.touch(page);
  }

  private async evict(page: Page): Promise<void> {
    let detail = 'no spill store';
    if (this.spill && !page.spillValid) {
      try {
        await this.spill.writePage(page.node, page.step, encodePage(page.node, page.step, page.data!));
        page.spillValid = true;
      } catch (e) {
        this.counters.spillWriteFailures++;
        detail = `spill write to ${this.spill.location} failed: ${(e as Error).message}`;
      }
    }
    this.counters.evictions++;
    const bytes = page.bytes;
    this.forgetResident(page);
    if (page.spillValid) {
      this.counters.spilledPages++;
      page.bytes = bytes;
      return;
    }
    this.counters.droppedPages++;
    for (const [n, meta] of page.meta!) page.lost.set(n, { meta, reason: 'evicted', detail });
    page.meta = new Map();
    page.bytes = 0;
  }

  /** Evict least recently used unpinned pages until within budget (or only pinned pages remain). */
  async enforceBudget(): Promise<void> {
    while (this.residentBytes > this.budgetBytes) {
      let victim: Page | undefined;
      for (const p of this.lru.values()) {
        if (!this.pins.get(p.node)) {
          victim = p;
          break;
        }
      }
      if (!victim) {
        this.counters.overBudgetEvents++;
        return;
      }
      await this.evict(victim);
    }
  }

  /** Write every resident page the spill store lacks. Throws CacheSpillError on failure. */
  async persistAll(): Promise<void> {
    const spill = this.spill!;
    for (const [node, rec] of this.nodes) {
      for (const page of rec.pages.values()) {
        if (!page.data || page.spillValid) continue;
        try {
          await spill.writePage(node, page.step, encodePage(node, page.step, page.data));
        } catch (e) {
          throw new CacheSpillError(spill.location, `cannot write node ${node} step ${page.step}: ${(e as Error).message}`);
        }
        page.spillValid = true;
      }
    }
  }

  async deleteNodes(doomed: readonly string[]): Promise<void> {
    for (const n of doomed) {
      for (const page of this.nodes.get(n)!.pages.values()) this.forgetResident(page);
      this.nodes.delete(n);
      this.pins.delete(n);
      if (this.spill) await this.spill.deleteNode(n);
    }
  }
}
