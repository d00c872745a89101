// Issue 15 item 2: on the bundled model (models/default, 4 M parameters, 64×64) an edit must not cost
// more than regenerating the same prompt densely. Each call is a fresh CLI process (node bin/fisedit.js,
// as a user runs it):
//
//   root: generate --state S --prompt ROOT_PROMPT --seed SEED          (once)
//   pair: edit --state S --parent ROOT --prompt EDIT_PROMPT            (always an edit of the root)
//         generate --prompt EDIT_PROMPT --seed SEED                    (no state: a plain regeneration)
//
// The pair's order alternates (edit first in even pairs, generate first in odd ones) so that drift in the
// machine's load hits both sides. Compared: each JSON's totalMs (the engine's own time; model loading and
// node/PNG writing excluded from both). Ratios are per pair, side by side. Beside them, each process's
// wall time from spawn to exit (what `time fisedit …` shows a user: Node start-up, model loading and
// writing included) is compared the same way.
//
//   npx tsx bench/edit/bundledCost.ts [--pairs N] [--out FILE.json]

import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { quartiles } from '../../src/eval/editEvaluation';

const ROOT = path.resolve(__dirname, '../..');
const CLI = path.join(ROOT, 'bin/fisedit.js');
const MODEL = path.join(ROOT, 'models/default');
const ROOT_PROMPT = 'a red circle on the left on a white background';
const EDIT_PROMPT = 'a green circle on the left on a white background';
const SEED = 7;

interface Pair {
  pair: number;
  order: 'edit-first' | 'generate-first';
  editMs: number;
  generateMs: number;
  ratio: number;
  /** Spawn to exit of each CLI process. */
  editWallMs: number;
  generateWallMs: number;
  wallRatio: number;
  editMode: string;
  maskedFraction: number;
  denseSteps: number;
  sparseSteps: number;
  editReason: string;
  editTimings: Record<string, number>;
  generateTimings: Record<string, number>;
}

function args(argv: string[]) {
  const o = { pairs: 14, out: path.join(ROOT, 'bench/results/bundled-edit-cost.json'), nodeArgs: [] as string[] };
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--pairs') o.pairs = Number(argv[++i]);
    else if (argv[i] === '--out') o.out = path.resolve(argv[++i]);
    else if (argv[i] === '--node-args') o.nodeArgs = argv[++i].split(' ').filter(Boolean);
    else throw new Error(`bench/edit/bundledCost: unknown argument ${argv[i]}`);
  }
  if (!Number.isInteger(o.pairs) || o.pairs < 1) throw new Error('bench/edit/bundledCost: --pairs takes a positive integer');
  return o;
}

/** One CLI call; its last stdout line (the --json summary) parsed. */
let NODE_ARGS: string[] = [];
function cli(argv: string[]): Record<string, any> {
  const t0 = performance.now();
  const r = spawnSync(process.execPath, [...NODE_ARGS, CLI, ...argv, '--json', '--progress', 'none'], { cwd: ROOT, encoding: 'utf8', maxBuffer: 64 * 2 ** 20 });
  if (r.status !== 0) throw new Error(`bench/edit/bundledCost: fisedit ${argv[0]} exited ${r.status}: ${r.stderr.slice(-2000)}`);
  const wallMs = performance.now() - t0;
  return { ...JSON.parse(r.stdout.trim().split('\n').pop()!), wallMs };
}

function summary(values: number[]) {
  const s = [...values].sort((a, b) => a - b);
  const r = (v: number) => Math.round(v * 1000) / 1000;
  const q = quartiles(s);
  return { min: r(s[0]), q1: r(q.q1), median: r(q.median), q3: r(q.q3), max: r(s[s.length - 1]) };
}

function main() {
  const o = args(process.argv.slice(2));
  NODE_ARGS = o.nodeArgs;
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'fisedit-bench-bundled-cost-'));
  const state = path.join(tmp, 'state');
  try {
    const root = cli(['generate', '--model', MODEL, '--state', state, '--prompt', ROOT_PROMPT, '--seed', String(SEED), '--out', path.join(tmp, 'root.png')]);
    console.log(`root ${root.nodeId}: ${root.width}×${root.height}, ${root.steps} ${root.scheduler} steps, totalMs ${root.totalMs}`);

    const edit = () => cli(['edit', '--state', state, '--parent', root.nodeId, '--prompt', EDIT_PROMPT, '--out', path.join(tmp, 'edit.png')]);
    const regenerate = () => cli(['generate', '--model', MODEL, '--prompt', EDIT_PROMPT, '--seed', String(SEED), '--out', path.join(tmp, 'regen.png')]);

    const pairs: Pair[] = [];
    for (let i = 0; i < o.pairs; i++) {
      const editFirst = i % 2 === 0;
      let e: Record<string, any>;
      let g: Record<string, any>;
      if (editFirst) {
        e = edit();
        g = regenerate();
      } else {
        g = regenerate();
        e = edit();
      }
      const p: Pair = {
        pair: i + 1,
        order: editFirst ? 'edit-first' : 'generate-first',
        editMs: e.totalMs,
        generateMs: g.totalMs,
        ratio: Math.round((e.totalMs / g.totalMs) * 1000) / 1000,
        editWallMs: Math.round(e.wallMs),
        generateWallMs: Math.round(g.wallMs),
        wallRatio: Math.round((e.wallMs / g.wallMs) * 1000) / 1000,
        editMode: e.mode,
        maskedFraction: e.maskedFraction,
        denseSteps: e.denseSteps,
        sparseSteps: e.sparseSteps,
        editReason: e.reason,
        editTimings: e.timings,
        generateTimings: g.timings,
      };
      pairs.push(p);
      console.log(
        `pair ${String(p.pair).padStart(2)} ${p.order.padEnd(14)} edit ${p.editMs.toFixed(1).padStart(7)} ms   generate ${p.generateMs.toFixed(1).padStart(7)} ms   ` +
          `edit/generate ${p.ratio.toFixed(3)} (wall ${p.editWallMs}/${p.generateWallMs} ms = ${p.wallRatio.toFixed(3)})   (${p.editMode}, ${(100 * p.maskedFraction).toFixed(1)} % masked, ${p.denseSteps} dense / ${p.sparseSteps} sparse steps)`,
      );
    }

    const ratio = summary(pairs.map((p) => p.ratio));
    const editMs = summary(pairs.map((p) => p.editMs));
    const generateMs = summary(pairs.map((p) => p.generateMs));
    const wallRatio = summary(pairs.map((p) => p.wallRatio));
    const editWallMs = summary(pairs.map((p) => p.editWallMs));
    const generateWallMs = summary(pairs.map((p) => p.generateWallMs));
    // Median of each phase over the pairs: where an edit's extra time goes.
    const phaseMedians = (pick: (p: Pair) => Record<string, number>) =>
      Object.fromEntries(Object.keys(pick(pairs[0])).map((k) => [k, summary(pairs.map((p) => pick(p)[k] ?? 0)).median]));
    const editPhases = phaseMedians((p) => p.editTimings);
    const generatePhases = phaseMedians((p) => p.generateTimings);
    const result = {
      bench: 'bench/edit/bundledCost.ts',
      what: 'fisedit edit vs fisedit generate of the same prompt and seed on models/default, fresh CLI processes, totalMs (model loading and node/PNG writing excluded), interleaved pairs with alternating order',
      date: new Date().toISOString(),
      machine: { cpu: os.cpus()[0]?.model ?? 'unknown', cores: os.cpus().length, loadavg: os.loadavg().map((v) => Math.round(v * 100) / 100) },
      model: path.relative(ROOT, MODEL),
      rootPrompt: ROOT_PROMPT,
      editPrompt: EDIT_PROMPT,
      seed: SEED,
      root: { nodeId: root.nodeId, steps: root.steps, scheduler: root.scheduler, width: root.width, height: root.height, device: root.device },
      pairs,
      editMs,
      generateMs,
      ratio,
      editWallMs,
      generateWallMs,
      wallRatio,
      editPhaseMediansMs: editPhases,
      generatePhaseMediansMs: generatePhases,
      bound: 1.05,
      medianWithinBound: ratio.median <= 1.05,
    };
    fs.mkdirSync(path.dirname(o.out), { recursive: true });
    fs.writeFileSync(o.out, `${JSON.stringify(result, null, 2)}\n`);
    console.log(`edit     ms: min ${editMs.min}  q1 ${editMs.q1}  median ${editMs.median}  q3 ${editMs.q3}  max ${editMs.max}`);
    console.log(`generate ms: min ${generateMs.min}  q1 ${generateMs.q1}  median ${generateMs.median}  q3 ${generateMs.q3}  max ${generateMs.max}`);
    console.log(`edit phases (median ms):     ${JSON.stringify(editPhases)}`);
    console.log(`generate phases (median ms): ${JSON.stringify(generatePhases)}`);
    console.log(`edit/generate: min ${ratio.min}  q1 ${ratio.q1}  median ${ratio.median}  q3 ${ratio.q3}  max ${ratio.max}  (median ${result.medianWithinBound ? 'within' : 'above'} 1.05)`);
    console.log(`wall (spawn to exit), edit/generate: min ${wallRatio.min}  q1 ${wallRatio.q1}  median ${wallRatio.median}  q3 ${wallRatio.q3}  max ${wallRatio.max}  (edit median ${editWallMs.median} ms, generate ${generateWallMs.median} ms)`);
    console.log(`wrote ${path.relative(ROOT, o.out)}`);
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

main();
