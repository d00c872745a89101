// The engine state's disk budget. DATA/engine-state holds, per engine node, a folder (node.json, image,
// latents: kilobytes to a few MB) and its activation cache (cache/<id>: the UNet activations an edit of it
// reads, up to GBs for a long, large node). Folders stay as long as their node; caches are what grows, and
// a cache can always be rebuilt from the stored latents (an edit re-records its parent), so caches are
// what the budget evicts, coldest first:
//   - total bytes of the engine state ≤ totalBytes,
//   - bytes of the nodes a user created ≤ perUserBytes,
//   - free space on the disk ≥ minFreeBytes (before a job starts, and after a write found the disk full).
// "Cold" = the latest of the node's creation and its newest child's (an edit reads its parent's cache).
// Evicting a cache also drops the caches that are deltas over it (cache/<id>/node.json names the base).
// The engine does the deleting (InferenceBackend.evictCaches), between runs, so a running edit never
// loses what it reads.

import { promises as fsp } from 'fs';
import * as path from 'path';
import type { Db } from '../../db/client';
import type { InferenceBackend } from './backend';

export interface StateBudgetLimits {
  /** Bytes of the whole engine state (folders and caches). */
  totalBytes: number;
  /** Bytes of the engine state of the nodes one user created. */
  perUserBytes: number;
  /** Free bytes the data disk keeps: below it, caches are evicted and a job that cannot get it fails. */
  minFreeBytes: number;
}

export const DEFAULT_STATE_LIMITS: StateBudgetLimits = { totalBytes: 20 * 2 ** 30, perUserBytes: 5 * 2 ** 30, minFreeBytes: 2 ** 30 };

const ENV: Record<keyof StateBudgetLimits, string> = {
  totalBytes: 'FISEDIT_STATE_BYTES',
  perUserBytes: 'FISEDIT_STATE_USER_BYTES',
  minFreeBytes: 'FISEDIT_MIN_FREE_BYTES',
};

/** The limits from FISEDIT_STATE_BYTES, FISEDIT_STATE_USER_BYTES, FISEDIT_MIN_FREE_BYTES (non-negative integers, bytes). */
export function stateLimitsFromEnv(env: NodeJS.ProcessEnv = process.env): StateBudgetLimits {
  const out = { ...DEFAULT_STATE_LIMITS };
  for (const key of Object.keys(ENV) as (keyof StateBudgetLimits)[]) {
    const v = env[ENV[key]];
    if (v === undefined || v.trim() === '') continue;
    const n = Number(v);
    if (!Number.isSafeInteger(n) || n < 0) throw new Error(`${ENV[key]} must be a non-negative integer number of bytes (got ${JSON.stringify(v)})`);
    out[key] = n;
  }
  return out;
}

/** One engine node on disk. */
interface NodeUsage {
  folderBytes: number;
  cacheBytes: number;
  /** The node its cache is a delta over (cache/<id>/node.json), or null. */
  cacheBase: string | null;
}

export interface StateUsage {
  limits: StateBudgetLimits;
  usedBytes: number;
  cacheBytes: number;
  folderBytes: number;
  /** Bytes charged to each user id (the creator of the node). */
  userBytes: Map<string, number>;
  /** Free bytes on the disk holding the engine state, or null where the system cannot say. */
  freeDiskBytes: number | null;
  /** Caches evicted since the server started. */
  evictedCaches: number;
  measuredAt: Date;
}

/** A write of the engine state (or an image) failed because the disk is full. */
export function isDiskFull(e: unknown): boolean {
  const err = e as NodeJS.ErrnoException | undefined;
  return err?.code === 'ENOSPC' || err?.code === 'EDQUOT' || /\bENOSPC\b|no space left on device|\bEDQUOT\b|disk quota exceeded/i.test(err?.message ?? '');
}

const MiB = (n: number) => `${(n / 2 ** 20).toFixed(1)} MiB`;

async function dirBytes(dir: string): Promise<number> {
  let total = 0;
  let names: string[];
  try {
    names = await fsp.readdir(dir);
  } catch {
    return 0;
  }
  for (const n of names) {
    try {
      const st = await fsp.stat(path.join(dir, n));
      total += st.isDirectory() ? await dirBytes(path.join(dir, n)) : st.size;
    } catch {
      // deleted while we looked
    }
  }
  return total;
}

async function listDirs(dir: string): Promise<string[]> {
  try {
    return (await fsp.readdir(dir, { withFileTypes: true })).filter((d) => d.isDirectory() && !d.name.startsWith('.')).map((d) => d.name);
  } catch {
    return [];
  }
}

export class EngineStateBudget {
  private last: StateUsage | null = null;
  /** Folder + cache bytes of the largest node measured so far: the room a retry after a full disk needs. */
  private largestNodeBytes = 0;
  private evicted = 0;
  private queue: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly db: Db,
    private readonly backend: InferenceBackend,
    readonly stateDir: string,
    readonly limits: StateBudgetLimits,
  ) {}

  /** Free bytes on the engine state's disk (its nearest existing folder), or null where statfs fails. */
  async freeDiskBytes(): Promise<number | null> {
    for (let dir = this.stateDir; ; dir = path.dirname(dir)) {
      try {
        const s = await fsp.statfs(dir);
        return s.bavail * s.bsize;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT' || path.dirname(dir) === dir) return null;
      }
    }
  }

  /** The last measurement (taken at start-up and after every job), with the disk's free space now. */
  async usage(): Promise<StateUsage> {
    const u = this.last ?? (await this.enforce({ measureOnly: true })).usage;
    return { ...u, freeDiskBytes: await this.freeDiskBytes(), evictedCaches: this.evicted };
  }

  /**
   * Before a job: null when the disk has room, else why the job cannot run. Evicts cold caches first
   * when free space is under minFreeBytes.
   */
  async roomForJob(): Promise<string | null> {
    const free = await this.freeDiskBytes();
    if (free === null || free >= this.limits.minFreeBytes) return null;
    const after = await this.evictForFreeSpace(this.limits.minFreeBytes, free);
    return after === null || after >= this.limits.minFreeBytes ? null : this.diskFullMessage(after);
  }

  /**
   * After a write found the disk full: evicts the coldest caches until the disk has room for the largest
   * node seen (at least minFreeBytes), so that a retry can succeed.
   */
  async makeRoomAfterDiskFull(): Promise<void> {
    const free = await this.freeDiskBytes();
    if (free === null) return;
    await this.evictForFreeSpace(Math.max(this.limits.minFreeBytes, this.largestNodeBytes), free);
  }

  /** Evicts toward `want` free bytes; waits (≤ 5 s) for the engine to delete. Returns the free bytes then. */
  private async evictForFreeSpace(want: number, free: number): Promise<number | null> {
    const { freedBytes } = await this.enforce({ wantFreeBytes: want - free });
    // The engine deletes between runs (no job runs here now); give it a moment to do so.
    let after: number | null = free;
    for (let i = 0; freedBytes > 0 && i < 50 && after !== null && after < want; i++) {
      await new Promise((r) => setTimeout(r, 100));
      after = await this.freeDiskBytes();
    }
    return after;
  }

  /** What a job that met a full disk tells its users (no server paths). */
  diskFullMessage(free: number | null): string {
    const f = free === null ? 'little' : MiB(free);
    return `the server's disk is full (${f} free, ${MiB(this.limits.minFreeBytes)} kept free for the engine state); cold caches were evicted — retry the job once space is freed`;
  }

  /**
   * Measures the engine state and evicts the coldest caches until the total, every user and (when asked)
   * the disk's free space are within bounds. Runs one at a time; returns the usage after evicting.
   */
  enforce(opts: { wantFreeBytes?: number; measureOnly?: boolean } = {}): Promise<{ usage: StateUsage; freedBytes: number }> {
    const run = this.queue.then(() => this.enforceNow(opts.wantFreeBytes ?? 0, opts.measureOnly ?? false));
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async measure(): Promise<Map<string, NodeUsage>> {
    const nodes = new Map<string, NodeUsage>();
    const get = (id: string) => nodes.get(id) ?? nodes.set(id, { folderBytes: 0, cacheBytes: 0, cacheBase: null }).get(id)!;
    for (const id of await listDirs(path.join(this.stateDir, 'nodes'))) get(id).folderBytes = await dirBytes(path.join(this.stateDir, 'nodes', id));
    for (const id of await listDirs(path.join(this.stateDir, 'cache'))) {
      const dir = path.join(this.stateDir, 'cache', id);
      const u = get(id);
      u.cacheBytes = await dirBytes(dir);
      try {
        const base = JSON.parse(await fsp.readFile(path.join(dir, 'node.json'), 'utf8')).base;
        u.cacheBase = typeof base === 'string' ? base : null;
      } catch {
        u.cacheBase = null;
      }
    }
    return nodes;
  }

  /** Engine node id → [user id, last use ms]; ids the database does not know map to nothing. */
  private async owners(ids: string[]): Promise<Map<string, { userId: string; lastUse: number }>> {
    const out = new Map<string, { userId: string; lastUse: number }>();
    for (let i = 0; i < ids.length; i += 500) {
      const rows = await this.db.node.findMany({ where: { engineNodeId: { in: ids.slice(i, i + 500) } }, select: { id: true, engineNodeId: true, createdById: true, createdAt: true } });
      const kids = await this.db.node.groupBy({ by: ['parentId'], where: { parentId: { in: rows.map((r) => r.id) } }, _max: { createdAt: true } });
      const newestChild = new Map(kids.map((k) => [k.parentId, k._max.createdAt?.getTime() ?? 0]));
      for (const r of rows) out.set(r.engineNodeId!, { userId: r.createdById, lastUse: Math.max(r.createdAt.getTime(), newestChild.get(r.id) ?? 0) });
    }
    return out;
  }

  private async enforceNow(wantFreeBytes: number, measureOnly: boolean): Promise<{ usage: StateUsage; freedBytes: number }> {
    const nodes = await this.measure();
    const owners = await this.owners([...nodes.keys()]);
    const UNKNOWN = '';
    const ownerOf = (id: string) => owners.get(id)?.userId ?? UNKNOWN;
    const userBytes = new Map<string, number>();
    let folderBytes = 0;
    let cacheBytes = 0;
    for (const [id, u] of nodes) {
      this.largestNodeBytes = Math.max(this.largestNodeBytes, u.folderBytes + u.cacheBytes);
      folderBytes += u.folderBytes;
      cacheBytes += u.cacheBytes;
      userBytes.set(ownerOf(id), (userBytes.get(ownerOf(id)) ?? 0) + u.folderBytes + u.cacheBytes);
    }
    // Caches that build on each one (deltas), to evict them together.
    const dependents = new Map<string, string[]>();
    for (const [id, u] of nodes) if (u.cacheBase) dependents.set(u.cacheBase, [...(dependents.get(u.cacheBase) ?? []), id]);
    const withDependents = (id: string): string[] => {
      const out = [id];
      for (let i = 0; i < out.length; i++) for (const d of dependents.get(out[i]) ?? []) if (!out.includes(d)) out.push(d);
      return out;
    };
    // Coldest first; caches no database node claims (failed runs, deleted nodes) before all others.
    const candidates = [...nodes.entries()].filter(([, u]) => u.cacheBytes > 0).map(([id]) => id);
    candidates.sort((a, b) => (owners.get(a)?.lastUse ?? -1) - (owners.get(b)?.lastUse ?? -1));
    const gone = new Set<string>();
    const evict: string[] = [];
    let freed = 0;
    const evictOne = (pred: (id: string) => boolean): boolean => {
      if (measureOnly) return false;
      const id = candidates.find((c) => !gone.has(c) && pred(c));
      if (!id) return false;
      evict.push(id);
      for (const d of withDependents(id)) {
        if (gone.has(d)) continue;
        gone.add(d);
        const b = nodes.get(d)!.cacheBytes;
        cacheBytes -= b;
        freed += b;
        userBytes.set(ownerOf(d), (userBytes.get(ownerOf(d)) ?? 0) - b);
      }
      return true;
    };
    for (const [user, bytes] of userBytes) {
      if (user === UNKNOWN) continue;
      let b = bytes;
      while (b > this.limits.perUserBytes && evictOne((c) => ownerOf(c) === user)) b = userBytes.get(user)!;
    }
    while (folderBytes + cacheBytes > this.limits.totalBytes && evictOne(() => true));
    while (freed < wantFreeBytes && evictOne(() => true));
    if (evict.length > 0) {
      this.backend.evictCaches(evict);
      this.evicted += gone.size;
    }
    userBytes.delete(UNKNOWN);
    this.last = {
      limits: this.limits,
      usedBytes: folderBytes + cacheBytes,
      cacheBytes,
      folderBytes,
      userBytes,
      freeDiskBytes: null,
      evictedCaches: this.evicted,
      measuredAt: new Date(),
    };
    return { usage: this.last, freedBytes: freed };
  }
}
