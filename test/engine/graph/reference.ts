// Naive TypeScript references for the nn layers (nested loops, float64 accumulation), and helpers to
// run a one-op graph. Independent of the ONNX formulations in src/engine/graph/nn.ts.

import { GraphBuilder } from '../../../src/engine/graph/graphBuilder';
import { createSession, EngineTensor, float32Tensor } from '../../../src/engine/runtime/ortSession';
import { WeightTensor } from '../../../src/engine/model/tensor';

/** Deterministic uniform [-scale, scale) + offset (mulberry32). */
export function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function randArray(n: number, seed: number, scale = 1, offset = 0): Float32Array {
  const r = seeded(seed);
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = (r() * 2 - 1) * scale + offset;
  return a;
}

export function f32Weight(name: string, values: Float32Array, shape: number[]): WeightTensor {
  return { name, dtype: 'F32', shape, data: new Uint8Array(values.buffer, values.byteOffset, values.byteLength) };
}

/** max|a−b| / max|ref| (the project's relative error measure). */
export function relErr(a: ArrayLike<number>, ref: ArrayLike<number>): number {
  if (a.length !== ref.length) throw new Error(`length ${a.length} vs ${ref.length}`);
  let m = 0;
  let r = 0;
  for (let i = 0; i < a.length; i++) {
    m = Math.max(m, Math.abs(a[i] - ref[i]));
    r = Math.max(r, Math.abs(ref[i]));
  }
  return m / r;
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/** Build a graph with float32 inputs via fn, run it once and return the output named 'y'. */
export async function runGraph(
  inputs: Record<string, { data: Float32Array; dims: number[]; symbolic?: (number | string)[] }>,
  fn: (g: GraphBuilder, x: Record<string, string>) => string,
): Promise<EngineTensor> {
  const g = new GraphBuilder('test');
  const names: Record<string, string> = {};
  for (const [k, v] of Object.entries(inputs)) names[k] = g.input(k, 'float32', v.symbolic ?? v.dims);
  g.output('y', fn(g, names), 'float32');
  const s = await createSession(g.build(), { intraOpNumThreads: 1 });
  const feeds: Record<string, EngineTensor> = {};
  for (const [k, v] of Object.entries(inputs)) feeds[k] = float32Tensor(v.data, v.dims);
  const out = await s.run(feeds);
  await s.release();
  return out.y;
}

// ---- references (NCHW / [B,N,C] row-major) ----

export function refConv2d(
  x: Float32Array, [B, C, H, W]: number[], w: Float32Array, [O, , KH, KW]: number[], b: Float32Array | undefined,
  stride: number, [pt, pl, pb, pr]: number[],
): { y: Float32Array; dims: number[] } {
  const OH = Math.floor((H + pt + pb - KH) / stride) + 1;
  const OW = Math.floor((W + pl + pr - KW) / stride) + 1;
  const y = new Float32Array(B * O * OH * OW);
  for (let n = 0; n < B; n++)
    for (let o = 0; o < O; o++)
      for (let oy = 0; oy < OH; oy++)
        for (let ox = 0; ox < OW; ox++) {
          let s = b ? b[o] : 0;
          for (let c = 0; c < C; c++)
            for (let ky = 0; ky < KH; ky++)
              for (let kx = 0; kx < KW; kx++) {
                const iy = oy * stride + ky - pt;
                const ix = ox * stride + kx - pl;
                if (iy < 0 || ix < 0 || iy >= H || ix >= W) continue;
                s += x[((n * C + c) * H + iy) * W + ix] * w[((o * C + c) * KH + ky) * KW + kx];
              }
          y[((n * O + o) * OH + oy) * OW + ox] = s;
        }
  return { y, dims: [B, O, OH, OW] };
}

export function refGroupNorm(x: Float32Array, [B, C, H, W]: number[], G: number, eps: number, gamma: Float32Array, beta: Float32Array) {
  const y = new Float32Array(x.length);
  const cg = C / G;
  const m = cg * H * W;
  const means: number[] = [];
  const vars: number[] = [];
  for (let n = 0; n < B; n++)
    for (let g = 0; g < G; g++) {
      const base = (n * C + g * cg) * H * W;
      let s = 0;
      for (let i = 0; i < m; i++) s += x[base + i];
      const mean = s / m;
      let v = 0;
      for (let i = 0; i < m; i++) v += (x[base + i] - mean) ** 2;
      v /= m;
      means.push(mean);
      vars.push(v);
      for (let i = 0; i < m; i++) {
        const c = g * cg + Math.floor(i / (H * W));
        y[base + i] = ((x[base + i] - mean) / Math.sqrt(v + eps)) * gamma[c] + beta[c];
      }
    }
  return { y, means, vars };
}

export function refLayerNorm(x: Float32Array, C: number, eps: number, gamma: Float32Array, beta: Float32Array): Float32Array {
  const y = new Float32Array(x.length);
  for (let r = 0; r < x.length / C; r++) {
    let s = 0;
    for (let c = 0; c < C; c++) s += x[r * C + c];
    const mean = s / C;
    let v = 0;
    for (let c = 0; c < C; c++) v += (x[r * C + c] - mean) ** 2;
    v /= C;
    for (let c = 0; c < C; c++) y[r * C + c] = ((x[r * C + c] - mean) / Math.sqrt(v + eps)) * gamma[c] + beta[c];
  }
  return y;
}

/** Abramowitz–Stegun 7.1.26 is too coarse; use a high-precision erf series/continued fraction. */
export function erf(x: number): number {
  // erf via the Taylor series for |x| < 3, complementary asymptotic otherwise (|err| < 1e-12).
  const ax = Math.abs(x);
  if (ax < 3) {
    let sum = x;
    let term = x;
    for (let n = 1; n < 200; n++) {
      term *= (-x * x) / n;
      const add = term / (2 * n + 1);
      sum += add;
      if (Math.abs(add) < 1e-17) break;
    }
    return (2 / Math.sqrt(Math.PI)) * sum;
  }
  // Continued fraction for erfc.
  let f = 0;
  for (let k = 60; k >= 1; k--) f = (k / 2) / (ax + f);
  const erfc = Math.exp(-ax * ax) / Math.sqrt(Math.PI) / (ax + f);
  return Math.sign(x) * (1 - erfc);
}

/** q [B,N,C], k/v [B,M,C] → [B,N,C]; heads contiguous; optional additive mask [N,M]. */
export function refAttention(q: Float32Array, k: Float32Array, v: Float32Array, B: number, N: number, M: number, C: number, heads: number, mask?: Float32Array): Float32Array {
  const d = C / heads;
  const out = new Float32Array(B * N * C);
  const s = new Float64Array(M);
  for (let b = 0; b < B; b++)
    for (let h = 0; h < heads; h++)
      for (let i = 0; i < N; i++) {
        let mx = -Infinity;
        for (let j = 0; j < M; j++) {
          let dot = 0;
          for (let e = 0; e < d; e++) dot += q[(b * N + i) * C + h * d + e] * k[(b * M + j) * C + h * d + e];
          s[j] = dot / Math.sqrt(d) + (mask ? mask[i * M + j] : 0);
          mx = Math.max(mx, s[j]);
        }
        let z = 0;
        for (let j = 0; j < M; j++) z += s[j] = Math.exp(s[j] - mx);
        for (let e = 0; e < d; e++) {
          let acc = 0;
          for (let j = 0; j < M; j++) acc += (s[j] / z) * v[(b * M + j) * C + h * d + e];
          out[(b * N + i) * C + h * d + e] = acc;
        }
      }
  return out;
}
