// TypeScript vs the native addon (native/, src/engine/native) for the hot paths outside ONNX graphs, set
// against the time of one sparse UNet step: is any path worth native code (> 5 % of a step in TS)?
//
//   npx tsx bench/native/run.ts [--model DIR] [--side 64] [--fractions 0.1,0.25] [--reps 7] [--threads N]
//                               [--step-reps 3] [--no-step] [--out bench/results/native.json]
//
// Paths (each timed as min / median of `reps` runs after 2 warm-ups, TS and native interleaved):
//   fp16 f32→f16, f16→f32     one SD-1.5-width map [2, 4096, 320] (cache/fp16.ts)
//   overlay ×1, ×3            chain read of that map: copy the base, overlay 1 or 3 deltas of 10 % rows
//                             (ActivationCache.readRows' compose: data.set + scatterRows)
//   step chain read           EVERY entry one sparse step reads, at the model's real shapes, composed from
//                             a root + 2 deltas whose rows are the pyramid's active rows at that level
//   step fp16 f16→f32         the whole recorded step widened (upper bound of fp16 work outside graphs)
//   conv table                3×3 neighbour table of a 64×64 level-0 active set (mask/pyramid.ts);
//                             TS buildMaskPyramid (all levels, per edit) shown for scale
// The sparse step is the one bench/sparse/step.ts times (SparseUNetRunner.sparseStep, batch 2), on the
// same model, latent size and centred square masks.

import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { floatsToHalves, halvesToFloats } from '../../src/engine/cache/fp16';
import { RowGeometry, scatterRows } from '../../src/engine/cache/rows';
import { buildConvTable, buildMaskPyramid, PyramidLevel } from '../../src/engine/mask/pyramid';
import { loadModelFolder } from '../../src/engine/model/modelFolder';
import { NativeAddon, nativeAddon } from '../../src/engine/native';
import { isRowEntry, isSparseInput } from '../../src/engine/sparse/cacheManifest';
import { SparseUNetRunner } from '../../src/engine/sparse/sparseUNetRunner';

const args = process.argv.slice(2);
const opt = (name: string, def: string): string => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : def;
};
const modelDir = path.resolve(opt('model', 'test/fixtures/models/sd-narrow'));
const side = Number(opt('side', '64'));
const fractions = opt('fractions', '0.1,0.25').split(',').map(Number);
const reps = Number(opt('reps', '7'));
const stepReps = Number(opt('step-reps', '3'));
const threads = args.includes('--threads') ? Number(opt('threads', '2')) : undefined;
const outFile = path.resolve(opt('out', 'bench/results/native.json'));
const withStep = !args.includes('--no-step');

function lcg(seed: number): () => number {
  let x = seed >>> 0;
  return () => (x = (Math.imul(x, 1664525) + 1013904223) >>> 0) / 2 ** 32;
}
const rnd = lcg(7);

interface Stat {
  min: number;
  median: number;
}
const stat = (xs: number[]): Stat => {
  const s = [...xs].sort((a, b) => a - b);
  return { min: s[0], median: s[Math.floor(s.length / 2)] };
};

/** Interleaved timing of a TS and a native version of the same work. */
function pair(ts: () => unknown, nat: (() => unknown) | null): { ts: Stat; native: Stat | null } {
  const a: number[] = [];
  const b: number[] = [];
  for (let i = 0; i < reps + 2; i++) {
    let t = performance.now();
    ts();
    if (i >= 2) a.push(performance.now() - t);
    if (nat) {
      t = performance.now();
      nat();
      if (i >= 2) b.push(performance.now() - t);
    }
  }
  return { ts: stat(a), native: nat ? stat(b) : null };
}

/** Centred square whose dilated level-0 area is close to `fraction` (as bench/sparse/step.ts). */
function squareMask(fraction: number) {
  const data = new Uint8Array(side * side);
  const a = Math.max(1, Math.round(Math.sqrt(fraction) * side) - 2);
  const o = Math.floor((side - a) / 2);
  for (let y = o; y < o + a; y++) for (let x = o; x < o + a; x++) data[y * side + x] = 1;
  return { width: side, height: side, data };
}

function randomRows(rows: number, fraction: number): Int32Array {
  const picked: number[] = [];
  for (let r = 0; r < rows; r++) if (rnd() < fraction) picked.push(r);
  return Int32Array.from(picked);
}

/** ActivationCache.readRows' compose step, in TS. */
function composeTs(base: Uint16Array, g: RowGeometry, deltas: Array<{ rows: Int32Array; data: Uint16Array }>, into: Uint16Array): Uint16Array {
  into.set(base);
  for (const d of deltas) scatterRows(into, g, d.rows, d.data);
  return into;
}

interface Row {
  path: string;
  size: string;
  /** Sparse step the TS share is taken of (mask fraction), or null for per-edit work shown for scale. */
  fraction: number | null;
  /** Where the engine runs this work: only 'step' work repeats every sparse step and counts for the 5 % rule. */
  use: 'step' | 'edit' | 'off-path';
  ts: Stat;
  native: Stat | null;
}

async function main(): Promise<void> {
  const addon: NativeAddon | null = nativeAddon();
  if (!addon) console.warn('bench/native: addon not built (node native/build.js); native columns are empty');
  const rows: Row[] = [];
  const t0 = performance.now();

  // 1. one SD-1.5-width map [2, 4096, 320]
  const g: RowGeometry = { outer: 2, rows: 4096, inner: 320 };
  const n = g.outer * g.rows * g.inner;
  const floats = Float32Array.from({ length: n }, () => (rnd() * 2 - 1) * 8);
  const halves = floatsToHalves(floats);
  const h2 = new Uint16Array(n);
  const f2 = new Float32Array(n);
  rows.push({ path: 'fp16 f32→f16', size: '[2,4096,320]', fraction: fractions[0], use: 'off-path', ...pair(() => floatsToHalves(floats, h2), addon && (() => addon.floatsToHalves(floats, h2))) });
  rows.push({ path: 'fp16 f16→f32', size: '[2,4096,320]', fraction: fractions[0], use: 'off-path', ...pair(() => halvesToFloats(halves, f2), addon && (() => addon.halvesToFloats(halves, f2))) });
  for (const depth of [1, 3]) {
    const deltas = Array.from({ length: depth }, () => {
      const r = randomRows(g.rows, 0.1);
      return { rows: r, data: halves.subarray(0, g.outer * r.length * g.inner) };
    });
    rows.push({
      path: `overlay ×${depth} (10 % rows)`,
      size: '[2,4096,320]',
      fraction: fractions[0],
      use: 'step',
      ...pair(() => composeTs(halves, g, deltas, h2), addon && (() => addon.overlayChain(halves, g, deltas, h2))),
    });
  }

  // 2. neighbour tables (per edit)
  const pyramids = new Map<number, PyramidLevel[]>();
  for (const f of fractions) {
    const pyr = buildMaskPyramid(squareMask(f), { levels: 4 });
    pyramids.set(f, pyr);
    const m0 = pyr[0].mask;
    rows.push({ path: 'conv table (level 0)', size: `${side}² ${(100 * pyr[0].fraction).toFixed(0)} % active`, fraction: f, use: 'edit', ...pair(() => buildConvTable(m0), addon && (() => addon.buildConvTable(m0))) });
    rows.push({ path: 'mask pyramid (TS, all levels)', size: `${side}², 4 levels`, fraction: f, use: 'edit', ...pair(() => buildMaskPyramid(squareMask(f), { levels: 4 }), null) });
  }

  // 3. a real recorded step of the model: per-step cache work, and the sparse step itself
  const stepMs = new Map<number, Stat>();
  let model: Record<string, unknown> | null = null;
  if (withStep) {
    const folder = loadModelFolder(modelDir);
    const cfg = folder.unet.config;
    const B = 2;
    const sample = Float32Array.from({ length: B * cfg.inChannels * side * side }, () => rnd() * 2 - 1);
    const text = Float32Array.from({ length: B * 77 * cfg.crossAttentionDim }, () => rnd() * 2 - 1);
    const recorder = await SparseUNetRunner.create(cfg, folder.unet.weights, { sessions: { sparse: false }, intraOpNumThreads: threads });
    const rec = await recorder.recordStep(sample, side, side, 500, text);
    const manifest = recorder.manifest;
    await recorder.release();
    const stepValues = [...rec.entries.values()].reduce((a, e) => a + e.data.length, 0);
    model = { dir: path.relative(process.cwd(), modelDir), blockOutChannels: cfg.blockOutChannels, latent: [side, side], entries: manifest.length, stepCacheBytes: 2 * stepValues };

    const allHalves = new Uint16Array(stepValues);
    let o = 0;
    for (const e of rec.entries.values()) {
      allHalves.set(e.data, o);
      o += e.data.length;
    }
    const allFloats = new Float32Array(stepValues);
    rows.push({ path: 'step fp16 f16→f32 (all entries)', size: `${(2 * stepValues / 2 ** 20).toFixed(1)} MiB`, fraction: fractions[0], use: 'off-path', ...pair(() => halvesToFloats(allHalves, allFloats), addon && (() => addon.halvesToFloats(allHalves, allFloats))) });

    for (const f of fractions) {
      const pyr = pyramids.get(f)!;
      // each sparse input: root map + 2 deltas whose rows are its level's active pixels
      const reads = manifest.filter((e) => isSparseInput(e.kind)).map((e) => {
        const entry = rec.entries.get(e.name)!;
        const base = entry.data;
        if (!isRowEntry(e.kind)) return { base, g: null, deltas: [], into: base };
        const eg: RowGeometry = { outer: entry.shape[0], rows: entry.shape[1], inner: entry.shape[2] };
        const active = pyr[e.level].active;
        const delta = { rows: active, data: base.subarray(0, eg.outer * active.length * eg.inner) };
        return { base, g: eg, deltas: [delta, delta], into: new Uint16Array(base.length) };
      });
      const bytes = reads.reduce((a, r) => a + 2 * r.base.length, 0);
      rows.push({
        path: 'step chain read (root + 2 deltas)',
        size: `${reads.length} entries, ${(bytes / 2 ** 20).toFixed(1)} MiB`,
        fraction: f,
        use: 'step',
        ...pair(
          () => reads.forEach((r) => r.g && composeTs(r.base, r.g, r.deltas, r.into)),
          addon && (() => reads.forEach((r) => r.g && addon.overlayChain(r.base, r.g!, r.deltas, r.into))),
        ),
      });
    }

    const runner = await SparseUNetRunner.create(cfg, folder.unet.weights, { sessions: { recording: false }, intraOpNumThreads: threads });
    const read = (name: string) => rec.entries.get(name)!.data;
    for (const f of fractions) {
      const pyr = pyramids.get(f)!;
      const feed = runner.preparePyramid(pyr);
      const sampleRows = Float32Array.from({ length: B * pyr[0].active.length * cfg.inChannels }, () => rnd() * 2 - 1);
      await runner.sparseStep(feed, sampleRows, 500, text, read); // warm-up
      const times: number[] = [];
      for (let i = 0; i < stepReps; i++) {
        const t = performance.now();
        await runner.sparseStep(feed, sampleRows, 500, text, read);
        times.push(performance.now() - t);
      }
      stepMs.set(f, stat(times));
    }
    await runner.release();
  }

  // report
  const share = (r: Row) => (r.fraction !== null && stepMs.has(r.fraction) ? (100 * r.ts.median) / stepMs.get(r.fraction)!.median : null);
  console.log(`\nmodel ${model ? path.basename(modelDir) : '(not run)'} latent ${side}×${side}; sparse step median: ${fractions.map((f) => `${(100 * f).toFixed(0)} % → ${stepMs.get(f)?.median.toFixed(0) ?? '—'} ms`).join(', ')}`);
  console.log('use: step = every sparse step (edits of edits); edit = once per edit; off-path = not on the edit path today');
  console.log('path                              | use      | size                        | step | TS ms min/med   | native ms min/med | speed-up | TS % of step');
  for (const r of rows) {
    const sp = r.native ? `${(r.ts.median / r.native.median).toFixed(1)}×` : '—';
    const s = share(r);
    console.log(
      `${r.path.padEnd(33)} | ${r.use.padEnd(8)} | ${r.size.padEnd(27)} | ${r.fraction === null ? '  — ' : `${(100 * r.fraction).toFixed(0).padStart(3)}%`} | ` +
        `${r.ts.min.toFixed(2).padStart(6)} ${r.ts.median.toFixed(2).padStart(7)} | ${r.native ? `${r.native.min.toFixed(2).padStart(7)} ${r.native.median.toFixed(2).padStart(8)}` : '        —        '} | ${sp.padStart(8)} | ${s === null ? '—' : `${s.toFixed(2)} %`}`,
    );
  }
  const over = rows.filter((r) => r.use === 'step' && (share(r) ?? 0) > 5);
  const label = (r: Row) => `${r.path} @ ${r.fraction === null ? '' : `${(100 * r.fraction).toFixed(0)} %`} (${share(r)!.toFixed(1)} %)`;
  console.log(over.length ? `\nper-step work above 5 % of a sparse step in TS: ${over.map(label).join(', ')}` : '\nevery per-step path is within 5 % of a sparse step in TypeScript');

  const result = {
    bench: 'native',
    date: new Date().toISOString(),
    machine: { cpus: os.cpus().length, cpuModel: os.cpus()[0]?.model, loadavg: os.loadavg(), node: process.version },
    addon: addon ? addon.info() : null,
    reps,
    threads: threads ?? 'all',
    model,
    sparseStepMs: Object.fromEntries([...stepMs].map(([f, s]) => [String(f), s])),
    paths: rows.map((r) => ({ ...r, speedup: r.native ? r.ts.median / r.native.median : null, tsPercentOfStep: share(r) })),
    overFivePercent: over.map(label),
    wallMs: performance.now() - t0,
  };
  fs.mkdirSync(path.dirname(outFile), { recursive: true });
  fs.writeFileSync(outFile, JSON.stringify(result, null, 2) + '\n');
  console.log(`wrote ${path.relative(process.cwd(), outFile)} (${(result.wallMs / 1000).toFixed(0)} s)`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
