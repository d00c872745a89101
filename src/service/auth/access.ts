// Tree roles. Every operation names the least role it needs:
//   VIEWER  read the tree, its nodes and images; watch progress and tree events
//   EDITOR  + edit, cancel, retry, delete a branch (not the root)
//   OWNER   + share the tree, delete the root (= the whole tree)
// A user who is not a member gets FORBIDDEN (ids are unguessable, so this reveals nothing useful);
// an id that does not exist gets NOT_FOUND.

import type { Db } from '../../db/client';
import type { TreeRole } from '../../generated/sqlite/enums';
import { ForbiddenError } from '../errors';

const RANK: Record<TreeRole, number> = { VIEWER: 1, EDITOR: 2, OWNER: 3 };

export function roleAtLeast(role: TreeRole | null | undefined, needed: TreeRole): boolean {
  return role !== null && role !== undefined && RANK[role] >= RANK[needed];
}

export async function roleOf(db: Db, userId: string, treeId: string): Promise<TreeRole | null> {
  const m = await db.treeMember.findUnique({ where: { treeId_userId: { treeId, userId } }, select: { role: true } });
  return m?.role ?? null;
}

export async function requireTreeRole(db: Db, userId: string, treeId: string, needed: TreeRole, action: string): Promise<TreeRole> {
  const role = await roleOf(db, userId, treeId);
  if (!roleAtLeast(role, needed)) {
    throw new ForbiddenError(role ? `${action} needs the ${needed} role on this tree (you are ${role})` : `${action}: you are not a member of this tree`);
  }
  return role as TreeRole;
}
