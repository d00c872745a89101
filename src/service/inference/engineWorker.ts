// The engine's home: a child process (default) or a worker thread that loads the model once and runs
// one request at a time. onnxruntime-node's run() holds the JS thread for the whole call, so it must
// never run on the API thread (DESIGN.md "The service in one page"). This file is the entry of both;
// workerBackend.ts starts it and talks to it with the messages in workerProtocol.ts.
//
// With a state dir (the service's DATA/engine-state) roots are recorded into the engine's node store and
// edits run as FISEdit edits from it (engineState.ts). Without one, or when the store cannot be opened,
// an edit runs as a dense generation of the new prompt with the parent's seed and settings (mode DENSE).

import * as os from 'node:os';
import { parentPort, workerData } from 'worker_threads';
import { DiffusionEngine, RECORDING_ENGINE_COMPONENTS } from '../../engine/pipeline/engine';
import { GenerateInputError, GenerationAbortedError, type StepProgress } from '../../engine/pipeline/generate';
import { EditInputError, type EditStepProgress, type StateContext } from '../../engine/pipeline/editTypes';
import { releaseEditComponents } from '../../engine/pipeline/editUNet';
import { UserMaskError } from '../../engine/mask/userMask';
import type { EditRequest, GenerateRequest, InferenceProgress, InferenceResult, ModelInfo, ProgressPhase } from './backend';
import { checkEditSettings, denseResult, editSparse, engineRequest, evictCaches, forgetNodes, generateRecorded, openEngineState, parentRecord, recordDenseCost } from './engineState';
import { DenseCostModel } from './denseCost';
import { decodedToRgb, fitLatentRgbMap, latentColourSamples, looksLikeSd, previewDataUrl, previewDecodeBudgetMs, rgbPreviewDataUrl, SD15_LATENT_RGB, type LatentRgbMap, type PreviewRenderer } from './latentPreview';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { WORKER_DATA_ENV, type EngineWorkerData, type FromWorker, type ToWorker } from './workerProtocol';
import { log } from '../log';
import { gaussianFloat32 } from '../../engine/random/gaussian';
import { GraphCache } from '../../engine/runtime/graphCache';

/** The message channel to the service: the thread's parentPort, or the child process's IPC channel. */
interface Channel {
  send(msg: FromWorker, transfer?: ArrayBuffer[]): void;
  onMessage(fn: (msg: ToWorker) => void): void;
  exit(): void;
}

function openChannel(): { channel: Channel; cfg: EngineWorkerData } {
  if (parentPort) {
    const port = parentPort;
    return {
      cfg: workerData as EngineWorkerData,
      channel: { send: (m, t = []) => port.postMessage(m, t), onMessage: (fn) => port.on('message', fn), exit: () => port.close() },
    };
  }
  if (process.send && process.env[WORKER_DATA_ENV]) {
    // Without a parent there is nobody to serve: exit instead of lingering as an orphan.
    process.on('disconnect', () => process.exit(0));
    return {
      cfg: JSON.parse(process.env[WORKER_DATA_ENV]!) as EngineWorkerData,
      channel: { send: (m) => process.send!(m), onMessage: (fn) => process.on('message', fn), exit: () => process.exit(0) },
    };
  }
  throw new Error('src/service/inference/engineWorker.ts must run as a worker thread or a forked child process (see workerBackend.ts)');
}

const { channel, cfg } = openChannel();
const aborts = new Map<string, AbortController>();
/** Measured dense runs of this process: the dense estimate (and speedup) of edits. */
const denseCosts = new DenseCostModel();

function send(msg: FromWorker, transfer: ArrayBuffer[] = []): void {
  channel.send(msg, transfer);
}

function lcm(a: number, b: number): number {
  const gcd = (x: number, y: number): number => (y === 0 ? x : gcd(y, x % y));
  return (a * b) / gcd(a, b);
}

/**
 * How this model's step previews are drawn (latentPreview.ts, PreviewRenderer): its own VAE decoder when one
 * decode at the default size fits the budget, else a linear map (SD's published one, or one fitted to
 * this model's decodes, computed once and cached beside the engine state).
 */
async function previewRenderer(engine: DiffusionEngine): Promise<PreviewRenderer> {
  const { info } = engine;
  const h = info.defaultHeight / info.vaeScaleFactor;
  const w = info.defaultWidth / info.vaeScaleFactor;
  const z = new Float32Array(info.latentChannels * h * w);
  let decodeMs = Infinity;
  // The first decode is the session's warm-up; the best of the next four is its cost (robust to a busy machine).
  for (let k = 0; k < 5; k++) {
    const t0 = performance.now();
    await engine.decodeLatents(z, h, w);
    if (k > 0) decodeMs = Math.min(decodeMs, performance.now() - t0);
  }
  if (decodeMs <= previewDecodeBudgetMs(cfg.previewIntervalMs)) return { kind: 'decode', decodeMs };
  return { kind: 'map', map: await cachedPreviewMap(engine), decodeMs };
}

/** previewMap, cached beside the engine state dir per model (name, folder, VAE weights' size and time). */
async function cachedPreviewMap(engine: DiffusionEngine): Promise<LatentRgbMap> {
  const { info } = engine;
  if (looksLikeSd(info.latentChannels, info.vaeScaleFactor, info.scalingFactor)) return SD15_LATENT_RGB;
  let key = `${info.name}|${info.dir}`;
  try {
    const vae = path.join(info.dir, 'vae');
    for (const f of fs.readdirSync(vae).sort()) {
      const st = fs.statSync(path.join(vae, f));
      key += `|${f}:${st.size}:${st.mtimeMs}`;
    }
  } catch {
    // No readable vae folder: the key stays the model's name and folder.
  }
  // Beside the engine state, not in it (the node store refuses a folder with files it does not know).
  const file = cfg.stateDir ? path.join(path.dirname(cfg.stateDir), 'engine-preview-map.json') : null;
  if (file && fs.existsSync(file)) {
    try {
      const cached = JSON.parse(fs.readFileSync(file, 'utf8')) as { key: string; map: LatentRgbMap };
      if (cached.key === key && cached.map.factors.length === info.latentChannels) return cached.map;
    } catch {
      // A damaged cache is fitted again below.
    }
  }
  const map = await previewMap(engine);
  if (file) {
    try {
      fs.mkdirSync(path.dirname(file), { recursive: true });
      fs.writeFileSync(file, JSON.stringify({ key, map }));
    } catch (e) {
      log.warn(`engine worker: cannot cache the preview map in ${file}: ${(e as Error).message}`);
    }
  }
  return map;
}

/** A linear latent→RGB map fitted to the model's own decodes of random latents. */
async function previewMap(engine: DiffusionEngine): Promise<LatentRgbMap> {
  const { info } = engine;
  const h = info.defaultHeight / info.vaeScaleFactor;
  const w = info.defaultWidth / info.vaeScaleFactor;
  const C = info.latentChannels;
  const zs: Float32Array[] = [];
  const rgbs: Float32Array[] = [];
  for (let k = 0; k < 3; k++) {
    // Model-space latents ~ N(0, 1); the decoder takes them divided by the scaling factor.
    const z = gaussianFloat32(1000 + k, C * h * w);
    const image = await engine.decodeLatents(z.map((v) => v / info.scalingFactor + (info.shiftFactor ?? 0)), h, w);
    const s = latentColourSamples(z, image, C, h, w, info.vaeScaleFactor);
    zs.push(s.z);
    rgbs.push(s.rgb);
  }
  const cat = (parts: Float32Array[]) => {
    const out = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
    let o = 0;
    for (const p of parts) {
      out.set(p, o);
      o += p.length;
    }
    return out;
  };
  return fitLatentRgbMap(cat(zs), cat(rgbs), C);
}

/** Lower this thread's priority before onnxruntime starts its threads, which inherit it (Linux: per thread). */
function lowerPriority(niceness: number | undefined): void {
  if (!niceness) return;
  try {
    os.setPriority(0, Math.min(19, Math.max(os.getPriority(0), niceness)));
  } catch (e) {
    log.warn(`engine worker: cannot set niceness ${niceness}: ${(e as Error).message}`);
  }
}

/**
 * Optimised graphs beside the engine state (DATA/graph-cache): a restarted server loads its SD-width
 * sessions in seconds each instead of optimising them again. FISEDIT_GRAPH_CACHE: another folder, or off.
 */
function graphCacheFor(stateDir: string | undefined): GraphCache | undefined {
  const env = process.env.FISEDIT_GRAPH_CACHE?.trim();
  const dir = env ? (env === 'off' ? null : env) : stateDir ? path.join(path.dirname(stateDir), 'graph-cache') : null;
  if (!dir) return undefined;
  return new GraphCache({ dir, log: (m) => (/: (hit|wrote) /.test(m) ? log.debug(`engine worker: ${m}`) : log.warn(`engine worker: ${m}`)) });
}

async function main(): Promise<void> {
  let engine: DiffusionEngine;
  let previews: PreviewRenderer;
  lowerPriority(cfg.niceness);
  const graphCache = graphCacheFor(cfg.stateDir);
  try {
    // With a state dir the recording session runs the dense steps too (adoptUNet): no UNet of our own.
    engine = await DiffusionEngine.load(cfg.modelDir, { intraOpNumThreads: cfg.intraOpNumThreads, sessionOptions: { device: cfg.device, graphCache }, components: cfg.stateDir ? RECORDING_ENGINE_COMPONENTS : undefined });
    previews = await previewRenderer(engine);
    log.info(`engine worker: step previews by ${previews.kind === 'decode' ? 'the VAE decoder' : `a ${previews.map.source} latent-to-RGB map`} (one decode: ${previews.decodeMs.toFixed(1)} ms)`);
  } catch (e) {
    send({ type: 'loadError', message: (e as Error).message });
    // Let the message flush before the channel closes.
    setImmediate(() => channel.exit());
    return;
  }
  let state: StateContext | null = null;
  if (cfg.stateDir) {
    try {
      state = await openEngineState(engine, cfg.stateDir, { cacheBytes: cfg.cacheBytes, intraOpNumThreads: cfg.intraOpNumThreads, graphCache });
    } catch (e) {
      // The service still works without it: generations are not recorded and edits run dense, on a UNet
      // of the engine's own.
      log.warn(`engine worker: cannot open the engine state ${cfg.stateDir}; edits will run dense: ${(e as Error).message}`);
      try {
        await engine.dispose();
        engine = await DiffusionEngine.load(cfg.modelDir, { intraOpNumThreads: cfg.intraOpNumThreads, sessionOptions: { device: cfg.device, graphCache } });
      } catch (e2) {
        send({ type: 'loadError', message: (e2 as Error).message });
        setImmediate(() => channel.exit());
        return;
      }
    }
  }
  const { info: ei } = engine;
  const info: ModelInfo = {
    name: ei.name,
    dir: ei.dir,
    defaultWidth: ei.defaultWidth,
    defaultHeight: ei.defaultHeight,
    sizeMultiple: lcm(8, ei.vaeScaleFactor * ei.unetDownscale),
    maxWidth: Math.max(ei.defaultWidth, ei.defaultHeight) * cfg.maxSideFactor,
    maxHeight: Math.max(ei.defaultWidth, ei.defaultHeight) * cfg.maxSideFactor,
    maxPromptTokens: ei.textLength - 2,
    latentChannels: ei.latentChannels,
    loadMs: engine.loadMs,
    device: engine.device,
    attention: engine.attention,
  };
  send({ type: 'ready', info });

  // One run at a time: the engine serialises generate() anyway, and the queue sends one job at a time.
  let chain: Promise<void> = Promise.resolve();
  channel.onMessage((msg: ToWorker) => {
    if (msg.type === 'cancel') {
      aborts.get(msg.runId)?.abort();
      return;
    }
    if (msg.type === 'forget') {
      const st = state;
      if (st) {
        chain = chain
          .then(() => forgetNodes(st, msg.engineNodeIds))
          .then(
            () => undefined,
            (e) => log.warn(`engine worker: could not free the engine state of ${msg.engineNodeIds.join(', ')}: ${(e as Error).message}`),
          );
      }
      return;
    }
    if (msg.type === 'evictCaches') {
      const st = state;
      if (st) {
        chain = chain
          .then(() => evictCaches(st, msg.engineNodeIds))
          .then(
            () => undefined,
            (e) => log.warn(`engine worker: could not evict the caches of ${msg.engineNodeIds.join(', ')}: ${(e as Error).message}`),
          );
      }
      return;
    }
    if (msg.type === 'shutdown') {
      for (const ac of aborts.values()) ac.abort();
      void chain
        .then(() => releaseEditComponents(state))
        .then(() => engine.dispose())
        .finally(() => channel.exit());
      return;
    }
    const ac = new AbortController();
    aborts.set(msg.runId, ac);
    const edit = msg.kind === 'edit' ? msg.request : null;
    chain = chain.then(() => run(engine, state, previews, msg.runId, msg.request, edit, ac.signal)).finally(() => aborts.delete(msg.runId));
  });
}

async function run(
  engine: DiffusionEngine,
  state: StateContext | null,
  previews: PreviewRenderer,
  runId: string,
  req: GenerateRequest,
  edit: EditRequest | null,
  signal: AbortSignal,
): Promise<void> {
  const t0 = performance.now();
  const { info } = engine;
  const h = req.height / info.vaeScaleFactor;
  const w = req.width / info.vaeScaleFactor;
  let lastPreviewAt = -Infinity;
  const progress = (step: number, total: number, phase: ProgressPhase, preview: string | null) => {
    const p: InferenceProgress = { step, totalSteps: total, phase, elapsedMs: performance.now() - t0, preview, maskedFraction: null };
    send({ type: 'progress', runId, progress: p });
  };
  try {
    if (signal.aborted) throw new GenerationAbortedError(0, req.steps);
    progress(0, req.steps, 'ENCODING', null);
    /** A preview of these latents when one is due (the first and last step, then one per interval). */
    const previewOf = async (latents: Float32Array | undefined, step: number, total: number): Promise<string | null> => {
      const now = performance.now();
      if (!latents || !(step === 1 || step === total || now - lastPreviewAt >= cfg.previewIntervalMs)) return null;
      lastPreviewAt = now;
      const opts = { maxSide: cfg.previewMaxSide };
      if (previews.kind === 'map') return previewDataUrl(latents, info.latentChannels, h, w, previews.map, req.width, req.height, opts);
      const image = await engine.decodeLatents(latents.map((v) => v / info.scalingFactor + (info.shiftFactor ?? 0)), h, w);
      return rgbPreviewDataUrl(decodedToRgb(image, req.width, req.height), req.width, req.height, req.width, req.height, opts);
    };
    const onStep = async (s: StepProgress) => {
      progress(s.step, s.total, s.step === s.total ? 'DECODING' : 'DENOISING', await previewOf(s.latents, s.step, s.total));
    };
    if (state) {
      let result: InferenceResult;
      if (edit) {
        // A parent with no engine record is rebuilt first (REBUILDING), never skipped.
        const from = await parentRecord(state, edit, { signal, costs: denseCosts, onRebuildStep: async (done, total) => progress(done, total, 'REBUILDING', null) });
        checkEditSettings(from.parent, edit);
        // editNode counts UNet evaluations (capture, re-record, denoise); capture and denoise steps carry the
        // child's latents, the parent's outside the area once it is known: the preview shows the edit in place.
        const onEditStep = async (p: EditStepProgress) => {
          const preview = await previewOf(p.latents, p.done, p.total);
          progress(p.done, p.total, p.done === p.total ? 'DECODING' : p.phase === 'capture' ? 'CAPTURING' : p.phase === 'rerecord' ? 'REBUILDING' : 'DENOISING', preview);
        };
        result = await editSparse(state, from.parent, edit, { onStep: onEditStep, signal, costs: denseCosts });
        result.fallbackReason = [from.reason, result.fallbackReason].filter((x) => x).join('; ') || null;
        result.rebuilt = from.rebuilt;
      } else {
        result = await generateRecorded(state, req, { onStep, signal });
        recordDenseCost(denseCosts, req, result);
      }
      send({ type: 'result', runId, result }, [result.rgb.buffer as ArrayBuffer]);
      return;
    }
    const r = await engine.generate(engineRequest(req), { onStep, signal });
    const result = denseResult(r);
    if (edit) {
      // No node store to edit from (see the worker's start-up log): the new prompt was generated whole.
      result.denseEstimateMs = denseCosts.estimate(req.width, req.height, req.guidance, req.steps);
      result.fallbackReason = "the engine state is not available on this server: generated the new prompt from the parent's seed instead of editing";
      result.maskNotApplied = edit.mask !== null;
    } else {
      recordDenseCost(denseCosts, req, result);
    }
    send({ type: 'result', runId, result }, [r.rgb.buffer as ArrayBuffer]);
  } catch (e) {
    if (e instanceof GenerationAbortedError) send({ type: 'cancelled', runId, completedSteps: e.completedSteps });
    else if (e instanceof GenerateInputError || e instanceof EditInputError) send({ type: 'error', runId, kind: 'input', field: e.field, message: e.message });
    else if (e instanceof UserMaskError) send({ type: 'error', runId, kind: 'input', field: 'mask', message: e.message });
    else send({ type: 'error', runId, kind: 'engine', message: (e as Error).message ?? String(e) });
  }
}

void main();
