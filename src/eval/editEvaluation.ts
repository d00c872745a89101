// Edit quality on a scene model: for each held-out scene, generate the parent (recorded), make the edit
// case (one object's colour or shape changed, editCases.ts), run the FISEdit edit, and score
//   - success: the edited object shows the new attribute (colour edit: its new colour forms a blob in its
//     cell; shape edit: its colour there with the new shape), by scoreScene on the edited spec;
//   - preservation: pixels outside the edit's affected region that differ from the parent (must be 0),
//     and how many of the other objects keep their parent's score;
//   - the reference: the same edited prompt regenerated densely from the parent's seed (what a dense
//     edit produces), scored the same way. Where that regeneration shows the new attribute, a failed
//     edit is FISEdit's; where it does not, the model cannot draw the edited scene at that seed;
//   - remnants: pixels of the object's old look the edit left where the dense regeneration has none
//     (remnants.ts; a ring of the old object beside the new one);
//   - cost: mode, masked fraction, edit time against that dense regeneration's time (no recording).
import type { CoarseCover } from '../engine/mask/pyramid';
import type { MaskStrategy, StateContext } from '../engine/pipeline/editTypes';
import { editNode } from '../engine/pipeline/edit';
import { generateNode } from '../engine/pipeline/editRecord';
import { generate } from '../engine/pipeline/generate';
import type { SheetTile } from './contactSheet';
import { editCase, type EditCase } from './editCases';
import type { EvalSettings } from './runEvaluation';
import { remnantPixels } from './remnants';
import { scoreScene, type ObjectScore } from './scoreScene';
import type { SceneSpec } from './sceneSpec';

export interface EditEvalSettings extends EvalSettings {
  strategy: Exclude<MaskStrategy, 'mask'>;
  /** Latent pixels the found mask grows by before the sparse steps (EditRequest.maskDilation). */
  maskDilation?: number;
  /** EditRequest.coarseCover. */
  coarseCover?: CoarseCover;
  /** Latent pixels each found mask grows by before its latents change (EditRequest.maskGrowth). */
  maskGrowth?: number;
  /** Dense capture steps k of each edit (EditRequest.captureSteps); default the strategy's. */
  captureSteps?: number;
  /** How each edit decodes (EditRequest.decode); default auto. */
  decode?: 'auto' | 'sparse' | 'crop' | 'full';
}

export interface EditEvalItem {
  edit: EditCase;
  seed: number;
  parentRgb: Uint8Array;
  childRgb: Uint8Array;
  width: number;
  height: number;
  /** The edited object as the parent drew it (scored against the parent's spec). */
  parentObject: ObjectScore;
  /** The edited object as the child drew it (scored against the edited spec). */
  childObject: ObjectScore;
  success: boolean;
  /** The edited object in the dense regeneration of the edited prompt (same seed), and whether it shows the new attribute. */
  denseObject: ObjectScore;
  denseSuccess: boolean;
  /** Pixels outside the affected region that differ from the parent. */
  outsideChanged: number;
  /** Pixels of the edited object's old colour(s) left where the dense regeneration has none (remnants.ts). */
  remnantPixels: number;
  /** Other objects whose colour+position score is the same in parent and child. */
  othersKept: number;
  others: number;
  mode: string;
  maskedFraction: number;
  editMs: number;
  /** The recorded parent's generation (with recording). */
  generateMs: number;
  /** The dense regeneration of the edited prompt (no recording): the baseline an edit replaces. */
  denseMs: number;
}

export interface EditEvalSummary {
  cases: number;
  success: number;
  /** Success among cases whose parent drew the object right (colour+position): the edit's own share. */
  successWhereParentRight: number;
  parentRight: number;
  /** Per kind: all cases, and the cases whose parent drew the object right (colour+position). */
  byKind: Record<'colour' | 'shape', { cases: number; success: number; parentRight: number; successWhereParentRight: number; denseSuccess: number; successWhereDenseRight: number }>;
  /** Dense regenerations of the edited prompt that show the new attribute: the model's own ceiling. */
  denseSuccess: number;
  /** Edit success among the cases whose dense regeneration shows the new attribute: FISEdit's own share. */
  successWhereDenseRight: number;
  denseRight: number;
  outsideChangedPixels: number;
  /** Σ remnant pixels over the edits, and how many edits left any. */
  remnantPixels: number;
  editsWithRemnants: number;
  /** Fraction of the other objects whose score the edit kept; null when no case has another object. */
  othersKept: number | null;
  meanMaskedFraction: number;
  modes: Record<string, number>;
  /** Σ dense regeneration ms / Σ edit ms. */
  speedup: number;
  /**
   * Per case, dense regeneration ms / edit ms: median and quartiles. On a shared 2-core machine single jobs
   * run up to 1.6× their usual time (a GC, another process), and a few of those move the Σ ratio by
   * several per cent either way; the median says what a typical edit costs against its regeneration.
   */
  speedupPerCase: { median: number; q1: number; q3: number };
}

export interface EditEvalReport {
  settings: EditEvalSettings;
  summary: EditEvalSummary;
  items: EditEvalItem[];
  wallMs: number;
}

function shows(kind: EditCase['kind'], o: ObjectScore): boolean {
  return kind === 'colour' ? o.colourPosition : o.shapeCorrect;
}

export async function runEditEvaluation(
  ctx: StateContext,
  specs: SceneSpec[],
  settings: EditEvalSettings,
  onProgress?: (done: number, total: number) => void,
): Promise<EditEvalReport> {
  const t0 = performance.now();
  const items: EditEvalItem[] = [];
  for (let i = 0; i < specs.length; i++) {
    const c = editCase(specs[i], i);
    const seed = settings.baseSeed + i;
    const root = await generateNode(ctx, { prompt: c.parent.caption, seed, steps: settings.steps, guidance: settings.guidance, scheduler: settings.scheduler });
    const edit = () => editNode(ctx, { parentId: root.record.id, prompt: c.child.caption, strategy: settings.strategy, maskDilation: settings.maskDilation, coarseCover: settings.coarseCover, maskGrowth: settings.maskGrowth, captureSteps: settings.captureSteps, decode: settings.decode });
    const regenerate = () => generate(ctx.models, { prompt: c.child.caption, seed, steps: settings.steps, guidance: settings.guidance, scheduler: settings.scheduler });
    // The edit and the dense regeneration alternate which runs first: whichever follows the root's recording
    // meets sessions another graph has just left (a 2–3× slower first step or two on the bundled model).
    let e: Awaited<ReturnType<typeof edit>>;
    let dense: Awaited<ReturnType<typeof regenerate>>;
    if (i % 2 === 0) {
      e = await edit();
      dense = await regenerate();
    } else {
      dense = await regenerate();
      e = await edit();
    }
    const { width: W, height: H } = root.result;
    const parentRgb = root.result.rgb;
    let outsideChanged = 0;
    for (let p = 0; p < W * H; p++) {
      if (e.affected.data[p]) continue;
      if (parentRgb[3 * p] !== e.rgb[3 * p] || parentRgb[3 * p + 1] !== e.rgb[3 * p + 1] || parentRgb[3 * p + 2] !== e.rgb[3 * p + 2]) outsideChanged++;
    }
    const before = scoreScene(parentRgb, W, H, c.parent).objects;
    const after = scoreScene(e.rgb, W, H, c.child).objects;
    const denseObject = scoreScene(dense.rgb, W, H, c.child).objects[c.objectIndex];
    const others = before.map((_, k) => k).filter((k) => k !== c.objectIndex);
    const remnants = remnantPixels(parentRgb, e.rgb, dense.rgb, W, H, { oldColour: c.parent.objects[c.objectIndex].colour, newColour: c.child.objects[c.objectIndex].colour, background: c.parent.background }, e.affected);
    items.push({
      edit: c,
      seed,
      parentRgb,
      childRgb: e.rgb,
      width: W,
      height: H,
      parentObject: before[c.objectIndex],
      childObject: after[c.objectIndex],
      success: shows(c.kind, after[c.objectIndex]),
      denseObject,
      denseSuccess: shows(c.kind, denseObject),
      outsideChanged,
      remnantPixels: remnants,
      othersKept: others.filter((k) => before[k].colourPosition === after[k].colourPosition).length,
      others: others.length,
      mode: e.mode,
      maskedFraction: e.maskedFraction,
      editMs: e.totalMs,
      generateMs: root.result.totalMs,
      denseMs: dense.totalMs,
    });
    onProgress?.(i + 1, specs.length);
  }
  return { settings, summary: summariseEdits(items), items, wallMs: performance.now() - t0 };
}

export function summariseEdits(items: EditEvalItem[]): EditEvalSummary {
  const frac = (n: number, d: number) => (d === 0 ? 0 : n / d);
  const right = items.filter((it) => it.parentObject.colourPosition);
  const byKind = (k: 'colour' | 'shape') => {
    const of = items.filter((it) => it.edit.kind === k);
    const ofRight = of.filter((it) => it.parentObject.colourPosition);
    return {
      cases: of.length,
      success: frac(of.filter((it) => it.success).length, of.length),
      parentRight: ofRight.length,
      successWhereParentRight: frac(ofRight.filter((it) => it.success).length, ofRight.length),
      denseSuccess: frac(of.filter((it) => it.denseSuccess).length, of.length),
      successWhereDenseRight: frac(of.filter((it) => it.denseSuccess && it.success).length, of.filter((it) => it.denseSuccess).length),
    };
  };
  const modes: Record<string, number> = {};
  for (const it of items) modes[it.mode] = (modes[it.mode] ?? 0) + 1;
  const sum = (f: (it: EditEvalItem) => number) => items.reduce((a, it) => a + f(it), 0);
  return {
    cases: items.length,
    success: frac(items.filter((it) => it.success).length, items.length),
    successWhereParentRight: frac(right.filter((it) => it.success).length, right.length),
    parentRight: right.length,
    denseSuccess: frac(items.filter((it) => it.denseSuccess).length, items.length),
    successWhereDenseRight: frac(items.filter((it) => it.denseSuccess && it.success).length, items.filter((it) => it.denseSuccess).length),
    denseRight: items.filter((it) => it.denseSuccess).length,
    byKind: { colour: byKind('colour'), shape: byKind('shape') },
    outsideChangedPixels: sum((it) => it.outsideChanged),
    remnantPixels: sum((it) => it.remnantPixels),
    editsWithRemnants: items.filter((it) => it.remnantPixels > 0).length,
    othersKept: sum((it) => it.others) === 0 ? null : sum((it) => it.othersKept) / sum((it) => it.others),
    meanMaskedFraction: frac(sum((it) => it.maskedFraction), items.length),
    modes,
    speedup: frac(sum((it) => it.denseMs), sum((it) => it.editMs)),
    speedupPerCase: quartiles(items.map((it) => frac(it.denseMs, it.editMs))),
  };
}

/** Median and quartiles (linear interpolation between order statistics; zeros when empty). */
export function quartiles(values: number[]): { median: number; q1: number; q3: number } {
  if (values.length === 0) return { median: 0, q1: 0, q3: 0 };
  const v = [...values].sort((a, b) => a - b);
  const at = (p: number) => {
    const x = p * (v.length - 1);
    const i = Math.floor(x);
    return i + 1 < v.length ? v[i] + (x - i) * (v[i + 1] - v[i]) : v[i];
  };
  return { median: at(0.5), q1: at(0.25), q3: at(0.75) };
}

/** Rows of up to `perRow` cases: parents (grey frames) above their edits (green = shows the new attribute). */
export function editSheetRows(items: EditEvalItem[], perRow = 10): SheetTile[][] {
  const rows: SheetTile[][] = [];
  for (let i = 0; i < items.length; i += perRow) {
    const chunk = items.slice(i, i + perRow);
    rows.push(chunk.map((it) => ({ rgb: it.parentRgb, width: it.width, height: it.height, ok: null })));
    rows.push(chunk.map((it) => ({ rgb: it.childRgb, width: it.width, height: it.height, ok: it.success })));
  }
  return rows;
}
