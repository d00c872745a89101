// Measured step costs per model and resolution, and the choice they drive (issue 15 item 2): an edit
// runs its steps after capture sparse only where a sparse step at its active fraction costs less than a
// dense one, so an edit never costs more than regenerating. On the bundled 4 M-parameter model a sparse
// step with its cache reads and delta writes can cost more than a dense step; at SD-1.5 width it costs a
// fraction of one (bench/README.md, "edit") — a rule of thumb cannot know which, a measurement can.
//
// Costs are measured once per model, resolution, CFG batch and machine (calibrateStepCosts: the same
// step calls the edit loop runs, through a scratch node of the activation cache), kept in
// <state dir>/step-costs.json beside the nodes, and refined by every edit's own step times.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ActivationCache } from '../cache/activationCache';
import { buildMaskPyramid } from '../mask/pyramid';
import { denseUNetCall, StepInputs, type UNetCall } from './denoiseLoop';
import type { EditUNet } from './editUNet';
import { putRecordedStep, putSparseStep, recordingUNetCall, sparseUNetCall } from './editUNet';
import type { DiffusionModels, ModelInfo } from './models';
import type { Scheduler } from '../scheduler';
import { putDecoderEntries } from './editDecode';
import type { RegionDecoder } from './regionDecoder';

export interface StepCosts {
  /** ms per dense step on the lightest session (predictNoise: ε only). */
  denseMs: number;
  /** ms per recording step with its cache writes; null when not measured (no recording session or cache). */
  recordMs: number | null;
  /** ms per sparse step with its cache reads and delta writes, by level-0 active fraction, ascending. */
  sparse: { fraction: number; ms: number }[];
  /**
   * ms an edit's decode costs beyond the plain decoder's when the child keeps a cache (sparse steps, or
   * recorded dense ones): it then runs the recording decoder and stores the decoder's conv inputs. Measured
   * where 'auto' decodes every image in full (small models: on the bundled one ~20 against ~12 ms); absent
   * elsewhere, where such a child decodes sparsely instead, which costs less than a full decode.
   */
  keepPageDecodeMs?: number;
}

/** Dense steps record the child's activations only when that costs at most this much more than not. */
export const RECORD_OVERHEAD_ALLOWED = 1.05;

/** Sparse step ms at `fraction`: linear between the measured fractions, and beyond them along the nearest two (or in proportion to one). */
export function sparseMsAt(costs: StepCosts, fraction: number): number | null {
  const s = costs.sparse;
  if (s.length === 0) return null;
  if (s.length === 1) return s[0].fraction > 0 ? (s[0].ms * Math.max(fraction, s[0].fraction / 4)) / s[0].fraction : s[0].ms;
  let i = s.findIndex((p) => p.fraction >= fraction);
  if (i <= 0) i = i === 0 ? 1 : s.length - 1;
  const [a, b] = [s[i - 1], s[i]];
  const ms = b.fraction === a.fraction ? b.ms : a.ms + ((b.ms - a.ms) * (fraction - a.fraction)) / (b.fraction - a.fraction);
  return Math.max(ms, Math.min(a.ms, b.ms) / 4);
}

export interface StepChoice {
  steps: 'SPARSE' | 'DENSE';
  /** Whether dense steps record the child's activations (only when measured nearly free). */
  recordDense: boolean;
  sparseMs: number | null;
  denseMs: number;
  /** Why, for the edit's report (empty when sparse steps were chosen). */
  reason: string;
}

/**
 * The choice for the `steps` steps after capture at level-0 active fraction `fraction`, from measured costs:
 * sparse steps, or dense ones (recorded only where that is nearly free). Sparse steps make the child keep a
 * cache, and so a costlier decode (keepPageDecodeMs), which the comparison counts; a parent that was not
 * recorded (rootRecording) must first be re-recorded for them, `rerecordSteps` recording steps, counted too.
 */
export function chooseEditSteps(costs: StepCosts, fraction: number, steps = 1, rerecordSteps = 0): StepChoice {
  const sparseMs = sparseMsAt(costs, fraction);
  const recordDense = costs.recordMs !== null && costs.recordMs <= RECORD_OVERHEAD_ALLOWED * costs.denseMs;
  const base = { recordDense, sparseMs, denseMs: costs.denseMs };
  if (sparseMs === null) return { ...base, steps: 'SPARSE', reason: '' };
  const keep = costs.keepPageDecodeMs ?? 0;
  const rerecord = rerecordSteps * (costs.recordMs ?? costs.denseMs);
  const sparseTotal = steps * sparseMs + keep + rerecord;
  const denseTotal = steps * (recordDense ? costs.recordMs! : costs.denseMs) + (recordDense ? keep : 0);
  if (sparseTotal < denseTotal) return { ...base, steps: 'SPARSE', reason: '' };
  const extras = [
    keep > 0 && !recordDense ? `keeping the child's cache adds ${keep.toFixed(1)} ms to its decode` : '',
    rerecord > 0 ? `its parent was not recorded: re-recording ${rerecordSteps} steps adds ${rerecord.toFixed(0)} ms` : '',
  ].filter(Boolean);
  const more = extras.length ? `, and ${extras.join(', and ')} (${steps} steps: ${sparseTotal.toFixed(0)} against ${denseTotal.toFixed(0)} ms)` : '';
  return {
    ...base,
    steps: 'DENSE',
    reason: `a sparse step at ${(100 * fraction).toFixed(1)} % costs ${sparseMs.toFixed(1)} ms against ${(recordDense ? costs.recordMs! : costs.denseMs).toFixed(1)} ms for a dense one${more} (measured for this model and size): ran dense`,
  };
}

/** The edit a root's recording is weighed against: a found mask of 10 %, sparse after the latent strategy's capture (30 % of the steps). */
export const TYPICAL_EDIT = { fraction: 0.1, captureShare: 0.3 };

/**
 * Whether a new root records its activations for the sparse steps of its edits: only where that pays for
 * itself in one typical sparse edit (TYPICAL_EDIT). Recording costs its steps' extra time and the decode that
 * keeps the decoder's page; on the bundled model a recorded generation took 2.4× a plain one (its steps
 * 17–22 against 12 ms, and 60 MiB of activations to write), while its sparse edits ran at the speed of
 * dense ones. At SD width a recording step costs little more than a dense one and a sparse edit saves most
 * of its steps. Unmeasured (no table entry, or no recording or sparse costs): record, as before; the first
 * sparse edit measures them. A root that did not record is re-recorded by an edit that still chooses sparse
 * steps (chooseEditSteps counts it).
 */
export function rootRecording(costs: StepCosts | null, steps: number): { record: boolean; reason: string } {
  const sparseMs = costs ? sparseMsAt(costs, TYPICAL_EDIT.fraction) : null;
  if (!costs || costs.recordMs === null || sparseMs === null) return { record: true, reason: 'recorded: its step costs are not measured yet' };
  const keep = costs.keepPageDecodeMs ?? 0;
  const cost = steps * Math.max(0, costs.recordMs - costs.denseMs) + keep;
  const after = steps - Math.round(TYPICAL_EDIT.captureShare * steps);
  const saves = after * (costs.denseMs - sparseMs) - keep;
  const why = `recording its ${steps} steps costs ${cost.toFixed(0)} ms and a sparse ${(100 * TYPICAL_EDIT.fraction).toFixed(0)} % edit of it saves ${saves.toFixed(0)} ms (measured for this model and size)`;
  return saves > cost ? { record: true, reason: `recorded: ${why}` } : { record: false, reason: `not recorded: ${why}; its edits run dense, or re-record it` };
}

/** Which measurements a table entry belongs to. */
export function stepCostKey(info: ModelInfo, width: number, height: number, batch: number, device = 'cpu', weights = 'fp32'): string {
  const cpu = os.cpus()[0]?.model ?? 'unknown cpu';
  // int8 weights change both step costs (graph/quantizedWeights.ts); fp32 keys stay as they were.
  return `${info.name}|${info.variant ?? ''}|${width}x${height}|b${batch}|${device}|${os.hostname()}|${cpu}${weights === 'fp32' ? '' : `|${weights}`}`;
}

/** What the step-cost table of a state context is looked up by (StateContext's fields, without importing it). */
interface CostContext {
  models: { info: ModelInfo };
  store: { dir: string };
  unet: { weights?: string } | null;
  stepCosts?: StepCostBook | null;
}

/** The context's table (its own, or its state directory's when the choice is on) and the key of a job at this size and CFG batch. */
export function stepCostsFor(ctx: CostContext, width: number, height: number, batch: number): { book: StepCostBook; key: string } | null {
  const book = ctx.stepCosts === undefined ? (stepCostsEnabled() ? StepCostBook.forStateDir(ctx.store.dir) : null) : ctx.stepCosts;
  if (!book) return null;
  // Costs differ per device: DiffusionEngine says which it runs on (plain DiffusionModels: the CPU).
  const device = (ctx.models as { device?: string }).device ?? 'cpu';
  return { book, key: stepCostKey(ctx.models.info, width, height, batch, device, ctx.unet?.weights ?? 'fp32') };
}

/** Weight of a new observation against the stored value (exponential moving average). */
const NEW_WEIGHT = 0.3;
/** Sparse observations within this fraction of a stored one refine it; others are added. */
const FRACTION_BUCKET = 0.02;

/**
 * FISEDIT_STEP_COSTS=off turns the choice off (sparse as planned, dense steps record): the test suite sets
 * it so that fixture edits do not depend on the machine's timing; the choice itself is tested with
 * injected costs.
 */
export function stepCostsEnabled(): boolean {
  return process.env.FISEDIT_STEP_COSTS !== 'off';
}

/**
 * The table: in memory, and in a JSON file when given one (written whole: at once after a calibration,
 * and at flush() after observations, which an edit calls while it writes its node, not in its steps).
 */
export class StepCostBook {
  private readonly table = new Map<string, StepCosts>();
  private dirty = false;

  constructor(private readonly file: string | null = null) {
    if (file && fs.existsSync(file)) {
      try {
        const raw = JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, StepCosts>;
        for (const [k, v] of Object.entries(raw)) if (isStepCosts(v)) this.table.set(k, v);
      } catch {
        // A damaged table is only a cache of measurements: it is measured again and rewritten.
      }
    }
  }

  /** The book of a state directory (one per directory per process). */
  static forStateDir(dir: string): StepCostBook {
    let b = books.get(dir);
    if (!b) books.set(dir, (b = new StepCostBook(path.join(dir, 'step-costs.json'))));
    return b;
  }

  get(key: string): StepCosts | null {
    return this.table.get(key) ?? null;
  }

  set(key: string, costs: StepCosts): void {
    this.table.set(key, { ...costs, sparse: [...costs.sparse].sort((a, b) => a.fraction - b.fraction) });
    this.save();
  }

  /**
   * Folds an edit's own step times (ms per step) into the entry, if there is one.
   *
   * The machine's load moves every kind of step alike, and an edit runs one kind after its capture. So
   * with a dense time the kinds not seen follow dense's change (their ratios to it stay), and a kind seen
   * beside it (the same edit: its capture steps are dense) moves its ratio to dense: ratios measured side
   * by side. Tracking each kind alone let a busy minute inflate the dense time until the stale
   * recording time looked cheap, and an edit recorded at 2× a dense step's cost.
   */
  observe(key: string, seen: { denseMs?: number; recordMs?: number; sparse?: { fraction: number; ms: number } }): void {
    const c = this.table.get(key);
    if (!c) return;
    const mix = (old: number, now: number) => (1 - NEW_WEIGHT) * old + NEW_WEIGHT * now;
    if (seen.denseMs !== undefined && seen.denseMs > 0 && c.denseMs > 0) {
      const seenDense = seen.denseMs;
      const dense = mix(c.denseMs, seenDense);
      const f = dense / c.denseMs;
      if (c.recordMs !== null) c.recordMs *= f;
      if (c.keepPageDecodeMs !== undefined) c.keepPageDecodeMs *= f;
      for (const p of c.sparse) p.ms *= f;
      c.denseMs = dense;
      const follow = (old: number | null, ms: number) => (old === null ? (ms / seenDense) * dense : dense * mix(old / dense, ms / seenDense));
      if (seen.recordMs !== undefined) c.recordMs = follow(c.recordMs, seen.recordMs);
      if (seen.sparse) {
        const near = c.sparse.find((p) => Math.abs(p.fraction - seen.sparse!.fraction) <= FRACTION_BUCKET);
        if (near) near.ms = follow(near.ms, seen.sparse.ms);
        else c.sparse = [...c.sparse, { fraction: seen.sparse.fraction, ms: follow(null, seen.sparse.ms) }].sort((a, b) => a.fraction - b.fraction);
      }
      this.dirty = true;
      return;
    }
    if (seen.denseMs !== undefined) c.denseMs = mix(c.denseMs, seen.denseMs);
    if (seen.recordMs !== undefined) c.recordMs = c.recordMs === null ? seen.recordMs : mix(c.recordMs, seen.recordMs);
    if (seen.sparse) {
      const near = c.sparse.find((p) => Math.abs(p.fraction - seen.sparse!.fraction) <= FRACTION_BUCKET);
      if (near) near.ms = mix(near.ms, seen.sparse.ms);
      else c.sparse = [...c.sparse, { ...seen.sparse }].sort((a, b) => a.fraction - b.fraction);
    }
    this.dirty = true;
  }

  /** Writes the observations made since the last write (no-op when none, or without a file). */
  flush(): void {
    if (this.dirty) this.save();
  }

  private save(): void {
    this.dirty = false;
    if (!this.file) return;
    const tmp = `${this.file}.${process.pid}.tmp`;
    fs.writeFileSync(tmp, JSON.stringify(Object.fromEntries(this.table), null, 1));
    fs.renameSync(tmp, this.file);
  }
}

const books = new Map<string, StepCostBook>();

function isStepCosts(v: unknown): v is StepCosts {
  const c = v as StepCosts;
  return (
    typeof c === 'object' && c !== null && typeof c.denseMs === 'number' && (c.recordMs === null || typeof c.recordMs === 'number') &&
    Array.isArray(c.sparse) && c.sparse.every((p) => typeof p?.fraction === 'number' && typeof p?.ms === 'number') &&
    (c.keepPageDecodeMs === undefined || typeof c.keepPageDecodeMs === 'number')
  );
}

/** Fractions the calibration measures a sparse step at (found masks on the bundled model: 4–30 %). */
export const CALIBRATION_FRACTIONS = [0.1, 0.3];

/** A step's ms: one warm-up run, then the fastest of `reps` (fewer for slow steps). */
async function timeStep(call: () => Promise<unknown>): Promise<number> {
  let t = performance.now();
  await call();
  const first = performance.now() - t;
  const reps = first > 2000 ? 1 : 3;
  let best = Infinity;
  for (let r = 0; r < reps; r++) {
    t = performance.now();
    await call();
    best = Math.min(best, performance.now() - t);
  }
  return best;
}

/**
 * Measures the three step calls an edit can run, at the edit's size: dense (ε only), recording (with its
 * cache writes, into a scratch node) and sparse at CALIBRATION_FRACTIONS (reading that node, writing
 * deltas to a scratch child), in a cache of its own so that nothing of the store's is evicted for it; and,
 * where decodes are full, what keeping the child's decoder page adds to its decode (keepPageDecodeMs).
 * Spill loads are not in these numbers; the edits' own step times (StepCostBook.observe) bring them in.
 */
export async function calibrateStepCosts(
  /** decoder and decodesFull ('auto' decodes this model and size in full): measure keepPageDecodeMs. */
  parts: { models: DiffusionModels; unet: EditUNet | null; levels: number; decoder?: RegionDecoder | null; decodesFull?: boolean },
  scheduler: Scheduler,
  step: number,
  x: Float32Array,
  text: Float32Array,
  batch: number,
  shape: { channels: number; height: number; width: number },
): Promise<StepCosts> {
  const { models, unet } = parts;
  const { channels: C, height: h, width: w } = shape;
  const input = new StepInputs(scheduler, batch, C * h * w).at(x, step);
  const run = (call: UNetCall) => () => call(input);
  const denseMs = await timeStep(run(denseUNetCall((...a) => models.predictNoise(...a), h, w, text)));
  if (!unet || unet.canRecord === false) return { denseMs, recordMs: null, sparse: [] };
  const cache = new ActivationCache({ budgetBytes: Infinity });
  const root = 'calibration';
  const child = `${root}-child`;
  await cache.createNode(root, null);
  try {
    const recordMs = await timeStep(run(recordingUNetCall(unet, h, w, text, async (i, entries) => void (await putRecordedStep(cache, root, i, unet, entries)))));
    await cache.createNode(child, root);
    const sparse: StepCosts['sparse'] = [];
    for (const f of CALIBRATION_FRACTIONS) {
      // A centred square of about f of the latent.
      const side = Math.max(1, Math.round(Math.sqrt(f * h * w)));
      const mask = { width: w, height: h, data: new Uint8Array(w * h) };
      const [y0, x0] = [Math.max(0, (h - side) >> 1), Math.max(0, (w - side) >> 1)];
      for (let y = y0; y < Math.min(h, y0 + side); y++) for (let xx = x0; xx < Math.min(w, x0 + side); xx++) mask.data[y * w + xx] = 1;
      const levels = buildMaskPyramid(mask, { levels: parts.levels, dilation: 0 });
      const call = sparseUNetCall(unet, unet.preparePyramid(levels), cache, root, text, C, async (i, deltas, device) => void (await putSparseStep(cache, child, i, unet, deltas, device)));
      const ms = await timeStep(async () => {
        const out = await call(input);
        if (out.kind === 'miss') throw new Error(`step-cost calibration: ${out.miss.message}`);
      });
      sparse.push({ fraction: levels[0].active.length / (h * w), ms });
    }
    const costs: StepCosts = { denseMs, recordMs, sparse };
    if (parts.decoder?.hasSparse && parts.decodesFull) costs.keepPageDecodeMs = await measureKeepPageDecode(models, parts.decoder, x, h, w);
    return costs;
  } finally {
    await cache.deleteNode(child).catch(() => undefined);
    await cache.deleteNode(root).catch(() => undefined);
    unet.dropDevice?.(child);
    unet.dropDevice?.(root);
  }
}

/**
 * keepPageDecodeMs: a recording decode that stores its page (in a scratch cache of its own) against the
 * plain decode, on latents x of the edit's shape (any values time the same).
 */
export async function measureKeepPageDecode(models: DiffusionModels, decoder: RegionDecoder, x: Float32Array, h: number, w: number): Promise<number> {
  const scratch = new ActivationCache({ budgetBytes: Infinity });
  await scratch.createNode('decode', null);
  const plain = await timeStep(() => models.decodeLatents(x, h, w));
  const keep = await timeStep(async () => {
    const r = await decoder.decodeRecording(x, h, w, { entries: true });
    await putDecoderEntries(scratch, 'decode', r.entries);
  });
  await scratch.deleteNode('decode');
  return Math.max(0, keep - plain);
}

