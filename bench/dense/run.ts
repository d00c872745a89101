// Dense bench (issue 2): per-step UNet time of our graph (arch/unet.ts) against the same UNet exported
// whole with torch.onnx.export, both run by onnxruntime-node on this machine's CPU.
//
//   npm run bench:dense -- [--configs a,b] [--merge] [--rounds N] [--threads N] [--out FILE.json] [--no-chart]
//
// Per config: 1. make sure the torch export exists; 2. start one child process per variant (sessions
// created one after the other, so their creation peaks do not overlap); 3. run both once on the same
// input and refuse to time graphs that disagree; 4. more warm-up, then interleaved steps A B A B …;
// 5. collect each child's peak RSS. Writes bench/results/dense.json and dense.png; see bench/README.md.

import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { BenchConfig, CONFIGS, prepareConfig, ROOT, unetWeightBytes } from './benchConfigs';
import { InputSpec, VariantName, WorkerSpec } from './protocol';
import { agreement, ConfigResult, formatTable, round, spread, VariantResult, writeChart } from './report';
import { ReadyMessage, VariantProcess } from './variantProcess';

interface Options {
  configs: BenchConfig[];
  rounds: number | null;
  threads: number;
  out: string;
  chart: boolean;
  /** Keep the configs of the existing --out file that this run does not measure. */
  merge: boolean;
}

function parseArgs(argv: string[]): Options {
  const o: Options = { configs: CONFIGS, rounds: null, threads: 2, out: path.join(ROOT, 'bench/results/dense.json'), chart: true, merge: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`bench/dense: ${a} needs a value`);
      return v;
    };
    const positiveInt = (v: string) => {
      const n = Number(v);
      if (!Number.isInteger(n) || n < 1) throw new Error(`bench/dense: ${a} wants a positive integer, got "${v}"`);
      return n;
    };
    if (a === '--configs') {
      const names = value().split(',');
      const unknown = names.filter((n) => !CONFIGS.some((c) => c.name === n));
      if (unknown.length) throw new Error(`bench/dense: unknown config ${unknown.join(', ')} (known: ${CONFIGS.map((c) => c.name).join(', ')})`);
      o.configs = CONFIGS.filter((c) => names.includes(c.name));
    } else if (a === '--rounds') o.rounds = positiveInt(value());
    else if (a === '--threads') o.threads = positiveInt(value());
    else if (a === '--out') o.out = path.resolve(value());
    else if (a === '--no-chart') o.chart = false;
    else if (a === '--merge') o.merge = true;
    else throw new Error(`bench/dense: unknown argument ${a}`);
  }
  return o;
}

function log(s: string): void {
  process.stderr.write(`${s}\n`);
}

/**
 * Session creation peaks near three times the weights (our JS weight buffer or the torch .data file in
 * memory, plus ORT's copy and its prepacked kernels; measured at SD 1.5 width: 9.6 GB ours, 9.1 GB
 * torch for 3.44 GB of weights). On a shared machine, wait for that much MemAvailable instead of pushing
 * another job into the OOM killer.
 */
const PEAK_PER_WEIGHT_BYTE = 2.9;
const MEMORY_WAIT_MS = 15 * 60_000;

function memAvailableBytes(): number {
  const m = /^MemAvailable:\s+(\d+) kB/m.exec(fs.readFileSync('/proc/meminfo', 'utf8'));
  return m ? Number(m[1]) * 1024 : os.freemem();
}

async function waitForMemory(bytes: number, what: string): Promise<void> {
  const deadline = Date.now() + MEMORY_WAIT_MS;
  let said = false;
  while (memAvailableBytes() < bytes) {
    if (Date.now() > deadline) throw new Error(`bench/dense: ${what} needs ~${(bytes / 2 ** 30).toFixed(1)} GiB and only ${(memAvailableBytes() / 2 ** 30).toFixed(1)} GiB stayed available for ${MEMORY_WAIT_MS / 60_000} min`);
    if (!said) log(`${what}: waiting for ~${(bytes / 2 ** 30).toFixed(1)} GiB of available memory (now ${(memAvailableBytes() / 2 ** 30).toFixed(1)} GiB) …`);
    said = true;
    await new Promise((r) => setTimeout(r, 10_000));
  }
}

function inputSpec(c: BenchConfig, contextDim: number): InputSpec {
  return { batch: c.batch, channels: 4, height: c.latent, width: c.latent, seq: 77, contextDim, timestep: 751, seed: 42 };
}

function unetCrossAttentionDim(c: BenchConfig): number {
  const cfg = JSON.parse(fs.readFileSync(path.join(ROOT, c.model, 'unet', 'config.json'), 'utf8')) as { cross_attention_dim: number };
  return cfg.cross_attention_dim;
}

async function benchConfig(c: BenchConfig, opts: Options): Promise<ConfigResult> {
  const t0 = performance.now();
  const loadBefore = os.loadavg();
  const input = inputSpec(c, unetCrossAttentionDim(c));
  const specs: Record<VariantName, WorkerSpec> = {
    ours: { variant: 'ours', source: path.join(ROOT, c.model), threads: opts.threads, input },
    torch: { variant: 'torch', source: path.join(ROOT, c.torchOnnx), threads: opts.threads, input },
  };
  const procs: VariantProcess[] = [];
  try {
    // 2. sessions, one after the other
    const started = {} as Record<VariantName, { proc: VariantProcess; ready: ReadyMessage }>;
    for (const v of ['ours', 'torch'] as VariantName[]) {
      await waitForMemory(PEAK_PER_WEIGHT_BYTE * unetWeightBytes(c), `${c.name}: ${v} session`);
      started[v] = await VariantProcess.start(specs[v]);
      procs.push(started[v].proc);
      log(`${c.name}: ${v} session ready in ${(started[v].ready.create.totalMs / 1000).toFixed(1)} s`);
    }
    const ours = started.ours.proc;
    const torch = started.torch.proc;

    // 3. same input, same answer (first warm-up run)
    const a = await ours.run(true);
    const b = await torch.run(true);
    const agree = agreement(a.output!, b.output!, c.tolerance);
    log(`${c.name}: max |ours − torch| = ${agree.maxAbsDiff.toExponential(2)} (relative ${agree.maxRelDiff.toExponential(2)}, tolerance ${c.tolerance})`);
    if (!(agree.maxRelDiff <= c.tolerance)) {
      throw new Error(`bench/dense: ${c.name}: the graphs disagree (max rel diff ${agree.maxRelDiff.toExponential(2)} > ${c.tolerance}); not timing them`);
    }

    // 4. warm-up, then interleaved timed steps
    for (let i = 1; i < c.warmup; i++) {
      await ours.run();
      await torch.run();
    }
    const rounds = opts.rounds ?? c.rounds;
    const wall: Record<VariantName, number[]> = { ours: [], torch: [] };
    const cpu: Record<VariantName, number[]> = { ours: [], torch: [] };
    for (let r = 0; r < rounds; r++) {
      for (const [v, p] of [['ours', ours], ['torch', torch]] as const) {
        const m = await p.run();
        wall[v].push(m.wallMs);
        cpu[v].push(m.cpuMs);
      }
      log(`${c.name}: round ${r + 1}/${rounds}: ours ${wall.ours[r].toFixed(1)} ms, torch ${wall.torch[r].toFixed(1)} ms`);
    }

    // 5. peak memory
    const result = {} as Record<VariantName, VariantResult>;
    for (const v of ['ours', 'torch'] as VariantName[]) {
      const final = await started[v].proc.finish();
      const ready = started[v].ready;
      result[v] = {
        stepMs: spread(wall[v]),
        cpuMs: spread(cpu[v]),
        create: ready.create,
        modelBytes: ready.modelBytes,
        baselineRssMB: ready.baselineRssMB,
        rssAfterCreateMB: ready.rssAfterCreateMB,
        peakRssMB: final.peakRssMB,
      };
    }
    return {
      name: c.name,
      model: c.model,
      torchOnnx: c.torchOnnx,
      batch: c.batch,
      latent: [c.latent, c.latent],
      imageSize: c.imageSize,
      warmup: c.warmup,
      rounds,
      agreement: agree,
      ours: result.ours,
      torch: result.torch,
      ratio: {
        minStep: result.torch.stepMs.min / result.ours.stepMs.min,
        medianStep: result.torch.stepMs.median / result.ours.stepMs.median,
        medianCpu: result.torch.cpuMs.median / result.ours.cpuMs.median,
        peakRss: result.torch.peakRssMB / result.ours.peakRssMB,
        createTotal: result.torch.create.totalMs / result.ours.create.totalMs,
      },
      loadavg: { before: loadBefore, after: os.loadavg() },
      measuredAt: new Date().toISOString(),
      wallSeconds: (performance.now() - t0) / 1000,
    };
  } finally {
    for (const p of procs) p.kill();
  }
}

/** Rounds floats for a readable JSON file (ms to 0.01, MB to 0.1, ratios and diffs to 4 significant digits). */
function tidy(key: string, v: unknown): unknown {
  if (typeof v !== 'number' || Number.isInteger(v)) return v;
  if (/Diff|MaxAbs|tolerance/.test(key)) return Number(v.toPrecision(4));
  if (/MB$/.test(key)) return round(v, 1);
  return round(v, /ratio|minStep|medianStep|medianCpu|peakRss|createTotal|loadavg|before|after/.test(key) ? 3 : 2);
}

function onnxruntimeVersion(): string {
  const pkg = JSON.parse(fs.readFileSync(require.resolve('onnxruntime-node/package.json'), 'utf8')) as { version: string };
  return pkg.version;
}

function machineInfo(opts: Options, loadStart: number[]) {
  return {
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model ?? 'unknown',
    totalMemGB: round(os.totalmem() / 2 ** 30, 1),
    platform: `${os.platform()} ${os.release()} ${os.arch()}`,
    node: process.version,
    onnxruntimeNode: onnxruntimeVersion(),
    intraOpThreads: opts.threads,
    // The bench machine may be shared (training jobs, other benchmarks): read timings with the load in mind.
    loadavgStart: loadStart,
    loadavgEnd: os.loadavg(),
  };
}

/** Configs measured earlier in opts.out (for --merge), by name. */
function previousResults(opts: Options): Map<string, ConfigResult> {
  if (!opts.merge || !fs.existsSync(opts.out)) return new Map();
  const old = JSON.parse(fs.readFileSync(opts.out, 'utf8')) as { configs?: ConfigResult[] };
  return new Map((old.configs ?? []).map((c) => [c.name, c]));
}

async function main(): Promise<void> {
  const opts = parseArgs(process.argv.slice(2));
  const startedAt = new Date().toISOString();
  const loadStart = os.loadavg();
  const previous = previousResults(opts);
  const fresh = new Map<string, ConfigResult>();
  const skipped: { name: string; reason: string }[] = [];
  // This run's results, plus (--merge) the earlier ones it did not redo, in CONFIGS order.
  const merged = () => CONFIGS.map((c) => fresh.get(c.name) ?? previous.get(c.name)).filter((r): r is ConfigResult => r !== undefined);
  const writeReport = () => {
    const report = {
      bench: 'dense',
      description: 'Per-step UNet time (batch 2 = CFG): our ONNX graph (src/engine/arch/unet.ts) vs torch.onnx.export of the same weights, both on onnxruntime-node CPU, same session options, interleaved steps, warm-up excluded. ratio = torch / ours (> 1: ours faster). Each variant runs in its own child process; peakRssMB is its maxRSS (session creation included). Each config carries its own measuredAt and loadavg (configs may come from separate runs, --merge).',
      startedAt,
      finishedAt: new Date().toISOString(),
      machine: machineInfo(opts, loadStart),
      configs: merged(),
      skipped,
    };
    fs.mkdirSync(path.dirname(opts.out), { recursive: true });
    fs.writeFileSync(opts.out, `${JSON.stringify(report, tidy, 2)}\n`);
  };

  for (const c of opts.configs) {
    // A config that cannot run or fails is reported; the others still run. The file is rewritten after
    // every config, so a long run that is interrupted keeps what it measured.
    try {
      const why = prepareConfig(c, log);
      if (why) throw new Error(why);
      fresh.set(c.name, await benchConfig(c, opts));
    } catch (e) {
      log(`${c.name}: skipped: ${(e as Error).message}`);
      skipped.push({ name: c.name, reason: (e as Error).message });
    }
    writeReport();
  }
  log(`wrote ${path.relative(process.cwd(), opts.out)}`);

  const results = merged();
  const kept = results.filter((r) => !fresh.has(r.name));
  process.stdout.write(`\n${formatTable(results)}\n\nratio = torch / ours (> 1: ours is faster), wall time (cpu ratio: process CPU time per step, less sensitive to other load); peak RSS = each variant's own process (maxRSS)\n`);
  if (kept.length) process.stdout.write(`kept from earlier runs (--merge): ${kept.map((r) => `${r.name} (${r.measuredAt})`).join(', ')}\n`);
  const slower = results.filter((r) => r.ratio.medianStep < 1);
  if (slower.length) process.stdout.write(`NOTE: ours is slower at ${slower.map((r) => r.name).join(', ')}\n`);
  for (const s of skipped) process.stdout.write(`SKIPPED ${s.name}: ${s.reason}\n`);
  if (skipped.length) process.exitCode = 1;
  if (opts.chart && results.length) {
    const png = opts.out.replace(/\.json$/, '') + '.png';
    await writeChart(results, png);
    log(`wrote ${path.relative(process.cwd(), png)}`);
  }
}

main().catch((e: unknown) => {
  log((e as Error).stack ?? String(e));
  process.exit(1);
});
