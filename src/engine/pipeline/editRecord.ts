// Recording nodes for later edits:
// - generateNode: `fisedit generate --state DIR`. Runs the ordinary generate recipe (so the image is
//   the one generate gives for these settings) while keeping the latents of every step and, when a
//   recording UNet is available, the activations of every step as full cache entries.
// - rerecordNode: rebuilds a node's activations from its STORED latents, one recording UNet call per
//   requested step. The latents are the exact input of each step, so this reproduces what the node
//   saw for roots and edits alike, without the scheduler and without re-running the edit.

import { gaussianFloat32 } from '../random/gaussian';
import { createScheduler } from '../scheduler';
import type { NodeRecord } from '../state/nodeRecord';
import { putDecoderEntries } from './editDecode';
import { StepInputs } from './denoiseLoop';
import { putRecordedStep, recordingModels, recordingUNetCall } from './editUNet';
import type { StateContext } from './editTypes';
import { generate, GENERATE_DEFAULTS, GenerationAbortedError, type GenerateOptions, type GenerateRequest, type GenerateResult } from './generate';
import { rootRecording, stepCostsFor } from './stepCosts';
import type { DiffusionModels } from './models';

export interface GenerateNodeResult {
  record: NodeRecord;
  result: GenerateResult;
  /** Bytes of the node's recorded activations (0 when nothing was recorded). */
  cacheBytes: number;
  /** Writing the node into the store, ms (not in result.totalMs). */
  saveMs: number;
  /** Whether and why the node's activations were recorded (stepCosts.rootRecording). */
  recording: string;
}

/** rootRecording for this request, from the context's step-cost table (record when it has none). */
function rootRecordingFor(ctx: StateContext, request: GenerateRequest): { record: boolean; reason: string } {
  const { info } = ctx.models;
  const guidance = request.guidance ?? GENERATE_DEFAULTS.guidance;
  const table = stepCostsFor(ctx, request.width ?? info.defaultWidth, request.height ?? info.defaultHeight, guidance > 1 ? 2 : 1);
  return rootRecording(table ? table.book.get(table.key) : null, request.steps ?? GENERATE_DEFAULTS.steps);
}

/** Text embeddings as the pipelines batch them: [negative, prompt] with guidance > 1, else [prompt]. */
export async function encodeCfgText(models: DiffusionModels, prompt: string, negative: string, guidance: number): Promise<{ text: Float32Array; batch: number }> {
  const p = models.tokenize(prompt);
  if (guidance > 1) return { text: await models.encodeText([models.tokenize(negative).ids, p.ids]), batch: 2 };
  return { text: await models.encodeText([p.ids]), batch: 1 };
}

export async function generateNode(ctx: StateContext, request: GenerateRequest, options: GenerateOptions = {}): Promise<GenerateNodeResult> {
  const { store, cache, unet } = ctx;
  const id = store.newId();
  const recording = cache !== null && unet !== null ? rootRecordingFor(ctx, request) : { record: false, reason: 'not recorded: no recording UNet or activation cache is open' };
  const record = cache !== null && unet !== null && recording.record; // (restated: TypeScript narrows cache and unet through it)
  const steps: Float32Array[] = [];
  let cacheBytes = 0;
  if (record) await cache.createNode(id, null);
  try {
    const stepModels = record ? recordingModels(ctx.models, unet, async (step, entries) => void (cacheBytes += await putRecordedStep(cache, id, step, unet, entries))) : ctx.models;
    // The decode goes through the region decoder when there is one: same image, plus the context
    // (GroupNorm statistics, mid-attention K/V) that its children's region decodes use.
    let decoderContext: Float32Array | null = null;
    const { decoder } = ctx;
    const models: DiffusionModels = decoder
      ? {
          ...stepModels,
          tokenize: (t) => stepModels.tokenize(t),
          encodeText: (ids) => stepModels.encodeText(ids),
          predictNoise: (...a) => stepModels.predictNoise(...a),
          async decodeLatents(z, h, w) {
            const r = await decoder.decodeRecording(z, h, w, { entries: record });
            decoderContext = decoder.pack(r.context);
            // The decoder's conv inputs: the halos of its children's sparse decodes.
            if (record && r.entries.size) cacheBytes += await putDecoderEntries(cache, id, r.entries);
            return r.image;
          },
        }
      : stepModels;
    const result = await generate(models, request, {
      signal: options.signal,
      onStep: async (p) => {
        steps.push(p.latents);
        if (options.onStep) await options.onStep(p);
      },
    });
    const saveStart = performance.now();
    // Entry 0 is the first step's input: the unit noise × init sigma, computed as generate computes it.
    const scheduler = createScheduler(result.scheduler, ctx.models.schedulerConfig);
    scheduler.setTimesteps(result.steps);
    const sigma0 = Math.fround(scheduler.initNoiseSigma);
    const [, C, h, w] = result.latentShape;
    const noise = request.initLatents ?? gaussianFloat32(result.seed as bigint, C * h * w);
    const all = new Float32Array((result.steps + 1) * C * h * w);
    all.set(noise.map((v) => Math.fround(v * sigma0)), 0);
    steps.forEach((s, i) => all.set(s, (i + 1) * C * h * w));
    if (record && cache.spill) await cache.persist();
    const rec = await store.commit({
      id,
      rgb: result.rgb,
      latents: all,
      noise: result.seed === null ? noise : null,
      decoderContext,
      pngText: pngText(ctx.models.info.name, result.prompt, result.negativePrompt, result.seed, result.steps, result.scheduler, result.guidance, result.width, result.height),
      record: {
        parentId: null,
        model: ctx.models.info.name,
        modelDir: ctx.models.info.dir,
        ...(ctx.unet?.weights && ctx.unet.weights !== 'fp32' ? { weights: ctx.unet.weights } : {}),
        prompt: result.prompt,
        negativePrompt: result.negativePrompt,
        seed: result.seed === null ? null : result.seed.toString(),
        steps: result.steps,
        guidance: result.guidance,
        scheduler: result.scheduler,
        width: result.width,
        height: result.height,
        latentShape: [C, h, w],
        timesteps: result.timesteps,
        mode: 'DENSE',
        maskedFraction: null,
        denseSteps: result.steps,
        timings: { ...result.timings },
        totalMs: result.totalMs,
        cache: { recorded: record, base: null, names: record ? unet.manifest.map((s) => s.name) : [], bytes: cacheBytes },
        edit: null,
      },
    });
    return { record: rec, result, cacheBytes, saveMs: performance.now() - saveStart, recording: recording.reason };
  } catch (e) {
    if (record) await cache.deleteNode(id).catch(() => undefined);
    throw e;
  }
}

export function pngText(model: string, prompt: string, negative: string, seed: bigint | string | null, steps: number, scheduler: string, guidance: number, width: number, height: number): Record<string, string> {
  return {
    prompt,
    negative,
    ...(seed !== null ? { seed: seed.toString() } : {}),
    steps: String(steps),
    scheduler,
    guidance: String(guidance),
    model,
    width: String(width),
    height: String(height),
    Software: 'fisedit',
  };
}

/**
 * Record `rec`'s activations at `steps` from its stored latents, as full entries of node rec.id
 * (replacing deltas there, so the node no longer depends on its base at those steps).
 * onStep is called after each recorded step. Returns the bytes written.
 */
export async function rerecordNode(
  ctx: StateContext,
  rec: NodeRecord,
  steps: readonly number[],
  opts: { latents?: Float32Array; signal?: AbortSignal; onStep?: () => void | Promise<void> } = {},
): Promise<number> {
  const { cache, unet, models } = ctx;
  if (!cache || !unet) throw new Error('rerecordNode: needs an activation cache and a recording UNet');
  const latents = opts.latents ?? ctx.store.readLatents(rec);
  const { text, batch } = await encodeCfgText(models, rec.prompt, rec.negativePrompt, rec.guidance);
  const scheduler = createScheduler(rec.scheduler, models.schedulerConfig);
  scheduler.setTimesteps(rec.steps);
  const [C, h, w] = rec.latentShape;
  const n = C * h * w;
  if (!cache.hasNode(rec.id)) await cache.createNode(rec.id, null);
  let bytes = 0;
  // The stored latents are each step's exact input: the model-input part of the shared step, no scheduler step.
  const inputs = new StepInputs(scheduler, batch, n);
  const record = recordingUNetCall(unet, h, w, text, async (step, entries) => void (bytes += await putRecordedStep(cache, rec.id, step, unet, entries)));
  for (const [done, i] of steps.entries()) {
    if (opts.signal?.aborted) throw new GenerationAbortedError(done, steps.length);
    await record(inputs.at(latents.subarray(i * n, (i + 1) * n), i));
    if (opts.onStep) await opts.onStep();
  }
  return bytes;
}
