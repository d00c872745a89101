// fisedit generate: load the model, run the generate recipe with a progress bar and Ctrl-C abort, write
// the PNG (with metadata) and optionally the final latents, print a summary or one JSON object.
import { randomInt } from 'node:crypto';
import * as path from 'node:path';
import { writePng } from '../../engine/image/png';
import { readNpy, writeNpy } from '../../engine/io/npy';
import { halfToFloat } from '../../engine/model/tensor';
import { DiffusionEngine, RECORDING_ENGINE_COMPONENTS } from '../../engine/pipeline/engine';
import { loadModelFolder, type ModelFolder } from '../../engine/model/modelFolder';
import { generateNode, type GenerateNodeResult } from '../../engine/pipeline/editRecord';
import { checkGenerateSettings, GenerateInputError, GenerationAbortedError, type GenerateResult } from '../../engine/pipeline/generate';
import { releaseEditComponents } from '../../engine/pipeline/editUNet';
import { SchedulerConfigError, type SchedulerName } from '../../engine/scheduler';
import { StateDirError } from '../../engine/state/nodeStore';
import { CliError, EXIT, inPhase } from '../exitCodes';
import { GENERATE_HELP } from '../help';
import { resolveModelDir } from '../modelDir';
import { optionalFloat, optionalInt, parseOptions, requireString } from '../options';
import { defaultProgressMode, ProgressBar } from '../progressBar';
import type { CliIo } from './io';
import { loadStateContext, openStateStore } from './stateContext';
import { abortOnSigint } from '../sigintAbort';
import { DEVICE_OPTION, parseDevice, requireDevice } from '../device';
import { GRAPH_CACHE_OPTION, graphCacheFor } from '../graphCacheOption';
import { parseWeights, WEIGHTS_OPTION } from '../weightsOption';

const SPEC = {
  model: { type: 'string', short: 'm' },
  prompt: { type: 'string', short: 'p' },
  negative: { type: 'string' },
  seed: { type: 'string' },
  steps: { type: 'string' },
  guidance: { type: 'string' },
  scheduler: { type: 'string' },
  width: { type: 'string' },
  height: { type: 'string' },
  'init-latents': { type: 'string' },
  'save-latents': { type: 'string' },
  state: { type: 'string' },
  out: { type: 'string', short: 'o' },
  json: { type: 'boolean' },
  threads: { type: 'string' },
  ...DEVICE_OPTION,
  ...GRAPH_CACHE_OPTION,
  ...WEIGHTS_OPTION,
  variant: { type: 'string' },
  progress: { type: 'string' },
  quiet: { type: 'boolean', short: 'q' },
  help: { type: 'boolean', short: 'h' },
} as const;

interface InitLatents {
  data: Float32Array;
  channels: number;
  height: number;
  width: number;
}

/** .npy float32/float16, shape [1, C, h, w] or [C, h, w]. */
function readInitLatents(file: string): InitLatents {
  const arr = readNpy(file);
  const shape = arr.shape.length === 3 ? [1, ...arr.shape] : arr.shape;
  if (shape.length !== 4 || shape[0] !== 1) throw new Error(`${file}: init latents must have shape [1, C, h, w] (got [${arr.shape.join(', ')}])`);
  let data: Float32Array;
  if (arr.dtype === 'float32') data = arr.data as Float32Array;
  else if (arr.dtype === 'float16') data = Float32Array.from(arr.data as Uint16Array, halfToFloat);
  else throw new Error(`${file}: init latents must be float32 or float16 (got ${arr.dtype})`);
  return { data, channels: shape[1], height: shape[2], width: shape[3] };
}

/** Seeds above 2^53 stay exact in JSON as strings. */
function seedJson(seed: bigint | null): number | string | null {
  if (seed === null) return null;
  return seed <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(seed) : seed.toString();
}

function withCommandName<T>(fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof GenerateInputError) throw new CliError(EXIT.usage, `generate: ${e.message}`);
    throw e;
  }
}

const round1 = (ms: number) => Math.round(ms * 10) / 10;

export async function generateCommand(argv: string[], io: CliIo): Promise<number> {
  const o = parseOptions(argv, SPEC, 'generate');
  if (o.help) {
    io.stdout.write(GENERATE_HELP);
    return EXIT.ok;
  }
  // 1. arguments, checked before the (slow) model load
  const prompt = requireString(o.prompt, 'prompt', 'generate');
  const initFile = o['init-latents'];
  if (initFile !== undefined && o.seed !== undefined) throw new CliError(EXIT.usage, 'generate: --seed and --init-latents exclude each other (the file replaces the seeded noise)');
  const seedArg = o.seed ?? (initFile === undefined ? String(randomInt(2 ** 47)) : undefined);
  const threads = optionalInt(o.threads, 'threads');
  if (threads !== undefined && threads < 1) throw new CliError(EXIT.usage, '--threads must be ≥ 1');
  const device = parseDevice(o.device, 'generate');
  const settings = await inPhase(EXIT.usage, () =>
    withCommandName(() => checkGenerateSettings({
      prompt,
      negativePrompt: o.negative,
      seed: seedArg,
      steps: optionalInt(o.steps, 'steps'),
      guidance: optionalFloat(o.guidance, 'guidance'),
      scheduler: o.scheduler as SchedulerName | undefined,
    })),
  );
  const progressMode = o.quiet ? 'none' : (o.progress ?? defaultProgressMode(io.stderr));
  if (progressMode !== 'bar' && progressMode !== 'lines' && progressMode !== 'none') {
    throw new CliError(EXIT.usage, `generate: --progress must be bar, lines or none (got ${JSON.stringify(progressMode)})`);
  }
  const width = optionalInt(o.width, 'width');
  const height = optionalInt(o.height, 'height');
  const modelDir = resolveModelDir(o.model);
  const init = initFile === undefined ? null : await inPhase(EXIT.io, () => readInitLatents(path.resolve(initFile)));
  const out = path.resolve(o.out ?? `fisedit-${settings.seed ?? 'init'}.png`);
  const store = o.state === undefined ? null : await openStateStore(o.state, 'generate', true);
  const graphs = graphCacheFor(o['graph-cache'], store?.dir, io.stderr, 'generate');
  const weights = parseWeights(o.weights, 'generate');

  // 2. model
  const loadStart = performance.now();
  await requireDevice(device, 'generate');
  const variant = typeof o.variant === 'string' ? o.variant : undefined;
  // With --state the engine and the recording UNet share one read of the folder (4.1 GB at SD 1.5).
  let folder: ModelFolder | undefined = store ? await inPhase(EXIT.model, () => loadModelFolder(modelDir, { variant })) : undefined;
  const engine = await inPhase(EXIT.model, () => DiffusionEngine.load(modelDir, { intraOpNumThreads: threads, sessionOptions: { device, graphCache: graphs?.cache }, weights, variant, components: store ? RECORDING_ENGINE_COMPONENTS : undefined, folder }));
  // --state: the recording UNet and the cache beside the store (loading them counts as model loading)
  const ctx = store ? await loadStateContext(engine, store, { threads, sparse: false, graphCache: graphs?.cache, weights, folder }).catch(async (e) => {
    await engine.dispose();
    throw e;
  }) : null;
  folder = undefined; // the sessions hold their own copies: let the weights go
  const loadMs = performance.now() - loadStart;
  try {
    // 3. generate, Ctrl-C aborting between steps (a second Ctrl-C exits at once)
    const abort = abortOnSigint();
    const bar = new ProgressBar(io.stderr, 'steps', progressMode);
    let result: GenerateResult;
    let node: GenerateNodeResult | null = null;
    try {
      const request = {
        ...settings,
        seed: settings.seed ?? undefined,
        width: width ?? (init ? init.width * engine.info.vaeScaleFactor : undefined),
        height: height ?? (init ? init.height * engine.info.vaeScaleFactor : undefined),
        initLatents: init?.data,
      };
      const opts = { signal: abort.signal, onStep: (p: { step: number; total: number }) => bar.update(p.step, p.total) };
      if (ctx) {
        node = await generateNode(ctx, request, opts);
        result = node.result;
      } else {
        result = await engine.generate(request, opts);
      }
    } catch (e) {
      if (e instanceof GenerateInputError) throw new CliError(EXIT.usage, `generate: ${e.message}`);
      if (e instanceof GenerationAbortedError) throw new CliError(EXIT.interrupted, `generate: ${e.message}`);
      if (e instanceof StateDirError) throw new CliError(EXIT.io, `generate: ${e.message}`);
      if (e instanceof SchedulerConfigError) throw new CliError(EXIT.model, `generate: ${engine.info.dir}${path.sep}${e.message}`);
      throw new CliError(EXIT.inference, `generate: ${(e as Error).message}`);
    } finally {
      bar.finish();
      abort.release();
    }

    // 4. outputs
    const writeStart = performance.now();
    const metadata: Record<string, string> = {
      prompt: result.prompt,
      negative: result.negativePrompt,
      ...(result.seed !== null ? { seed: result.seed.toString() } : { init_latents: path.basename(initFile as string) }),
      steps: String(result.steps),
      scheduler: result.scheduler,
      guidance: String(result.guidance),
      model: engine.info.name,
      width: String(result.width),
      height: String(result.height),
      Software: 'fisedit',
    };
    await inPhase(EXIT.io, () => writePng(out, result.rgb, result.width, result.height, metadata));
    const saveLatents = o['save-latents'] === undefined ? null : path.resolve(o['save-latents']);
    if (saveLatents) await inPhase(EXIT.io, () => writeNpy(saveLatents, { dtype: 'float32', shape: result.latentShape, data: result.latents }));
    const writeMs = performance.now() - writeStart;

    // 5. report
    if (o.json) {
      const summary = {
        ...(node ? { nodeId: node.record.id, parentId: null, mode: 'DENSE', state: store!.dir, cacheBytes: node.cacheBytes, recording: node.recording } : {}),
        out,
        model: engine.info.name,
        modelDir: engine.info.dir,
        device: engine.device,
        attention: engine.attention,
        prompt: result.prompt,
        negative: result.negativePrompt,
        seed: seedJson(result.seed),
        initLatents: initFile === undefined ? null : path.resolve(initFile),
        steps: result.steps,
        guidance: result.guidance,
        scheduler: result.scheduler,
        width: result.width,
        height: result.height,
        promptTruncated: result.promptTruncated,
        negativeTruncated: result.negativeTruncated,
        saveLatents,
        weights,
        graphCache: graphs?.use ?? null,
        timings: {
          loadModel: round1(loadMs),
          ...Object.fromEntries(Object.entries(result.timings).map(([k, v]) => [k, round1(v)])),
          ...(node ? { saveNode: round1(node.saveMs) } : {}),
          writeOutput: round1(writeMs),
        },
        totalMs: round1(result.totalMs),
      };
      io.stdout.write(`${JSON.stringify(summary)}\n`);
    } else {
      const seedText = result.seed !== null ? `seed ${result.seed}` : `init latents ${initFile}`;
      io.stdout.write(`${out}: ${result.width}×${result.height}, ${seedText}, ${result.steps} ${result.scheduler} steps, guidance ${result.guidance}, ${(result.totalMs / 1000).toFixed(2)} s\n`);
      if (node) io.stdout.write(`node ${node.record.id} in ${store!.dir}\n`);
      if (result.promptTruncated) io.stderr.write('warning: the prompt was longer than the text encoder takes and was truncated\n');
    }
    return EXIT.ok;
  } finally {
    await releaseEditComponents(ctx);
    await engine.dispose();
  }
}
