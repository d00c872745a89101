// The service records behind GraphQL object types (the parent value each type's resolvers receive).
// Types not listed here are plain objects of their GraphQL shape (see generated/schemaTypes.ts Shapes).
import type { Node, Tree, TreeMember, User } from '../generated/sqlite/client';
import type { NodeProgressEvent, TreeEventPayload } from '../service/events/treeEvents';
import type { ModelInfo } from '../service/inference/backend';
import type { PromptDiffSegment } from '../service/trees/promptDiff';
import type { TreePage } from '../service/trees/treeService';

export interface Mappers {
  User: User;
  Tree: Tree;
  TreeMember: TreeMember & { user: User };
  TreeConnection: TreePage;
  Node: Node;
  NodeProgress: NodeProgressEvent;
  TreeEvent: TreeEventPayload;
  ModelInfo: ModelInfo;
  PromptDiffSegment: PromptDiffSegment;
  /** Image, Mask and NodeStats resolve from the node they belong to. */
  Image: Node;
  Mask: Node;
  NodeStats: Node;
}
