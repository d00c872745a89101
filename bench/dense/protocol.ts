// Messages between the dense bench (run.ts, parent) and one variant process (variantWorker.ts).
//
// Each UNet variant lives in its own child process so that its peak RSS (process.resourceUsage().maxRSS)
// is its own; the parent asks the children in turn for one step each (A B A B …), so both sessions are
// timed under the same, interleaved machine load while only one of them runs at a time.

/** "ours": buildUNetGraph from the diffusers folder; "torch": the torch.onnx.export graph. */
export type VariantName = 'ours' | 'torch';

/** One UNet call's inputs. Both variants generate them from the same seed, so they are identical. */
export interface InputSpec {
  /** 2 = classifier-free guidance (the latent twice, [uncond, cond] text). */
  batch: number;
  channels: number;
  /** Latent height/width (image size / 8). */
  height: number;
  width: number;
  /** Text length (77 for CLIP) and width (cross_attention_dim). */
  seq: number;
  contextDim: number;
  timestep: number;
  seed: number;
}

export interface WorkerSpec {
  variant: VariantName;
  /** ours: the diffusers folder; torch: the .onnx file (external data in `<file>.data` when present). */
  source: string;
  threads: number;
  input: InputSpec;
}

export type ParentMessage = { cmd: 'run'; returnOutput: boolean } | { cmd: 'exit' };

/** Session creation, ms. read: files into memory; build: our graph build + serialisation (torch: 0). */
export interface CreateTimings {
  readMs: number;
  buildMs: number;
  sessionMs: number;
  totalMs: number;
}

export type WorkerMessage =
  | {
      kind: 'ready';
      create: CreateTimings;
      /** RSS before loading anything (node + tsx + onnxruntime binding), MB. */
      baselineRssMB: number;
      /** RSS after session creation once the JS weight buffers are collected, MB. */
      rssAfterCreateMB: number;
      /** Serialised model size (ours: protobuf + external data; torch: .onnx + .data), bytes. */
      modelBytes: number;
      outputName: string;
    }
  | { kind: 'ran'; wallMs: number; cpuMs: number; output?: Float32Array; outputDims?: number[] }
  | { kind: 'final'; peakRssMB: number; rssMB: number }
  | { kind: 'error'; message: string };
