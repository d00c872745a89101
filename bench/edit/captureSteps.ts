// How many dense capture steps k does target-area capture need? (FISEdit uses 10 of 50, which caps
// the UNet speedup at 5×.) For colour and shape edits of one object on the default model:
//   reference  = where dense regeneration of the new prompt (same seed) ends up different from the
//                parent: FISEdit's own map (L1 over channels, min–max, Otsu, 2×2 opening) on the final
//                latents — the change the edit should confine itself to;
//   mask(k)    = the edit's latent mask after k dense steps;
// reported per k: IoU / precision / recall against the reference, mask area, edit time (latent
// strategy, sparse forced), and the scene evaluator's verdict on the edited object (src/eval).
//
//   npx tsx bench/edit/captureSteps.ts [--model DIR] [--steps N] [--ks 1,2,4,6,10] [--threads N] [--out FILE.json]

import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { BinaryMask } from '../../src/engine/mask/binaryMask';
import { TargetAreaCapture, targetAreaMask } from '../../src/engine/mask/latentDifference';
import { editNode } from '../../src/engine/pipeline/edit';
import { generateNode } from '../../src/engine/pipeline/editRecord';
import type { StateContext } from '../../src/engine/pipeline/editTypes';
import { loadEditUNet } from '../../src/engine/pipeline/editUNet';
import { DiffusionEngine } from '../../src/engine/pipeline/engine';
import { NodeStore } from '../../src/engine/state/nodeStore';
import { scoreScene } from '../../src/eval/scoreScene';
import { parseSceneCaption } from '../../src/eval/sceneSpec';

const ROOT = path.resolve(__dirname, '../..');

/** [parent prompt, edited prompt, index of the edited object]. */
const EDITS: Array<[string, string, number]> = [
  ['a red circle on the left and a blue square on the right', 'a green circle on the left and a blue square on the right', 0],
  ['a red circle on the left and a blue square on the right', 'a red triangle on the left and a blue square on the right', 0],
  ['a yellow square at the top and a purple circle at the bottom', 'a yellow square at the top and an orange circle at the bottom', 1],
  ['a large orange circle in the center on a black background', 'a large orange square in the center on a black background', 0],
];
const SEEDS = [1, 2];

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : dflt;
}

function agreement(a: BinaryMask, ref: BinaryMask): { iou: number; precision: number; recall: number } {
  let both = 0;
  let na = 0;
  let nr = 0;
  for (let p = 0; p < a.data.length; p++) {
    both += a.data[p] & ref.data[p];
    na += a.data[p];
    nr += ref.data[p];
  }
  const union = na + nr - both;
  return { iou: union ? both / union : 1, precision: na ? both / na : 1, recall: nr ? both / nr : 1 };
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

async function main(): Promise<void> {
  const model = path.resolve(arg('model', path.join(ROOT, 'models/default')));
  const steps = Number(arg('steps', '20'));
  const ks = arg('ks', '1,2,4,6,10').split(',').map(Number);
  const threads = Number(arg('threads', '2'));
  const out = path.resolve(arg('out', path.join(ROOT, 'bench/results/edit-capture-steps.json')));
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'fisedit-bench-k-'));
  const engine = await DiffusionEngine.load(model, { intraOpNumThreads: threads });
  const unet = await loadEditUNet(model, { intraOpNumThreads: threads });
  const store = await NodeStore.open(path.join(tmp, 'state'), { create: true });
  const ctx: StateContext = { models: engine, store, cache: await store.openCache(Infinity), unet };
  const perK = new Map<number, Array<{ iou: number; precision: number; recall: number; fraction: number; ms: number; objectOk: boolean; othersOk: boolean }>>();
  const denseScores: boolean[] = [];
  try {
    for (const [from, to, obj] of EDITS) {
      for (const seed of SEEDS) {
        const root = (await generateNode(ctx, { prompt: from, seed, steps })).record;
        const [C, h, w] = root.latentShape;
        const dense = await engine.generate({ prompt: to, seed, steps });
        const ref = new TargetAreaCapture({ channels: C, height: h, width: w });
        ref.addStep(dense.latents, store.readLatents(root).subarray(steps * C * h * w));
        const refMask = targetAreaMask(ref.differenceMap(), w, h).mask;
        const spec = parseSceneCaption(to);
        denseScores.push(scoreScene(dense.rgb, dense.width, dense.height, spec).objects[obj].colourPosition);
        for (const k of ks) {
          const e = await editNode(ctx, { parentId: root.id, prompt: to, captureSteps: k, denseAboveFraction: 1 });
          const s = scoreScene(e.rgb, e.width, e.height, spec);
          const row = { ...agreement(e.mask, refMask), fraction: e.maskedFraction, ms: e.totalMs, objectOk: s.objects[obj].colourPosition && s.objects[obj].shapeCorrect, othersOk: s.objects.every((o, i) => i === obj || o.colourPosition) };
          perK.set(k, [...(perK.get(k) ?? []), row]);
          process.stderr.write(`${from} → ${to} seed ${seed} k ${k}: IoU ${row.iou.toFixed(2)}, mask ${(100 * row.fraction).toFixed(1)} %, ${row.ms.toFixed(0)} ms\n`);
        }
      }
    }
    const rows = ks.map((k) => {
      const r = perK.get(k)!;
      return {
        k,
        iou: mean(r.map((x) => x.iou)),
        precision: mean(r.map((x) => x.precision)),
        recall: mean(r.map((x) => x.recall)),
        maskFraction: mean(r.map((x) => x.fraction)),
        editMs: mean(r.map((x) => x.ms)),
        editedObjectCorrect: mean(r.map((x) => (x.objectOk ? 1 : 0))),
        otherObjectsKept: mean(r.map((x) => (x.othersOk ? 1 : 0))),
        ceiling: steps / k,
      };
    });
    console.log(`target-area capture vs k — ${path.basename(model)}, ${steps} steps, ${EDITS.length} edits × ${SEEDS.length} seeds (dense regeneration gets the edited object's colour right in ${(100 * mean(denseScores.map(Number))).toFixed(0)} %)`);
    console.log('   k   IoU  precision  recall   mask   edit ms  edited obj ok  others kept  UNet ceiling');
    for (const r of rows) {
      console.log(`${String(r.k).padStart(4)}  ${r.iou.toFixed(2)}  ${r.precision.toFixed(2).padStart(9)}  ${r.recall.toFixed(2).padStart(6)}  ${(100 * r.maskFraction).toFixed(1).padStart(4)}%  ${r.editMs.toFixed(0).padStart(8)}  ${(100 * r.editedObjectCorrect).toFixed(0).padStart(12)}%  ${(100 * r.otherObjectsKept).toFixed(0).padStart(10)}%  ${r.ceiling.toFixed(1).padStart(11)}×`);
    }
    fs.mkdirSync(path.dirname(out), { recursive: true });
    fs.writeFileSync(out, `${JSON.stringify({ bench: 'edit-capture-steps', date: new Date().toISOString(), model: path.basename(model), steps, edits: EDITS, seeds: SEEDS, denseEditedObjectColourOk: mean(denseScores.map(Number)), rows }, null, 1)}\n`);
    process.stderr.write(`wrote ${out}\n`);
  } finally {
    await unet.release();
    await engine.dispose();
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

main().catch((e) => {
  process.stderr.write(`${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exitCode = 1;
});
