// The one denoising step of every pipeline — generate, an edit's capture, sparse and dense steps, and a
// node's re-recording — and the loop around it:
//
//   scale (scheduler.scaleModelInput) → CFG batch → UNet call → guide → scheduler step → per-step hook
//
// The UNet call is the only part that differs (dense predictNoise, a recording step, a sparse step on
// the active rows), so it is a parameter. A call may answer `miss` (the parent's cache lacks a page the
// sparse step needs); the loop then asks onMiss for the call to use from this step on and retries the
// step with it: the switch from sparse to dense is explicit, nothing is thrown through a callback.
// Re-recording a node steps from its STORED latents without the scheduler, so it uses StepInputs alone.
//
// Every operation rounds to float32 as torch does, so a dense edit with an all-active mask reproduces
// generate() bit for bit.

import type { CacheMiss } from '../cache/cacheTypes';
import type { Scheduler } from '../scheduler';
import { GenerationAbortedError, InferenceError } from './pipelineErrors';

/** What the UNet sees at one step. */
export interface StepInput {
  /** Scheduler step index i (0-based). */
  step: number;
  timestep: number;
  /** scaleModelInput(x, i): [C, h, w]. */
  scaled: Float32Array;
  /** `scaled` repeated over the CFG batch, [B, C, h, w] (B = 2 with guidance, else 1); the next step overwrites it. */
  batched: Float32Array;
  batch: number;
}

/** What a UNet call gives back. */
export type UNetOutput =
  /** ε for the whole latent, [B, C, h, w]. */
  | { kind: 'dense'; noise: Float32Array }
  /** ε rows [B, N, C] at the `active` latent pixels (channels last); ε elsewhere is never used. */
  | { kind: 'rows'; noise: Float32Array; active: Int32Array }
  /** The step could not run from the cache; nothing was written. */
  | { kind: 'miss'; miss: CacheMiss };

export type UNetCall = (input: StepInput) => Promise<UNetOutput>;

/** Builds each step's model input in one reused CFG buffer. */
export class StepInputs {
  private readonly buffer: Float32Array;

  constructor(private readonly scheduler: Scheduler, readonly batch: number, readonly latentSize: number) {
    this.buffer = new Float32Array(batch * latentSize);
  }

  /** The model input of step i for latents x [C, h, w]. */
  at(x: Float32Array, step: number): StepInput {
    const scaled = this.scheduler.scaleModelInput(x, step);
    for (let b = 0; b < this.batch; b++) this.buffer.set(scaled, b * this.latentSize);
    return { step, timestep: this.scheduler.timesteps[step], scaled, batched: this.buffer, batch: this.batch };
  }
}

/** ε = ε_u + s·(ε_c − ε_u) over [B, n] (B = 2), or ε itself for B = 1. */
export function guideNoise(eps: Float32Array, batch: number, guidance: number, n: number): Float32Array {
  if (batch === 1) return eps.subarray(0, n);
  const g = Math.fround(guidance);
  const out = new Float32Array(n);
  for (let k = 0; k < n; k++) {
    const u = eps[k];
    out[k] = Math.fround(u + Math.fround(g * Math.fround(eps[n + k] - u)));
  }
  return out;
}

/**
 * Sparse ε rows [B, N, C] → guided ε [C, hw], zero at pixels outside `active` (those pixels take the
 * parent's latents after the scheduler step, so their ε is never used).
 */
export function scatterGuidedRows(rows: Float32Array, batch: number, guidance: number, channels: number, active: Int32Array, hw: number): Float32Array {
  const N = active.length;
  if (rows.length !== batch * N * channels) throw new RangeError(`sparse step returned ${rows.length} values, expected [${batch}, ${N}, ${channels}]`);
  const g = Math.fround(guidance);
  const out = new Float32Array(channels * hw);
  const cond = (batch - 1) * N * channels;
  for (let r = 0; r < N; r++) {
    const p = active[r];
    for (let c = 0; c < channels; c++) {
      const u = rows[r * channels + c];
      out[c * hw + p] = batch === 1 ? u : Math.fround(u + Math.fround(g * Math.fround(rows[cond + r * channels + c] - u)));
    }
  }
  return out;
}

/** The dense UNet of a DiffusionModels as a step call. */
export function denseUNetCall(
  predictNoise: (sample: Float32Array, batch: number, height: number, width: number, timestep: number, text: Float32Array) => Promise<Float32Array>,
  height: number,
  width: number,
  text: Float32Array,
): UNetCall {
  return async (input) => ({ kind: 'dense', noise: await predictNoise(input.batched, input.batch, height, width, input.timestep, text) });
}

export interface DenoiseLoop {
  scheduler: Scheduler;
  /** CFG guidance scale; the batch is 2 when it is > 1. */
  guidance: number;
  batch: number;
  /** Latent channels C and pixels h·w. */
  channels: number;
  pixels: number;
  /** Scheduler step indices to run, ascending (multistep schedulers need them in order). */
  steps: readonly number[];
  /** All steps of the schedule (the abort error reports progress against it). */
  totalSteps: number;
  unet: UNetCall;
  /** Called when `unet` answers miss: the call to use for this step and every later one. Without it a miss is an error. */
  onMiss?: (miss: CacheMiss, step: number) => UNetCall;
  /** After each scheduler step; may change x in place (an edit copies the parent's latents back outside its mask). */
  afterStep?: (step: number, x: Float32Array, timestep: number) => void | Promise<void>;
  signal?: AbortSignal;
}

/** Runs `loop.steps` from latents x; returns the latents after the last step. */
export async function denoiseLoop(x: Float32Array, loop: DenoiseLoop): Promise<Float32Array> {
  const { scheduler, batch, guidance, channels, pixels, signal } = loop;
  const n = channels * pixels;
  const inputs = new StepInputs(scheduler, batch, n);
  let unet = loop.unet;
  for (const i of loop.steps) {
    if (signal?.aborted) throw new GenerationAbortedError(i, loop.totalSteps);
    const input = inputs.at(x, i);
    let out = await unet(input);
    if (out.kind === 'miss') {
      if (!loop.onMiss) throw new InferenceError(`step ${i}: ${out.miss.message}`);
      unet = loop.onMiss(out.miss, i);
      out = await unet(input);
      if (out.kind === 'miss') throw new InferenceError(`step ${i}: the fallback missed too (${out.miss.message})`);
    }
    const guided = out.kind === 'dense' ? guideNoise(out.noise, batch, guidance, n) : scatterGuidedRows(out.noise, batch, guidance, channels, out.active, pixels);
    x = scheduler.step(guided, i, x);
    if (loop.afterStep) await loop.afterStep(i, x, input.timestep);
  }
  return x;
}
