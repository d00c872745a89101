// What the job runner and the tree service announce, and on which topics:
//   node-progress:<nodeId>   NodeProgressEvent — every step of a run, then one DONE event
//   tree-events:<treeId>     TreeEventPayload  — CREATED, STARTED, PROGRESSED, SUCCEEDED, FAILED, CANCELLED, DELETED
// Payloads carry a JSON snapshot of the node, so a subscriber resolves `node` without a database read
// (and a DELETED node can still be described).
import type { Node as NodeRecord, NodeStatus } from '../../generated/sqlite/client';
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
export type NodeSnapshot = Omit<NodeRecord, 'createdAt' | 'updatedAt' | 'startedAt' | 'finishedAt'> & {
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

export function toSnapshot(n: NodeRecord): NodeSnapshot {
  return {
    ...n,
    createdAt: n.createdAt.toISOString(),
    updatedAt: n.updatedAt.toISOString(),
    startedAt: n.startedAt ? n.startedAt.toISOString() : null,
    finishedAt: n.finishedAt ? n.finishedAt.toISOString() : null,
  };
}

export function fromSnapshot(s: NodeSnapshot): NodeRecord {
  return {
    ...s,
    createdAt: new Date(s.createdAt),
    updatedAt: new Date(s.updatedAt),
    startedAt: s.startedAt ? new Date(s.startedAt) : null,
    finishedAt: s.finishedAt ? new Date(s.finishedAt) : null,
  };
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

  constructor(readonly pubsub: PubSub) {}

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

  async tree(type: TreeEventType, node: NodeRecord, extra: { progress?: NodeProgressEvent; deletedNodeIds?: string[] } = {}): Promise<void> {
    const ev: TreeEventPayload = {
      type,
      treeId: node.treeId,
      seq: this.nextSeq(),
      at: new Date().toISOString(),
      node: toSnapshot(node),
      progress: extra.progress ?? null,
      deletedNodeIds: extra.deletedNodeIds ?? [],
    };
    if (type === 'DELETED') for (const id of ev.deletedNodeIds) this.latest.delete(id);
    await this.pubsub.publish(treeTopic(node.treeId), ev);
  }
}
