// What the job runner and the tree service announce, and on which topics:
//   node-progress:<nodeId>   NodeProgressEvent — every step of a run, then one DONE event
//   tree-events:<treeId>     TreeEventPayload  — CREATED, STARTED, PROGRESSED, SUCCEEDED, FAILED, CANCELLED, DELETED
// Payloads carry a JSON snapshot of the node, so a subscriber resolves `node` without a database read
// (and a DELETED node can still be described).
//
// State events (all but PROGRESSED) are numbered per tree in the database, where they are committed:
// Tree.eventSeq counts them and the TreeEvent table keeps the last TREE_EVENT_LOG_SIZE of each tree, so
// a subscriber can replay what it missed (treeEvents(afterSeq)). They are published only after that
// commit, so a live subscriber that sees seq n can always read 1…n−1 from the log. PROGRESSED events
// are best-effort hints: not logged, carrying the seq of the last state event before them.
import type { Db } from '../../db/client';
import { ServiceError } from '../errors';
import type { Node as NodeRow, NodeStatus } from '../../generated/sqlite/client';
import type { ProgressPhase } from '../inference/backend';
import type { PubSub } from './pubsub';

export type TreeEventType = 'CREATED' | 'STARTED' | 'PROGRESSED' | 'SUCCEEDED' | 'FAILED' | 'CANCELLED' | 'DELETED';

export interface NodeProgressEvent {
  nodeId: string;
  treeId: string;
  /** Increases with every event of this node within one server process. */
  seq: number;
  step: number;
  totalSteps: number;
  phase: ProgressPhase;
  status: NodeStatus;
  etaMs: number | null;
  preview: string | null;
  maskedFraction: number | null;
  at: string;
}

/** A node row with dates as ISO strings (JSON-safe). */
export type NodeSnapshot = Omit<NodeRow, 'createdAt' | 'updatedAt' | 'startedAt' | 'finishedAt'> & {
  createdAt: string;
  updatedAt: string;
  startedAt: string | null;
  finishedAt: string | null;
};

export interface TreeEventPayload {
  type: TreeEventType;
  treeId: string;
  seq: number;
  at: string;
  node: NodeSnapshot;
  progress: NodeProgressEvent | null;
  /** For DELETED: every node removed with this subtree (its root first). */
  deletedNodeIds: string[];
}

export const progressTopic = (nodeId: string) => `node-progress:${nodeId}`;
export const treeTopic = (treeId: string) => `tree-events:${treeId}`;

export function toSnapshot(n: NodeRow): NodeSnapshot {
  return {
    ...n,
    createdAt: n.createdAt.toISOString(),
    updatedAt: n.updatedAt.toISOString(),
    startedAt: n.startedAt ? n.startedAt.toISOString() : null,
    finishedAt: n.finishedAt ? n.finishedAt.toISOString() : null,
  };
}

export function fromSnapshot(s: NodeSnapshot): NodeRow {
  return {
    ...s,
    createdAt: new Date(s.createdAt),
    updatedAt: new Date(s.updatedAt),
    startedAt: s.startedAt ? new Date(s.startedAt) : null,
    finishedAt: s.finishedAt ? new Date(s.finishedAt) : null,
  };
}

/** State events kept per tree for replay; older ones are pruned as new ones are committed. */
export const TREE_EVENT_LOG_SIZE = 500;

/** A replay request the log cannot answer completely (CONFLICT, reason EVENTS_EXPIRED). */
export class EventsExpiredError extends ServiceError {
  constructor(readonly treeId: string, readonly afterSeq: number, readonly oldestSeq: number) {
    super('CONFLICT', `the events of tree ${treeId} after seq ${afterSeq} are no longer all kept (the oldest kept is ${oldestSeq}; the last ${TREE_EVENT_LOG_SIZE} are); read the tree again and subscribe with afterSeq = its eventSeq`, { reason: 'EVENTS_EXPIRED', oldestSeq });
    this.name = 'EventsExpiredError';
  }
}

const FINAL: ReadonlySet<NodeStatus> = new Set<NodeStatus>(['SUCCEEDED', 'FAILED', 'CANCELLED']);
export const isFinal = (s: NodeStatus) => FINAL.has(s);

/**
 * Publishes events and remembers the latest progress of each active node, so a new subscriber starts
 * from the current state instead of a blank. Memory: one entry per node that is queued or running.
 */
export class EventBus {
  private seq = 0;
  private readonly latest = new Map<string, NodeProgressEvent>();
  /** The last state-event seq this process committed per tree (the seq PROGRESSED events carry). */
  private readonly treeSeq = new Map<string, number>();

  constructor(readonly pubsub: PubSub, private readonly db: Db) {}

  nextSeq(): number {
    return ++this.seq;
  }

  latestProgress(nodeId: string): NodeProgressEvent | null {
    return this.latest.get(nodeId) ?? null;
  }

  async progress(e: Omit<NodeProgressEvent, 'seq' | 'at'>): Promise<NodeProgressEvent> {
    const ev: NodeProgressEvent = { ...e, seq: this.nextSeq(), at: new Date().toISOString() };
    if (isFinal(ev.status)) this.latest.delete(ev.nodeId);
    else this.latest.set(ev.nodeId, ev);
    await this.pubsub.publish(progressTopic(ev.nodeId), ev);
    return ev;
  }

  /** Commits (state events) and publishes a tree event. */
  async tree(type: TreeEventType, node: NodeRow, extra: { progress?: NodeProgressEvent; deletedNodeIds?: string[] } = {}): Promise<void> {
    if (type === 'PROGRESSED') {
      const seq = this.treeSeq.get(node.treeId) ?? (await this.db.tree.findUnique({ where: { id: node.treeId }, select: { eventSeq: true } }))?.eventSeq ?? 0;
      await this.publishTree(this.payload(type, node, seq, extra));
      return;
    }
    await this.publishTree(await this.commitTree(type, node, extra));
  }

  /**
   * Numbers a state event in its tree and logs it, in one transaction; publish it afterwards with
   * publishTree. (Deleting a tree commits its DELETED event first, then deletes the tree and its log.)
   */
  async commitTree(type: Exclude<TreeEventType, 'PROGRESSED'>, node: NodeRow, extra: { deletedNodeIds?: string[] } = {}): Promise<TreeEventPayload> {
    const ev = await this.db.$transaction(async (tx) => {
      // Raw, so that numbering an event does not touch Tree.updatedAt (Prisma's @updatedAt would).
      const rows = await tx.$queryRaw<{ eventSeq: number | bigint }[]>`UPDATE "Tree" SET "eventSeq" = "eventSeq" + 1 WHERE "id" = ${node.treeId} RETURNING "eventSeq"`;
      if (rows.length !== 1) throw new Error(`tree ${node.treeId} is gone: cannot number its ${type} event`);
      const eventSeq = Number(rows[0].eventSeq);
      const e = this.payload(type, node, eventSeq, extra);
      await tx.treeEvent.create({ data: { treeId: node.treeId, seq: eventSeq, type, payload: JSON.stringify(e) } });
      if (eventSeq > TREE_EVENT_LOG_SIZE) await tx.treeEvent.deleteMany({ where: { treeId: node.treeId, seq: { lte: eventSeq - TREE_EVENT_LOG_SIZE } } });
      return e;
    });
    if (ev.seq > (this.treeSeq.get(ev.treeId) ?? 0)) this.treeSeq.set(ev.treeId, ev.seq);
    return ev;
  }

  async publishTree(ev: TreeEventPayload): Promise<void> {
    if (ev.type === 'DELETED') {
      for (const id of ev.deletedNodeIds) this.latest.delete(id);
      if (ev.node.parentId === null) this.treeSeq.delete(ev.treeId);
    }
    await this.pubsub.publish(treeTopic(ev.treeId), ev);
  }

  /**
   * The logged state events of a tree with afterSeq < seq < beforeSeq (beforeSeq omitted: all), in order,
   * and the tree's current seq. EventsExpiredError when the log no longer holds seq afterSeq + 1.
   */
  async replay(treeId: string, afterSeq: number, beforeSeq?: number): Promise<{ events: TreeEventPayload[]; lastSeq: number }> {
    const tree = await this.db.tree.findUnique({ where: { id: treeId }, select: { eventSeq: true } });
    const lastSeq = tree?.eventSeq ?? 0;
    const rows = await this.db.treeEvent.findMany({ where: { treeId, seq: { gt: afterSeq, ...(beforeSeq === undefined ? {} : { lt: beforeSeq }) } }, orderBy: { seq: 'asc' } });
    const want = Math.min(lastSeq, beforeSeq === undefined ? lastSeq : beforeSeq - 1);
    if (want > afterSeq && (rows.length === 0 || rows[0].seq !== afterSeq + 1)) throw new EventsExpiredError(treeId, afterSeq, rows[0]?.seq ?? lastSeq + 1);
    return { events: rows.map((r) => JSON.parse(r.payload) as TreeEventPayload), lastSeq };
  }

  private payload(type: TreeEventType, node: NodeRow, seq: number, extra: { progress?: NodeProgressEvent; deletedNodeIds?: string[] }): TreeEventPayload {
    return {
      type,
      treeId: node.treeId,
      seq,
      at: new Date().toISOString(),
      node: toSnapshot(node),
      progress: extra.progress ?? null,
      deletedNodeIds: extra.deletedNodeIds ?? [],
    };
  }
}
