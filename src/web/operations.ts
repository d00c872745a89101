// The client's GraphQL documents and the shapes they return, typed from the server's generated schema
// types (src/api/generated/schemaTypes.ts, generated from schema.graphql): a field renamed in the schema
// breaks this file's type check, not the running client.
import type { Shapes } from '../api/generated/schemaTypes';

export type { DiffKind, EditStrategy, NodeStatus, ProgressPhase, TreeEventType, TreeRole } from '../api/generated/schemaTypes';

type Plain<T> = { [K in keyof T]: Exclude<T[K], undefined> };

export type ImageView = Plain<Shapes['Image']>;
export type NodeStatsView = Plain<Shapes['NodeStats']>;
export type PromptDiffView = Plain<Shapes['PromptDiffSegment']>;
export type NodeProgressView = Plain<Omit<Shapes['NodeProgress'], 'maskedFraction'>>;

export type NodeView = Plain<
  Pick<Shapes['Node'], 'id' | 'depth' | 'prompt' | 'negativePrompt' | 'seed' | 'steps' | 'guidance' | 'scheduler' | 'width' | 'height' | 'strategy' | 'status' | 'error' | 'queuePosition'>
> & {
  parent: { id: string } | null;
  image: ImageView | null;
  mask: Plain<Shapes['Mask']> | null;
  stats: NodeStatsView | null;
  promptDiff: PromptDiffView[] | null;
  createdBy: Pick<Shapes['User'], 'name'>;
  createdAt: string;
};

export type TreeSummary = Plain<Pick<Shapes['Tree'], 'id' | 'title' | 'myRole' | 'updatedAt'>> & { updatedAt: string };

export type TreeView = Plain<Pick<Shapes['Tree'], 'id' | 'title' | 'myRole' | 'eventSeq'>> & {
  nodes: NodeView[];
  members: { user: Pick<Shapes['User'], 'name'>; role: Shapes['TreeMember']['role'] }[];
};

export type TreeEventView = Plain<Pick<Shapes['TreeEvent'], 'type' | 'treeId' | 'seq' | 'deletedNodeIds'>> & {
  node: NodeView;
  progress: NodeProgressView | null;
};

const NODE = `id depth prompt negativePrompt seed steps guidance scheduler width height strategy status error queuePosition
  parent { id } image { url thumbnailUrl width height } mask { url fraction }
  stats { mode wallMs denseEstimateMs speedup maskedFraction fallbackReason worker cacheHit }
  promptDiff { kind before after tokenStart tokenEnd } createdBy { name } createdAt`;
const PROGRESS = 'nodeId seq step totalSteps phase status etaMs preview';

export const ME = '{ me { name } }';
export const MY_TREES = '{ trees(first: 50) { edges { node { id title myRole updatedAt } } } }';
/** Nodes per page: Tree.nodes is paged, and a page costs its size × the selection (~140 here with promptDiff) against the server's query cost limit (5000). */
export const NODES_PAGE = 25;
export const TREE = `query Tree($id: ID!, $first: Int!) { tree(id: $id) { id title myRole eventSeq nodes(first: $first) { ${NODE} } members { user { name } role } } }`;
export const TREE_NODES = `query TreeNodes($id: ID!, $first: Int!, $after: ID!) { tree(id: $id) { nodes(first: $first, after: $after) { ${NODE} } } }`;
export const GENERATE = `mutation Generate($input: GenerateInput!) { generate(input: $input) { ${NODE} tree { id } } }`;
export const EDIT = `mutation Edit($input: EditInput!) { edit(input: $input) { ${NODE} } }`;
export const CANCEL = `mutation Cancel($id: ID!) { cancelJob(nodeId: $id) { ${NODE} } }`;
export const RETRY = `mutation Retry($id: ID!) { retryNode(nodeId: $id) { ${NODE} } }`;
export const DELETE = 'mutation Delete($id: ID!) { deleteNode(nodeId: $id) }';
export const SHARE = 'mutation Share($treeId: ID!, $user: String!, $role: TreeRole!) { shareTree(treeId: $treeId, userName: $user, role: $role) { id members { user { name } role } } }';
export const TREE_EVENTS = `subscription TreeEvents($treeId: ID!, $afterSeq: Int) { treeEvents(treeId: $treeId, afterSeq: $afterSeq) {
  type treeId seq deletedNodeIds node { ${NODE} } progress { ${PROGRESS} } } }`;
export const NODE_PROGRESS = `subscription NodeProgress($id: ID!) { nodeProgress(nodeId: $id) { ${PROGRESS} } }`;
