// The one contract every scheduler implements (diffusers' SchedulerMixin, reduced to what the pipeline
// uses). Latents are flat Float32Array in NCHW order, [1, 4, h, w]; every method returns a new array and
// never mutates its inputs.

export type SchedulerName = 'ddim' | 'dpmpp-2m' | 'euler';

export interface Scheduler {
  readonly name: SchedulerName;
  /** Timesteps fed to the UNet, one per step, descending. Integers for DDIM/DPM++, float32 values for Euler. */
  readonly timesteps: number[];
  /** Multiplies the unit Gaussian to give the first latents (1 for DDIM/DPM++, max σ for Euler linspace). */
  readonly initNoiseSigma: number;
  /** Chooses N inference timesteps and resets any multistep state. Must be called before stepping. */
  setTimesteps(numInferenceSteps: number): void;
  /** What the UNet sees at step `stepIndex` (identity except Euler's x/√(σ²+1)). */
  scaleModelInput(sample: Float32Array, stepIndex: number): Float32Array;
  /** x_{t_i} → x_{t_{i+1}} from the (guided) ε prediction. Multistep schedulers require steps in order. */
  step(modelOutput: Float32Array, stepIndex: number, sample: Float32Array): Float32Array;
}
