// Start-up bench (issue 20, lever 4): what a `fisedit edit` pays before its first step, with and without
// the on-disk graph cache (src/engine/runtime/graphCache.ts). Each call is a fresh CLI process, as a
// user runs it:
//
//   1. generate --state S (the parent; --graph-cache off, so the edit's cache starts empty)
//   2. edit --graph-cache off         every session optimised anew (what every call paid before)
//   3. edit --graph-cache C, C empty  first call: optimised and written to C
//   4. edit --graph-cache C           second call: every session loaded from C
//
// Reported per call: the CLI's loadModel (folder read, graph build, session creation), the process's
// wall time and peak RSS, and the cache's hits/writes. Calls run one after the other (one SD-width
// process at a time), so load drift between them is not shared; rerun for spread.
//
//   npx tsx bench/startup/run.ts [--model DIR] [--size PX] [--steps N] [--threads N] [--out FILE.json]
//
// SD width: --model bench/.cache/sd15-random-full (bench/gpu/randomModel.ts 'sd15' preset: SD 1.5's UNet,
// CLIP and VAE with random weights; written on first use, 4.1 GB, ~15 s).

import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { writeRandomModelFolder } from '../gpu/randomModel';

const ROOT = path.resolve(__dirname, '../..');
const SD15 = path.join(ROOT, 'bench/.cache/sd15-random-full');

interface Call {
  name: string;
  loadModelMs: number;
  wallMs: number;
  peakRssMiB: number;
  graphCache: { hits: number; writes: number; refused: number } | null;
  cacheBytes: number;
}

function args(argv: string[]) {
  const o = { model: path.join(ROOT, 'models/default'), size: undefined as number | undefined, steps: 4, threads: 2, out: '' };
  for (let i = 0; i < argv.length; i++) {
    const v = () => argv[++i];
    if (argv[i] === '--model') o.model = path.resolve(v());
    else if (argv[i] === '--size') o.size = Number(v());
    else if (argv[i] === '--steps') o.steps = Number(v());
    else if (argv[i] === '--threads') o.threads = Number(v());
    else if (argv[i] === '--out') o.out = path.resolve(v());
    else throw new Error(`bench/startup: unknown argument ${argv[i]}`);
  }
  if (!o.out) o.out = path.join(ROOT, `bench/results/startup-${path.basename(o.model)}${o.size ? `-${o.size}` : ''}.json`);
  return o;
}

function dirBytes(dir: string): number {
  if (!fs.existsSync(dir)) return 0;
  let n = 0;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) n += e.isDirectory() ? dirBytes(path.join(dir, e.name)) : fs.statSync(path.join(dir, e.name)).size;
  return n;
}

/** One CLI call under GNU time (peak RSS of the process); its --json line parsed. */
function cli(name: string, argv: string[], cacheDir: string | null): Call {
  const t0 = performance.now();
  const r = spawnSync('/usr/bin/time', ['-f', 'maxrss_kb=%M', process.execPath, '--import', 'tsx', path.join(ROOT, 'src/cli/main.ts'), ...argv, '--json', '--progress', 'none'], {
    cwd: ROOT,
    encoding: 'utf8',
    maxBuffer: 64 * 2 ** 20,
  });
  const wallMs = performance.now() - t0;
  if (r.status !== 0) throw new Error(`bench/startup: ${name} exited ${r.status}: ${r.stderr.slice(-2000)}`);
  const json = JSON.parse(r.stdout.trim().split('\n').pop()!);
  const rss = /maxrss_kb=(\d+)/.exec(r.stderr);
  const call: Call = {
    name,
    loadModelMs: json.timings.loadModel,
    wallMs: Math.round(wallMs),
    peakRssMiB: rss ? Math.round(Number(rss[1]) / 1024) : -1,
    graphCache: json.graphCache ? { hits: json.graphCache.hits, writes: json.graphCache.writes, refused: json.graphCache.refused } : null,
    cacheBytes: cacheDir ? dirBytes(cacheDir) : 0,
  };
  console.log(`${name.padEnd(34)} loadModel ${(call.loadModelMs / 1000).toFixed(1).padStart(6)} s   wall ${(call.wallMs / 1000).toFixed(1).padStart(6)} s   peak ${call.peakRssMiB} MiB   cache ${JSON.stringify(call.graphCache)}`);
  return call;
}

function main(): void {
  const o = args(process.argv.slice(2));
  if (o.model === SD15) writeRandomModelFolder(SD15, 'sd15');
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'fisedit-startup-'));
  const state = path.join(work, 'state');
  const cacheDir = path.join(work, 'graphs');
  const common = ['--model', o.model, '--threads', String(o.threads)];
  const size = o.size ? ['--width', String(o.size), '--height', String(o.size)] : [];
  const loadBefore = os.loadavg();
  try {
    const calls: Call[] = [];
    calls.push(cli('generate (parent, cache off)', ['generate', ...common, ...size, '--state', state, '--prompt', 'a red circle on the left', '--seed', '3', '--steps', String(o.steps), '--out', path.join(work, 'a.png'), '--graph-cache', 'off'], null));
    const edit = (name: string, cache: string) =>
      calls.push(cli(name, ['edit', ...common, '--state', state, '--parent', 'PARENT', '--prompt', 'a green circle on the left', '--strategy', 'dense', '--out', path.join(work, 'b.png'), '--graph-cache', cache].map((a) => (a === 'PARENT' ? parentId(state) : a)), cache === 'off' ? null : cacheDir));
    edit('edit, cache off', 'off');
    edit('edit, 1st call (cache empty)', cacheDir);
    edit('edit, 2nd call (cache filled)', cacheDir);
    const report = { model: o.model, size: o.size ?? null, steps: o.steps, threads: o.threads, cpu: os.cpus()[0]?.model, cores: os.cpus().length, loadavg: { before: loadBefore, after: os.loadavg() }, measuredAt: new Date().toISOString(), calls };
    fs.mkdirSync(path.dirname(o.out), { recursive: true });
    fs.writeFileSync(o.out, `${JSON.stringify(report, null, 2)}\n`);
    const [off, first, second] = calls.slice(1);
    console.log(`\nloadModel: off ${(off.loadModelMs / 1000).toFixed(1)} s, 1st ${(first.loadModelMs / 1000).toFixed(1)} s, 2nd ${(second.loadModelMs / 1000).toFixed(1)} s (off / 2nd = ${(off.loadModelMs / second.loadModelMs).toFixed(1)}×); cache ${(second.cacheBytes / 2 ** 30).toFixed(2)} GiB → ${o.out}`);
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}

/** The root node's id (the only node): edits name their parent so each starts from the same one. */
function parentId(state: string): string {
  const nodes = fs.readdirSync(path.join(state, 'nodes'));
  return nodes.sort()[0];
}

main();
