// Graph-construction choices that depend on the execution provider. The graphs are the same
// computation on every device; only the op form of a layer changes where an EP's kernel for the
// compact form is wrong or missing. One place, so every graph the engine builds follows it.
//
// WebGPU (onnxruntime-node 1.30, Mesa lavapipe 25.0): com.microsoft.MultiHeadAttention is off by 0.1–0.3
// max abs (unit-variance inputs) once the query length reaches 32 (≤17 queries exact), with or without an
// attention bias, whatever its mask value (-FLT_MAX, -1e9, -1e4, -inf), deterministically. That one
// kernel is what put the CLIP text encoder 0.12 off the CPU and moved a generation's objects. The
// written-out MatMul/Softmax attention matches the CPU to ~4e-7 on the same device, so WebGPU graphs use
// it (bench/gpu/attentionForms.ts measures both forms; test/engine/device/ checks every graph). Whether
// the kernel is also wrong on a real GPU was not measured: none was at hand. The CPU keeps
// MultiHeadAttention: 3–10 % faster there (graph/nn.ts); the two forms agree to ~2e-7 on the CPU.

import type { GraphBuilderOptions } from '../graph/graphBuilder';
import type { EngineDevice } from './ortSession';

//
// On an NVIDIA H200 the written-out form makes the 512 px dense step 11x PyTorch's (4096-token attention),
// so FISEDIT_WEBGPU_ATTENTION=mha lets a GPU that computes the fused kernel right use it;
// bench/gpu/attentionForms.ts (a phase of bench/gpu) says whether it does, and how much faster it is.

export function graphOptionsFor(device: EngineDevice = 'cpu', env: NodeJS.ProcessEnv = process.env): GraphBuilderOptions {
  if (device !== 'webgpu') return {};
  const form = env.FISEDIT_WEBGPU_ATTENTION?.trim() || 'matmul';
  if (form !== 'matmul' && form !== 'mha') throw new Error(`FISEDIT_WEBGPU_ATTENTION must be mha or matmul (got ${JSON.stringify(form)})`);
  return { attention: form };
}
