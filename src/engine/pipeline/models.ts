// What the generate recipe needs from a loaded model: tokenizer, the three graphs as async calls on
// flat float32 NCHW data, and a few sizes. DiffusionEngine implements it with onnxruntime sessions;
// tests can implement it with plain functions.
import type { EncodedPrompt } from '../tokenizer/clipTokenizer';

export interface ModelInfo {
  /** Folder base name, recorded in image metadata. */
  name: string;
  dir: string;
  /** Weight-file variant the folder was loaded with ("fp16"), or null: loaders of the same model reuse it. */
  variant: string | null;
  latentChannels: number;
  /** Image pixels per latent pixel: 2^(len(vae.block_out_channels) − 1) (8 for SD). */
  vaeScaleFactor: number;
  /** Widest VAE decoder level (max block_out_channels): its decode cost scales with pixels × width². */
  vaeDecoderWidth: number;
  /** Latent size must divide by this: 2^(len(unet.block_out_channels) − 1) (8 for SD 1.5). */
  unetDownscale: number;
  /** diffusers' default image size: unet.sample_size × vaeScaleFactor (512 for SD 1.5). */
  defaultWidth: number;
  defaultHeight: number;
  /** VAE decode input is latents / scalingFactor (+ shiftFactor when the config has one). */
  scalingFactor: number;
  shiftFactor: number | null;
  /** Text encoder output width D and token sequence length L (77). */
  textHiddenSize: number;
  textLength: number;
}

export interface DiffusionModels {
  readonly info: ModelInfo;
  /** scheduler/scheduler_config.json as written. */
  readonly schedulerConfig: Record<string, unknown>;
  tokenize(text: string): EncodedPrompt;
  /** ids: B rows of textLength ids → last_hidden_state [B, L, D]. */
  encodeText(ids: number[][]): Promise<Float32Array>;
  /** sample [B, C, h, w], one timestep for the whole batch, text [B, L, D] → ε [B, C, h, w]. */
  predictNoise(sample: Float32Array, batch: number, height: number, width: number, timestep: number, text: Float32Array): Promise<Float32Array>;
  /** Scaled latents z [1, C, h, w] → image [1, 3, h·s, w·s] in ~[−1, 1]. */
  decodeLatents(z: Float32Array, height: number, width: number): Promise<Float32Array>;
}
