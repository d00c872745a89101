// Graph-construction choices that depend on the execution provider. The graphs are the same
// computation on every device; only the op form of a layer changes where an EP's kernel for the
// compact form is wrong or missing. One place, so every graph the engine builds follows it.
//
// WebGPU (onnxruntime-node 1.30): com.microsoft.MultiHeadAttention returns results 1–30 % off once the
// query length reaches ~32 (≤17 is exact), whatever the mask (-FLT_MAX, -1e9, -1e4, -inf or none), on
// Mesa lavapipe; deterministic from run to run. That one kernel is what put the CLIP text encoder 0.12
// off the CPU. The written-out MatMul/Softmax attention matches the CPU to 2e-7 on the same device, so
// WebGPU graphs use it (measurements: test/engine/device/webgpuKernels.test.ts). The CPU keeps
// MultiHeadAttention: 3–10 % faster there (graph/nn.ts); the two forms agree to ~2e-7 on the CPU.

import type { GraphBuilderOptions } from '../graph/graphBuilder';
import type { EngineDevice } from './ortSession';

export function graphOptionsFor(device: EngineDevice = 'cpu'): GraphBuilderOptions {
  return device === 'webgpu' ? { attention: 'matmul' } : {};
}
