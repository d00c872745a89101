// What every architecture builder passes down to its blocks: the graph, the weights under the current
// module path, and optional hooks.
//
// Hooks are the seam for graph variants built from the SAME block code:
// - a RECORDING graph (dense step + extra outputs for later sparse edits) sets hooks that expose the
//   input of every spatial conv, the K/V of every self-attention and the GroupNorm statistics;
// - a SPARSE graph (later) will replace the spatial primitives (conv, norm, attention) behind the
//   same calls.
// Block code therefore calls spatialConv()/norm() below instead of nn.conv2d()/nn.groupNorm().

import { GraphBuilder } from '../graph/graphBuilder';
import { conv2d, Conv2dOptions, groupMoments, groupNorm, groupNormGiven, groupNormStats } from '../graph/nn';
import { WeightMap, WeightTensor } from '../model/tensor';

export class ArchError extends Error {
  constructor(reason: string) {
    super(`arch: ${reason}`);
    this.name = 'ArchError';
  }
}

export class MissingWeightError extends Error {
  constructor(readonly weightName: string, readonly reason: string) {
    super(`arch: weight "${weightName}" ${reason}`);
    this.name = 'MissingWeightError';
  }
}

/** Weights under a diffusers module path ("down_blocks.0.resnets.1"); records which ones were used. */
export class WeightScope {
  constructor(
    private readonly map: WeightMap,
    readonly prefix = '',
    private readonly used: Set<string> = new Set(),
  ) {}

  /** Full module path of `name` under this scope. */
  path(name: string): string {
    return this.prefix ? `${this.prefix}.${name}` : name;
  }

  /** Child scope: at('resnets.0'). */
  at(path: string): WeightScope {
    return new WeightScope(this.map, this.path(path), this.used);
  }

  has(name: string): boolean {
    return this.map.has(this.path(name));
  }

  /** The tensor, optionally checking its shape. */
  get(name: string, shape?: readonly number[]): WeightTensor {
    const n = this.path(name);
    const t = this.map.get(n);
    if (!t) throw new MissingWeightError(n, 'is missing');
    if (shape && (shape.length !== t.shape.length || shape.some((d, i) => d !== t.shape[i]))) {
      throw new MissingWeightError(n, `has shape [${t.shape}], expected [${shape}]`);
    }
    this.used.add(n);
    return t;
  }

  /** Tensors in the map never read through any scope sharing this one's record. */
  unused(): string[] {
    return [...this.map.keys()].filter((k) => !this.used.has(k));
  }
}

export interface ArchHooks {
  /** Input of a spatial (k > 1) convolution, x [B,Cin,H,W], at module path `path` (e.g. "…resnets.0.conv1"). */
  convInput?(path: string, x: string): void;
  /** Self-attention keys/values [B,N,C] after projection (before the head split). */
  selfAttentionKV?(path: string, k: string, v: string): void;
  /** Cross-attention queries [B,N,C] and keys [B,M,C] after projection (before the head split); for probability maps. */
  crossAttentionQK?(path: string, q: string, k: string, heads: number): void;
  /**
   * GroupNorm statistics [B,G,1] (mean, biased variance). Setting this hook switches every GroupNorm
   * to the ReduceMean formulation that exposes them.
   */
  groupNormStats?(path: string, mean: string, variance: string): void;
  /**
   * With groupNormStats: compute the statistics BESIDE the plain GroupNorm instead of through the
   * ReduceMean formulation, so the graph's outputs stay bit-identical to the plain graph's (one more
   * pass over each normalised tensor).
   */
  statsBesidePlainGroupNorm?: boolean;
  /**
   * Statistics to normalise with instead of the input's own (graph values broadcastable to [B,G,1]); null
   * keeps the input's. Region decoders take the whole image's statistics this way.
   */
  givenGroupNormStats?(path: string): { mean: string; variance: string } | null;
  /** Keys/values [B,M,C] appended to a self-attention's own (after projection), e.g. cached tokens outside a region. */
  extraAttentionKV?(path: string): { k: string; v: string } | null;
}

export interface ArchContext {
  g: GraphBuilder;
  w: WeightScope;
  hooks: ArchHooks;
}

/** Run fn one module path deeper: weights under `path`, graph names prefixed with it. */
export function inModule<T>(ctx: ArchContext, path: string, fn: (c: ArchContext) => T): T {
  return ctx.g.scope(path, () => fn({ ...ctx, w: ctx.w.at(path) }));
}

/** Conv named `name` in the current scope (weight + bias). Spatial convs report their input to the hook. */
export function spatialConv(ctx: ArchContext, x: string, name: string, shape: readonly number[], opts: Conv2dOptions = {}): string {
  const w = ctx.w.get(`${name}.weight`, shape);
  const b = ctx.w.get(`${name}.bias`, [shape[0]]);
  if (ctx.hooks.convInput && (shape[2] > 1 || shape[3] > 1)) ctx.hooks.convInput(ctx.w.path(name), x);
  return ctx.g.scope(name, () => conv2d(ctx.g, x, w, b, opts));
}

/** GroupNorm named `name` over `channels` channels. */
export function norm(ctx: ArchContext, x: string, name: string, channels: number, groups: number, eps: number): string {
  const gamma = ctx.w.get(`${name}.weight`, [channels]);
  const beta = ctx.w.get(`${name}.bias`, [channels]);
  const given = ctx.hooks.givenGroupNormStats?.(ctx.w.path(name)) ?? null;
  if (given) return ctx.g.scope(name, () => groupNormGiven(ctx.g, x, groups, eps, gamma, beta, given.mean, given.variance));
  if (ctx.hooks.groupNormStats && ctx.hooks.statsBesidePlainGroupNorm) {
    const y = ctx.g.scope(name, () => groupNorm(ctx.g, x, groups, eps, gamma, beta));
    const m = ctx.g.scope(`${name}.stats`, () => groupMoments(ctx.g, x, groups));
    ctx.hooks.groupNormStats(ctx.w.path(name), m.mean, m.variance);
    return y;
  }
  if (ctx.hooks.groupNormStats) {
    const r = ctx.g.scope(name, () => groupNormStats(ctx.g, x, groups, eps, gamma, beta));
    ctx.hooks.groupNormStats(ctx.w.path(name), r.mean, r.variance);
    return r.y;
  }
  return ctx.g.scope(name, () => groupNorm(ctx.g, x, groups, eps, gamma, beta));
}
