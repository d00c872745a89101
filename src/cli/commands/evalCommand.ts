// fisedit eval: held-out caption accuracy of a scene model (the bundled default by default): per-attribute
// accuracy on stdout, a JSON report and a contact sheet PNG.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { DiffusionEngine, RECORDING_ENGINE_COMPONENTS } from '../../engine/pipeline/engine';
import { releaseEditComponents } from '../../engine/pipeline/editUNet';
import { isSchedulerName } from '../../engine/scheduler';
import { writeContactSheet } from '../../eval/contactSheet';
import { editSheetRows, runEditEvaluation } from '../../eval/editEvaluation';
import { contactSheetRows, runEvaluation, type EvalSettings, type EvalSpec } from '../../eval/runEvaluation';
import { type HeldoutFile } from '../../eval/sceneSpec';
import { EXIT, inPhase, usageError } from '../exitCodes';
import { resolveModelDir } from '../modelDir';
import { optionalFloat, optionalInt, parseOptions } from '../options';
import { defaultProgressMode, ProgressBar } from '../progressBar';
import type { CliIo } from './io';
import { loadStateContext, openStateStore } from './stateContext';
import { DEVICE_OPTION, parseDevice, requireDevice } from '../device';
import { isCoarseCover } from '../../engine/mask/pyramid';

export const DEFAULT_HELDOUT = path.resolve(__dirname, '..', '..', '..', 'training', 'heldout_captions.json');

const SPEC = {
  model: { type: 'string', short: 'm' },
  captions: { type: 'string' },
  limit: { type: 'string' },
  steps: { type: 'string' },
  guidance: { type: 'string' },
  scheduler: { type: 'string' },
  seed: { type: 'string' },
  json: { type: 'string' },
  sheet: { type: 'string' },
  threads: { type: 'string' },
  ...DEVICE_OPTION,
  edits: { type: 'boolean' },
  strategy: { type: 'string' },
  dilation: { type: 'string' },
  'coarse-cover': { type: 'string' },
  'mask-growth': { type: 'string' },
  'capture-steps': { type: 'string' },
  decode: { type: 'string' },
  state: { type: 'string' },
  progress: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

export const EVAL_HELP = `fisedit eval — held-out accuracy of a scene model

Usage: fisedit eval [--model DIR] [--captions FILE.json] [--limit N] [--steps 20] [--guidance 4.5]
                    [--scheduler dpmpp-2m] [--seed 1000] [--json report.json] [--sheet sheet.png]

Generates each held-out caption (training/heldout_captions.json by default; --limit N takes N spread
evenly over the file; caption i of the run uses seed+i),
segments the image to the scene palette and scores, per named object, colour at its named position and
shape (bounding-box fill ratio), and per image the background colour. Prints accuracy per attribute.

  --edits              edit quality instead: generate each caption as a recorded parent, change one
                       object's colour (even cases) or shape (odd cases) in the prompt, run the FISEdit
                       edit, and score whether the object shows the new attribute, the pixels outside the
                       edit's region that changed (must be 0), remnant pixels (the object's old colour
                       left where the dense regeneration of the new prompt has none), the other objects
                       kept, mode and speed
  --strategy S         the edits' mask strategy: auto | latent | attention | dense (default auto)
  --coarse-cover R     any | half: which coarse UNet pixels the edits' sparse steps recompute
                       (edit --coarse-cover; default any)
  --dilation N         recompute N latent pixels around each found mask in the sparse steps
                       (edit --dilation; default 1/16 of the latent side: 2 on the bundled model)
  --mask-growth N      grow each found mask by N latent pixels before its latents change (default 1/16
                       of the latent side: the object's soft edge); 0 recomputes the found mask only
  --capture-steps K    dense steps before the sparse ones (edit --capture-steps; default 30 % of the
                       steps for latent, 10 % for attention)
  --decode MODE        how the edits decode: auto | sparse | crop | full (edit --decode; default auto)
  --state DIR          keep the parents and edits in DIR (default: a temporary directory, removed)
  --device NAME        cpu (default) | webgpu | cuda (env FISEDIT_DEVICE); see fisedit generate --help
`;

/**
 * `limit` captions spread evenly over the file (all when limit is absent): held-out files list 1-, 2- and
 * 3-object scenes in blocks, so the first N alone would be single-object scenes.
 */
export function pickEvenly<T>(all: T[], limit: number | undefined): T[] {
  if (limit === undefined || limit >= all.length) return all;
  return Array.from({ length: limit }, (_, i) => all[Math.floor((i * all.length) / limit)]);
}

function loadSpecs(file: string): EvalSpec[] {
  const doc = JSON.parse(fs.readFileSync(file, 'utf8')) as HeldoutFile;
  if (!doc || !Array.isArray(doc.scenes)) throw new Error(`${file}: expected {"scenes": [...]} as written by training/scenes.py`);
  return doc.scenes.map((s) => ({
    caption: s.caption,
    background: s.background,
    objects: s.objects.map((o) => ({ colour: o.colour, shape: o.shape, cell: o.cell, size: o.size as 'small' | 'medium' | 'large' })),
    render: { objects: s.objects as never, background: s.background },
  }));
}

const EDIT_STRATEGIES = ['auto', 'latent', 'attention', 'dense'] as const;

async function evalEdits(
  o: { strategy?: string; dilation?: string; 'coarse-cover'?: string; 'mask-growth'?: string; 'capture-steps'?: string; decode?: string; state?: string; json?: string; sheet?: string; progress?: string },
  engine: DiffusionEngine,
  specs: EvalSpec[],
  settings: EvalSettings,
  threads: number | undefined,
  io: CliIo,
): Promise<number> {
  const strategy = (o.strategy ?? 'auto') as (typeof EDIT_STRATEGIES)[number];
  if (!EDIT_STRATEGIES.includes(strategy)) throw usageError(`--strategy must be one of ${EDIT_STRATEGIES.join(', ')} (got ${JSON.stringify(o.strategy)})`);
  const maskDilation = o.dilation === undefined ? undefined : Number(o.dilation);
  if (maskDilation !== undefined && !(Number.isInteger(maskDilation) && maskDilation >= 0)) throw usageError(`--dilation must be an integer >= 0 (got ${JSON.stringify(o.dilation)})`);
  const coarseCover = o['coarse-cover'] ?? 'any';
  if (!isCoarseCover(coarseCover)) throw usageError(`--coarse-cover must be any or half (got ${JSON.stringify(o['coarse-cover'])})`);
  const maskGrowth = o['mask-growth'] === undefined ? undefined : Number(o['mask-growth']);
  if (maskGrowth !== undefined && !(Number.isInteger(maskGrowth) && maskGrowth >= 0)) throw usageError(`--mask-growth must be an integer >= 0 (got ${JSON.stringify(o['mask-growth'])})`);
  const captureSteps = o['capture-steps'] === undefined ? undefined : Number(o['capture-steps']);
  if (captureSteps !== undefined && !(Number.isInteger(captureSteps) && captureSteps >= 1 && captureSteps <= settings.steps)) {
    throw usageError(`--capture-steps must be an integer in [1, ${settings.steps}] (got ${JSON.stringify(o['capture-steps'])})`);
  }
  if (captureSteps !== undefined && strategy === 'dense') throw usageError('--capture-steps applies to the latent and attention strategies, not dense');
  const decode = (o.decode ?? 'auto') as 'auto' | 'sparse' | 'crop' | 'full';
  if (!['auto', 'sparse', 'crop', 'full'].includes(decode)) throw usageError(`--decode must be auto, sparse, crop or full (got ${JSON.stringify(o.decode)})`);
  const dir = o.state ? path.resolve(o.state) : fs.mkdtempSync(path.join(os.tmpdir(), 'fisedit-eval-edits-'));
  try {
    const store = await openStateStore(dir, 'eval', true);
    const ctx = await loadStateContext(engine, store, { threads, sparse: true });
    const bar = new ProgressBar(io.stderr, 'edits', (o.progress as 'bar' | 'lines' | 'none' | undefined) ?? defaultProgressMode(io.stderr));
    const report = await inPhase(EXIT.inference, () => runEditEvaluation(ctx, specs, { ...settings, strategy, maskDilation, coarseCover, maskGrowth, captureSteps, decode }, (d, t) => bar.update(d, t)));
    bar.finish();
    await releaseEditComponents(ctx);
    const s = report.summary;
    const pct = (x: number) => `${(100 * x).toFixed(1)} %`;
    io.stdout.write(
      `model ${engine.info.name}: ${s.cases} edits (strategy ${strategy}${maskDilation === undefined ? '' : `, mask dilation ${maskDilation}`}${coarseCover === 'any' ? '' : `, coarse cover ${coarseCover}`}${maskGrowth === undefined ? '' : `, mask growth ${maskGrowth}`}${captureSteps === undefined ? '' : `, ${captureSteps} capture steps`}), ${settings.steps} steps ${settings.scheduler}, guidance ${settings.guidance}\n` +
        `  shows the new attribute   ${pct(s.success)} (colour ${pct(s.byKind.colour.success)} of ${s.byKind.colour.cases}, shape ${pct(s.byKind.shape.success)} of ${s.byKind.shape.cases})\n` +
        `  ... where the parent drew the object  ${pct(s.successWhereParentRight)} of ${s.parentRight} (colour ${pct(s.byKind.colour.successWhereParentRight)} of ${s.byKind.colour.parentRight}, shape ${pct(s.byKind.shape.successWhereParentRight)} of ${s.byKind.shape.parentRight})\n` +
        `  dense regeneration shows it  ${pct(s.denseSuccess)} (colour ${pct(s.byKind.colour.denseSuccess)}, shape ${pct(s.byKind.shape.denseSuccess)}): the model's own ceiling\n` +
        `  ... edits right where it does  ${pct(s.successWhereDenseRight)} of ${s.denseRight} (colour ${pct(s.byKind.colour.successWhereDenseRight)}, shape ${pct(s.byKind.shape.successWhereDenseRight)})\n` +
        `  pixels changed outside the edit region  ${s.outsideChangedPixels}\n` +
        `  remnants of the old object  ${s.remnantPixels} px in ${s.editsWithRemnants} of ${s.cases} edits (old colour left where the dense regeneration has none)\n` +
        `  other objects kept        ${s.othersKept === null ? 'n/a (single-object scenes)' : pct(s.othersKept)}\n` +
        `  mean masked fraction      ${pct(s.meanMaskedFraction)}; modes ${Object.entries(s.modes).map(([m, n]) => `${m} ${n}`).join(', ')}\n` +
        `  edit vs dense regeneration  ${s.speedup.toFixed(2)}x faster (Σ); per case median ${s.speedupPerCase.median.toFixed(2)}x (q1–q3 ${s.speedupPerCase.q1.toFixed(2)}–${s.speedupPerCase.q3.toFixed(2)})\n`,
    );
    if (o.json) {
      const json = {
        model: engine.info.name,
        device: engine.device,
        attention: engine.attention,
        settings: report.settings,
        summary: s,
        wallMs: Math.round(report.wallMs),
        items: report.items.map((it) => ({
          parent: it.edit.parent.caption, child: it.edit.child.caption, kind: it.edit.kind, from: it.edit.from, to: it.edit.to, seed: it.seed,
          success: it.success, parentObject: it.parentObject, childObject: it.childObject, outsideChanged: it.outsideChanged, remnantPixels: it.remnantPixels,
          othersKept: it.othersKept, others: it.others, mode: it.mode, maskedFraction: it.maskedFraction, editMs: Math.round(it.editMs), generateMs: Math.round(it.generateMs),
          denseObject: it.denseObject, denseSuccess: it.denseSuccess, denseMs: Math.round(it.denseMs),
        })),
      };
      await inPhase(EXIT.io, () => fs.writeFileSync(o.json as string, `${JSON.stringify(json, null, 1)}\n`));
    }
    if (o.sheet) await inPhase(EXIT.io, () => writeContactSheet(o.sheet as string, editSheetRows(report.items)));
    return EXIT.ok;
  } finally {
    if (!o.state) fs.rmSync(dir, { recursive: true, force: true });
  }
}

export async function evalCommand(argv: string[], io: CliIo): Promise<number> {
  const o = parseOptions(argv, SPEC, 'eval');
  if (o.help) {
    io.stdout.write(EVAL_HELP);
    return EXIT.ok;
  }
  const scheduler = o.scheduler ?? 'dpmpp-2m';
  if (!isSchedulerName(scheduler)) throw usageError(`--scheduler must be ddim, dpmpp-2m or euler (got ${JSON.stringify(scheduler)})`);
  const limit = optionalInt(o.limit, 'limit');
  if (limit !== undefined && limit < 1) throw usageError('--limit must be at least 1');
  const settings = {
    steps: optionalInt(o.steps, 'steps') ?? 20,
    guidance: optionalFloat(o.guidance, 'guidance') ?? 4.5,
    scheduler,
    baseSeed: optionalInt(o.seed, 'seed') ?? 1000,
  };
  const captionsFile = path.resolve(o.captions ?? DEFAULT_HELDOUT);
  const specs = pickEvenly(await inPhase(EXIT.io, () => loadSpecs(captionsFile)), limit);
  const modelDir = resolveModelDir(o.model);
  const threads = optionalInt(o.threads, 'threads');
  const device = parseDevice(o.device, 'eval');
  await requireDevice(device, 'eval');
  const engine = await inPhase(EXIT.model, () => DiffusionEngine.load(modelDir, { intraOpNumThreads: threads, sessionOptions: { device }, components: o.edits ? RECORDING_ENGINE_COMPONENTS : undefined }));
  if (o.edits) {
    try {
      return await evalEdits(o, engine, specs, settings, threads, io);
    } finally {
      await engine.dispose();
    }
  }
  const bar = new ProgressBar(io.stderr, 'captions', (o.progress as 'bar' | 'lines' | 'none' | undefined) ?? defaultProgressMode(io.stderr));
  const report = await inPhase(EXIT.inference, () => runEvaluation(engine, specs, settings, (d, t) => bar.update(d, t)));
  bar.finish();
  const s = report.summary;
  const pct = (x: number) => `${(100 * x).toFixed(1)} %`;
  io.stdout.write(
    `model ${engine.info.name}: ${s.images} captions, ${s.objects} objects, ${settings.steps} steps ${settings.scheduler}, guidance ${settings.guidance}\n` +
      `  colour+position  ${pct(s.colourPosition)}\n  colour anywhere  ${pct(s.colourAnywhere)} (the named colour drawn as a blob, in any cell)\n  shape            ${pct(s.shape)}\n  background       ${pct(s.background)}\n  whole scene      ${pct(s.scene)}\n` +
      Object.entries(report.byObjectCount).map(([n, b]) => `  ${n} object(s): colour+position ${pct(b.colourPosition)}, shape ${pct(b.shape)}, scene ${pct(b.scene)}\n`).join(''),
  );
  if (o.json) {
    const json = {
      model: engine.info.name,
      device: engine.device,
      attention: engine.attention,
      captions: captionsFile,
      settings,
      summary: s,
      byObjectCount: report.byObjectCount,
      wallMs: Math.round(report.wallMs),
      items: report.items.map((it) => ({ caption: it.caption, seed: it.seed, ...it.score })),
    };
    await inPhase(EXIT.io, () => fs.writeFileSync(o.json as string, `${JSON.stringify(json, null, 1)}\n`));
  }
  if (o.sheet) await inPhase(EXIT.io, () => writeContactSheet(o.sheet as string, contactSheetRows(report.items)));
  await engine.dispose();
  return EXIT.ok;
}
