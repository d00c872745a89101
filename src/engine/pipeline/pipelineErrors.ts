// Errors every pipeline (generate, edit, re-record) throws from its denoising loop. generate.ts
// re-exports them, where callers have always imported them from.

export class GenerationAbortedError extends Error {
  constructor(readonly completedSteps: number, readonly totalSteps: number) {
    super(`generation aborted after ${completedSteps} of ${totalSteps} steps`);
    this.name = 'GenerationAbortedError';
  }
}

/** The numbers went wrong (NaN/∞ in the latents): a model or runtime problem, not an input problem. */
export class InferenceError extends Error {
  constructor(reason: string) {
    super(`inference: ${reason}`);
    this.name = 'InferenceError';
  }
}
