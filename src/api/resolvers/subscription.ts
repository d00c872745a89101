// Subscriptions check the role when they start (VIEWER on the tree), subscribe to the topic FIRST and
// only then read the current state, so no event between the two is lost; the state is sent first and
// older live events are dropped by seq.
import type { NodeProgressEvent, TreeEventPayload } from '../../service/events/treeEvents';
import { isFinal, progressTopic, treeTopic } from '../../service/events/treeEvents';
import type { SubscriptionResolvers } from '../generated/schemaTypes';
import { requireUser } from '../context';
import { whileMember } from './membershipGuard';
import { sequencedStream, stream } from './streams';
import { BadUserInputError } from '../../service/errors';

export const Subscription: SubscriptionResolvers = {
  nodeProgress: {
    subscribe: async (_p, { nodeId }, ctx) => {
      const user = requireUser(ctx);
      const { trees, pubsub, bus } = ctx.service;
      const viewed = await trees.nodeForViewer(user, nodeId);
      const sub = await pubsub.subscribe<NodeProgressEvent>(progressTopic(nodeId));
      try {
        const node = await trees.nodeById(nodeId);
        const latest = bus.latestProgress(nodeId);
        let current: NodeProgressEvent;
        if (node && latest && !isFinal(node.status) && latest.status === node.status) current = latest;
        else {
          // No live state in this process (finished, or queued/running elsewhere): describe the stored state.
          const status = node?.status ?? 'CANCELLED';
          current = {
            nodeId,
            treeId: node?.treeId ?? '',
            seq: bus.nextSeq(),
            step: status === 'SUCCEEDED' ? (node?.steps ?? 0) : 0,
            totalSteps: node?.steps ?? 0,
            phase: isFinal(status) ? 'DONE' : status === 'RUNNING' ? 'DENOISING' : 'QUEUED',
            status,
            etaMs: isFinal(status) ? 0 : null,
            preview: null,
            maskedFraction: node?.maskedFraction ?? null,
            at: new Date().toISOString(),
          };
        }
        return whileMember(stream(sub, { initial: [current], keep: (e) => e.seq > current.seq, last: (e) => e.phase === 'DONE' }), ctx.service, user, viewed.treeId);
      } catch (e) {
        sub.close();
        throw e;
      }
    },
    resolve: (payload: NodeProgressEvent) => payload,
  },
  treeEvents: {
    subscribe: async (_p, { treeId, afterSeq }, ctx) => {
      const user = requireUser(ctx);
      const { trees, pubsub, bus } = ctx.service;
      await trees.treeForViewer(user, treeId);
      if (afterSeq !== undefined && afterSeq !== null && (!Number.isInteger(afterSeq) || afterSeq < 0)) throw new BadUserInputError('afterSeq', 'must be an integer ≥ 0 (a seq of this tree, or 0 for all)');
      const sub = await pubsub.subscribe<TreeEventPayload>(treeTopic(treeId));
      // Deleting the root deletes the tree: that event is the last one.
      const last = (e: TreeEventPayload) => e.type === 'DELETED' && e.node.parentId === null;
      if (afterSeq === undefined || afterSeq === null) return whileMember(stream(sub, { last }), ctx.service, user, treeId);
      try {
        // Subscribed first, then the log: an event committed meanwhile is in one or the other (or both,
        // and sequencedStream drops the duplicate).
        const { events, lastSeq } = await bus.replay(treeId, afterSeq);
        if (afterSeq > lastSeq) throw new BadUserInputError('afterSeq', `is ahead of the tree's last event (${lastSeq})`);
        const replayed = sequencedStream(sub, {
          afterSeq,
          initial: events,
          seqOf: (e) => e.seq,
          unnumbered: (e) => e.type === 'PROGRESSED',
          fill: async (after, before) => (await bus.replay(treeId, after, before)).events,
          last,
        });
        return whileMember(replayed, ctx.service, user, treeId);
      } catch (e) {
        sub.close();
        throw e;
      }
    },
    resolve: (payload: TreeEventPayload) => payload,
  },
};
