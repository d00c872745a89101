// Which attention form WebGPU graphs use, decided on the machine itself (FISEDIT_WEBGPU_ATTENTION=auto,
// the default). The fused MultiHeadAttention op is one dispatch and never holds an [N, M] score matrix
// (at SD's 512 px that matrix is 1 GiB a layer), but the WebGPU EP's FlashAttention kernel behind it is
// wrong on some Vulkan drivers (0.1-0.3 off on Mesa lavapipe: runtime/deviceGraphs.ts). So the engine
// checks it before trusting it: each candidate form runs a few small attentions shaped like the model's
// on the device, against the written-out form on the CPU; a form off by more than the tolerance is out.
// When more than one is right, each runs the model's largest attention (its finest level at its default
// size, CFG batch 2) and the fastest wins; its output must also match the written-out form's on the device.
// A few small sessions: on lavapipe about a second at start-up, and nothing on the CPU device.
import { causalMask } from '../arch/clipText';
import { GraphBuilder } from '../graph/graphBuilder';
import { attention } from '../graph/nn';
import type { ClipTextConfig, UNetConfig } from '../model/configs';
import { gaussianFloat32 } from '../random/gaussian';
import { parseAttentionForm, rememberAttentionChoice, webgpuAttentionSetting } from './deviceGraphs';
import { createSession, float32Tensor, type EngineDevice } from './ortSession';

export interface AttentionCase {
  name: string;
  batch: number;
  /** Queries L, keys M, channels C, heads. */
  L: number;
  M: number;
  C: number;
  heads: number;
  /** An additive causal bias [L, L] (the text encoder's); needs L = M. */
  causal?: boolean;
}

export type AttentionFeeds = { q: Float32Array; k: Float32Array; v: Float32Array };

/** Random unit q/k/v for a case, from fixed seeds (the same bits on every run). */
export function attentionFeeds(c: AttentionCase, seed = 1n): AttentionFeeds {
  return { q: gaussianFloat32(seed, c.batch * c.L * c.C), k: gaussianFloat32(seed + 1n, c.batch * c.M * c.C), v: gaussianFloat32(seed + 2n, c.batch * c.M * c.C) };
}

/**
 * One attention in `form` (FISEDIT_WEBGPU_ATTENTION spelling: mha, matmul, mha-unfused, chunked:N) on
 * `device`: its output, and the median ms of `reps` runs after the first (NaN with reps 0).
 */
export async function runAttentionForm(form: string, device: EngineDevice, c: AttentionCase, feeds: AttentionFeeds, reps = 0, intraOpNumThreads?: number): Promise<{ y: Float32Array; ms: number }> {
  if (c.causal && c.L !== c.M) throw new RangeError(`attention case ${c.name}: a causal bias needs as many queries as keys`);
  const g = new GraphBuilder('attention_form');
  const q = g.input('q', 'float32', [c.batch, c.L, c.C]);
  const k = g.input('k', 'float32', [c.batch, c.M, c.C]);
  const v = g.input('v', 'float32', [c.batch, c.M, c.C]);
  const bias = c.causal ? causalMask(g, c.L) : undefined;
  g.output('y', attention(g, q, k, v, c.C, c.heads, { ...parseAttentionForm(form), bias }), 'float32');
  const s = await createSession(g.build(), { device, intraOpNumThreads });
  try {
    const inputs = { q: float32Tensor(feeds.q, [c.batch, c.L, c.C]), k: float32Tensor(feeds.k, [c.batch, c.M, c.C]), v: float32Tensor(feeds.v, [c.batch, c.M, c.C]) };
    const first = await s.run(inputs, ['y']);
    const times: number[] = [];
    for (let r = 0; r < reps; r++) {
      const t = performance.now();
      await s.run(inputs, ['y']);
      times.push(performance.now() - t);
    }
    times.sort((a, b) => a - b);
    return { y: first.y.data as Float32Array, ms: times.length ? times[times.length >> 1] : NaN };
  } finally {
    await s.release();
  }
}

export const maxAbsDifference = (a: Float32Array, b: Float32Array): number => {
  if (a.length !== b.length) return Infinity;
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    if (!(d <= m)) m = Number.isNaN(d) ? Infinity : d;
  }
  return m;
};

/**
 * The model's attention shapes. Checks: its UNet self- and cross-attention at 64 queries (past the 32
 * where the EP's FlashAttention takes over) and its text encoder's causal self-attention over 77 tokens.
 * Timing: the UNet's finest attention level at the model's default size, CFG batch 2 (SD 1.5: 4096
 * tokens, 320 channels, 8 heads).
 */
export function attentionCasesFor(unet: UNetConfig, text: ClipTextConfig | null, textLength = 77): { checks: AttentionCase[]; timing: AttentionCase } {
  const levels = unet.blockOutChannels.length;
  const first = unet.downBlockTypes.indexOf('CrossAttnDownBlock2D');
  const level = first >= 0 ? first : levels - 1; // the mid block always attends, at the coarsest level
  const C = unet.blockOutChannels[level];
  const heads = unet.numAttentionHeads[level];
  const side = Math.max(1, Math.round(unet.sampleSize / 2 ** level));
  const checks: AttentionCase[] = [
    { name: 'unet self 64', batch: 1, L: 64, M: 64, C, heads },
    { name: `unet cross 64x${textLength}`, batch: 2, L: 64, M: textLength, C, heads },
  ];
  if (text) checks.push({ name: `text causal ${textLength}`, batch: 1, L: textLength, M: textLength, C: text.hiddenSize, heads: text.numAttentionHeads, causal: true });
  return { checks, timing: { name: `unet self ${side}x${side}`, batch: 2, L: side * side, M: side * side, C, heads } };
}

export interface AttentionChoice {
  /** The form every WebGPU graph of this process builds. */
  form: string;
  /** Per candidate: the largest max abs difference over the checks (Infinity when it failed to run), and its error. */
  checks: { form: string; maxAbs: number; right: boolean; error?: string }[];
  /** Median ms at the timing case, per candidate that passed the checks (only when more than one did). */
  timings: { form: string; ms: number; maxAbsVsMatmul: number }[];
  tolerance: number;
  /** One line for people: what was chosen and why, with the numbers. */
  reason: string;
  probeMs: number;
}

export interface ChooseAttentionOptions {
  /** Candidates in order of preference on a tie (default mha, matmul). matmul is the fallback whatever the list. */
  candidates?: readonly string[];
  /** Max abs difference allowed on unit-variance inputs (default 1e-3; float32 reorderings give ~1e-6, the wrong kernel 0.1). */
  tolerance?: number;
  /** Timed runs per candidate after a warm-up (default 3). */
  reps?: number;
  device?: EngineDevice;
}

export const DEFAULT_ATTENTION_CANDIDATES: readonly string[] = ['mha', 'matmul'];

/** Checks each candidate on the device and picks the right, fastest one (module comment). */
export async function chooseAttentionForm(cases: { checks: readonly AttentionCase[]; timing: AttentionCase | null }, opts: ChooseAttentionOptions = {}): Promise<AttentionChoice> {
  const t0 = performance.now();
  const candidates = [...(opts.candidates ?? DEFAULT_ATTENTION_CANDIDATES)];
  candidates.forEach(parseAttentionForm); // a bad spelling throws before any session
  const device = opts.device ?? 'webgpu';
  const tolerance = opts.tolerance ?? 1e-3;
  const reps = opts.reps ?? 3;
  const worst = new Map<string, { maxAbs: number; error?: string }>(candidates.map((f) => [f, { maxAbs: 0 }]));
  for (const [i, c] of cases.checks.entries()) {
    const feeds = attentionFeeds(c, BigInt(10 + 3 * i));
    const ref = (await runAttentionForm('matmul', 'cpu', c, feeds)).y;
    for (const form of candidates) {
      const w = worst.get(form)!;
      if (w.error || w.maxAbs > tolerance) continue; // already out
      try {
        w.maxAbs = Math.max(w.maxAbs, maxAbsDifference((await runAttentionForm(form, device, c, feeds)).y, ref));
      } catch (e) {
        w.maxAbs = Infinity;
        w.error = (e as Error).message.split('\n')[0];
      }
    }
  }
  const checks = [...worst].map(([form, w]) => ({ form, ...w, right: !w.error && w.maxAbs <= tolerance }));
  const right = checks.filter((c) => c.right).map((c) => c.form);
  const timings: AttentionChoice['timings'] = [];
  let form: string;
  let reason: string;
  const fmt = (x: number) => (Number.isFinite(x) ? x.toExponential(1) : 'failed');
  const wrong = checks.filter((c) => !c.right).map((c) => `${c.form} off by ${c.error ? `an error (${c.error})` : fmt(c.maxAbs)}`);
  if (right.length === 0) {
    form = 'matmul';
    reason = `no candidate matched the CPU (${wrong.join(', ')}; tolerance ${tolerance}): the written-out form`;
  } else if (right.length === 1 || !cases.timing) {
    form = right[0];
    reason = `${form}: ${right.length === 1 ? 'the only form' : 'the first form'} that matched the CPU within ${tolerance}${wrong.length ? ` (${wrong.join(', ')})` : ''}`;
  } else {
    const c = cases.timing;
    const feeds = attentionFeeds(c, 7n);
    const base = await runAttentionForm('matmul', device, c, feeds, right.includes('matmul') ? reps : 0);
    for (const f of right) {
      try {
        const r = f === 'matmul' ? base : await runAttentionForm(f, device, c, feeds, reps);
        timings.push({ form: f, ms: r.ms, maxAbsVsMatmul: f === 'matmul' ? 0 : maxAbsDifference(r.y, base.y) });
      } catch {
        timings.push({ form: f, ms: NaN, maxAbsVsMatmul: Infinity }); // reported as failed; not chosen
      }
    }
    const usable = timings.filter((t) => Number.isFinite(t.ms) && t.maxAbsVsMatmul <= tolerance);
    // Fastest first; candidates' order breaks ties.
    usable.sort((a, b) => a.ms - b.ms || candidates.indexOf(a.form) - candidates.indexOf(b.form));
    form = usable[0]?.form ?? 'matmul';
    const times = timings.map((t) => `${t.form} ${Number.isFinite(t.ms) ? `${t.ms.toFixed(2)} ms` : 'failed'}${t.maxAbsVsMatmul > tolerance ? ` (off by ${fmt(t.maxAbsVsMatmul)})` : ''}`).join(', ');
    reason = `${form}: the fastest right form at ${c.name} (${times})${wrong.length ? `; ${wrong.join(', ')}` : ''}`;
  }
  return { form, checks, timings, tolerance, reason, probeMs: performance.now() - t0 };
}

let decided: Promise<AttentionChoice> | null = null;

/**
 * The process's WebGPU attention form when FISEDIT_WEBGPU_ATTENTION is auto (or unset): chosen once, by
 * the first engine loaded on WebGPU, from that model's shapes, and kept for every later graph
 * (graphOptionsFor). Null when the variable names a form: that form is used as it is.
 */
export function resolveWebgpuAttention(unet: UNetConfig, text: ClipTextConfig | null, env: NodeJS.ProcessEnv = process.env, textLength = 77): Promise<AttentionChoice> | null {
  if (webgpuAttentionSetting(env) !== 'auto') return null;
  decided ??= chooseAttentionForm(attentionCasesFor(unet, text, textLength)).then(
    (choice) => {
      rememberAttentionChoice(choice.form);
      return choice;
    },
    (e) => {
      decided = null; // let a later load try again
      throw e;
    },
  );
  return decided;
}
