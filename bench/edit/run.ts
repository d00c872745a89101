// Edit bench (issue 4): a FISEdit edit (engine/pipeline/edit.ts, user masks so k = 0) against dense
// regeneration of the same prompt with the same engine, model, steps and scheduler, side by side in one
// process, at several mask areas. Dense and edit runs alternate so machine-load drift hits both alike.
//
//   npx tsx bench/edit/run.ts [--model DIR] [--steps N] [--areas 0.02,0.05,…] [--reps N] [--threads N]
//                             [--size PX] [--out FILE.json] [--no-chart] [--no-latent] [--plain-crop] [--cache-mib N]
//                             [--dense-first] [--weights fp32|int8] [--graph-cache DIR] [--scheduler NAME]
//                             [--sparse-decoder-arena on|off] [--coarse-cover any|half|any,half]
//
// --coarse-cover any,half runs an edit with each coarse rule (mask/pyramid.ts) per rep, against the same
// dense regenerations; the table gets one row per area and rule.
//
// --dense-first (for 512 px on 24 GB): every dense regeneration runs first, then the engine's UNet is
// freed before the edit sessions load, so the dense baseline's 3.4 GB session and arena are not held
// beside the recording/sparse sessions and the root's cache. Still one process, same engine and settings;
// runs no longer alternate, so load drift is not shared (implies --no-latent).
//
// Default model: models/default when it has a UNet, else the sd-narrow fixture. Writes
// bench/results/edit.json (or --out) and a PNG chart beside it.

import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { activeFraction } from '../../src/engine/mask/binaryMask';
import { isCoarseCover, type CoarseCover } from '../../src/engine/mask/pyramid';
import { editNode } from '../../src/engine/pipeline/edit';
import { generateNode } from '../../src/engine/pipeline/editRecord';
import type { EditResult, StateContext } from '../../src/engine/pipeline/editTypes';
import { loadEditComponents, releaseEditComponents } from '../../src/engine/pipeline/editUNet';
import { DiffusionEngine } from '../../src/engine/pipeline/engine';
import type { GenerateResult } from '../../src/engine/pipeline/generate';
import { NodeStore } from '../../src/engine/state/nodeStore';
import { defaultCaptureSteps } from '../../src/engine/pipeline/editMask';
import { WEIGHT_FORMATS, type WeightFormat } from '../../src/engine/graph/graphBuilder';
import { GraphCache } from '../../src/engine/runtime/graphCache';
import { isSchedulerName, type SchedulerName } from '../../src/engine/scheduler';
import { discMask } from './masks';
import { amdahl, AreaResult, formatTable, stat, writeChart } from './report';
import { insideDifference, outsideChanged } from './outsideChanged';

const ROOT = path.resolve(__dirname, '../..');

interface Options {
  model: string;
  steps: number;
  areas: number[];
  reps: number;
  threads: number;
  size: number | undefined;
  out: string;
  chart: boolean;
  latent: boolean;
  /** Decode edit boxes with the parent's decoder context (RegionDecoder); --plain-crop: the old crop. */
  decoderContext: boolean;
  /** Activation-cache bytes kept in memory (--cache-mib); the rest spills to the bench's state dir. */
  cacheBytes: number;
  /** Run every dense regeneration before loading the edit sessions (--dense-first). */
  denseFirst: boolean;
  /** UNet weights of every session, the dense baseline's too (--weights fp32|int8). */
  weights: WeightFormat;
  /** Optimised graphs kept here between runs (--graph-cache DIR): a rerun skips ORT's optimisation. */
  graphCache: GraphCache | undefined;
  /** --scheduler (default: the model's). */
  scheduler: SchedulerName | undefined;
  /** --sparse-decoder-arena off: the sparse decoder without onnxruntime's memory arena (before issue 20's change). */
  sparseDecoderArena: boolean;
  /** --coarse-cover any,half: the edit's coarse rule(s) (EditRequest.coarseCover); several run side by side against the same dense runs. */
  covers: CoarseCover[];
}

function parseArgs(argv: string[]): Options {
  const dflt = fs.existsSync(path.join(ROOT, 'models/default/unet/config.json')) ? path.join(ROOT, 'models/default') : path.join(ROOT, 'test/fixtures/models/sd-narrow');
  const o: Options = { model: dflt, steps: 20, areas: [0.02, 0.05, 0.1, 0.25, 0.5], reps: 3, threads: 2, size: undefined, out: path.join(ROOT, 'bench/results/edit.json'), chart: true, latent: true, decoderContext: true, cacheBytes: Infinity, denseFirst: false, weights: 'fp32', graphCache: undefined, scheduler: undefined, sparseDecoderArena: true, covers: ['any'] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`bench/edit: ${a} needs a value`);
      return v;
    };
    const posInt = (v: string) => {
      const n = Number(v);
      if (!Number.isInteger(n) || n < 1) throw new Error(`bench/edit: ${a} wants a positive integer, got "${v}"`);
      return n;
    };
    if (a === '--model') o.model = path.resolve(value());
    else if (a === '--steps') o.steps = posInt(value());
    else if (a === '--areas') o.areas = value().split(',').map(Number);
    else if (a === '--reps') o.reps = posInt(value());
    else if (a === '--threads') o.threads = posInt(value());
    else if (a === '--size') o.size = posInt(value());
    else if (a === '--out') o.out = path.resolve(value());
    else if (a === '--no-chart') o.chart = false;
    else if (a === '--no-latent') o.latent = false;
    else if (a === '--dense-first') {
      o.denseFirst = true;
      o.latent = false;
    }
    else if (a === '--plain-crop') o.decoderContext = false;
    else if (a === '--cache-mib') o.cacheBytes = posInt(value()) * 2 ** 20;
    else if (a === '--weights') {
      const v = value();
      if (!(WEIGHT_FORMATS as readonly string[]).includes(v)) throw new Error(`bench/edit: --weights is one of ${WEIGHT_FORMATS.join(', ')}`);
      o.weights = v as WeightFormat;
    } else if (a === '--graph-cache') o.graphCache = new GraphCache({ dir: path.resolve(value()), log: (m) => process.stderr.write(`${m}\n`) });
    else if (a === '--sparse-decoder-arena') {
      const v = value();
      if (v !== 'on' && v !== 'off') throw new Error('bench/edit: --sparse-decoder-arena is on or off');
      o.sparseDecoderArena = v === 'on';
    } else if (a === '--coarse-cover') {
      const v = value().split(',');
      if (v.length === 0 || !v.every(isCoarseCover)) throw new Error('bench/edit: --coarse-cover is any, half or any,half');
      o.covers = v as CoarseCover[];
    } else if (a === '--scheduler') {
      const v = value();
      if (!isSchedulerName(v)) throw new Error(`bench/edit: unknown --scheduler ${v}`);
      o.scheduler = v;
    }
    else throw new Error(`bench/edit: unknown argument ${a}`);
  }
  if (o.areas.some((v) => !(v > 0 && v <= 1))) throw new Error('bench/edit: --areas are fractions in (0, 1]');
  return o;
}

const log = (s: string) => process.stderr.write(`${s}\n`);

async function main(): Promise<void> {
  const o = parseArgs(process.argv.slice(2));
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'fisedit-bench-edit-'));
  const t0 = performance.now();
  const engineOpts = { intraOpNumThreads: o.threads, weights: o.weights, sessionOptions: { graphCache: o.graphCache } };
  let engine = await DiffusionEngine.load(o.model, engineOpts);
  const prompt = 'a red circle on the left, a blue square on the right';
  const editPrompt = 'a green circle on the left, a blue square on the right';
  const req = { seed: 42, steps: o.steps, width: o.size, height: o.size, scheduler: o.scheduler };
  // --dense-first: the dense regenerations of every area (after one warm-up), then an engine without a UNet.
  const early = new Map<number, GenerateResult[]>();
  let denseFirstMs = 0;
  if (o.denseFirst) {
    const td = performance.now();
    await engine.generate({ prompt: editPrompt, ...req });
    for (const target of o.areas) {
      const runs: GenerateResult[] = [];
      for (let r = 0; r < o.reps; r++) runs.push(await engine.generate({ prompt: editPrompt, ...req }));
      early.set(target, runs);
      log(`dense first, area ${(100 * target).toFixed(0)}%: ${runs.map((d) => d.totalMs.toFixed(0)).join(', ')} ms`);
    }
    denseFirstMs = performance.now() - td;
    await engine.dispose();
    engine = await DiffusionEngine.load(o.model, { ...engineOpts, components: ['textEncoder', 'vae'] });
  }
  const parts = await loadEditComponents(o.model, { intraOpNumThreads: o.threads, decoder: o.decoderContext, weights: o.weights, graphCache: o.graphCache, sparseDecoderArena: o.sparseDecoderArena });
  const loadMs = performance.now() - t0 - denseFirstMs;
  try {
    const store = await NodeStore.open(path.join(tmp, 'state'), { create: true });
    const ctx: StateContext = { models: engine, store, cache: await store.openCache(o.cacheBytes), unet: parts.unet, decoder: parts.decoder };
    log(`bench/edit: ${path.basename(o.model)} loaded in ${(loadMs / 1000).toFixed(1)} s; ${o.steps} steps, threads ${o.threads}`);

    // 1. the root, recorded (and a warm-up of every session)
    const rootRun = await generateNode(ctx, { prompt, ...req });
    const root = rootRun.record;
    const [C, h, w] = root.latentShape;
    const parentRgb = (await store.readImage(root)).rgb;
    log(`root ${root.id}: ${root.width}×${root.height}, latent ${C}×${h}×${w}, recorded in ${(rootRun.result.totalMs / 1000).toFixed(2)} s, cache ${(rootRun.cacheBytes / 2 ** 20).toFixed(1)} MiB`);
    // Only the root is recorded: free the recording session before measuring. At 512 px its weights and
    // arena (~5 GB) beside the root's 4.8 GB cache left the dense baseline 2× slow from memory pressure,
    // and loading a UNet after the root was recorded ran the machine out of memory.
    await parts.unet.releaseRecording?.();
    // Children are measured, not edited further: their cache pages go, or at 512 px (4.8 GB per root) the
    // machine runs out of memory by the 25 % mask.
    const forget = async (e: EditResult) => {
      await ctx.cache!.deleteNode(e.node.id);
      return e;
    };
    // The first edit in the process (what a fresh CLI call pays): kept apart, with its step times.
    const timedEdit = async (mask: ReturnType<typeof discMask>, coarseCover: CoarseCover = o.covers[0]) => {
      const steps: number[] = [];
      let last = performance.now();
      const e = await editNode(ctx, { parentId: root.id, prompt: editPrompt, mask, denseAboveFraction: 1, coarseCover }, {
        onStep: () => {
          const now = performance.now();
          steps.push(now - last);
          last = now;
        },
      });
      return { e: await forget(e), steps };
    };
    const firstEdit = await timedEdit(discMask(w, h, 0.1));
    log(`first edit in the process (10 %): ${firstEdit.e.totalMs.toFixed(0)} ms, steps ${firstEdit.steps.map((t) => t.toFixed(0)).join(', ')} ms, ${JSON.stringify(firstEdit.e.timings)}`);
    const dense = (): Promise<GenerateResult> => engine.generate({ prompt: editPrompt, ...req });
    if (!o.denseFirst) await dense();

    // 2. each area: dense regeneration and edit, alternating
    const rows: AreaResult[] = [];
    for (const target of o.areas) {
      const mask = discMask(w, h, target);
      const denseRuns: GenerateResult[] = [];
      const editsBy = new Map(o.covers.map((c) => [c, [] as EditResult[]]));
      const stepTimesBy = new Map(o.covers.map((c) => [c, [] as number[][]]));
      for (let r = 0; r < o.reps; r++) {
        const runEdit = async () => {
          // Several covers alternate their order from rep to rep, as the dense runs do.
          for (const c of r % 2 === 0 ? o.covers : [...o.covers].reverse()) {
            const t = await timedEdit(mask, c);
            editsBy.get(c)!.push(t.e);
            stepTimesBy.get(c)!.push(t.steps);
          }
        };
        const runDense = async () => denseRuns.push(await dense());
        if (o.denseFirst) {
          denseRuns.push(early.get(target)![r]);
          await runEdit();
        } else if (r % 2 === 0) {
          await runDense();
          await runEdit();
        } else {
          await runEdit();
          await runDense();
        }
      }
      for (const coarseCover of o.covers) {
        const edits = editsBy.get(coarseCover)!;
        const stepTimes = stepTimesBy.get(coarseCover)!;
        const e = edits[0];
        const E = stat(denseRuns.map((d) => d.timings.encodeText)).median;
        const dStep = stat(denseRuns.map((d) => d.timings.denoise / o.steps));
        const V = stat(denseRuns.map((d) => d.timings.decode + d.timings.postprocess)).median;
        const sStep = stat(edits.map((x) => x.timings.denoise / Math.max(1, x.sparseSteps)));
        const denseMs = stat(denseRuns.map((d) => d.totalMs));
        const editMs = stat(edits.map((x) => x.totalMs));
        const phi = e.maskedFractionPerLevel[0].fraction;
        const box = e.decodeBox;
        const row: AreaResult = {
          target,
          coarseCover,
          maskFraction: activeFraction(mask),
          levelFractions: e.maskedFractionPerLevel.map((l) => l.fraction),
          mode: e.mode,
          denseMs,
          editMs,
          speedup: denseMs.median / editMs.median,
          denseStepMs: dStep,
          sparseStepMs: sStep,
          stepSpeedup: dStep.median / sStep.median,
          stepCostPerArea: sStep.median / dStep.median / phi,
          denseDecodeMs: stat(denseRuns.map((d) => d.timings.decode)),
          editDecodeMs: stat(edits.map((x) => x.timings.decode)),
          decodeBoxFraction: box ? (box.width * box.height) / (w * h) : null,
          decodeContext: e.decodeContext,
          decodeMethod: e.decodeMethod,
          decodeMacFraction: e.decodeMacFraction,
          editTimings: Object.fromEntries(Object.entries(e.timings).map(([k, v]) => [k, Math.round(v * 10) / 10])),
          /** Wall time between the edit's step callbacks (first: from the call; includes cache reads and writes). */
          editStepMs: stepTimes[0].map((t) => Math.round(t)),
          bound: amdahl({ E, d: dStep.median, V, N: o.steps, k: e.captureSteps, phi }),
          childCacheBytes: e.cacheBytes,
          outsideChangedPixels: Math.max(...edits.map((x) => outsideChanged(x, parentRgb))),
          // What the coarse rule changes in the picture, beside what the sparse edit already differs from
          // the dense regeneration by (first rep, /255 inside the affected region).
          insideVsDense: insideDifference(e.rgb, denseRuns[0].rgb, e.affected),
          insideVsAny: coarseCover === 'any' || !editsBy.has('any') ? null : insideDifference(e.rgb, editsBy.get('any')![0].rgb, e.affected),
        };
        rows.push(row);
        const diff = (d: { mean: number; max: number } | null | undefined) => (d ? `${d.mean.toFixed(2)} / ${d.max}` : '—');
        log(`area ${(100 * target).toFixed(0)}%, coarse cover ${coarseCover}: dense ${denseMs.median.toFixed(0)} ms, edit ${editMs.median.toFixed(0)} ms (${row.speedup.toFixed(2)}×), step ${dStep.median.toFixed(1)} → ${sStep.median.toFixed(1)} ms, levels ${row.levelFractions.map((f) => `${(100 * f).toFixed(0)}%`).join('/')}; inside, mean / max /255: vs dense ${diff(row.insideVsDense)}, vs 'any' ${diff(row.insideVsAny)}`);
      }
    }

    // 3. the automatic mask (target-area capture, default k) once, for the record
    let latent: Record<string, unknown> | null = null;
    if (o.latent) {
      const l = await forget(await editNode(ctx, { parentId: root.id, prompt: editPrompt }));
      const denseRef = await dense();
      latent = {
        captureSteps: l.captureSteps,
        mode: l.mode,
        reason: l.reason,
        maskFraction: l.maskedFraction,
        levelFractions: l.maskedFractionPerLevel.map((x) => x.fraction),
        editMs: l.totalMs,
        denseMs: denseRef.totalMs,
        speedup: denseRef.totalMs / l.totalMs,
        timings: l.timings,
        childCacheBytes: l.cacheBytes,
      };
    }

    // 4. report
    const k = 0;
    const ceiling = amdahl({ E: 0, d: 1, V: 0, N: o.steps, k: latent ? (latent.captureSteps as number) : defaultCaptureSteps(o.steps), phi: 0 });
    console.log(`\nedit vs dense regeneration — ${path.basename(o.model)}, ${root.width}×${root.height} (latent ${w}×${h}), ${o.steps} ${root.scheduler} steps, ${o.weights} weights, sparse decoder arena ${o.sparseDecoderArena ? 'on' : 'off'}, CFG, user masks (k = 0), ${o.reps} reps, median, ${os.cpus().length} cores, ${o.threads} threads`);
    console.log(formatTable(rows, k));
    console.log(`peak resident memory ${(process.resourceUsage().maxRSS / 2 ** 20).toFixed(2)} GiB${Number.isFinite(o.cacheBytes) ? `, cache budget ${(o.cacheBytes / 2 ** 20).toFixed(0)} MiB (the rest spilled to disk)` : ''}`);
    console.log(`root cache ${(rootRun.cacheBytes / 2 ** 20).toFixed(2)} MiB (${(rootRun.cacheBytes / o.steps / 2 ** 20).toFixed(2)} MiB per step); outside-region pixels changed: ${Math.max(...rows.map((r) => r.outsideChangedPixels))} (must be 0)`);
    if (latent) console.log(`latent strategy (k = ${latent.captureSteps}, UNet-only ceiling ${ceiling.toFixed(1)}×): mask ${(100 * (latent.maskFraction as number)).toFixed(1)} %, ${latent.mode}, ${(latent.speedup as number).toFixed(2)}× (${String(latent.reason)})`);
    const result = {
      bench: 'edit',
      date: new Date().toISOString(),
      machine: { cpus: os.cpus().length, cpuModel: os.cpus()[0]?.model, threads: o.threads, loadavg: os.loadavg() },
      model: path.basename(o.model),
      modelDir: path.relative(ROOT, o.model),
      image: { width: root.width, height: root.height, latent: [C, h, w] },
      steps: o.steps,
      scheduler: root.scheduler,
      weights: o.weights,
      sparseDecoderArena: o.sparseDecoderArena,
      /** The process's first edit (10 %), before any measured one: session warm-ups included. */
      firstEdit: { totalMs: firstEdit.e.totalMs, timings: firstEdit.e.timings, stepMs: firstEdit.steps.map((t) => Math.round(t)) },
      reps: o.reps,
      denseFirst: o.denseFirst,
      loadMs,
      /** Peak resident memory of the bench process (every session, cache and buffer it held). */
      peakRssBytes: process.resourceUsage().maxRSS * 1024,
      prompts: { root: prompt, edit: editPrompt },
      cacheBudgetBytes: Number.isFinite(o.cacheBytes) ? o.cacheBytes : null,
      rootCacheBytes: rootRun.cacheBytes,
      rootCacheBytesPerStep: rootRun.cacheBytes / o.steps,
      areas: rows,
      latentStrategy: latent,
    };
    fs.mkdirSync(path.dirname(o.out), { recursive: true });
    fs.writeFileSync(o.out, `${JSON.stringify(result, null, 1)}\n`);
    if (o.chart) {
      const png = o.out.replace(/\.json$/, '') + '.png';
      await writeChart(rows, `FISEdit edit vs dense regeneration: ${path.basename(o.model)} ${root.width}×${root.height}, ${o.steps} steps`, png);
      log(`wrote ${o.out} and ${png}`);
    } else log(`wrote ${o.out}`);
  } finally {
    await releaseEditComponents(parts);
    await engine.dispose();
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

main().catch((e) => {
  process.stderr.write(`${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exitCode = 1;
});
