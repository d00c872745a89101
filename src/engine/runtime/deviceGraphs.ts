// Graph-construction choices that depend on the execution provider. The graphs are the same
// computation on every device; only the op form of a layer changes where an EP's kernel for the
// compact form is wrong or missing. One place, so every graph the engine builds follows it.
//
// WebGPU (onnxruntime-node 1.30, Mesa lavapipe 25.0): com.microsoft.MultiHeadAttention is off by 0.1–0.3
// max abs (unit-variance inputs) once the query length reaches 32 (≤31 queries exact), with or without an
// attention bias, whatever its mask value (-FLT_MAX, -1e9, -1e4, -inf), deterministically. That one
// kernel is what put the CLIP text encoder 0.12 off the CPU and moved a generation's objects. The
// written-out MatMul/Softmax attention matches the CPU to ~4e-7 on the same device, so WebGPU graphs use
// it (bench/gpu/attentionForms.ts measures both forms; test/engine/device/ checks every graph). Whether
// the kernel is also wrong on a real GPU was not measured: none was at hand. The CPU keeps
// MultiHeadAttention: 3–10 % faster there (graph/nn.ts); the two forms agree to ~2e-7 on the CPU.

import type { AttentionImpl, GraphBuilderOptions } from '../graph/graphBuilder';
import type { EngineDevice } from './ortSession';

//
// On an NVIDIA H200 the written-out form makes the 512 px dense step 11x PyTorch's (4096-token attention),
// so the default, FISEDIT_WEBGPU_ATTENTION=auto, checks the fused kernel on the machine at start-up and
// uses it where it is right and faster (runtime/attentionProbe.ts); bench/gpu/attentionForms.ts (a phase
// of bench/gpu) measures every form at SD's shapes.

//
// Two more candidates (graph/nn.ts): 'chunked' (or 'chunked:N', N query chunks, default 16) runs the
// written-out form over slices of the queries, so no [2, 8, 4096, 4096] score matrix is ever whole;
// 'mha-unfused' pads the head size to a non-multiple of 4, which makes the EP take its unfused
// MultiHeadAttention kernels. What is wrong on lavapipe is the EP's FlashAttention kernel (its
// subgroup-shuffle prefill, taken from 32 queries on when the head size is a multiple of 4; below 32
// queries it runs decode kernels, which are right): off by 0.1-0.3 for every head size tried
// (4, 16, 40, 64) once there are more than 8 keys, at 4, 8 and 16-lane subgroups (LP_NATIVE_VECTOR_WIDTH
// 128/256/512). The unfused kernels and 'chunked' match the CPU to ~1e-6 there
// (test/engine/device/webgpuAttentionForms.test.ts).

/** An attention form as FISEDIT_WEBGPU_ATTENTION spells it (mha, matmul, mha-unfused, chunked, chunked:N), parsed. */
export function parseAttentionForm(value: string): { impl: AttentionImpl; chunks?: number } {
  const m = /^(mha|matmul|mha-unfused|chunked)(?::(\d+))?$/.exec(value);
  if (!m || (m[2] !== undefined && (m[1] !== 'chunked' || Number(m[2]) < 1))) {
    throw new Error(`FISEDIT_WEBGPU_ATTENTION must be auto, mha, matmul, mha-unfused, chunked or chunked:<chunks> (got ${JSON.stringify(value)})`);
  }
  return m[2] !== undefined ? { impl: m[1] as AttentionImpl, chunks: Number(m[2]) } : { impl: m[1] as AttentionImpl };
}

/** The form runtime/attentionProbe.ts chose on this machine (FISEDIT_WEBGPU_ATTENTION=auto); null before it ran. */
let autoForm: string | null = null;

/** Records the probe's choice for every later WebGPU graph of this process (attentionProbe.resolveWebgpuAttention). */
export function rememberAttentionChoice(form: string | null): void {
  if (form !== null) parseAttentionForm(form);
  autoForm = form;
}

/** FISEDIT_WEBGPU_ATTENTION as set: 'auto' (also when unset) or a form; anything else throws, naming the variable. */
export function webgpuAttentionSetting(env: NodeJS.ProcessEnv = process.env): string {
  const setting = env.FISEDIT_WEBGPU_ATTENTION?.trim() || 'auto';
  if (setting !== 'auto') parseAttentionForm(setting);
  return setting;
}

/**
 * The form WebGPU graphs build now: FISEDIT_WEBGPU_ATTENTION when it names one; with `auto` (the default)
 * the form the probe chose when the engine loaded, or the written-out 'matmul' (right everywhere it was
 * tried) before any probe ran.
 */
export function webgpuAttentionForm(env: NodeJS.ProcessEnv = process.env): string {
  const setting = webgpuAttentionSetting(env);
  return setting === 'auto' ? (autoForm ?? 'matmul') : setting;
}

/** Builder options for graphs on `device`; on WebGPU with webgpuAttentionForm's attention. */
export function graphOptionsFor(device: EngineDevice = 'cpu', env: NodeJS.ProcessEnv = process.env): GraphBuilderOptions {
  if (device !== 'webgpu') return {};
  const { impl, chunks } = parseAttentionForm(webgpuAttentionForm(env));
  // Its Conv is also wrong at 6 input channels (max abs 1.3 on lavapipe; 4, 5 and 8 are right), which a UNet
  // with coordinate planes (4 latent + 2) has at conv_in: such convs get zero channels up to 8.
  const conv = { convChannelMultiple: 4 };
  return chunks !== undefined ? { attention: impl, attentionChunks: chunks, ...conv } : { attention: impl, ...conv };
}
