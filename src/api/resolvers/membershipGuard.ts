// A subscription of a tree's events or progress ends once its user is no longer a member of the tree
// (unshareTree, or the tree deleted): before each event the membership is read again, at most once per
// `recheckMs` (the service's revocation bound), and a non-member's stream completes instead of
// delivering it. So nothing of a tree reaches someone removed from it.
import type { User } from '../../generated/sqlite/client';
import type { Service } from '../../service/service';

export function whileMember<T>(it: AsyncIterableIterator<T>, service: Service, user: User, treeId: string): AsyncIterableIterator<T> {
  const recheckMs = service.auth.ttlMs;
  let checkedAt = Date.now(); // the subscribe resolver has just checked
  const stillMember = async (): Promise<boolean> => {
    if (Date.now() - checkedAt < recheckMs) return true;
    checkedAt = Date.now();
    return (await service.trees.roleOf(user, treeId)) !== null;
  };
  const guarded: AsyncIterableIterator<T> = {
    async next(): Promise<IteratorResult<T>> {
      const r = await it.next();
      if (r.done || (await stillMember())) return r;
      await it.return?.();
      return { value: undefined, done: true };
    },
    return: () => it.return?.() ?? Promise.resolve({ value: undefined, done: true }),
    throw: (e?: unknown) => it.throw?.(e) ?? Promise.reject(e),
    [Symbol.asyncIterator]() {
      return guarded;
    },
  };
  return guarded;
}
