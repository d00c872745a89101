// Who may work on a tree: sharing and unsharing.
//   - The tree's creator (the author of its root) always stays OWNER: a co-owner can neither demote
//     nor remove them, so a shared tree cannot be taken from the person who made it.
//   - Sharing names a user; a name without an account yet is created, without tokens, and the role
//     waits for them (`fisedit token create --user NAME` later finds it). So the answer is the same
//     whether the name exists or not, and shareTree cannot be used to probe for user names.
//   - Unsharing: an OWNER removes any member but the creator; any member may leave. A name that is no
//     member answers NOT_FOUND whether or not the user exists. A user created only by a share, with no
//     token, tree or node left, is deleted with their last membership.
import type { Db } from '../../db/client';
import type { Tree, TreeRole, User } from '../../generated/sqlite/client';
import { requireTreeRole } from '../auth/access';
import { checkUserName } from '../auth/tokens';
import { BadUserInputError, ConflictError, ForbiddenError, NotFoundError } from '../errors';

const ROLES: TreeRole[] = ['OWNER', 'EDITOR', 'VIEWER'];
/** Members one tree may have: each share may create a user row, so it is bounded. */
export const MAX_MEMBERS_PER_TREE = 100;

export class TreeMembers {
  constructor(private readonly db: Db) {}

  /** The author of the tree's root; null once the tree is gone. */
  async creatorId(treeId: string): Promise<string | null> {
    const root = await this.db.node.findFirst({ where: { treeId, parentId: null }, select: { createdById: true } });
    return root?.createdById ?? null;
  }

  async share(user: User, treeId: string, userName: string, role: string): Promise<Tree> {
    const tree = await this.db.tree.findUnique({ where: { id: treeId } });
    if (!tree) throw new NotFoundError('tree', treeId);
    await requireTreeRole(this.db, user.id, treeId, 'OWNER', 'sharing', { what: 'tree', id: treeId });
    if (!ROLES.includes(role as TreeRole)) throw new BadUserInputError('role', 'must be OWNER, EDITOR or VIEWER');
    checkUserName(userName);
    if (userName === user.name) throw new ConflictError('you cannot change your own role (a tree must keep its owner)');
    const target = await this.db.user.upsert({ where: { name: userName }, create: { name: userName }, update: {} });
    if (target.id === (await this.creatorId(treeId))) throw new ForbiddenError(`${userName} created this tree and stays its OWNER`);
    const already = await this.db.treeMember.findUnique({ where: { treeId_userId: { treeId, userId: target.id } } });
    if (!already && (await this.db.treeMember.count({ where: { treeId } })) >= MAX_MEMBERS_PER_TREE) {
      await this.dropIfUnused(target.id);
      throw new ConflictError(`a tree has at most ${MAX_MEMBERS_PER_TREE} members; remove one first (unshareTree)`);
    }
    await this.db.treeMember.upsert({
      where: { treeId_userId: { treeId, userId: target.id } },
      create: { treeId, userId: target.id, role: role as TreeRole },
      update: { role: role as TreeRole },
    });
    return this.db.tree.update({ where: { id: treeId }, data: { updatedAt: new Date() } });
  }

  async unshare(user: User, treeId: string, userName: string): Promise<boolean> {
    const tree = await this.db.tree.findUnique({ where: { id: treeId } });
    if (!tree) throw new NotFoundError('tree', treeId);
    const myRole = await requireTreeRole(this.db, user.id, treeId, 'VIEWER', 'unsharing', { what: 'tree', id: treeId });
    checkUserName(userName);
    const target = await this.db.user.findUnique({ where: { name: userName } });
    const membership = target ? await this.db.treeMember.findUnique({ where: { treeId_userId: { treeId, userId: target.id } } }) : null;
    // The same answer for a name that is no member and a name that does not exist.
    if (!target || !membership) throw new NotFoundError('member', userName);
    if (target.id !== user.id && myRole !== 'OWNER') throw new ForbiddenError(`removing another member needs the OWNER role on this tree (you are ${myRole})`);
    if (target.id === (await this.creatorId(treeId))) throw new ForbiddenError(`${userName} created this tree and stays its OWNER`);
    await this.db.treeMember.delete({ where: { treeId_userId: { treeId, userId: target.id } } });
    await this.db.tree.update({ where: { id: treeId }, data: { updatedAt: new Date() } });
    await this.dropIfUnused(target.id);
    return true;
  }

  /** Deletes a user that only a share created: no token, membership or node. */
  private async dropIfUnused(userId: string): Promise<void> {
    await this.db.user.deleteMany({ where: { id: userId, tokens: { none: {} }, trees: { none: {} }, nodes: { none: {} } } });
  }
}
