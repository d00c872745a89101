// Field resolvers of the object types: thin reads through the service. Node, Tree and User parents are
// database records (src/api/mappers.ts); Image, Mask and NodeStats resolve from their node.
import { GraphQLError, GraphQLScalarType, Kind } from 'graphql';
import type { Node as NodeRow } from '../../generated/sqlite/client';
import { NotFoundError } from '../../service/errors';
import { fromSnapshot } from '../../service/events/treeEvents';
import type { ImageKind } from '../../service/images/signedUrls';
import { ApiContext, requireUser } from '../context';
import { loaders } from '../loaders';
import { withoutPaths } from '../errors';
import type {
  EditStrategy,
  ImageResolvers,
  MaskResolvers,
  NodeResolvers,
  NodeStatsResolvers,
  RunMode,
  Scheduler,
  TreeConnectionResolvers,
  TreeEventResolvers,
  TreeResolvers,
  TreeMemberResolvers,
} from '../generated/schemaTypes';

export const DateTime = new GraphQLScalarType({
  name: 'DateTime',
  description: 'ISO-8601 date-time in UTC',
  serialize: (v) => {
    const d = v instanceof Date ? v : new Date(String(v));
    if (Number.isNaN(d.getTime())) throw new GraphQLError(`DateTime cannot represent ${String(v)}`);
    return d.toISOString();
  },
  parseValue: (v) => {
    const d = new Date(String(v));
    if (typeof v !== 'string' || Number.isNaN(d.getTime())) throw new GraphQLError('DateTime must be an ISO-8601 string', { extensions: { code: 'BAD_USER_INPUT' } });
    return d;
  },
  parseLiteral: (ast) => {
    if (ast.kind !== Kind.STRING || Number.isNaN(new Date(ast.value).getTime())) throw new GraphQLError('DateTime must be an ISO-8601 string', { extensions: { code: 'BAD_USER_INPUT' } });
    return new Date(ast.value);
  },
});

/** Stable per node and file; signed for the requesting user so it works in <img> (images/signedUrls.ts). */
function fileUrl(ctx: ApiContext, node: NodeRow, kind: ImageKind): string {
  const user = requireUser(ctx);
  return `${ctx.baseUrl}/images/${encodeURIComponent(node.id)}/${kind}?${ctx.service.signer.sign(user.id, node.id, kind)}`;
}

export const Node: NodeResolvers = {
  tree: async (n, _a, ctx) => {
    const t = await ctx.service.trees.treeById(n.treeId);
    if (!t) throw new NotFoundError('tree', n.treeId);
    return t;
  },
  parent: (n, _a, ctx) => (n.parentId ? ctx.service.trees.nodeById(n.parentId) : null),
  children: (n, _a, ctx) => loaders(ctx).children.load(n.id),
  // The engine's messages may name server files; clients see the file's name only.
  error: (n) => (n.error === null ? null : withoutPaths(n.error)),
  scheduler: (n) => n.scheduler as Scheduler,
  strategy: (n) => n.strategy as EditStrategy,
  queuePosition: (n, _a, ctx) => (n.status === 'QUEUED' ? loaders(ctx).queuePosition.load(n.id) : null),
  image: (n) => (n.status === 'SUCCEEDED' && n.imagePath ? n : null),
  mask: (n) => (n.status === 'SUCCEEDED' && n.maskPath ? n : null),
  stats: (n) => (n.status === 'SUCCEEDED' && n.statsMode ? n : null),
  promptDiff: (n, _a, ctx) => ctx.service.trees.promptDiff(n),
  createdBy: async (n, _a, ctx) => {
    const u = await ctx.service.trees.userById(n.createdById);
    if (!u) throw new NotFoundError('user', n.createdById);
    return u;
  },
};

export const Image: ImageResolvers = {
  url: (n, _a, ctx) => fileUrl(ctx, n, 'image.png'),
  thumbnailUrl: (n, _a, ctx) => fileUrl(ctx, n, 'thumb.webp'),
  width: (n) => n.width,
  height: (n) => n.height,
};

export const Mask: MaskResolvers = {
  url: (n, _a, ctx) => fileUrl(ctx, n, 'mask.png'),
  fraction: (n) => n.maskedFraction,
};

export const NodeStats: NodeStatsResolvers = {
  mode: (n) => n.statsMode as RunMode,
  wallMs: (n) => n.wallMs ?? 0,
  denseEstimateMs: (n) => n.denseEstimateMs,
  speedup: (n) => n.speedup,
  maskedFraction: (n) => n.maskedFraction,
  fallbackReason: (n) => n.fallbackReason,
  worker: (n) => n.worker,
  cacheHit: (n) => n.cacheHit,
};

/** Tree.nodes without `first` (schema.graphql's default; the cost rule counts it so). */
const DEFAULT_NODES_PAGE = 20;

export const Tree: TreeResolvers = {
  myRole: async (t, _a, ctx) => {
    const role = await ctx.service.trees.roleOf(requireUser(ctx), t.id);
    if (!role) throw new NotFoundError('membership of tree', t.id);
    return role;
  },
  root: (t, _a, ctx) => ctx.service.trees.root(t.id),
  nodes: (t, { first, after }, ctx) => ctx.service.trees.nodesPage(t.id, first ?? DEFAULT_NODES_PAGE, after ?? null),
  nodeCount: (t, _a, ctx) => ctx.service.trees.nodeCount(t.id),
  members: (t, _a, ctx) => ctx.service.trees.members(t.id),
};

export const TreeMember: TreeMemberResolvers = {
  user: (m) => m.user,
  role: (m) => m.role,
};

export const TreeConnection: TreeConnectionResolvers = {
  edges: (page) => page.trees.map((t, i) => ({ cursor: page.cursors[i], node: t })),
  pageInfo: (page) => ({
    hasNextPage: page.hasNextPage,
    hasPreviousPage: page.hasPreviousPage,
    startCursor: page.cursors[0] ?? null,
    endCursor: page.cursors[page.cursors.length - 1] ?? null,
  }),
};

export const TreeEvent: TreeEventResolvers = {
  node: (e) => fromSnapshot(e.node),
  at: (e) => e.at,
};
