/** @jest-environment ./test/engine/runtime/ortTestEnvironment.js */
// Each nn layer against a naive TypeScript reference (reference.ts) on small random tensors.

import {
  attention, conv2d, fromTokens, gelu, groupNorm, groupNormStats, layerNorm, linear, quickGelu, silu, toTokens, upsampleNearest2x,
} from '../../../src/engine/graph/nn';
import { GraphBuilder } from '../../../src/engine/graph/graphBuilder';
import { createSession, float32Tensor } from '../../../src/engine/runtime/ortSession';
import { erf, f32Weight, randArray, refAttention, refConv2d, refGroupNorm, refLayerNorm, relErr, runGraph } from './reference';

const TOL = 1e-5;

describe('conv2d', () => {
  const x = randArray(2 * 3 * 7 * 6, 1);
  const xd = [2, 3, 7, 6];
  const cases: { name: string; k: number; stride: number; pad: number | [number, number, number, number] }[] = [
    { name: '3x3 s1 p1', k: 3, stride: 1, pad: 1 },
    { name: '3x3 s2 p1 (downsample)', k: 3, stride: 2, pad: 1 },
    { name: '3x3 s2 asymmetric (0,0,1,1)', k: 3, stride: 2, pad: [0, 0, 1, 1] },
    { name: '1x1', k: 1, stride: 1, pad: 0 },
  ];
  for (const c of cases) {
    it(c.name, async () => {
      const wd = [5, 3, c.k, c.k];
      const w = randArray(5 * 3 * c.k * c.k, 2);
      const b = randArray(5, 3);
      const pads = typeof c.pad === 'number' ? [c.pad, c.pad, c.pad, c.pad] : c.pad;
      const ref = refConv2d(x, xd, w, wd, b, c.stride, pads);
      const y = await runGraph({ x: { data: x, dims: xd, symbolic: ['B', 3, 'H', 'W'] } }, (g, i) =>
        conv2d(g, i.x, f32Weight('w', w, wd), f32Weight('b', b, [5]), { stride: c.stride, pad: c.pad }),
      );
      expect(y.dims).toEqual(ref.dims);
      expect(relErr(y.data as Float32Array, ref.y)).toBeLessThan(TOL);
    });
  }
});

it("conv2d with convChannelMultiple 4 (WebGPU's graphs): 6 input channels padded to 8 with zero taps give the same result", async () => {
  const xd = [2, 6, 5, 4];
  const wd = [5, 6, 3, 3];
  const x6 = randArray(2 * 6 * 5 * 4, 7);
  const w = randArray(5 * 6 * 9, 8);
  const b = randArray(5, 9);
  const ref = refConv2d(x6, xd, w, wd, b, 1, [1, 1, 1, 1]);
  const g = new GraphBuilder('padded', { convChannelMultiple: 4 });
  const x = g.input('x', 'float32', ['B', 6, 'H', 'W']);
  g.output('y', conv2d(g, x, f32Weight('w', w, wd), f32Weight('b', b, [5]), { pad: 1 }), 'float32');
  const model = g.build();
  expect(g.stats().opCounts.Pad).toBe(1);
  const s = await createSession(model, { intraOpNumThreads: 1 });
  const y = (await s.run({ x: float32Tensor(x6, xd) })).y;
  await s.release();
  expect(y.dims).toEqual(ref.dims);
  expect(relErr(y.data as Float32Array, ref.y)).toBeLessThan(TOL);
});

describe('linear', () => {
  it('x·Wᵀ+b over the last axis, also for a squeezed 1×1 conv weight', async () => {
    const [B, N, I, O] = [2, 5, 6, 4];
    const x = randArray(B * N * I, 4);
    const w = randArray(O * I, 5);
    const b = randArray(O, 6);
    const ref = new Float32Array(B * N * O);
    for (let r = 0; r < B * N; r++)
      for (let o = 0; o < O; o++) {
        let s = b[o];
        for (let i = 0; i < I; i++) s += x[r * I + i] * w[o * I + i];
        ref[r * O + o] = s;
      }
    for (const shape of [[O, I], [O, I, 1, 1]]) {
      const y = await runGraph({ x: { data: x, dims: [B, N, I] } }, (g, i) => linear(g, i.x, f32Weight('w', w, shape), f32Weight('b', b, [O])));
      expect(y.dims).toEqual([B, N, O]);
      expect(relErr(y.data as Float32Array, ref)).toBeLessThan(TOL);
    }
  });
});

describe('groupNorm', () => {
  const dims = [2, 8, 5, 3];
  const x = randArray(2 * 8 * 5 * 3, 7, 3, 1.5); // offset mean: catches variance-without-centering bugs
  const gamma = randArray(8, 8);
  const beta = randArray(8, 9);
  const ref = refGroupNorm(x, dims, 4, 1e-5, gamma, beta);

  it('InstanceNormalization formulation matches the reference', async () => {
    const y = await runGraph({ x: { data: x, dims, symbolic: ['B', 8, 'H', 'W'] } }, (g, i) =>
      groupNorm(g, i.x, 4, 1e-5, f32Weight('g', gamma, [8]), f32Weight('b', beta, [8])),
    );
    expect(relErr(y.data as Float32Array, ref.y)).toBeLessThan(TOL);
  });

  it('ReduceMean formulation matches and exposes per-group mean and biased variance', async () => {
    const g = new GraphBuilder('gn');
    const xi = g.input('x', 'float32', ['B', 8, 'H', 'W']);
    const r = groupNormStats(g, xi, 4, 1e-5, f32Weight('g', gamma, [8]), f32Weight('b', beta, [8]));
    g.output('y', r.y, 'float32');
    g.output('mean', r.mean, 'float32');
    g.output('var', r.variance, 'float32');
    const s = await createSession(g.build(), { intraOpNumThreads: 1 });
    const out = await s.run({ x: float32Tensor(x, dims) });
    expect(relErr(out.y.data as Float32Array, ref.y)).toBeLessThan(TOL);
    expect(out.mean.dims).toEqual([2, 4, 1]);
    expect(relErr(out.mean.data as Float32Array, ref.means)).toBeLessThan(TOL);
    expect(relErr(out.var.data as Float32Array, ref.vars)).toBeLessThan(TOL);
  });
});

describe('layerNorm and activations', () => {
  const x = randArray(3 * 4 * 10, 10, 4);
  const dims = [3, 4, 10];

  it('layerNorm over the last axis', async () => {
    const gamma = randArray(10, 11);
    const beta = randArray(10, 12);
    const y = await runGraph({ x: { data: x, dims } }, (g, i) => layerNorm(g, i.x, f32Weight('g', gamma, [10]), f32Weight('b', beta, [10]), 1e-5));
    expect(relErr(y.data as Float32Array, refLayerNorm(x, 10, 1e-5, gamma, beta))).toBeLessThan(TOL);
  });

  const acts: [string, (g: GraphBuilder, x: string) => string, (v: number) => number][] = [
    ['silu', silu, (v) => v / (1 + Math.exp(-v))],
    ['gelu (exact erf)', gelu, (v) => 0.5 * v * (1 + erf(v / Math.SQRT2))],
    ['quick_gelu', quickGelu, (v) => v / (1 + Math.exp(-1.702 * v))],
  ];
  for (const [name, fn, ref] of acts) {
    it(name, async () => {
      const y = await runGraph({ x: { data: x, dims } }, (g, i) => fn(g, i.x));
      expect(relErr(y.data as Float32Array, Array.from(x, ref))).toBeLessThan(TOL);
    });
  }

  it('gelu and quick_gelu differ enough for the test to tell them apart', () => {
    const g = 0.5 * 1.5 * (1 + erf(1.5 / Math.SQRT2));
    const q = 1.5 / (1 + Math.exp(-1.702 * 1.5));
    expect(Math.abs(g - q)).toBeGreaterThan(1e-3);
  });
});

describe.each(['mha', 'matmul'] as const)('attention (%s)', (impl) => {
  const [B, N, M, C, H] = [2, 5, 7, 12, 3];
  const q = randArray(B * N * C, 13);
  const k = randArray(B * M * C, 14);
  const v = randArray(B * M * C, 15);

  it('multi-head cross-attention with contiguous heads', async () => {
    const y = await runGraph(
      { q: { data: q, dims: [B, N, C] }, k: { data: k, dims: [B, M, C] }, v: { data: v, dims: [B, M, C] } },
      (g, i) => attention(g, i.q, i.k, i.v, C, H, { impl }),
    );
    expect(y.dims).toEqual([B, N, C]);
    expect(relErr(y.data as Float32Array, refAttention(q, k, v, B, N, M, C, H))).toBeLessThan(TOL);
  });

  it('causal self-attention with an additive mask', async () => {
    const L = 6;
    const x = randArray(B * L * C, 16);
    const mask = new Float32Array(L * L);
    for (let i = 0; i < L; i++) for (let j = i + 1; j < L; j++) mask[i * L + j] = -3.4028234663852886e38;
    const y = await runGraph({ x: { data: x, dims: [B, L, C] } }, (g, i) => attention(g, i.x, i.x, i.x, C, H, { impl, bias: g.constF32(mask, [L, L]) }));
    const ref = refAttention(x, x, x, B, L, L, C, H, mask);
    expect(relErr(y.data as Float32Array, ref)).toBeLessThan(TOL);
    // Row 0 sees only itself: output equals its own value.
    for (let c = 0; c < C; c++) expect((y.data as Float32Array)[c]).toBeCloseTo(x[c], 5);
  });
});

describe('layout helpers', () => {
  it('nearest ×2 upsample copies out[y,x] = in[⌊y/2⌋,⌊x/2⌋]', async () => {
    const dims = [1, 2, 3, 2];
    const x = randArray(12, 17);
    const y = await runGraph({ x: { data: x, dims, symbolic: ['B', 2, 'H', 'W'] } }, (g, i) => upsampleNearest2x(g, i.x));
    expect(y.dims).toEqual([1, 2, 6, 4]);
    const d = y.data as Float32Array;
    for (let c = 0; c < 2; c++)
      for (let yy = 0; yy < 6; yy++)
        for (let xx = 0; xx < 4; xx++) expect(d[(c * 6 + yy) * 4 + xx]).toBe(x[(c * 3 + (yy >> 1)) * 2 + (xx >> 1)]);
  });

  it('toTokens puts token y·W+x, channel c at [b, y·W+x, c]; fromTokens inverts it', async () => {
    const dims = [2, 3, 2, 4];
    const x = randArray(48, 18);
    const t = await runGraph({ x: { data: x, dims, symbolic: ['B', 3, 'H', 'W'] } }, (g, i) => toTokens(g, i.x, 3));
    expect(t.dims).toEqual([2, 8, 3]);
    const td = t.data as Float32Array;
    expect(td[(1 * 8 + (1 * 4 + 2)) * 3 + 2]).toBe(x[((1 * 3 + 2) * 2 + 1) * 4 + 2]);
    const back = await runGraph({ x: { data: x, dims, symbolic: ['B', 3, 'H', 'W'] } }, (g, i) => fromTokens(g, toTokens(g, i.x, 3), i.x));
    expect(back.dims).toEqual(dims);
    expect(Array.from(back.data as Float32Array)).toEqual(Array.from(x));
  });
});
