// Per-operation DataLoaders: a list of N nodes asking for `children` or `queuePosition` costs one database
// read per field (batched in the tick the resolvers run in), not one per node. Loaders hang off the
// operation's context object (a new one per HTTP request and per WebSocket operation), so nothing is shared
// between users or requests; `cache: false` keeps a long-lived subscription from serving stale rows —
// batching is what is wanted here, not memoisation.
import DataLoader from 'dataloader';
import type { Node as NodeRow } from '../generated/sqlite/client';
import type { ApiContext } from './context';

export interface Loaders {
  children: DataLoader<string, NodeRow[]>;
  queuePosition: DataLoader<string, number | null>;
}

const byContext = new WeakMap<ApiContext, Loaders>();

export function loaders(ctx: ApiContext): Loaders {
  let l = byContext.get(ctx);
  if (!l) {
    const { trees } = ctx.service;
    l = {
      children: new DataLoader(async (ids) => {
        const m = await trees.childrenOf(ids);
        return ids.map((id) => m.get(id) ?? []);
      }, { cache: false }),
      queuePosition: new DataLoader(async (ids) => {
        const m = await trees.queuePositions(ids);
        return ids.map((id) => m.get(id) ?? null);
      }, { cache: false }),
    };
    byContext.set(ctx, l);
  }
  return l;
}
