// The activation cache: what a recorded generation leaves behind for its edits, keyed by node.
//
// Layout: node → step → page → named entries (cacheTypes.ts). A root records FULL entries; an edit
// records DELTAS (its recomputed rows) over its base node, and inherits from the base every entry it
// does not record. readRows(node, step, name) walks node → base → base's base … to the first full
// entry and overlays the deltas on it, oldest first.
//
// Memory (pageTable.ts): `budgetBytes` bounds the resident bytes (entry data + 4 bytes per delta row
// index). Pages are evicted least recently used first (reads and writes both count as use). An evicted
// page goes to the spill store when there is one, and is read back on demand; otherwise its data is gone.
// A read that needs a gone page returns { ok: false, miss } naming the node that lost it and why, so the
// edit pipeline can re-record that node or run dense. Nothing here throws for lack of cache: throws are
// for misuse (CacheUsageError) and for failing to persist on request (CacheSpillError).
// pin(node) keeps a node and its bases resident while an edit runs (the budget is then soft).
// Async methods run one at a time (an internal queue), so callers may overlap them freely.

import { CacheCheck, CacheEntry, CacheMiss, CacheMissReason, CacheRead, CacheUsageError, checkNodeId, checkStep, EntryMeta } from './cacheTypes';
import { CacheCounters, CacheSpillError, newPage, CachePageNode, PageTable } from './pageTable';
import { checkRowIndices, rowGeometry, scatterRows } from './rows';
import { CacheSpillStore } from './spillStore';

export { CacheSpillError } from './pageTable';

export interface ActivationCacheOptions {
  /** Resident byte budget; Infinity for none. */
  budgetBytes: number;
  spill?: CacheSpillStore;
}

export interface CacheNodeStats {
  node: string;
  base: string | null;
  residentBytes: number;
  spilledBytes: number;
  /** Pages by condition; a page with any lost entry counts in `lost` (and may also be resident). */
  pages: { resident: number; spilled: number; lost: number };
}

export interface CacheStats extends CacheCounters {
  budgetBytes: number;
  residentBytes: number;
  /** Bytes held only by the spill store (pages not resident). */
  spilledBytes: number;
  /** readRows outcomes. */
  hits: number;
  misses: number;
  nodes: CacheNodeStats[];
}

type Resolved = { ok: true; entries: CacheEntry[]; chain: string[] } | { ok: false; miss: CacheMiss };

const sameLayout = (a: { shape: number[]; rowAxis: number }, b: { shape: number[]; rowAxis: number }) =>
  a.rowAxis === b.rowAxis && a.shape.length === b.shape.length && a.shape.every((d, i) => d === b.shape[i]);

export class ActivationCache {
  readonly budgetBytes: number;
  readonly spill: CacheSpillStore | undefined;
  /** Problems found by open() (spilled nodes without metadata); empty otherwise. */
  readonly restoreWarnings: string[] = [];
  private readonly table: PageTable;
  private readonly nodes: Map<string, CachePageNode>;
  private hits = 0;
  private misses = 0;
  private queue: Promise<unknown> = Promise.resolve();

  constructor(opts: ActivationCacheOptions) {
    if (!(opts.budgetBytes >= 0)) throw new CacheUsageError('ActivationCache', `budgetBytes must be ≥ 0 (or Infinity), got ${opts.budgetBytes}`);
    this.budgetBytes = opts.budgetBytes;
    this.spill = opts.spill;
    this.table = new PageTable(opts.budgetBytes, opts.spill);
    this.nodes = this.table.nodes;
  }

  /** A cache over an existing spill store (e.g. a --state directory): every stored node is attached; data stays there until read. */
  static async open(opts: ActivationCacheOptions & { spill: CacheSpillStore }): Promise<ActivationCache> {
    const cache = new ActivationCache(opts);
    for (const s of await opts.spill.listNodes()) {
      if (!s.meta) {
        cache.restoreWarnings.push(`spilled node ${s.node} has pages but no readable metadata; ignored`);
        continue;
      }
      const pages = new Map(s.pages.map((p) => [p.step, { ...newPage(s.node, p.step), meta: null, data: null, spillValid: true, bytes: p.bytes }]));
      cache.nodes.set(s.node, { base: s.meta.base, pages });
    }
    return cache;
  }

  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => undefined);
    return run;
  }

  // ---- nodes -------------------------------------------------------------------------------------

  /** Register a node. base: the node its deltas overlay (null for a root or a node recorded densely). Idempotent. */
  createNode(node: string, base: string | null): Promise<void> {
    return this.exclusive(async () => {
      const where = 'ActivationCache.createNode';
      checkNodeId(where, node);
      if (base !== null && !this.nodes.has(base)) throw new CacheUsageError(where, `base node ${base} of ${node} is unknown to the cache`);
      const existing = this.nodes.get(node);
      if (existing) {
        if (existing.base !== base) throw new CacheUsageError(where, `node ${node} exists with base ${existing.base}, not ${base}`);
        return;
      }
      this.nodes.set(node, { base, pages: new Map() });
      if (!this.spill) return;
      try {
        await this.spill.writeNode(node, { base });
      } catch (e) {
        throw new CacheSpillError(this.spill.location, `cannot write metadata of node ${node}: ${(e as Error).message}`);
      }
    });
  }

  hasNode(node: string): boolean {
    return this.nodes.has(node);
  }

  /** node, its base, its base's base, … (stops before an unknown node). */
  chain(node: string | null): string[] {
    const out: string[] = [];
    for (let n = node; n !== null && this.nodes.has(n) && !out.includes(n); n = this.nodes.get(n)!.base) out.push(n);
    return out;
  }

  /** Keep node and its bases resident until the returned release function is called (idempotent). */
  pin(node: string): () => void {
    if (!this.nodes.has(node)) throw new CacheUsageError('ActivationCache.pin', `node ${node} is unknown`);
    const held = this.chain(node);
    this.table.pin(held, 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.table.pin(held, -1);
      void this.exclusive(() => this.table.enforceBudget());
    };
  }

  /** Delete a node and every node built on it, from memory and from the spill store. Returns the deleted ids. */
  deleteNode(node: string): Promise<string[]> {
    return this.exclusive(async () => {
      if (!this.nodes.has(node)) return [];
      const doomed = [...this.nodes.keys()].filter((n) => this.chain(n).includes(node));
      await this.table.deleteNodes(doomed);
      return doomed;
    });
  }

  // ---- writes ------------------------------------------------------------------------------------

  /** Store a full tensor (replacing any entry of that name). Kept by reference: do not modify `data` afterwards. */
  async putFull(node: string, step: number, name: string, t: { shape: number[]; rowAxis?: number; data: Uint16Array }): Promise<void> {
    const where = `ActivationCache.putFull(${node}, ${step}, ${name})`;
    const rowAxis = t.rowAxis ?? 0;
    const g = rowGeometry(where, t.shape, rowAxis);
    const n = g.outer * g.rows * g.inner;
    if (t.data.length !== n) throw new CacheUsageError(where, `data has ${t.data.length} values, shape [${t.shape.join(', ')}] needs ${n}`);
    return this.exclusive(() => this.put(where, node, step, name, { kind: 'full', shape: [...t.shape], rowAxis, data: t.data }));
  }

  /** Store a node's recomputed rows over its base: data is [...outer, rows.length, ...inner]. Kept by reference. */
  async putDelta(node: string, step: number, name: string, d: { shape: number[]; rowAxis?: number; rows: Int32Array; data: Uint16Array }): Promise<void> {
    const where = `ActivationCache.putDelta(${node}, ${step}, ${name})`;
    const rowAxis = d.rowAxis ?? 0;
    const g = rowGeometry(where, d.shape, rowAxis);
    checkRowIndices(where, d.rows, g.rows);
    const n = g.outer * d.rows.length * g.inner;
    if (d.data.length !== n) throw new CacheUsageError(where, `data has ${d.data.length} values, ${d.rows.length} rows of shape [${d.shape.join(', ')}] need ${n}`);
    return this.exclusive(async () => {
      const rec = this.nodes.get(node);
      if (rec) {
        if (rec.base === null) throw new CacheUsageError(where, `node ${node} has no base node: store full entries`);
        const below = this.layoutBelow(rec.base, step, name);
        if (below === null) throw new CacheUsageError(where, `no node of ${this.chain(rec.base).join(' → ')} holds "${name}" at step ${step}: a delta needs a full entry below it`);
        if (below !== 'unknown' && !sameLayout(below, { shape: d.shape, rowAxis })) {
          throw new CacheUsageError(where, `shape [${d.shape.join(', ')}] axis ${rowAxis} differs from the base's [${below.shape.join(', ')}] axis ${below.rowAxis}`);
        }
      }
      await this.put(where, node, step, name, { kind: 'delta', shape: [...d.shape], rowAxis, rows: d.rows, data: d.data });
    });
  }

  /** Layout of `name` at `step` along the chain from `node`; 'unknown' when an unread restored page hides it. */
  private layoutBelow(node: string, step: number, name: string): EntryMeta | 'unknown' | null {
    for (const n of this.chain(node)) {
      const page = this.nodes.get(n)!.pages.get(step);
      if (!page) continue;
      const m = page.meta?.get(name) ?? page.lost.get(name)?.meta;
      if (m) return m;
      if (page.meta === null) return 'unknown';
    }
    return null;
  }

  private async put(where: string, node: string, step: number, name: string, entry: CacheEntry): Promise<void> {
    checkStep(where, step);
    const rec = this.nodes.get(node);
    if (!rec) throw new CacheUsageError(where, `node ${node} is unknown: createNode first`);
    let page = rec.pages.get(step);
    if (!page) {
      page = newPage(node, step);
      rec.pages.set(step, page);
    } else if (!page.data && page.spillValid) {
      await this.table.load(page); // keep the page's other entries; if that fails they are recorded as lost
    }
    this.table.makeResident(page);
    this.table.setEntry(page, name, entry);
    await this.table.enforceBudget();
  }

  // ---- reads -------------------------------------------------------------------------------------

  /**
   * The full tensor of `name` at `step` for `node`, with the chain's deltas overlaid; or why it is not
   * available. opts.into: a buffer to compose into when deltas apply (saves allocating a full map per
   * read; must have exactly the tensor's length). Without deltas the stored array itself is returned.
   */
  readRows(node: string, step: number, name: string, opts: { into?: Uint16Array } = {}): Promise<CacheRead> {
    return this.exclusive(async () => {
      const r = await this.resolve(node, step, name);
      if (!r.ok) {
        this.misses++;
        return r;
      }
      const full = r.entries[r.entries.length - 1];
      let data = full.data;
      if (r.entries.length > 1) {
        if (opts.into && opts.into.length !== full.data.length) {
          throw new CacheUsageError('ActivationCache.readRows', `into has ${opts.into.length} values, "${name}" has ${full.data.length}`);
        }
        data = opts.into ?? new Uint16Array(full.data.length);
        data.set(full.data);
        const g = rowGeometry('readRows', full.shape, full.rowAxis);
        for (let i = r.entries.length - 2; i >= 0; i--) {
          const d = r.entries[i];
          if (d.kind !== 'delta' || !sameLayout(d, full)) {
            throw new CacheUsageError('ActivationCache.readRows', `"${name}" of node ${r.chain[i]} at step ${step} does not match the layout of node ${r.chain[r.chain.length - 1]}`);
          }
          scatterRows(data, g, d.rows, d.data);
        }
      }
      this.hits++;
      await this.table.enforceBudget(); // after composing: the result holds its own references
      return { ok: true, shape: [...full.shape], rowAxis: full.rowAxis, data, chain: r.chain };
    });
  }

  private async resolve(node: string, step: number, name: string): Promise<Resolved> {
    const entries: CacheEntry[] = [];
    const chain: string[] = [];
    const visited: string[] = [];
    for (let n: string | null = node; n !== null; n = this.nodes.get(n)!.base) {
      if (!this.nodes.has(n) || visited.includes(n)) return { ok: false, miss: this.miss(node, step, name, 'unknown-node', n, '') };
      visited.push(n);
      const page = this.nodes.get(n)!.pages.get(step);
      if (!page) continue;
      if (page.meta === null && !page.lostAll) await this.table.load(page);
      if (page.meta?.has(name) && !page.data) await this.table.load(page);
      const e = page.data?.get(name);
      if (e) {
        this.table.touch(page);
        entries.push(e);
        chain.push(n);
        if (e.kind === 'full') return { ok: true, entries, chain };
        continue;
      }
      const l = page.lost.get(name) ?? page.lostAll;
      if (l) return { ok: false, miss: this.miss(node, step, name, l.reason, n, l.detail) };
    }
    return { ok: false, miss: this.miss(node, step, name, 'not-recorded', visited[visited.length - 1] ?? node, `chain ${visited.join(' → ')}`) };
  }

  /**
   * Would these reads succeed? From the index only, no I/O: spilled pages count as available, and a
   * restored page that was never read counts as holding anything. names defaults to every name known
   * along the chain at that step. Misses are reported once per (node that lost data, step, reason).
   */
  check(node: string, steps: Iterable<number>, names?: readonly string[]): CacheCheck {
    const misses: CacheMiss[] = [];
    const seen = new Set<string>();
    for (const step of steps) {
      for (const name of names ?? this.knownNames(node, step, true)) {
        const m = this.checkOne(node, step, name);
        const k = m && `${m.missingNode}/${m.step}/${m.reason}`;
        if (m && !seen.has(k!)) {
          seen.add(k!);
          misses.push(m);
        }
      }
    }
    return misses.length ? { ok: false, misses } : { ok: true };
  }

  private checkOne(node: string, step: number, name: string): CacheMiss | null {
    const visited: string[] = [];
    for (let n: string | null = node; n !== null; n = this.nodes.get(n)!.base) {
      if (!this.nodes.has(n) || visited.includes(n)) return this.miss(node, step, name, 'unknown-node', n, '');
      visited.push(n);
      const page = this.nodes.get(n)!.pages.get(step);
      if (!page) continue;
      const m = page.meta?.get(name);
      if (m) {
        if (m.kind === 'full') return null;
        continue;
      }
      const l = page.lost.get(name) ?? page.lostAll;
      if (l) return this.miss(node, step, name, l.reason, n, l.detail);
      if (page.meta === null) return null;
    }
    return this.miss(node, step, name, 'not-recorded', visited[visited.length - 1] ?? node, `chain ${visited.join(' → ')}`);
  }

  /** Names known for node at step, through the chain (entries of unread restored pages are not known yet). */
  entryNames(node: string, step: number): string[] {
    return this.knownNames(node, step, false);
  }

  private knownNames(node: string, step: number, includeLost: boolean): string[] {
    const names = new Set<string>();
    for (const n of this.chain(node)) {
      const p = this.nodes.get(n)!.pages.get(step);
      for (const k of p?.meta?.keys() ?? []) names.add(k);
      if (includeLost && p) for (const k of p.lost.keys()) names.add(k);
    }
    return [...names].sort();
  }

  private miss(node: string, step: number, name: string, reason: CacheMissReason, missingNode: string, detail: string): CacheMiss {
    const budget = this.budgetBytes === Infinity ? 'unlimited' : `${(this.budgetBytes / 2 ** 20).toFixed(1)} MiB`;
    const text: Record<CacheMissReason, string> = {
      'unknown-node': `node ${missingNode} is unknown to the cache (never recorded here, or deleted)`,
      'not-recorded': `"${name}" at step ${step} was never recorded (${detail})`,
      evicted: `the cache of node ${missingNode} at step ${step} was evicted (budget ${budget}): ${detail}`,
      'spill-missing': `the spilled cache of node ${missingNode} at step ${step} is gone from the spill store: ${detail}`,
      'spill-corrupt': `the spilled cache of node ${missingNode} at step ${step} cannot be read back: ${detail}`,
    };
    const via = missingNode !== node ? `; node ${node} builds on it (its entries are deltas over node ${missingNode}'s), so it cannot be resolved either` : '';
    return { node, step, name, reason, missingNode, message: `${text[reason]}${via}` };
  }

  // ---- persistence and stats ---------------------------------------------------------------------

  /** Write every resident page the spill store does not hold yet (e.g. before a CLI process exits). */
  persist(): Promise<void> {
    return this.exclusive(async () => {
      if (!this.spill) throw new CacheUsageError('ActivationCache.persist', 'no spill store configured');
      await this.table.persistAll();
    });
  }

  stats(): CacheStats {
    const nodes: CacheNodeStats[] = [];
    for (const [node, rec] of this.nodes) {
      const s: CacheNodeStats = { node, base: rec.base, residentBytes: 0, spilledBytes: 0, pages: { resident: 0, spilled: 0, lost: 0 } };
      for (const p of rec.pages.values()) {
        if (p.data) {
          s.residentBytes += p.bytes;
          s.pages.resident++;
        } else if (p.spillValid) {
          s.spilledBytes += p.bytes;
          s.pages.spilled++;
        }
        if (p.lost.size > 0 || p.lostAll) s.pages.lost++;
      }
      nodes.push(s);
    }
    const spilledBytes = nodes.reduce((a, n) => a + n.spilledBytes, 0);
    return { budgetBytes: this.budgetBytes, residentBytes: this.table.residentBytes, spilledBytes, hits: this.hits, misses: this.misses, ...this.table.counters, nodes };
  }
}
