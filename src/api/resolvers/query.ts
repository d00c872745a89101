import type { QueryResolvers } from '../generated/schemaTypes';
import { requireUser } from '../context';

export const Query: QueryResolvers = {
  me: (_p, _a, ctx) => requireUser(ctx),
  trees: (_p, { first, after }, ctx) => ctx.service.trees.trees(requireUser(ctx), first, after),
  tree: (_p, { id }, ctx) => ctx.service.trees.tree(requireUser(ctx), id),
  node: (_p, { id }, ctx) => ctx.service.trees.node(requireUser(ctx), id),
  model: (_p, _a, ctx) => {
    requireUser(ctx);
    return ctx.service.model;
  },
};
