// fisedit edit: a child of a node in a --state directory (the FISEdit edit, engine/pipeline/edit.ts).
// Checks everything it can before loading the model (state directory, parent, prompt, mask size), runs
// the edit with the same progress bar and Ctrl-C handling as generate, writes the PNG and optionally
// the mask, and prints a summary or one JSON object.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { readUserMask, UserMaskError, writeMaskPng } from '../../engine/mask/userMask';
import { isCoarseCover } from '../../engine/mask/pyramid';
import { editNode } from '../../engine/pipeline/edit';
import { EditInputError, MASK_STRATEGIES, type EditResult, type MaskStrategy } from '../../engine/pipeline/editTypes';
import { DiffusionEngine, RECORDING_ENGINE_COMPONENTS } from '../../engine/pipeline/engine';
import { loadModelFolder, type ModelFolder } from '../../engine/model/modelFolder';
import { GenerationAbortedError } from '../../engine/pipeline/generate';
import { releaseEditComponents } from '../../engine/pipeline/editUNet';
import { StateDirError, UnknownNodeError, type NodeStore } from '../../engine/state/nodeStore';
import type { NodeRecord } from '../../engine/state/nodeRecord';
import { CliError, EXIT, inPhase } from '../exitCodes';
import { EDIT_HELP } from '../help';
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
  state: { type: 'string' },
  parent: { type: 'string' },
  prompt: { type: 'string', short: 'p' },
  negative: { type: 'string' },
  mask: { type: 'string' },
  strategy: { type: 'string' },
  'capture-steps': { type: 'string' },
  dilation: { type: 'string' },
  'coarse-cover': { type: 'string' },
  'dense-above': { type: 'string' },
  'cache-fallback': { type: 'string' },
  'save-mask': { type: 'string' },
  decode: { type: 'string' },
  out: { type: 'string', short: 'o' },
  json: { type: 'boolean' },
  threads: { type: 'string' },
  ...DEVICE_OPTION,
  ...GRAPH_CACHE_OPTION,
  ...WEIGHTS_OPTION,
  progress: { type: 'string' },
  quiet: { type: 'boolean', short: 'q' },
  help: { type: 'boolean', short: 'h' },
} as const;

const round1 = (ms: number) => Math.round(ms * 10) / 10;
const round4 = (v: number) => Math.round(v * 1e4) / 1e4;

function usage(e: unknown): never {
  if (e instanceof EditInputError) throw new CliError(EXIT.usage, `edit: ${e.message}`);
  if (e instanceof UnknownNodeError) throw new CliError(EXIT.usage, `edit: ${e.message}`);
  if (e instanceof StateDirError) throw new CliError(EXIT.io, `edit: ${e.message}`);
  if (e instanceof UserMaskError) throw new CliError(/^cannot read/.test(e.reason) ? EXIT.io : EXIT.usage, `edit: --mask ${e.message}`);
  throw e;
}

function pickParent(store: NodeStore, id: string | undefined): NodeRecord {
  try {
    if (id !== undefined) return store.get(id);
    const latest = store.latest();
    if (!latest) throw new CliError(EXIT.usage, `edit: state directory ${store.dir} holds no nodes yet; create one with fisedit generate --state DIR`);
    return latest;
  } catch (e) {
    if (e instanceof CliError) throw e;
    return usage(e);
  }
}

/**
 * --model when given; else the folder the parent was made with (recorded in its node.json), which must
 * still exist; else (records from before the folder was recorded) the default model.
 */
function parentModelDir(parent: NodeRecord, flag: string | undefined): string {
  if (flag !== undefined || parent.modelDir === undefined) return resolveModelDir(flag);
  if (!fs.existsSync(parent.modelDir)) {
    throw new CliError(EXIT.model, `edit: node ${parent.id} was made with the model folder ${parent.modelDir}, which is missing; restore it or pass --model DIR with a copy of model "${parent.model}"`);
  }
  return parent.modelDir;
}

export async function editCommand(argv: string[], io: CliIo): Promise<number> {
  const o = parseOptions(argv, SPEC, 'edit');
  if (o.help) {
    io.stdout.write(EDIT_HELP);
    return EXIT.ok;
  }
  // 1. arguments and the state directory, checked before the (slow) model load
  const stateDir = requireString(o.state, 'state', 'edit');
  const prompt = requireString(o.prompt, 'prompt', 'edit');
  if (prompt.trim() === '') throw new CliError(EXIT.usage, 'edit: --prompt must not be empty: an edit is a new prompt for the parent');
  const strategy = (o.strategy ?? 'auto') as MaskStrategy;
  if (!MASK_STRATEGIES.includes(strategy)) throw new CliError(EXIT.usage, `edit: --strategy must be one of ${MASK_STRATEGIES.join(', ')} (got ${JSON.stringify(o.strategy)})`);
  const fallback = o['cache-fallback'] ?? 'rerecord';
  if (fallback !== 'rerecord' && fallback !== 'dense') throw new CliError(EXIT.usage, `edit: --cache-fallback must be rerecord or dense (got ${JSON.stringify(fallback)})`);
  const decode = o.decode ?? 'auto';
  if (decode !== 'auto' && decode !== 'crop' && decode !== 'full' && decode !== 'sparse') throw new CliError(EXIT.usage, `edit: --decode must be auto, sparse, crop or full (got ${JSON.stringify(o.decode)})`);
  const threads = optionalInt(o.threads, 'threads');
  if (threads !== undefined && threads < 1) throw new CliError(EXIT.usage, '--threads must be ≥ 1');
  const device = parseDevice(o.device, 'edit');
  const captureSteps = optionalInt(o['capture-steps'], 'capture-steps');
  const denseAbove = optionalFloat(o['dense-above'], 'dense-above');
  const dilation = optionalInt(o.dilation, 'dilation');
  if (dilation !== undefined && dilation < 0) throw new CliError(EXIT.usage, `edit: --dilation must be >= 0 (got ${dilation})`);
  const coarseCover = o['coarse-cover'] ?? 'any';
  if (!isCoarseCover(coarseCover)) throw new CliError(EXIT.usage, `edit: --coarse-cover must be any or half (got ${JSON.stringify(o['coarse-cover'])})`);
  const progressMode = o.quiet ? 'none' : (o.progress ?? defaultProgressMode(io.stderr));
  if (progressMode !== 'bar' && progressMode !== 'lines' && progressMode !== 'none') {
    throw new CliError(EXIT.usage, `edit: --progress must be bar, lines or none (got ${JSON.stringify(progressMode)})`);
  }
  const store = await openStateStore(stateDir, 'edit', false);
  const parent = pickParent(store, o.parent);
  const factor = parent.width / parent.latentShape[2];
  const mask = o.mask === undefined ? null : await readUserMask(path.resolve(o.mask), { imageWidth: parent.width, imageHeight: parent.height, factor }).catch(usage);
  const modelDir = parentModelDir(parent, o.model);
  const out = path.resolve(o.out ?? `fisedit-edit-of-${parent.id}.png`);
  const graphs = graphCacheFor(o['graph-cache'], store.dir, io.stderr, 'edit');
  // An edit's sparse steps read its parent's activations: it runs the weights the parent was made with.
  const parentWeights = parent.weights ?? 'fp32';
  const weights = parseWeights(o.weights, 'edit', parentWeights);
  if (weights !== parentWeights) throw new CliError(EXIT.usage, `edit: node ${parent.id} was made with --weights ${parentWeights}; its edits run the same weights (drop --weights or pass ${parentWeights})`);

  // 2. model, recording/sparse UNet, cache
  const loadStart = performance.now();
  await requireDevice(device, 'edit');
  // One read of the folder for the engine and the edit components (at SD width 4.1 GB, 2–9 s).
  let folder: ModelFolder | undefined = await inPhase(EXIT.model, () => loadModelFolder(modelDir));
  const engine = await inPhase(EXIT.model, () => DiffusionEngine.load(modelDir, { intraOpNumThreads: threads, sessionOptions: { device, graphCache: graphs?.cache }, weights, components: RECORDING_ENGINE_COMPONENTS, folder }));
  if (engine.info.name !== parent.model) {
    await engine.dispose();
    throw new CliError(EXIT.usage, `edit: node ${parent.id} was made with model "${parent.model}", but --model loads "${engine.info.name}" (${modelDir}); pass the parent's model folder`);
  }
  let ctx;
  try {
    ctx = await loadStateContext(engine, store, { threads, sparse: true, graphCache: graphs?.cache, weights, folder });
  } catch (e) {
    await engine.dispose();
    throw e;
  }
  folder = undefined; // the sessions hold their own copies: let the weights go
  const loadMs = performance.now() - loadStart;
  try {
    // 3. edit, Ctrl-C aborting between steps (a second Ctrl-C exits at once)
    const abort = abortOnSigint();
    const bar = new ProgressBar(io.stderr, 'steps', progressMode);
    let r: EditResult;
    try {
      r = await editNode(
        ctx,
        { parentId: parent.id, prompt, negativePrompt: o.negative, strategy, mask, captureSteps, maskDilation: dilation, coarseCover, denseAboveFraction: denseAbove, cacheFallback: fallback, decode },
        { signal: abort.signal, onStep: (p) => bar.update(p.done, p.total) },
      );
    } catch (e) {
      if (e instanceof GenerationAbortedError) throw new CliError(EXIT.interrupted, `edit: ${e.message}`);
      if (e instanceof EditInputError || e instanceof UnknownNodeError || e instanceof StateDirError || e instanceof UserMaskError) usage(e);
      throw new CliError(EXIT.inference, `edit: ${(e as Error).message}`);
    } finally {
      bar.finish();
      abort.release();
    }

    // 4. outputs: the node's PNG (with its metadata) and optionally the mask
    const writeStart = performance.now();
    await inPhase(EXIT.io, () => fs.copyFileSync(path.join(store.nodeDir(r.node.id), r.node.files.image), out));
    const saveMask = o['save-mask'] === undefined ? null : path.resolve(o['save-mask']);
    if (saveMask) await inPhase(EXIT.io, () => writeMaskPng(r.mask, saveMask, engine.info.vaeScaleFactor));
    const writeMs = performance.now() - writeStart;

    // 5. report
    if (o.json) {
      const summary = {
        nodeId: r.node.id,
        parentId: parent.id,
        mode: r.mode,
        reason: r.reason,
        strategy: r.strategy,
        out,
        saveMask,
        prompt,
        negative: r.node.negativePrompt,
        model: engine.info.name,
        device: engine.device,
        attention: engine.attention,
        weights,
        maskedFraction: round4(r.maskedFraction),
        maskedFractionPerLevel: r.maskedFractionPerLevel.map((l) => ({ level: l.level, width: l.width, height: l.height, fraction: round4(l.fraction) })),
        coarseCover,
        denseSteps: r.denseSteps,
        sparseSteps: r.sparseSteps,
        captureSteps: r.captureSteps,
        rerecordSteps: r.rerecordSteps,
        cacheFallback: r.cacheFallback,
        cacheMisses: r.cacheMisses,
        cacheBytes: r.cacheBytes,
        decodeBox: r.decodeBox,
        decodeContext: r.decodeContext,
        decodeMethod: r.decodeMethod,
        decodeMacFraction: r.decodeMacFraction,
        tokens: r.tokens,
        graphCache: graphs?.use ?? null,
        timings: {
          loadModel: round1(loadMs),
          ...Object.fromEntries(Object.entries(r.timings).map(([k, v]) => [k, round1(v)])),
          saveNode: round1(r.saveMs),
          writeOutput: round1(writeMs),
        },
        totalMs: round1(r.totalMs),
      };
      io.stdout.write(`${JSON.stringify(summary)}\n`);
    } else {
      io.stdout.write(`${out}: node ${r.node.id} (edit of ${parent.id}), ${r.mode}, ${(100 * r.maskedFraction).toFixed(1)} % of the latent recomputed, ${(r.totalMs / 1000).toFixed(2)} s\n`);
      io.stdout.write(`  ${r.reason}\n`);
    }
    return EXIT.ok;
  } finally {
    await releaseEditComponents(ctx);
    await engine.dispose();
  }
}
