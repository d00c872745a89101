// Tree roles. Every operation names the least role it needs:
//   VIEWER  read the tree, its nodes and images; watch progress and tree events
//   EDITOR  + edit, cancel, retry, delete a branch (not the root)
//   OWNER   + share the tree, delete the root (= the whole tree)
// A user who is not a member gets exactly the answer of an id that does not exist (NOT_FOUND, or null
// from a read), so nobody learns which ids exist; a member whose role is too low gets FORBIDDEN.

import type { Db } from '../../db/client';
import type { TreeRole } from '../../generated/sqlite/enums';
import { ForbiddenError, NotFoundError } from '../errors';

const RANK: Record<TreeRole, number> = { VIEWER: 1, EDITOR: 2, OWNER: 3 };

export function roleAtLeast(role: TreeRole | null | undefined, needed: TreeRole): boolean {
  return role !== null && role !== undefined && RANK[role] >= RANK[needed];
}

export async function roleOf(db: Db, userId: string, treeId: string): Promise<TreeRole | null> {
  const m = await db.treeMember.findUnique({ where: { treeId_userId: { treeId, userId } }, select: { role: true } });
  return m?.role ?? null;
}

/** What the caller asked for by id: a non-member's NOT_FOUND names it exactly as a missing id's does. */
export interface Asked {
  what: 'node' | 'tree';
  id: string;
}

export async function requireTreeRole(db: Db, userId: string, treeId: string, needed: TreeRole, action: string, asked: Asked): Promise<TreeRole> {
  const role = await roleOf(db, userId, treeId);
  if (!role) throw new NotFoundError(asked.what, asked.id);
  if (!roleAtLeast(role, needed)) throw new ForbiddenError(`${action} needs the ${needed} role on this tree (you are ${role})`);
  return role;
}
