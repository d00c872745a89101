import type { MutationResolvers } from '../generated/schemaTypes';
import { requireUser } from '../context';

export const Mutation: MutationResolvers = {
  generate: (_p, { input }, ctx) => ctx.service.trees.generate(requireUser(ctx), input),
  edit: (_p, { input }, ctx) => ctx.service.trees.edit(requireUser(ctx), input),
  cancelJob: (_p, { nodeId }, ctx) => ctx.service.trees.cancelJob(requireUser(ctx), nodeId),
  retryNode: (_p, { nodeId }, ctx) => ctx.service.trees.retryNode(requireUser(ctx), nodeId),
  deleteNode: (_p, { nodeId }, ctx) => ctx.service.trees.deleteNode(requireUser(ctx), nodeId),
  shareTree: (_p, { treeId, userName, role }, ctx) => ctx.service.trees.shareTree(requireUser(ctx), treeId, userName, role),
  unshareTree: (_p, { treeId, userName }, ctx) => ctx.service.trees.unshareTree(requireUser(ctx), treeId, userName),
};
