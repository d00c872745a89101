import type { Db } from '../../src/db/client';

/** Shared with the PostgreSQL test: every column of every model is written and read back. */
export async function exerciseModels(db: Db): Promise<void> {
  const user = await db.user.create({ data: { name: `u-${Date.now()}-${Math.random()}` } });
  await db.apiToken.create({ data: { userId: user.id, tokenHash: 'f'.repeat(64) + Math.random(), label: 'x', lastUsedAt: new Date(), revokedAt: null } });
  const tree = await db.tree.create({ data: { title: 't', members: { create: { userId: user.id, role: 'OWNER' } } } });
  const root = await db.node.create({
    data: {
      treeId: tree.id, prompt: 'a red circle', negativePrompt: 'blur', seed: 2147483647, steps: 20, guidance: 7.5, scheduler: 'DPMPP_2M',
      width: 64, height: 64, model: 'tiny', createdById: user.id, statsMode: 'DENSE', wallMs: 12.5, denseEstimateMs: 12.5, speedup: 1,
      maskedFraction: 0.25, imagePath: 'a.png', thumbPath: 'a.webp', maskPath: 'm.png', inputMaskPath: 'i.png', startedAt: new Date(), finishedAt: new Date(),
      job: { create: { priority: 5, attempts: 1, maxAttempts: 3, cancelRequested: true, error: 'e' } },
    },
    include: { job: true },
  });
  expect(root.seed).toBe(2147483647);
  expect(root.guidance).toBeCloseTo(7.5);
  expect(root.status).toBe('QUEUED');
  expect(root.job?.status).toBe('QUEUED');
  expect(root.job?.cancelRequested).toBe(true);
  const child = await db.node.create({
    data: { treeId: tree.id, parentId: root.id, depth: 1, prompt: 'a green circle', seed: 1, steps: 20, guidance: 7.5, scheduler: 'DDIM', width: 64, height: 64, model: 'tiny', createdById: user.id, job: { create: {} } },
  });
  expect((await db.treeMember.findFirst({ where: { treeId: tree.id } }))?.role).toBe('OWNER');
  // Deleting the root cascades to the child and both jobs.
  await db.node.delete({ where: { id: root.id } });
  expect(await db.node.findUnique({ where: { id: child.id } })).toBeNull();
  expect(await db.job.count({ where: { nodeId: { in: [root.id, child.id] } } })).toBe(0);
  await db.tree.delete({ where: { id: tree.id } });
  expect(await db.treeMember.count({ where: { treeId: tree.id } })).toBe(0);
}
