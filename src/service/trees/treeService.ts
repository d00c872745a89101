// Prompt trees: the operations behind the GraphQL API. Every method takes the acting user and checks
// their role on the tree first (auth/access.ts). Mutations that start work return the QUEUED node at
// once; the job runner does the rest.

import type { Db } from '../../db/client';
import type { ClipTokenizer } from '../../engine/tokenizer/clipTokenizer';
import type { Node as NodeRow, Tree, TreeRole, User } from '../../generated/sqlite/client';
import { requireTreeRole, roleOf } from '../auth/access';
import { BadUserInputError, ConflictError, NotFoundError, ServiceError } from '../errors';
import { EventBus, isFinal } from '../events/treeEvents';
import { ImageStore } from '../images/imageStore';
import { decodeMask } from '../images/maskInput';
import type { ModelInfo } from '../inference/backend';
import { PrismaJobQueue } from '../jobs/jobQueue';
import { CONTROL_TOPIC, type CancelRequest, type JobRunner } from '../jobs/jobRunner';
import { promptDiff, PromptDiffSegment } from './promptDiff';
import { TreeMembers } from './treeMembers';
import { randomSeed, SettingsValidator, StrategyEnum, MAX_SEED, MAX_STEPS } from './settings';

export interface GenerateInput {
  prompt: string;
  negativePrompt?: string | null;
  seed?: number | null;
  steps?: number | null;
  guidance?: number | null;
  scheduler?: string | null;
  width?: number | null;
  height?: number | null;
  title?: string | null;
  priority?: number | null;
}

export interface EditInput {
  parentId: string;
  prompt: string;
  negativePrompt?: string | null;
  /** base64 PNG (or data URL) at the image's size. */
  mask?: string | null;
  strategy?: string | null;
  priority?: number | null;
}

export interface TreePage {
  trees: Tree[];
  hasNextPage: boolean;
  hasPreviousPage: boolean;
  cursors: string[];
}

const STRATEGIES: StrategyEnum[] = ['AUTO', 'DENSE', 'SPARSE', 'ATTENTION'];
const MAX_PAGE = 100;
/** How long cancelJob waits for a running job to stop before answering with its current state, ms. */
const CANCEL_WAIT_MS = 10_000;

/** Largest page of Tree.nodes (schema.graphql documents it). */
export const MAX_NODES_PAGE = 100;

export class TreeService {
  private readonly validate: SettingsValidator;
  private readonly membership: TreeMembers;

  constructor(
    private readonly db: Db,
    private readonly queue: PrismaJobQueue,
    private readonly runner: JobRunner,
    private readonly bus: EventBus,
    private readonly images: ImageStore,
    readonly model: ModelInfo,
    private readonly tokenizer: ClipTokenizer | null,
    /** Jobs one user may have waiting at once; more is refused (CONFLICT, reason QUEUE_FULL). */
    private readonly maxQueuedPerUser = 100,
    /** Names of the users who may queue above priority 0 (serve --priority-users); everyone may go lower. */
    private readonly priorityUsers: ReadonlySet<string> = new Set(),
  ) {
    this.validate = new SettingsValidator(model, tokenizer);
    this.membership = new TreeMembers(db);
  }

  /** The queue is bounded per user, so one client cannot bury everyone's work. */
  private async checkQueueRoom(user: User): Promise<void> {
    const queued = await this.db.job.count({ where: { status: 'QUEUED', node: { createdById: user.id } } });
    if (queued >= this.maxQueuedPerUser) {
      throw new ServiceError('CONFLICT', `queue full: you have ${queued} jobs waiting (at most ${this.maxQueuedPerUser}); wait or cancel some`, { reason: 'QUEUE_FULL' });
    }
  }

  /** A priority for this user's job: validated, and above 0 only for the users the server allows. */
  private priorityFor(user: User, value: number | null | undefined): number {
    const p = this.validate.priority(value);
    if (p > 0 && !this.priorityUsers.has(user.name)) {
      throw new ServiceError('FORBIDDEN', `priority ${p}: only users the server names in --priority-users (FISEDIT_PRIORITY_USERS) may queue above 0; use 0 or lower`, { reason: 'PRIORITY_NOT_ALLOWED' });
    }
    return p;
  }

  // ---- reads ----

  async trees(user: User, first: number | null | undefined, after: string | null | undefined): Promise<TreePage> {
    const n = first ?? 20;
    if (!Number.isInteger(n) || n < 1 || n > MAX_PAGE) throw new BadUserInputError('first', `must be an integer in [1, ${MAX_PAGE}]`);
    let cursor: { createdAt: Date; id: string } | null = null;
    if (after !== null && after !== undefined) cursor = decodeCursor(after);
    // Newest first; (createdAt, id) is a total order, so pages never skip or repeat a tree.
    const rows = await this.db.tree.findMany({
      where: {
        members: { some: { userId: user.id } },
        ...(cursor ? { OR: [{ createdAt: { lt: cursor.createdAt } }, { createdAt: cursor.createdAt, id: { lt: cursor.id } }] } : {}),
      },
      orderBy: [{ createdAt: 'desc' }, { id: 'desc' }],
      take: n + 1,
    });
    const trees = rows.slice(0, n);
    return { trees, hasNextPage: rows.length > n, hasPreviousPage: cursor !== null, cursors: trees.map(encodeCursor) };
  }

  /** null when no such tree; FORBIDDEN when the user is not a member. */
  async tree(user: User, id: string): Promise<Tree | null> {
    const tree = await this.db.tree.findUnique({ where: { id } });
    // A non-member reads null, as for an id that does not exist (auth/access.ts).
    if (!tree || !(await roleOf(this.db, user.id, tree.id))) return null;
    return tree;
  }

  async node(user: User, id: string): Promise<NodeRow | null> {
    const node = await this.db.node.findUnique({ where: { id } });
    if (!node || !(await roleOf(this.db, user.id, node.treeId))) return null;
    return node;
  }

  /** For subscriptions and image URLs: the node and the user's role, or the error to show. */
  async nodeForViewer(user: User, id: string): Promise<NodeRow> {
    const node = await this.node(user, id);
    if (!node) throw new NotFoundError('node', id);
    return node;
  }

  async treeForViewer(user: User, id: string): Promise<Tree> {
    const tree = await this.tree(user, id);
    if (!tree) throw new NotFoundError('tree', id);
    return tree;
  }

  roleOf(user: User, treeId: string): Promise<TreeRole | null> {
    return roleOf(this.db, user.id, treeId);
  }

  treeById(id: string): Promise<Tree | null> {
    return this.db.tree.findUnique({ where: { id } });
  }

  nodeById(id: string): Promise<NodeRow | null> {
    return this.db.node.findUnique({ where: { id } });
  }

  /** The children of each node, oldest first, in one query (the API's per-request DataLoader batches them). */
  async childrenOf(nodeIds: readonly string[]): Promise<Map<string, NodeRow[]>> {
    const out = new Map<string, NodeRow[]>(nodeIds.map((id) => [id, []]));
    const rows = await this.db.node.findMany({ where: { parentId: { in: [...nodeIds] } }, orderBy: [{ createdAt: 'asc' }, { id: 'asc' }] });
    for (const r of rows) out.get(r.parentId!)?.push(r);
    return out;
  }

  root(treeId: string): Promise<NodeRow | null> {
    return this.db.node.findFirst({ where: { treeId, parentId: null } });
  }

  /**
   * A page of a tree's nodes, parents before children (depth, then creation, then id): at most `first`
   * (1…MAX_NODES_PAGE) nodes after the node `after` (a node id of this tree, the last of the previous page).
   */
  async nodesPage(treeId: string, first: number, after: string | null): Promise<NodeRow[]> {
    if (!Number.isInteger(first) || first < 1 || first > MAX_NODES_PAGE) throw new BadUserInputError('first', `must be an integer in [1, ${MAX_NODES_PAGE}]`);
    const order = [{ depth: 'asc' as const }, { createdAt: 'asc' as const }, { id: 'asc' as const }];
    if (after === null) return this.db.node.findMany({ where: { treeId }, orderBy: order, take: first });
    const from = await this.db.node.findUnique({ where: { id: after }, select: { treeId: true, depth: true, createdAt: true, id: true } });
    if (!from || from.treeId !== treeId) throw new BadUserInputError('after', 'must be the id of a node of this tree (the last node of the previous page)');
    const { depth, createdAt, id } = from;
    return this.db.node.findMany({
      where: { treeId, OR: [{ depth: { gt: depth } }, { depth, createdAt: { gt: createdAt } }, { depth, createdAt, id: { gt: id } }] },
      orderBy: order,
      take: first,
    });
  }

  nodeCount(treeId: string): Promise<number> {
    return this.db.node.count({ where: { treeId } });
  }

  members(treeId: string) {
    return this.db.treeMember.findMany({ where: { treeId }, include: { user: true }, orderBy: { createdAt: 'asc' } });
  }

  userById(id: string): Promise<User | null> {
    return this.db.user.findUnique({ where: { id } });
  }

  /** Jobs ahead of each QUEUED node (null for the others), from one read of the queue. */
  queuePositions(nodeIds: readonly string[]): Promise<Map<string, number | null>> {
    return this.queue.positions(nodeIds);
  }

  async promptDiff(node: NodeRow): Promise<PromptDiffSegment[] | null> {
    if (!node.parentId) return null;
    const parent = await this.db.node.findUnique({ where: { id: node.parentId }, select: { prompt: true } });
    if (!parent) return null;
    return promptDiff(parent.prompt, node.prompt, this.tokenizer);
  }

  // ---- mutations ----

  async generate(user: User, input: GenerateInput): Promise<NodeRow> {
    const v = this.validate;
    const prompt = v.prompt('prompt', input.prompt, false);
    const guidance = input.guidance === undefined || input.guidance === null ? 7.5 : v.guidance(input.guidance);
    const settings = {
      prompt,
      negativePrompt: v.negative(input.negativePrompt ?? '', guidance),
      seed: input.seed === undefined || input.seed === null ? randomSeed() : v.int('seed', input.seed, 0, MAX_SEED),
      steps: input.steps === undefined || input.steps === null ? 20 : v.int('steps', input.steps, 1, MAX_STEPS),
      guidance,
      scheduler: input.scheduler === undefined || input.scheduler === null ? 'DPMPP_2M' : v.scheduler(input.scheduler),
      width: input.width === undefined || input.width === null ? this.model.defaultWidth : v.side('width', input.width),
      height: input.height === undefined || input.height === null ? this.model.defaultHeight : v.side('height', input.height),
    };
    const title = v.title(input.title, prompt);
    const priority = this.priorityFor(user, input.priority);
    await this.checkQueueRoom(user);
    const node = await this.db.$transaction(async (tx) => {
      const tree = await tx.tree.create({ data: { title, members: { create: { userId: user.id, role: 'OWNER' } } } });
      return tx.node.create({
        data: { ...settings, treeId: tree.id, depth: 0, model: this.model.name, strategy: 'DENSE', createdById: user.id, job: { create: { priority } } },
      });
    });
    await this.announceCreated(node);
    return node;
  }

  async edit(user: User, input: EditInput): Promise<NodeRow> {
    const parent = await this.db.node.findUnique({ where: { id: input.parentId } });
    if (!parent) throw new NotFoundError('node', input.parentId);
    await requireTreeRole(this.db, user.id, parent.treeId, 'EDITOR', 'editing', { what: 'node', id: input.parentId });
    if (parent.status === 'FAILED' || parent.status === 'CANCELLED') {
      throw new ConflictError(`the parent node is ${parent.status}; retry it first (retryNode) or edit another node`);
    }
    const v = this.validate;
    const prompt = v.prompt('prompt', input.prompt, false);
    const negativePrompt = input.negativePrompt === undefined || input.negativePrompt === null ? parent.negativePrompt : v.negative(input.negativePrompt, parent.guidance);
    const strategy = input.strategy ?? 'AUTO';
    if (!STRATEGIES.includes(strategy as StrategyEnum)) throw new BadUserInputError('strategy', `must be one of ${STRATEGIES.join(', ')}`);
    const priority = this.priorityFor(user, input.priority);
    const mask = input.mask === undefined || input.mask === null ? null : await decodeMask(input.mask, parent.width, parent.height);
    if (mask && mask.fraction === 0) throw new BadUserInputError('mask', 'marks no pixel (white = may change); send no mask to let the engine find the area');
    if (mask && strategy === 'ATTENTION') throw new BadUserInputError('mask', 'strategy ATTENTION finds the area from the changed words; send a mask or ATTENTION, not both');
    await this.checkQueueRoom(user);
    // The node first, then its mask file, and only then its job: a runner can never claim the edit
    // without the mask the user drew.
    const node = await this.db.node.create({
      data: {
        treeId: parent.treeId,
        parentId: parent.id,
        depth: parent.depth + 1,
        prompt,
        negativePrompt,
        // The edit keeps the parent's noise and settings: only the prompt (and the area) changes.
        seed: parent.seed,
        steps: parent.steps,
        guidance: parent.guidance,
        scheduler: parent.scheduler,
        width: parent.width,
        height: parent.height,
        model: parent.model,
        strategy,
        createdById: user.id,
      },
    });
    let created: NodeRow;
    try {
      const inputMaskPath = mask ? await this.images.saveMask(node.treeId, node.id, 'input-mask', mask.data, mask.width, mask.height) : null;
      created = await this.db.$transaction(async (tx) => {
        await tx.job.create({ data: { nodeId: node.id, priority } });
        // The edit runs after its parent: a parent still waiting at a lower priority is raised to the
        // edit's, so the edit is not held back by it (scale-out: and released to the Redis queue again at
        // that priority; its older copy there finds the job taken and is dropped).
        await tx.job.updateMany({ where: { nodeId: parent.id, status: 'QUEUED', priority: { lt: priority } }, data: { priority, dispatchedAt: null, routedTo: null } });
        return inputMaskPath ? tx.node.update({ where: { id: node.id }, data: { inputMaskPath } }) : tx.node.findUniqueOrThrow({ where: { id: node.id } });
      });
    } catch (e) {
      await this.db.node.deleteMany({ where: { id: node.id } });
      throw e;
    }
    await this.db.tree.update({ where: { id: parent.treeId }, data: { updatedAt: new Date() } });
    await this.announceCreated(created);
    return created;
  }

  async cancelJob(user: User, nodeId: string): Promise<NodeRow> {
    const node = await this.requireNode(user, nodeId, 'EDITOR', 'cancelling');
    if (isFinal(node.status)) throw new ConflictError(`the node is already ${node.status}`);
    // Queued: cancel in the database; nothing runs.
    const queued = await this.queue.markCancelled(nodeId, ['QUEUED']);
    if (queued) {
      await this.bus.progress({ nodeId, treeId: queued.treeId, step: 0, totalSteps: queued.steps, phase: 'DONE', status: 'CANCELLED', etaMs: 0, preview: null, maskedFraction: null });
      await this.bus.tree('CANCELLED', queued);
      // Its waiting edits can no longer run: they fail now, saying why.
      await this.runner.failOrphans();
      return queued;
    }
    // Running: flag it (so a restart does not re-run it) and stop the worker at its next step.
    await this.stopRunning(nodeId);
    return (await this.db.node.findUnique({ where: { id: nodeId } })) ?? node;
  }

  /**
   * Asks whichever process runs this node's job to stop it, and waits (bounded) until it has: the flag
   * in the database survives a crash; the control message reaches a runner in another API process.
   */
  private async stopRunning(nodeId: string): Promise<void> {
    if (!(await this.queue.requestCancel(nodeId))) return;
    if (this.runner.cancel(nodeId)) {
      await this.runner.waitForFinish(nodeId, CANCEL_WAIT_MS);
      return;
    }
    await this.bus.pubsub.publish(CONTROL_TOPIC, { nodeId } satisfies CancelRequest);
    const deadline = Date.now() + CANCEL_WAIT_MS;
    while (Date.now() < deadline) {
      const job = await this.db.job.findUnique({ where: { nodeId }, select: { status: true } });
      if (!job || job.status !== 'RUNNING') return;
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  async retryNode(user: User, nodeId: string): Promise<NodeRow> {
    const node = await this.requireNode(user, nodeId, 'EDITOR', 'retrying');
    if (node.status !== 'FAILED' && node.status !== 'CANCELLED') throw new ConflictError(`only FAILED or CANCELLED nodes can be retried; this one is ${node.status}`);
    if (node.parentId) {
      const parent = await this.db.node.findUnique({ where: { id: node.parentId }, select: { status: true } });
      if (parent && (parent.status === 'FAILED' || parent.status === 'CANCELLED')) throw new ConflictError(`the parent node is ${parent.status}; retry it first (an edit runs from its parent's result)`);
    }
    await this.checkQueueRoom(user);
    if (!(await this.queue.retry(nodeId))) throw new ConflictError('the node changed state meanwhile; read it again');
    const fresh = await this.db.node.findUniqueOrThrow({ where: { id: nodeId } });
    await this.announceCreated(fresh, 'QUEUED');
    return fresh;
  }

  /** Deletes the node and everything below it; deleting the root deletes the tree (OWNER only). */
  async deleteNode(user: User, nodeId: string): Promise<boolean> {
    const node = await this.db.node.findUnique({ where: { id: nodeId } });
    if (!node) throw new NotFoundError('node', nodeId);
    const isRoot = node.parentId === null;
    await requireTreeRole(this.db, user.id, node.treeId, isRoot ? 'OWNER' : 'EDITOR', isRoot ? 'deleting the root (the whole tree)' : 'deleting a branch', { what: 'node', id: nodeId });
    const all = await this.db.node.findMany({ where: { treeId: node.treeId }, select: { id: true, parentId: true, imagePath: true, thumbPath: true, maskPath: true, inputMaskPath: true, engineNodeId: true } });
    const subtree = collectSubtree(nodeId, all);
    // Stop a running job in the branch first, so it does not write files after we delete them.
    const running = await this.db.job.findMany({ where: { nodeId: { in: [...subtree] }, status: 'RUNNING' }, select: { nodeId: true } });
    for (const r of running) await this.stopRunning(r.nodeId);
    // Deleting the root deletes the tree and its event log: its DELETED event is numbered before that.
    const deleted = isRoot ? await this.bus.commitTree('DELETED', node, { deletedNodeIds: [...subtree] }) : null;
    if (isRoot) await this.db.tree.delete({ where: { id: node.treeId } });
    else await this.db.node.delete({ where: { id: nodeId } }); // cascades to descendants and their jobs
    for (const n of all) if (subtree.has(n.id)) await this.images.remove([n.imagePath, n.thumbPath, n.maskPath, n.inputMaskPath]);
    // The engine's node store (DATA/engine-state) frees these nodes' latents and activations.
    this.runner.forget(all.filter((n) => subtree.has(n.id)).map((n) => ({ nodeId: n.id, engineNodeId: n.engineNodeId })));
    if (!isRoot) await this.db.tree.update({ where: { id: node.treeId }, data: { updatedAt: new Date() } });
    if (deleted) await this.bus.publishTree(deleted);
    else await this.bus.tree('DELETED', node, { deletedNodeIds: [...subtree] });
    return true;
  }

  /** Rules in treeMembers.ts: the creator stays OWNER; the answer does not tell whether a name exists. */
  shareTree(user: User, treeId: string, userName: string, role: string): Promise<Tree> {
    return this.membership.share(user, treeId, userName, role);
  }

  unshareTree(user: User, treeId: string, userName: string): Promise<boolean> {
    return this.membership.unshare(user, treeId, userName);
  }

  // ---- helpers ----

  private async requireNode(user: User, nodeId: string, role: TreeRole, action: string): Promise<NodeRow> {
    const node = await this.db.node.findUnique({ where: { id: nodeId } });
    if (!node) throw new NotFoundError('node', nodeId);
    await requireTreeRole(this.db, user.id, node.treeId, role, action, { what: 'node', id: nodeId });
    return node;
  }

  private async announceCreated(node: NodeRow, phase: 'QUEUED' = 'QUEUED'): Promise<void> {
    await this.bus.progress({ nodeId: node.id, treeId: node.treeId, step: 0, totalSteps: node.steps, phase, status: 'QUEUED', etaMs: null, preview: null, maskedFraction: null });
    await this.bus.tree('CREATED', node);
    this.runner.kick();
  }
}

/** The node and all its descendants (ids), from the tree's (id, parentId) pairs. */
export function collectSubtree(rootId: string, nodes: { id: string; parentId: string | null }[]): Set<string> {
  const children = new Map<string, string[]>();
  for (const n of nodes) if (n.parentId) children.set(n.parentId, [...(children.get(n.parentId) ?? []), n.id]);
  const out = new Set<string>([rootId]);
  const stack = [rootId];
  while (stack.length > 0) for (const c of children.get(stack.pop()!) ?? []) if (!out.has(c)) (out.add(c), stack.push(c));
  return out;
}

function encodeCursor(t: Tree): string {
  return Buffer.from(`tree|${t.createdAt.toISOString()}|${t.id}`, 'utf8').toString('base64url');
}

function decodeCursor(s: string): { createdAt: Date; id: string } {
  const bad = () => new BadUserInputError('after', 'is not a cursor from this API (use pageInfo.endCursor)');
  if (typeof s !== 'string' || s.length > 200) throw bad();
  const parts = Buffer.from(s, 'base64url').toString('utf8').split('|');
  if (parts.length !== 3 || parts[0] !== 'tree') throw bad();
  const createdAt = new Date(parts[1]);
  if (Number.isNaN(createdAt.getTime()) || !parts[2]) throw bad();
  return { createdAt, id: parts[2] };
}

