// ModelInfo's computed field: the engine state's disk usage and budget (src/service/inference/stateBudget.ts).
import { requireUser } from '../context';
import type { ModelInfoResolvers } from '../generated/schemaTypes';

export const ModelInfo: ModelInfoResolvers = {
  engineState: async (_m, _a, ctx) => {
    const user = requireUser(ctx);
    const u = await ctx.service.stateBudget.usage();
    return {
      usedBytes: u.usedBytes,
      cacheBytes: u.cacheBytes,
      budgetBytes: u.limits.totalBytes,
      yourBytes: u.userBytes.get(user.id) ?? 0,
      perUserBudgetBytes: u.limits.perUserBytes,
      freeDiskBytes: u.freeDiskBytes,
      minFreeBytes: u.limits.minFreeBytes,
      evictedCaches: u.evictedCaches,
      measuredAt: u.measuredAt,
    };
  },
};
