// Which workers are alive and whose engine state (recorded nodes with their activation caches) each one
// holds, in Redis, for cache affinity (docs/scaling.md, "Queue and workers"). An engine node lives on the
// local disk of the worker that recorded it, under an id of that worker's node store, so the service's
// node id maps to one engine node id per worker:
//   PREFIX worker:<id>          the worker's heartbeat (JSON: pid, host, startedAt), expires after aliveMs
//   PREFIX worker:<id>:nodes    hash: service node id → this worker's engine node id (kept across restarts
//                               of the same worker id and data dir, like the engine state itself)
//   PREFIX cache:<nodeId>       set: the workers that hold the node
//   PREFIX workers              set: every worker id seen (their queues are watched for stalled jobs)
import type Redis from 'ioredis';

export interface WorkerRegistryOptions {
  /** Key prefix (default "fisedit:"), as RedisPubSub's. */
  prefix?: string;
  /** A worker whose heartbeat is older than this is dead, ms (default 10 s; it beats every third of it). */
  aliveMs?: number;
}

/** Worker ids become key and queue names: letters, digits, '.', '_' and '-' only. */
export function checkWorkerId(id: string): string {
  if (!/^[A-Za-z0-9._-]{1,100}$/.test(id)) throw new Error(`worker id ${JSON.stringify(id)}: use 1–100 letters, digits, '.', '_' or '-'`);
  return id;
}

export class WorkerRegistry {
  private readonly prefix: string;
  readonly aliveMs: number;
  private beat: NodeJS.Timeout | null = null;

  constructor(private readonly redis: Redis, opts: WorkerRegistryOptions = {}) {
    this.prefix = opts.prefix ?? 'fisedit:';
    this.aliveMs = opts.aliveMs ?? 10_000;
  }

  private k(...parts: string[]): string {
    return this.prefix + parts.join(':');
  }

  /** Starts this worker's heartbeat; resolves once it is visible. */
  async register(workerId: string): Promise<void> {
    const info = JSON.stringify({ pid: process.pid, startedAt: new Date().toISOString() });
    const write = () => this.redis.set(this.k('worker', workerId), info, 'PX', this.aliveMs);
    await this.redis.sadd(this.k('workers'), workerId);
    await write();
    this.beat = setInterval(() => void write().catch(() => undefined), Math.max(100, Math.floor(this.aliveMs / 3)));
    this.beat.unref();
  }

  /** Stops the heartbeat and says at once that this worker is gone (edits routed to it fall back now). */
  async unregister(workerId: string): Promise<void> {
    if (this.beat) clearInterval(this.beat);
    this.beat = null;
    await this.redis.del(this.k('worker', workerId));
  }

  /** Drops a gone worker from the set of watched workers (its announcements stay for a restart under its id). */
  async forgetWorker(workerId: string): Promise<void> {
    await this.redis.srem(this.k('workers'), workerId);
  }

  async allWorkers(): Promise<string[]> {
    return this.redis.smembers(this.k('workers'));
  }

  /** Which of these workers have a live heartbeat. */
  async alive(ids: readonly string[]): Promise<Set<string>> {
    const uniq = [...new Set(ids)];
    if (uniq.length === 0) return new Set();
    const vals = await this.redis.mget(...uniq.map((id) => this.k('worker', id)));
    return new Set(uniq.filter((_, i) => vals[i] !== null));
  }

  /** The live workers that hold this node's engine state. */
  async holders(nodeId: string): Promise<string[]> {
    const ids = await this.redis.smembers(this.k('cache', nodeId));
    const live = await this.alive(ids);
    return ids.filter((id) => live.has(id)).sort();
  }

  /** This worker now holds these nodes (recorded or rebuilt here). */
  async announce(workerId: string, nodes: readonly { nodeId: string; engineNodeId: string }[]): Promise<void> {
    if (nodes.length === 0) return;
    const m = this.redis.multi();
    m.hset(this.k('worker', workerId, 'nodes'), ...nodes.flatMap((n) => [n.nodeId, n.engineNodeId]));
    for (const n of nodes) m.sadd(this.k('cache', n.nodeId), workerId);
    await m.exec();
  }

  /** This worker no longer holds these nodes (deleted, or its engine state was wiped). */
  async withdraw(workerId: string, nodeIds: readonly string[]): Promise<void> {
    if (nodeIds.length === 0) return;
    const m = this.redis.multi();
    m.hdel(this.k('worker', workerId, 'nodes'), ...nodeIds);
    for (const id of nodeIds) m.srem(this.k('cache', id), workerId);
    await m.exec();
  }

  /** service node id → engine node id, for the nodes this worker announced. */
  async held(workerId: string): Promise<Map<string, string>> {
    return new Map(Object.entries(await this.redis.hgetall(this.k('worker', workerId, 'nodes'))));
  }
}
