// Quantised weights (int8, int4) against fp32 on images (issue 20, lever 1): a fixed set of roots and edits
// run once per weight format, each by its own engine (dense roots recorded, edits sparse with a user disc
// mask), and each quantised format's images compared with the fp32 ones pixel by pixel: max and mean |Δ| / 255 over the
// image, and for edits also inside the region the edit may change (EditResult.affected) (outside it an edit is its parent's,
// so there it differs exactly as the roots do). The 0-pixels-changed-outside check is run on every edit.
//
//   npx tsx bench/edit/weightsError.ts [--model DIR] [--size PX] [--steps N] [--scheduler NAME] [--graph-cache DIR] [--out FILE.json]

import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { WEIGHT_FORMATS, type WeightFormat } from '../../src/engine/graph/graphBuilder';
import { editNode } from '../../src/engine/pipeline/edit';
import { generateNode } from '../../src/engine/pipeline/editRecord';
import type { StateContext } from '../../src/engine/pipeline/editTypes';
import { loadEditComponents, releaseEditComponents } from '../../src/engine/pipeline/editUNet';
import { DiffusionEngine } from '../../src/engine/pipeline/engine';
import { GraphCache } from '../../src/engine/runtime/graphCache';
import { isSchedulerName, type SchedulerName } from '../../src/engine/scheduler';
import { NodeStore } from '../../src/engine/state/nodeStore';
import { discMask } from './masks';
import { outsideChanged } from './outsideChanged';

const ROOT = path.resolve(__dirname, '../..');

/** The fixed set: (root prompt, seed) → edit prompt, mask area. Prompts in the bundled model's grammar. */
const SET = [
  { prompt: 'a red circle on the left on a white background', seed: 3, edit: 'a green circle on the left on a white background', area: 0.1 },
  { prompt: 'a blue square on the right on a black background', seed: 7, edit: 'a yellow square on the right on a black background', area: 0.25 },
  { prompt: 'a large purple triangle in the center on a gray background', seed: 11, edit: 'a large orange triangle in the center on a gray background', area: 0.25 },
  { prompt: 'a white circle in the top left and a red square in the bottom right on a blue background', seed: 5, edit: 'a white square in the top left and a red square in the bottom right on a blue background', area: 0.1 },
];

interface Run {
  roots: Uint8Array[];
  edits: { rgb: Uint8Array; region: Uint8Array; outsideChanged: number; mode: string }[];
  width: number;
  height: number;
}

function args(argv: string[]) {
  const o = { model: path.join(ROOT, 'models/default'), size: undefined as number | undefined, steps: 20, scheduler: undefined as SchedulerName | undefined, graphCache: undefined as GraphCache | undefined, out: '', count: SET.length, threads: 2 };
  for (let i = 0; i < argv.length; i++) {
    const v = () => argv[++i];
    if (argv[i] === '--model') o.model = path.resolve(v());
    else if (argv[i] === '--size') o.size = Number(v());
    else if (argv[i] === '--steps') o.steps = Number(v());
    else if (argv[i] === '--count') o.count = Number(v());
    else if (argv[i] === '--threads') o.threads = Number(v());
    else if (argv[i] === '--scheduler') {
      const s = v();
      if (!isSchedulerName(s)) throw new Error(`bench/weightsError: unknown scheduler ${s}`);
      o.scheduler = s;
    } else if (argv[i] === '--graph-cache') o.graphCache = new GraphCache({ dir: path.resolve(v()) });
    else if (argv[i] === '--out') o.out = path.resolve(v());
    else throw new Error(`bench/weightsError: unknown argument ${argv[i]}`);
  }
  if (!o.out) o.out = path.join(ROOT, `bench/results/weights-error-${path.basename(o.model)}${o.size ? `-${o.size}` : ''}.json`);
  return o;
}

async function runAll(o: ReturnType<typeof args>, weights: WeightFormat): Promise<Run> {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), `fisedit-weights-${weights}-`));
  const engine = await DiffusionEngine.load(o.model, { intraOpNumThreads: o.threads, weights, sessionOptions: { graphCache: o.graphCache }, components: ['textEncoder', 'vae'] });
  const parts = await loadEditComponents(o.model, { intraOpNumThreads: o.threads, weights, graphCache: o.graphCache });
  try {
    const store = await NodeStore.open(path.join(tmp, 'state'), { create: true });
    const ctx: StateContext = { models: engine, store, cache: await store.openCache(Infinity), unet: parts.unet, decoder: parts.decoder };
    if (parts.unet.denseSession) await engine.adoptUNet(parts.unet.denseSession);
    const run: Run = { roots: [], edits: [], width: 0, height: 0 };
    for (const item of SET.slice(0, o.count)) {
      const root = await generateNode(ctx, { prompt: item.prompt, seed: item.seed, steps: o.steps, width: o.size, height: o.size, scheduler: o.scheduler });
      const parentRgb = (await store.readImage(root.record)).rgb;
      run.roots.push(parentRgb);
      const [, h, w] = root.record.latentShape;
      [run.width, run.height] = [root.record.width, root.record.height];
      const e = await editNode(ctx, { parentId: root.record.id, prompt: item.edit, mask: discMask(w, h, item.area), denseAboveFraction: 1 });
      const rgb = (await store.readImage(e.node)).rgb;
      run.edits.push({ rgb, region: e.affected.data, outsideChanged: outsideChanged(e, parentRgb), mode: e.mode });
      process.stderr.write(`${weights}: ${item.prompt} → ${item.edit}: ${e.mode}\n`);
    }
    return run;
  } finally {
    await releaseEditComponents(parts);
    await engine.dispose();
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

/** max and mean |a − b| over RGB values (of the pixels where `where` is 1, if given), in /255 units. */
function diff(a: Uint8Array, b: Uint8Array, where?: Uint8Array): { max: number; mean: number } {
  let max = 0;
  let sum = 0;
  let n = 0;
  for (let i = 0; i < a.length; i++) {
    if (where && !where[Math.floor(i / 3)]) continue;
    const d = Math.abs(a[i] - b[i]);
    max = Math.max(max, d);
    sum += d;
    n++;
  }
  return { max, mean: n ? sum / n : 0 };
}

async function main(): Promise<void> {
  const o = args(process.argv.slice(2));
  const runs = new Map<WeightFormat, Run>();
  for (const wf of WEIGHT_FORMATS) runs.set(wf, await runAll(o, wf));
  const fp = runs.get('fp32')!;
  const f = (d: { max: number; mean: number }) => `${d.max.toFixed(0).padStart(3)} / ${d.mean.toFixed(2).padStart(5)}`;
  const formats: Record<string, unknown> = {};
  for (const wf of WEIGHT_FORMATS.filter((x) => x !== 'fp32')) {
    const q = runs.get(wf)!;
    const rows = SET.slice(0, o.count).map((item, i) => ({
      root: item.prompt,
      edit: item.edit,
      area: item.area,
      rootDiff: diff(q.roots[i], fp.roots[i]),
      editDiff: diff(q.edits[i].rgb, fp.edits[i].rgb),
      editRegionDiff: diff(q.edits[i].rgb, fp.edits[i].rgb, fp.edits[i].region),
      modes: [fp.edits[i].mode, q.edits[i].mode],
      outsideChanged: Math.max(fp.edits[i].outsideChanged, q.edits[i].outsideChanged),
    }));
    console.log(`\n${wf} vs fp32 weights — ${path.basename(o.model)}, ${fp.width}×${fp.height}, ${o.steps} steps; max / mean |Δ| in /255`);
    console.log('root (dense)    edit (image)    edit (region)   outside changed   edit');
    for (const r of rows) console.log(`${f(r.rootDiff)}       ${f(r.editDiff)}       ${f(r.editRegionDiff)}       ${String(r.outsideChanged).padStart(3)}               ${r.edit}`);
    const all = (k: 'rootDiff' | 'editDiff' | 'editRegionDiff') => ({ max: Math.max(...rows.map((r) => r[k].max)), mean: rows.reduce((s, r) => s + r[k].mean, 0) / rows.length });
    const summary = { root: all('rootDiff'), edit: all('editDiff'), editRegion: all('editRegionDiff') };
    console.log(`all: roots ${f(summary.root)}, edits ${f(summary.edit)}, edit regions ${f(summary.editRegion)}; outside-region pixels changed: ${Math.max(...rows.map((r) => r.outsideChanged))} (must be 0)`);
    formats[wf] = { rows, summary };
  }
  fs.mkdirSync(path.dirname(o.out), { recursive: true });
  fs.writeFileSync(o.out, `${JSON.stringify({ bench: 'weights-error', date: new Date().toISOString(), model: path.basename(o.model), size: [fp.width, fp.height], steps: o.steps, scheduler: o.scheduler ?? null, against: 'fp32', formats }, null, 2)}\n`);
  console.log(`wrote ${o.out}`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
