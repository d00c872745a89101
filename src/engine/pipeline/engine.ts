// DiffusionEngine: one model folder loaded once, its three graphs built and held as onnxruntime
// sessions. A server hosts it in a worker thread (session.run blocks the JS thread, DESIGN.md); the CLI
// runs it inline. Calls to generate() are serialised: an ORT session must not run twice at once.
import { buildClipTextGraph } from '../arch/clipText';
import { buildUNetGraph } from '../arch/unet';
import { buildVaeDecoderGraph } from '../arch/vaeDecoder';
import type { WeightFormat } from '../graph/graphBuilder';
import { loadModelFolder, type LoadModelFolderOptions, type ModelFolder } from '../model/modelFolder';
import { createSession, float32Tensor, int64Tensor, TEXT_ENCODER_SPINNING, type DeviceTensor, type EngineDevice, type OrtModelSession, type SessionOptions } from '../runtime/ortSession';
import { resolveWebgpuAttention, type AttentionChoice } from '../runtime/attentionProbe';
import { graphOptionsFor, webgpuAttentionForm } from '../runtime/deviceGraphs';
import { ClipTokenizer, type EncodedPrompt } from '../tokenizer/clipTokenizer';
import { generate, type GenerateOptions, type GenerateRequest, type GenerateResult } from './generate';
import type { DiffusionModels, ModelInfo } from './models';

export type EngineComponent = 'textEncoder' | 'unet' | 'vae';

/** Components of an engine whose dense steps run on the edit pipeline's recording session (adoptUNet). */
export const RECORDING_ENGINE_COMPONENTS: readonly EngineComponent[] = ['textEncoder', 'vae'];

export interface EngineLoadOptions extends LoadModelFolderOptions {
  /** onnxruntime intra-op threads per session (default: all cores). */
  intraOpNumThreads?: number;
  /** Sessions to create (default all three); e.g. ['textEncoder'] for encode-text. The folder is always checked whole. */
  components?: readonly EngineComponent[];
  sessionOptions?: Omit<SessionOptions, 'intraOpNumThreads'>;
  /** UNet weight storage (default 'fp32'; 'int8': graph/quantizedWeights.ts). The text encoder and VAE stay fp32. */
  weights?: WeightFormat;
  /** `dir` already read (loadModelFolder): reused instead of reading its weights again (4.1 GB at SD 1.5). */
  folder?: ModelFolder;
}

/**
 * The text encoder's second output, the same embeddings kept in device memory (webgpu): every UNet step
 * of a run reads them from there instead of uploading [B, 77, D] floats again (bench/gpu/copies.ts).
 */
const TEXT_ON_DEVICE = 'last_hidden_state_on_device';

/** Text-encoder rows kept by encodeText (236 KB each at SD width): a parent's and a child's prompts and negatives. */
const TEXT_MEMO_ROWS = 8;

export class EngineStateError extends Error {
  constructor(reason: string) {
    super(`engine: ${reason}`);
    this.name = 'EngineStateError';
  }
}

/** What DiffusionEngine.attention reports: on WebGPU the form its graphs were built with, and why. */
function attentionReport(device: EngineDevice | undefined, choice: AttentionChoice | null): DiffusionEngine['attention'] {
  if (device !== 'webgpu') return null;
  return { form: webgpuAttentionForm(), reason: choice ? `auto, ${choice.reason}` : 'set by FISEDIT_WEBGPU_ATTENTION' };
}

export class DiffusionEngine implements DiffusionModels {
  private queue: Promise<unknown> = Promise.resolve();
  private disposed = false;
  /** False once predictNoise runs on an adopted session (adoptUNet), which its owner releases. */
  private ownsUNet = true;
  /** The last encodeText result and its device copy (webgpu); predictNoise feeds the copy when given that array. */
  private textOnDevice: { host: Float32Array; device: DeviceTensor } | null = null;
  /** Text-encoder rows by their ids (encodeRows), least recently used first. */
  private readonly textMemo = new Map<string, Float32Array>();

  private constructor(
    readonly info: ModelInfo,
    readonly schedulerConfig: Record<string, unknown>,
    readonly tokenizer: ClipTokenizer,
    private readonly textEncoder: OrtModelSession | null,
    private unet: OrtModelSession | null,
    private readonly vaeDecoder: OrtModelSession | null,
    /** Model folder read + graph build + session creation, ms. */
    readonly loadMs: number,
    /** Where every session of this engine runs (EngineLoadOptions.sessionOptions.device); edit components load on it too. */
    readonly device: EngineDevice,
    /** The attention form its graphs build on WebGPU ('cpu'/'cuda': null, the builder's fused default). */
    readonly attention: { form: string; reason: string } | null = null,
  ) {}

  /**
   * Loads and checks the folder (ModelFolderError on any problem), builds the graphs and creates the
   * sessions. The weights are not kept: after this the sessions own the only copy.
   */
  static async load(dir: string, opts: EngineLoadOptions = {}): Promise<DiffusionEngine> {
    const t0 = performance.now();
    const folder = opts.folder ?? loadModelFolder(dir, { variant: opts.variant });
    const tk = folder.tokenizer;
    const tokenizer = ClipTokenizer.fromFiles(tk.vocabFile, tk.mergesFile, tk.configFile, tk.specialTokensMapFile ?? undefined);
    const { unet, textEncoder, vae } = folder;
    const info: ModelInfo = {
      name: folder.name,
      dir: folder.dir,
      variant: folder.variant,
      latentChannels: vae.config.latentChannels,
      vaeScaleFactor: 2 ** (vae.config.blockOutChannels.length - 1),
      vaeDecoderWidth: Math.max(...vae.config.blockOutChannels),
      unetDownscale: 2 ** (unet.config.blockOutChannels.length - 1),
      defaultWidth: unet.config.sampleSize * 2 ** (vae.config.blockOutChannels.length - 1),
      defaultHeight: unet.config.sampleSize * 2 ** (vae.config.blockOutChannels.length - 1),
      scalingFactor: vae.config.scalingFactor,
      shiftFactor: vae.config.shiftFactor,
      textHiddenSize: textEncoder.config.hiddenSize,
      textLength: tokenizer.maxLength,
    };
    const sessionOpts: SessionOptions = { ...opts.sessionOptions, intraOpNumThreads: opts.intraOpNumThreads };
    const want = new Set<EngineComponent>(opts.components ?? ['textEncoder', 'unet', 'vae']);
    // On WebGPU the attention form is checked on this machine first (FISEDIT_WEBGPU_ATTENTION=auto).
    const choice = sessionOpts.device === 'webgpu' ? await resolveWebgpuAttention(unet.config, textEncoder.config, process.env, info.textLength) : null;
    const graph = graphOptionsFor(sessionOpts.device);
    // Build and load one graph at a time so only one serialised model is alive at once.
    let textSession: OrtModelSession | null = null;
    if (want.has('textEncoder')) {
      const clip = buildClipTextGraph(textEncoder.config, textEncoder.weights, { seqLength: info.textLength, graph });
      const keep = sessionOpts.device === 'webgpu';
      if (keep) clip.g.output(TEXT_ON_DEVICE, 'last_hidden_state', 'float32', ['batch', info.textLength, info.textHiddenSize]);
      textSession = await createSession(clip.g.build(), { spinning: TEXT_ENCODER_SPINNING, ...sessionOpts, deviceOutputs: keep ? [TEXT_ON_DEVICE] : [] });
    }
    const unetGraph = { ...graph, weights: opts.weights ?? 'fp32' };
    const unetSession = want.has('unet') ? await createSession(buildUNetGraph(unet.config, unet.weights, { graph: unetGraph }).g.build(), sessionOpts) : null;
    const vaeSession = want.has('vae') ? await createSession(buildVaeDecoderGraph(vae.config, vae.weights, { graph }).g.build(), sessionOpts) : null;
    return new DiffusionEngine(info, folder.schedulerConfig, tokenizer, textSession, unetSession, vaeSession, performance.now() - t0, sessionOpts.device ?? 'cpu', attentionReport(sessionOpts.device, choice));
  }

  tokenize(text: string): EncodedPrompt {
    return this.tokenizer.encode(text);
  }

  async encodeText(ids: number[][]): Promise<Float32Array> {
    const session = this.session(this.textEncoder, 'textEncoder');
    const L = this.info.textLength;
    const flat: number[] = [];
    for (const row of ids) {
      if (row.length !== L) throw new RangeError(`encodeText: each id row must have ${L} ids (got ${row.length})`);
      flat.push(...row);
    }
    if (!session.deviceOutputs.includes(TEXT_ON_DEVICE)) return this.encodeRows(session, ids);
    const feeds = { input_ids: int64Tensor(flat, [ids.length, L]) };
    const out = await session.runWithDevice(feeds, ['last_hidden_state', TEXT_ON_DEVICE]);
    const host = out.host.last_hidden_state.data as Float32Array;
    // Callers pass this same array to every step and never write to it; one run's embeddings at a time.
    this.textOnDevice?.device.release();
    this.textOnDevice = { host, device: out.device[TEXT_ON_DEVICE] };
    return host;
  }

  /**
   * [B, L, D] with the rows seen lately taken from a memo: an edit encodes its parent's negative prompt
   * again, and a regeneration its own (full CLIP at SD width: ~90 ms a row on 2 cores, ~10 % of an
   * 8-step edit). Each row is computed alone in the text encoder (no batch interaction), so a memo hit is
   * the same bits as running it in the batch (test/engine/pipeline/textMemo.test.ts).
   */
  private async encodeRows(session: OrtModelSession, ids: number[][]): Promise<Float32Array> {
    const L = this.info.textLength;
    const D = this.info.textHiddenSize;
    const keys = ids.map((row) => row.join(','));
    const todo = [...new Set(keys.filter((k) => !this.textMemo.has(k)))];
    if (todo.length) {
      const rows = todo.map((k) => keys.indexOf(k));
      const flat = rows.flatMap((r) => ids[r]);
      const out = (await session.run({ input_ids: int64Tensor(flat, [rows.length, L]) }, ['last_hidden_state'])).last_hidden_state.data as Float32Array;
      todo.forEach((k, i) => this.textMemo.set(k, out.slice(i * L * D, (i + 1) * L * D)));
    }
    const result = new Float32Array(ids.length * L * D);
    keys.forEach((k, i) => {
      const row = this.textMemo.get(k)!;
      result.set(row, i * L * D);
      // Most recently used last; the oldest go first.
      this.textMemo.delete(k);
      this.textMemo.set(k, row);
    });
    while (this.textMemo.size > TEXT_MEMO_ROWS) this.textMemo.delete(this.textMemo.keys().next().value!);
    return result;
  }

  async predictNoise(sample: Float32Array, batch: number, height: number, width: number, timestep: number, text: Float32Array): Promise<Float32Array> {
    const session = this.session(this.unet, 'unet');
    const C = this.info.latentChannels;
    const D = this.info.textHiddenSize;
    const L = text.length / (batch * D);
    const out = await session.run(
      {
        sample: float32Tensor(sample, [batch, C, height, width]),
        timestep: float32Tensor(new Float32Array(batch).fill(timestep), [batch]),
        encoder_hidden_states: this.textOnDevice?.host === text ? this.textOnDevice.device : float32Tensor(text, [batch, L, D]),
      },
      ['noise_pred'],
    );
    return out.noise_pred.data as Float32Array; // [B, C, h, w]
  }

  async decodeLatents(z: Float32Array, height: number, width: number): Promise<Float32Array> {
    const out = await this.session(this.vaeDecoder, 'vae').run({ latents: float32Tensor(z, [1, this.info.latentChannels, height, width]) }, ['image']);
    return out.image.data as Float32Array; // [1, 3, H, W]
  }

  /**
   * Run predictNoise on another session with the dense UNet's inputs and a `noise_pred` output: the
   * edit pipeline's recording graph, which is this UNet plus cache outputs (only noise_pred is fetched).
   * An engine that records then holds one UNet copy less (3.4 GB at SD 1.5 width) and, loaded without
   * its own ('unet' left out of EngineLoadOptions.components), starts one session build sooner. Our own
   * session, if any, is released; the adopted one stays its owner's to release, after this engine's last use.
   */
  adoptUNet(session: OrtModelSession): Promise<void> {
    const missing = [...['sample', 'timestep', 'encoder_hidden_states'].filter((n) => !session.inputNames.includes(n)), ...(session.outputNames.includes('noise_pred') ? [] : ['noise_pred'])];
    if (missing.length) return Promise.reject(new EngineStateError(`adoptUNet: the session lacks ${missing.join(', ')}`));
    return this.exclusive(async () => {
      const own = this.ownsUNet ? this.unet : null;
      this.unet = session;
      this.ownsUNet = false;
      await own?.release();
    });
  }

  /** Runs the generate recipe; concurrent calls wait their turn. */
  generate(request: GenerateRequest, options: GenerateOptions = {}): Promise<GenerateResult> {
    return this.exclusive(() => generate(this, request, options));
  }

  /** Text embeddings [1, L, D] of one prompt (what the UNet's cross-attention sees). */
  encodePrompt(prompt: string): Promise<{ encoded: EncodedPrompt; hidden: Float32Array }> {
    return this.exclusive(async () => {
      const encoded = this.tokenize(prompt);
      return { encoded, hidden: await this.encodeText([encoded.ids]) };
    });
  }

  async dispose(): Promise<void> {
    if (this.disposed) return;
    await this.queue.catch(() => undefined);
    this.disposed = true;
    this.textOnDevice?.device.release();
    this.textOnDevice = null;
    await Promise.all([this.textEncoder?.release(), this.ownsUNet ? this.unet?.release() : undefined, this.vaeDecoder?.release()]);
  }

  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.catch(() => undefined).then(() => {
      this.checkLive();
      return fn();
    });
    this.queue = run;
    return run;
  }

  private session(s: OrtModelSession | null, name: EngineComponent): OrtModelSession {
    this.checkLive();
    if (!s) throw new EngineStateError(`the ${name} session was not loaded (EngineLoadOptions.components)`);
    return s;
  }

  private checkLive(): void {
    if (this.disposed) throw new EngineStateError('used after dispose()');
  }
}
