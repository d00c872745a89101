// Held-out evaluation of a scene model: generate each caption with a fixed seed, score it objectively
// (scoreScene), summarise per attribute, and lay out a contact sheet (reference render above sample).
import { renderScene, type RenderableObject } from './renderScene';
import { scoreScene, summarise, type AccuracySummary, type SceneScore } from './scoreScene';
import type { SceneSpec } from './sceneSpec';
import type { SheetTile } from './contactSheet';

/** What the evaluator needs from an engine (DiffusionEngine satisfies it). */
export interface SceneGenerator {
  generate(req: {
    prompt: string;
    seed: number;
    steps: number;
    guidance: number;
    scheduler: 'ddim' | 'dpmpp-2m' | 'euler';
  }): Promise<{ rgb: Uint8Array; width: number; height: number }>;
}

export interface EvalSettings {
  steps: number;
  guidance: number;
  scheduler: 'ddim' | 'dpmpp-2m' | 'euler';
  /** Caption i is generated with seed baseSeed + i, so runs are comparable. */
  baseSeed: number;
}

export interface EvalItem {
  caption: string;
  seed: number;
  score: SceneScore;
  rgb: Uint8Array;
  width: number;
  height: number;
  /** The generator's exact reference render when the spec carries jitter/size (held-out files do). */
  reference: Uint8Array | null;
}

export interface EvalReport {
  settings: EvalSettings;
  summary: AccuracySummary;
  /** Accuracy split by how many objects the caption names. */
  byObjectCount: Record<string, AccuracySummary>;
  items: EvalItem[];
  wallMs: number;
}

export type EvalSpec = SceneSpec & { render?: { objects: RenderableObject[]; background: string } };

export async function runEvaluation(
  gen: SceneGenerator,
  specs: EvalSpec[],
  settings: EvalSettings,
  onProgress?: (done: number, total: number) => void,
): Promise<EvalReport> {
  const t0 = performance.now();
  const items: EvalItem[] = [];
  for (let i = 0; i < specs.length; i++) {
    const spec = specs[i];
    const seed = settings.baseSeed + i;
    const out = await gen.generate({ prompt: spec.caption, seed, steps: settings.steps, guidance: settings.guidance, scheduler: settings.scheduler });
    items.push({
      caption: spec.caption,
      seed,
      score: scoreScene(out.rgb, out.width, out.height, spec),
      rgb: out.rgb,
      width: out.width,
      height: out.height,
      reference: spec.render ? renderScene(spec.render.objects, spec.render.background) : null,
    });
    onProgress?.(i + 1, specs.length);
  }
  const byObjectCount: Record<string, AccuracySummary> = {};
  for (const n of [...new Set(specs.map((s) => s.objects.length))].sort()) {
    byObjectCount[String(n)] = summarise(items.filter((_, i) => specs[i].objects.length === n).map((it) => it.score));
  }
  return { settings, summary: summarise(items.map((it) => it.score)), byObjectCount, items, wallMs: performance.now() - t0 };
}

/** Rows of up to `perRow` captions: a reference row (grey frames) above the generated row (green = all correct). */
export function contactSheetRows(items: EvalItem[], perRow = 10): SheetTile[][] {
  const rows: SheetTile[][] = [];
  for (let i = 0; i < items.length; i += perRow) {
    const chunk = items.slice(i, i + perRow);
    if (chunk.some((it) => it.reference)) {
      rows.push(chunk.map((it) => ({ rgb: it.reference ?? new Uint8Array(it.width * it.height * 3).fill(255), width: 64, height: 64, ok: null })));
    }
    rows.push(chunk.map((it) => ({ rgb: it.rgb, width: it.width, height: it.height, ok: it.score.allCorrect })));
  }
  return rows;
}
