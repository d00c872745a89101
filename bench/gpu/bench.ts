// GPU bench (issue 14): one script for a GPU machine with no network and no Node of its own (it runs from
// the offline bundle, bench/gpu/run.sh). On SD-1.5-width random weights made on the spot it prints, per
// device side by side:
//   0. attention forms at SD's 512 px shapes (attentionForms.ts): accuracy against the CPU and ms;
//   1. the dense UNet step, CFG batch 2, at each image size (default 256 and 512 px);
//   1a. a per-kernel GPU time profile of that dense step (profile.ts: ORT profiling with WebGPU
//      timestamp queries) at --profile-sizes for each variant in --profile-forms;
//   1b. the GPU dense step at the sparse size once per variant in --forms (attention forms and WebGPU
//      EP options: the candidate fixes side by side, each checked against the default's output);
//   1c. what each host↔device copy costs on webgpu (copyCosts.ts): the per-step latents and ε, which
//      cross to the host every step, against the dense step;
//   2. the sparse UNet step at 2/5/10/25/50 % of a 512 px latent against that device's dense step;
//   3. an edit end to end (user disc mask) against dense regeneration of the same prompt.
// Phases run in that order (1c, a few seconds, right after 1) and each checks the time budget first
// (--budget-s): what does not fit is reported as skipped, never silently dropped. The PyTorch anchor is bench/gpu/torch_anchor.py (run.sh).
//
//   node bench.js [--quick] [--model DIR] [--preset sd15|narrow] [--devices webgpu,cpu] [--sizes 256,512]
//                 [--sparse-size 512] [--fractions 0.02,0.05,0.1,0.25,0.5] [--e2e-devices webgpu]
//                 [--e2e-fractions 0.1,0.25] [--steps 20] [--reps 3] [--threads N] [--budget-s 420] [--out FILE]
//                 [--forms matmul,mha,mha-unfused,chunked:16,matmul+nchw,matmul+novalidation]
//                 [--attention-forms mha,matmul,mha-unfused,chunked:8,chunked:64]
//                 [--profile-sizes 512] [--profile-forms matmul,mha] [--skip-attention] [--skip-profile]
//                 [--prepare-only]   (write the random model folder and exit)
//   npx tsx bench/gpu/bench.ts --quick      (here: narrow preset, 64/128 px, 4 steps)

import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as zlib from 'zlib';
import { buildUNetGraph } from '../../src/engine/arch/unet';
import { buildMaskPyramid } from '../../src/engine/mask/pyramid';
import { loadModelFolder, ModelFolder } from '../../src/engine/model/modelFolder';
import { editNode } from '../../src/engine/pipeline/edit';
import { generateNode } from '../../src/engine/pipeline/editRecord';
import type { EditResult, StateContext } from '../../src/engine/pipeline/editTypes';
import { loadEditComponents, releaseEditComponents } from '../../src/engine/pipeline/editUNet';
import { DiffusionEngine } from '../../src/engine/pipeline/engine';
import { resolveWebgpuAttention, type AttentionChoice } from '../../src/engine/runtime/attentionProbe';
import { graphOptionsFor, webgpuAttentionSetting } from '../../src/engine/runtime/deviceGraphs';
import { checkDeviceAvailable, createSession, EngineDevice, float32Tensor, isEngineDevice, type WebGpuProviderOptions } from '../../src/engine/runtime/ortSession';
import { SparseUNetRunner } from '../../src/engine/sparse/sparseUNetRunner';
import { unetMacs } from '../../src/engine/sparse/unetMacs';
import { NodeStore } from '../../src/engine/state/nodeStore';
import { discMask } from '../edit/masks';
import { RandomModelPreset, writeRandomModelFolder } from './randomModel';
import { outsideChanged } from '../edit/outsideChanged';
import { DEFAULT_FORMS, measureAttentionForms, printAttentionForms, SD_CASES, SMALL_CASES, type AttentionFormRow } from './attentionForms';
import { COPY_TABLE_HEAD, copyCost, copyRow, STEP_TENSORS, type CopyCost } from './copyCosts';
import { formatProfile, profileRuns, type ProfileSummary } from './profile';

interface Options {
  model: string;
  preset: RandomModelPreset;
  devices: EngineDevice[];
  sizes: number[];
  sparseSize: number;
  fractions: number[];
  e2eDevices: EngineDevice[];
  e2eFractions: number[];
  steps: number;
  reps: number;
  threads: number | undefined;
  budgetS: number;
  out: string | null;
  quick: boolean;
  /** Write the model folder and exit (run.sh does this while the torch anchor runs). */
  prepareOnly: boolean;
  /** Device memory for the edits' device tier (bytes; 0: off). */
  deviceTierBytes: number;
  /** Phase 0: the attention forms at SD's shapes on each GPU device (accuracy and time). */
  attention: boolean;
  /** Phase 0's forms (FISEDIT_WEBGPU_ATTENTION spellings). */
  attentionForms: string[];
  /** Phase 1: WebGPU dense step at the sparse size once per variant (parseVariant; the first: the engine's default). */
  forms: string[];
  /** Phase 1b: profile the GPU dense step at these sizes (none: skipped) ... */
  profileSizes: number[];
  /** ... with these attention forms. */
  profileForms: string[];
}

function parseArgs(argv: string[]): Options {
  const quick = argv.includes('--quick');
  const o: Options = {
    model: path.join(os.tmpdir(), quick ? 'fisedit-gpu-narrow' : 'fisedit-gpu-sd15'),
    preset: quick ? 'narrow' : 'sd15',
    devices: ['webgpu', 'cpu'],
    sizes: quick ? [64, 128] : [256, 512],
    sparseSize: quick ? 128 : 512,
    fractions: [0.02, 0.05, 0.1, 0.25, 0.5],
    e2eDevices: quick ? ['webgpu', 'cpu'] : ['webgpu'],
    e2eFractions: [0.1, 0.25],
    steps: quick ? 4 : 20,
    reps: quick ? 2 : 3,
    threads: undefined,
    budgetS: quick ? 300 : 420,
    out: process.env.OUT ? path.join(process.env.OUT, 'gpu-bench.json') : null,
    quick,
    prepareOnly: argv.includes('--prepare-only'),
    deviceTierBytes: 48 * 2 ** 30,
    attention: argv.includes('--attention') || (!quick && !argv.includes('--skip-attention')),
    attentionForms: [...DEFAULT_FORMS],
    // (--quick: the default form only; lavapipe takes seconds per step)
    forms: quick ? [defaultForm()] : [defaultForm(), ...['matmul', 'mha', 'mha-unfused', 'chunked:16'].filter((f) => f !== defaultForm()), `${defaultForm()}+nchw`, `${defaultForm()}+novalidation`],
    profileSizes: [], // default: the sparse size (below)
    profileForms: [...new Set([defaultForm(), 'mha'])],
  };
  const list = (v: string) => v.split(',').filter(Boolean);
  const devices = (v: string) =>
    list(v).map((d) => {
      if (!isEngineDevice(d)) throw new Error(`bench/gpu: unknown device ${d}`);
      return d;
    });
  // Checked here, so a misspelt form fails at once rather than after minutes of the lease.
  const forms = (v: string) => list(v).map((f) => (parseVariant(f), f));
  const num = (a: string, v: string) => {
    const n = Number(v);
    if (!Number.isFinite(n) || n <= 0) throw new Error(`bench/gpu: ${a} wants a positive number, got "${v}"`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--quick' || a === '--prepare-only' || a === '--skip-attention' || a === '--attention' || a === '--skip-profile') continue;
    const v = argv[++i];
    if (v === undefined) throw new Error(`bench/gpu: ${a} needs a value`);
    if (a === '--model') o.model = path.resolve(v);
    else if (a === '--preset') o.preset = v === 'sd15' || v === 'narrow' ? v : (() => { throw new Error(`bench/gpu: --preset sd15|narrow, got ${v}`); })();
    else if (a === '--devices') o.devices = devices(v);
    else if (a === '--e2e-devices') o.e2eDevices = devices(v);
    else if (a === '--sizes') o.sizes = list(v).map((s) => num(a, s));
    else if (a === '--sparse-size') o.sparseSize = num(a, v);
    else if (a === '--fractions') o.fractions = list(v).map((s) => num(a, s));
    else if (a === '--e2e-fractions') o.e2eFractions = list(v).map((s) => num(a, s));
    else if (a === '--steps') o.steps = num(a, v);
    else if (a === '--reps') o.reps = num(a, v);
    else if (a === '--threads') o.threads = num(a, v);
    else if (a === '--budget-s') o.budgetS = num(a, v);
    else if (a === '--out') o.out = path.resolve(v);
    else if (a === '--device-tier-gib') o.deviceTierBytes = Math.round(Number(v) * 2 ** 30);
    else if (a === '--forms') o.forms = forms(v);
    else if (a === '--attention-forms') o.attentionForms = forms(v).map((f) => (f.includes('+') ? (() => { throw new Error(`bench/gpu: --attention-forms takes forms without EP options, got ${f}`); })() : f));
    else if (a === '--profile-sizes') o.profileSizes = list(v).map((s) => num(a, s));
    else if (a === '--profile-forms') o.profileForms = forms(v);
    else throw new Error(`bench/gpu: unknown argument ${a}`);
  }
  if (!argv.includes('--profile-sizes') && !argv.includes('--skip-profile')) o.profileSizes = [quick ? 64 : o.sparseSize];
  if (argv.includes('--skip-profile')) o.profileSizes = [];
  return o;
}

const log = (s: string) => process.stderr.write(`${s}\n`);
/** The engine's WebGPU attention form as the environment sets it (runtime/deviceGraphs.ts): auto unless named. */
const defaultForm = () => webgpuAttentionSetting();
/** What `auto` became on this machine (runtime/attentionProbe.ts), once the probe ran. */
let autoChoice: AttentionChoice | null = null;
/** A variant with `auto` replaced by the probe's choice: two variants that resolve alike are one measurement. */
const resolved = (variant: string) => variant.replace(/^auto(?=$|\+)/, autoChoice?.form ?? 'auto');
/** "auto → matmul" for a variant the probe resolved, the variant itself otherwise (labels and tables). */
const formLabel = (variant: string) => (resolved(variant) === variant ? variant : `${variant} → ${resolved(variant)}`);
/**
 * A dense-step variant for the GPU: an attention form (FISEDIT_WEBGPU_ATTENTION spelling) and optional
 * WebGPU EP options after '+': nchw / nhwc (preferredLayout: the layout the EP runs Conv and the other
 * layout-sensitive ops in; the EP's default is NHWC, with Transposes around them), novalidation /
 * wgpuonly (validationMode 'disabled' / 'wgpuOnly': Dawn's and ORT's per-dispatch checks off). E.g.
 * "matmul+nchw", "mha+novalidation".
 */
function parseVariant(spec: string): { form: string; webgpu: WebGpuProviderOptions } {
  const [form, ...flags] = spec.split('+');
  graphOptionsFor('webgpu', { FISEDIT_WEBGPU_ATTENTION: form }); // throws on a bad form
  const webgpu: WebGpuProviderOptions = {};
  for (const f of flags) {
    if (f === 'nchw' || f === 'nhwc') webgpu.preferredLayout = f === 'nchw' ? 'NCHW' : 'NHWC';
    else if (f === 'novalidation') webgpu.validationMode = 'disabled';
    else if (f === 'wgpuonly') webgpu.validationMode = 'wgpuOnly';
    else throw new Error(`bench/gpu: variant ${spec}: unknown option +${f} (nchw, nhwc, novalidation, wgpuonly)`);
  }
  return { form, webgpu };
}
/** Graph options for `device` with the variant's WebGPU attention form (other devices ignore it). */
const graphOptions = (device: EngineDevice, variant: string) => graphOptionsFor(device, { ...process.env, FISEDIT_WEBGPU_ATTENTION: parseVariant(variant).form });
const stats = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return { min: s[0], median: s[Math.floor(s.length / 2)], runs: xs.map((x) => Math.round(x * 10) / 10) };
};
type Stat = ReturnType<typeof stats>;

function lcg(seed: number): () => number {
  let x = seed >>> 0;
  return () => ((x = (Math.imul(x, 1664525) + 1013904223) >>> 0) / 2 ** 32) * 2 - 1;
}

class Budget {
  private readonly t0 = performance.now();
  readonly skipped: string[] = [];
  constructor(private readonly seconds: number) {}
  elapsedS(): number {
    return (performance.now() - this.t0) / 1000;
  }
  /** True when `needS` more seconds fit with `reserveS` still left for later phases; else records the skip. */
  allows(what: string, needS: number, reserveS = 0): boolean {
    const left = this.seconds - this.elapsedS() - reserveS;
    if (left >= needS) return true;
    this.skipped.push(`${what} (needs ~${needS.toFixed(0)} s, ${left.toFixed(0)} s left)`);
    log(`skip: ${what}: needs ~${needS.toFixed(0)} s, ${left.toFixed(0)} s of the budget left`);
    return false;
  }
}

interface DenseRow {
  device: EngineDevice;
  /** WebGPU attention form (FISEDIT_WEBGPU_ATTENTION); the other devices' graphs do not depend on it. */
  form: string;
  size: number;
  latent: number;
  sessionMs: number;
  step: Stat;
  /** Max abs difference of the predicted noise from the default variant's on the same device and size. */
  maxAbsVsDefault?: number;
  /** Largest |noise| of the default variant's output (the scale of that difference). */
  defaultScale?: number;
}
interface SparseRow {
  device: EngineDevice;
  target: number;
  activeFraction: number;
  macRatio: number;
  denseStep: Stat;
  /** Parent entries assembled on the host and uploaded each step (the path without a device tier). */
  sparseStep: Stat;
  speedup: number;
  /** Parent entries fed from device memory (the device tier), where the device keeps them. */
  sparseStepDevice?: Stat;
  speedupDevice?: number;
}
interface E2ERow {
  device: EngineDevice;
  target: number;
  maskFraction: number;
  mode: string;
  dense: Stat;
  edit: Stat;
  speedup: number;
  outsideChangedPixels: number;
  /** Sparse steps of the timed edits fed from the device tier / from the host cache. */
  deviceTierHits?: number;
  deviceTierMisses?: number;
}

function denseFeeds(folder: ModelFolder, latent: number) {
  const cfg = folder.unet.config;
  const B = 2;
  const rnd = lcg(1);
  return {
    sample: float32Tensor(Float32Array.from({ length: B * cfg.inChannels * latent * latent }, rnd), [B, cfg.inChannels, latent, latent]),
    timestep: float32Tensor(new Float32Array([500, 500]), [B]),
    encoder_hidden_states: float32Tensor(Float32Array.from({ length: B * 77 * cfg.crossAttentionDim }, rnd), [B, 77, cfg.crossAttentionDim]),
  };
}

async function denseStep(folder: ModelFolder, device: EngineDevice, latent: number, o: Options, form = defaultForm()): Promise<{ sessionMs: number; step: Stat; noise: Float32Array }> {
  const cfg = folder.unet.config;
  const feeds = denseFeeds(folder, latent);
  const t0 = performance.now();
  const sess = await createSession(buildUNetGraph(cfg, folder.unet.weights, { graph: graphOptions(device, form) }).g.build(), { device, intraOpNumThreads: o.threads, webgpu: parseVariant(form).webgpu });
  const sessionMs = performance.now() - t0;
  try {
    const first = await sess.run(feeds); // warm-up: first run allocates and (webgpu) compiles shaders
    await sess.run(feeds);
    const times: number[] = [];
    for (let r = 0; r < o.reps; r++) {
      const a = performance.now();
      await sess.run(feeds);
      times.push(performance.now() - a);
    }
    return { sessionMs, step: stats(times), noise: Object.values(first)[0].data as Float32Array };
  } finally {
    await sess.release();
  }
}

async function sparseSteps(folder: ModelFolder, device: EngineDevice, latent: number, o: Options, budget: Budget, denseStat: Stat, reserveS: number): Promise<SparseRow[]> {
  const cfg = folder.unet.config;
  const weights = folder.unet.weights;
  const B = 2;
  const t = 500;
  const rnd = lcg(2);
  const sample = Float32Array.from({ length: B * cfg.inChannels * latent * latent }, rnd);
  const text = Float32Array.from({ length: B * 77 * cfg.crossAttentionDim }, rnd);
  const sessionOptions = { device };
  const recorder = await SparseUNetRunner.create(cfg, weights, { sessions: { sparse: false }, intraOpNumThreads: o.threads, sessionOptions });
  const rec = await recorder.recordStep(sample, latent, latent, t, text);
  const read = (n: string) => rec.entries.get(n)!.data;
  const onDevice = [...rec.entries.values()].some((e) => e.device);
  const readDevice = (n: string) => rec.entries.get(n)!.device ?? rec.entries.get(n)!.data;
  // The recording session stays until its entries' device copies are freed (DeviceTensor: freeing one
  // after its session is gone crashes the process).
  const runner = await SparseUNetRunner.create(cfg, weights, { sessions: { recording: false }, intraOpNumThreads: o.threads, sessionOptions, deviceTierBytes: o.deviceTierBytes });
  const rows: SparseRow[] = [];
  const denseMacs = unetMacs(cfg, latent, latent).total;
  try {
    for (const target of o.fractions) {
      if (!budget.allows(`sparse step ${device} ${(100 * target).toFixed(0)} %`, ((o.reps + 2) * denseStat.median) / 1000 + 5, reserveS)) break;
      // No dilation: what an edit with a user mask runs (DEFAULT_MASK_DILATION), so "active" is the mask itself.
      const pyr = buildMaskPyramid(discMask(latent, latent, target), { levels: cfg.blockOutChannels.length, dilation: 0 });
      const rows0 = Float32Array.from({ length: B * pyr[0].active.length * cfg.inChannels }, rnd);
      const feed = runner.preparePyramid(pyr);
      // The child's device entries each step makes are freed at once (an edit would keep them).
      const time = async (from: typeof read | typeof readDevice) => {
        (await runner.sparseStep(feed, rows0, t, text, from)).device?.release(); // warm-up
        const times: number[] = [];
        for (let r = 0; r < o.reps; r++) {
          const a = performance.now();
          const out = await runner.sparseStep(feed, rows0, t, text, from);
          times.push(performance.now() - a);
          out.device?.release();
        }
        return stats(times);
      };
      const s = await time(read);
      const sd = onDevice ? await time(readDevice) : undefined;
      const macRatio = unetMacs(cfg, latent, latent, { activeCounts: pyr.map((l) => l.active.length) }).total / denseMacs;
      rows.push({ device, target, activeFraction: pyr[0].fraction, macRatio, denseStep: denseStat, sparseStep: s, speedup: denseStat.median / s.median, sparseStepDevice: sd, speedupDevice: sd ? denseStat.median / sd.median : undefined });
      log(`sparse ${device} ${(100 * target).toFixed(0)} %: ${s.median.toFixed(1)} ms from the host${sd ? `, ${sd.median.toFixed(1)} ms from device memory` : ''} vs dense ${denseStat.median.toFixed(1)} ms (${(denseStat.median / s.median).toFixed(2)}x${sd ? ` / ${(denseStat.median / sd.median).toFixed(2)}x` : ''}, MAC ratio ${(1 / macRatio).toFixed(2)}x)`);
    }
  } finally {
    for (const e of rec.entries.values()) e.device?.release(); // before the session that made them
    await runner.release();
    await recorder.release();
  }
  return rows;
}

async function endToEnd(device: EngineDevice, size: number, o: Options, budget: Budget, denseStepMs: number | undefined): Promise<E2ERow[]> {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'fisedit-gpu-e2e-'));
  const engine = await DiffusionEngine.load(o.model, { intraOpNumThreads: o.threads, sessionOptions: { device } });
  const parts = await loadEditComponents(o.model, { intraOpNumThreads: o.threads, device, deviceTierBytes: o.deviceTierBytes });
  const rows: E2ERow[] = [];
  try {
    const store = await NodeStore.open(path.join(tmp, 'state'), { create: true });
    // stepCosts null: the edit runs the sparse steps it planned rather than the product's measured-cost choice
    // (which may pick dense steps), so the row measures FISEdit's sparse path; the mode column says so.
    const ctx: StateContext = { models: engine, store, cache: await store.openCache(Infinity), unet: parts.unet, decoder: parts.decoder, stepCosts: null };
    const prompt = 'a red circle on the left, a blue square on the right';
    const editPrompt = 'a green circle on the left, a blue square on the right';
    const req = { seed: 42, steps: o.steps, width: size, height: size };
    const root = (await generateNode(ctx, { prompt, ...req })).record;
    const [, h, w] = root.latentShape;
    const parentRgb = (await store.readImage(root)).rgb;
    // Without a device tier nothing more is recorded: free the recording session (3.4 GB at SD width).
    // With one it stays, as in the service: releasing it would drop the root's device entries.
    if (!(parts.unet as SparseUNetRunner).deviceTier) await parts.unet.releaseRecording?.();
    const dense = () => engine.generate({ prompt: editPrompt, ...req });
    const edit = async (target: number) => {
      const e = await editNode(ctx, { parentId: root.id, prompt: editPrompt, mask: discMask(w, h, target), denseAboveFraction: 1 });
      await ctx.cache!.deleteNode(e.node.id);
      parts.unet.dropDevice?.(e.node.id);
      return e;
    };
    await dense(); // warm-up of the dense path
    await edit(o.e2eFractions[0]); // and of the sparse one
    const tier = (parts.unet as SparseUNetRunner).deviceTier;
    for (const target of o.e2eFractions) {
      const before = tier?.stats;
      const need = denseStepMs ? (3 * o.reps * o.steps * denseStepMs) / 1000 : 30;
      if (!budget.allows(`edit e2e ${device} ${(100 * target).toFixed(0)} %`, need)) break;
      const denseMs: number[] = [];
      const editMs: number[] = [];
      let last: EditResult | null = null;
      let outside = 0;
      for (let r = 0; r < o.reps; r++) {
        // Alternate the order so drift hits both alike.
        const runs = [async () => denseMs.push((await dense()).totalMs), async () => {
          last = await edit(target);
          editMs.push(last.totalMs);
          outside = Math.max(outside, outsideChanged(last, parentRgb));
        }];
        if (r % 2) runs.reverse();
        for (const run of runs) await run();
      }
      const d = stats(denseMs);
      const e = stats(editMs);
      const l = last as EditResult | null;
      const after = tier?.stats;
      const tierCounts = before && after ? { deviceTierHits: after.hits - before.hits, deviceTierMisses: after.misses - before.misses } : {};
      rows.push({ device, target, maskFraction: l?.maskedFraction ?? target, mode: l?.mode ?? '?', dense: d, edit: e, speedup: d.median / e.median, outsideChangedPixels: outside, ...tierCounts });
      log(`e2e ${device} ${(100 * target).toFixed(0)} %: dense ${d.median.toFixed(0)} ms, edit ${e.median.toFixed(0)} ms (${(d.median / e.median).toFixed(2)}x)`);
    }
  } finally {
    await releaseEditComponents(parts);
    await engine.dispose();
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  return rows;
}

const fmt = (v: number | undefined, d = 1) => (v === undefined ? '—' : v.toFixed(d));

async function main(): Promise<void> {
  const o = parseArgs(process.argv.slice(2));
  if (o.prepareOnly) {
    const t = performance.now();
    const made = writeRandomModelFolder(o.model, o.preset);
    log(`model ${o.model} (${o.preset}): ${made.reused ? 'reused' : `${(made.bytes / 2 ** 30).toFixed(2)} GiB written`} in ${((performance.now() - t) / 1000).toFixed(1)} s`);
    return;
  }
  const budget = new Budget(o.budgetS);
  const result: Record<string, unknown> = {
    bench: 'gpu',
    date: new Date().toISOString(),
    machine: { cpus: os.cpus().length, cpuModel: os.cpus()[0]?.model, memGiB: Math.round(os.totalmem() / 2 ** 30), node: process.version },
    options: { ...o, budgetS: o.budgetS },
  };
  const devices: EngineDevice[] = [];
  const unavailable: Record<string, string> = {};
  for (const d of [...new Set([...o.devices, ...o.e2eDevices])]) {
    try {
      await checkDeviceAvailable(d);
      devices.push(d);
    } catch (e) {
      unavailable[d] = (e as Error).message;
      log(`device ${d} unavailable: ${(e as Error).message}`);
    }
  }
  result.unavailableDevices = unavailable;
  // Written after every phase, so a run stopped by its time limit still leaves what it measured.
  const save = () => {
    if (!o.out) return;
    result.skipped = budget.skipped;
    result.totalS = budget.elapsedS();
    fs.mkdirSync(path.dirname(o.out), { recursive: true });
    fs.writeFileSync(o.out, `${JSON.stringify(result, null, 1)}\n`);
  };

  let t = performance.now();
  const made = writeRandomModelFolder(o.model, o.preset);
  const writeS = (performance.now() - t) / 1000;
  log(`model ${o.model} (${o.preset}): ${made.reused ? 'reused' : `${(made.bytes / 2 ** 30).toFixed(2)} GiB written`} in ${writeS.toFixed(1)} s`);
  t = performance.now();
  const folder = loadModelFolder(o.model);
  const cfg = folder.unet.config;
  log(`loaded in ${((performance.now() - t) / 1000).toFixed(1)} s; UNet channels [${cfg.blockOutChannels}]`);
  result.model = { dir: o.model, preset: o.preset, unetChannels: cfg.blockOutChannels, writeS: made.reused ? null : writeS, loadS: (performance.now() - t) / 1000 };

  // 0. attention forms at SD's shapes: is the fused kernel right (and faster) on this GPU?
  if (o.attention) {
    const rows: AttentionFormRow[] = [];
    for (const device of devices.filter((d) => d !== 'cpu')) {
      if (!budget.allows(`attention forms ${device}`, 40)) continue;
      // --quick (lavapipe): the small cases only; a [2, 8, 4096, 4096] score matrix is minutes on the CPU.
      rows.push(...(await measureAttentionForms(device, o.quick ? SMALL_CASES.slice(2, 5) : [...SMALL_CASES.slice(3, 4), ...SD_CASES], o.reps, o.attentionForms)));
    }
    result.attention = rows;
    if (rows.length) printAttentionForms(rows);
    save();
  }

  // The engine's default on WebGPU: the probe checks the fused kernel here and picks the right, fastest form.
  if (devices.includes('webgpu') && [...o.forms, ...o.profileForms].some((f) => f.split('+')[0] === 'auto')) {
    autoChoice = await resolveWebgpuAttention(cfg, folder.textEncoder.config, { FISEDIT_WEBGPU_ATTENTION: 'auto' });
    if (autoChoice) log(`attention auto on webgpu → ${autoChoice.reason} (probe ${autoChoice.probeMs.toFixed(0)} ms)`);
    result.attentionChoice = autoChoice;
    save();
  }

  // 1. dense step per size and device
  const dense: DenseRow[] = [];
  const defaultNoise = new Map<EngineDevice, Float32Array>();
  for (const size of o.sizes) {
    for (const device of o.devices.filter((d) => devices.includes(d))) {
      const prev = dense.find((r) => r.device === device);
      const guess = prev ? ((prev.step.median * (size / prev.size) ** 2 * (o.reps + 2)) + prev.sessionMs) / 1000 : 20;
      if (!budget.allows(`dense step ${device} ${size} px`, guess)) continue;
      const latent = size / 8;
      const { noise, ...r } = await denseStep(folder, device, latent, o);
      if (size === o.sparseSize) defaultNoise.set(device, noise);
      dense.push({ device, form: o.forms[0], size, latent, ...r });
      log(`dense ${device} ${size} px: session ${(r.sessionMs / 1000).toFixed(1)} s, step ${r.step.median.toFixed(1)} ms (min ${r.step.min.toFixed(1)})`);
    }
  }
  const defaultRow = (device: EngineDevice, size: number) => dense.find((r) => r.device === device && r.size === size && r.form === o.forms[0]);
  result.dense = dense;
  save();

  // 1c. what each host↔device copy costs: the latents go up and ε comes down every step (the scheduler
  // runs in TypeScript), so they are worth keeping on the device only if that is a visible share of a step.
  // Only WebGPU keeps buffers on the device between runs in onnxruntime-node (CUDA outputs come back).
  const copies: (CopyCost & { device: EngineDevice })[] = [];
  for (const device of o.devices.filter((d) => devices.includes(d) && d === 'webgpu')) {
    // --quick (lavapipe, ~60 MB/s): the per-step tensors only, not the 16/64 MiB cache pages.
    const tensors = o.quick ? STEP_TENSORS.slice(0, 2) : STEP_TENSORS;
    if (!budget.allows(`copies ${device}`, o.quick ? 30 : 20)) continue;
    try {
      for (const [label, n] of tensors) copies.push({ device, ...(await copyCost(label, n, o.quick ? 3 : 10, device)) });
    } catch (e) {
      log(`copies ${device} failed: ${(e as Error).message}`);
    }
  }
  result.copies = copies;
  save();

  // 1a. where the GPU dense step's time goes: per-kernel GPU times (WebGPU timestamp queries).
  const profiles: (ProfileSummary & { device: EngineDevice; size: number; form: string; sessionMs: number })[] = [];
  for (const size of o.profileSizes) {
    for (const device of o.devices.filter((d) => devices.includes(d) && d !== 'cpu')) {
      for (const form of o.profileForms.filter((f, i, all) => all.findIndex((g) => resolved(g) === resolved(f)) === i)) {
        // A session and 3 runs, profiling on; from another size's step when this one was not timed
        // (scaled by the pixel count cubed: between the convolutions' square and the attention's fourth power).
        const base = dense.find((r) => r.device === device && r.size === size && r.form === form) ?? defaultRow(device, size);
        const other = base ?? dense.find((r) => r.device === device && r.form === o.forms[0]);
        const stepMs = base ? base.step.median : other ? other.step.median * (size / other.size) ** 6 : NaN;
        const needS = other ? (other.sessionMs + 4 * stepMs * 2) / 1000 : 40;
        if (!budget.allows(`profile ${device} ${size} px, attention ${form}`, needS)) continue;
        try {
          const tag = `${device}-${size}-${form.replace(/[^a-z0-9-]/gi, '_')}`;
          const trace = o.out ? path.join(path.dirname(o.out), `profile-${tag}.trace.json`) : undefined;
          const built = buildUNetGraph(folder.unet.config, folder.unet.weights, { graph: graphOptions(device, form) }).g.build();
          const p = await profileRuns(built, denseFeeds(folder, size / 8), { device, runs: 2, label: `dense step ${device} ${size} px, attention ${formLabel(form)}`, intraOpNumThreads: o.threads, keepTrace: trace, sessionOptions: { webgpu: parseVariant(form).webgpu } });
          if (trace) {
            // Kept gzipped beside the bench JSON (≈ 0.3 MB; 6 MB raw) for a closer look later.
            fs.writeFileSync(`${trace}.gz`, zlib.gzipSync(fs.readFileSync(trace)));
            fs.rmSync(trace);
          }
          profiles.push({ device, size, form, ...p });
          console.log(formatProfile(p));
        } catch (e) {
          log(`profile ${device} ${size} px, attention ${form} failed: ${(e as Error).message}`);
        }
        result.profile = profiles;
        save();
      }
    }
  }

  // 1b. the other variants (attention forms, EP options) on the GPU at the sparse size: which candidate
  // fix makes the step fast, and whether its result is right (against the default's output).
  for (const device of o.devices.filter((d) => devices.includes(d) && d !== 'cpu')) {
    const base = defaultRow(device, o.sparseSize);
    for (const form of o.forms.slice(1)) {
      if (resolved(form) === resolved(o.forms[0])) {
        log(`dense ${device} ${o.sparseSize} px, attention ${form}: the default (${formLabel(o.forms[0])}), measured in phase 1`);
        continue;
      }
      if (!budget.allows(`dense step ${device} ${o.sparseSize} px, attention ${form}`, base ? (base.sessionMs + (o.reps + 2) * base.step.median * 1.5) / 1000 : 30)) continue;
      try {
        const { noise, ...r } = await denseStep(folder, device, o.sparseSize / 8, o, form);
        const ref = defaultNoise.get(device);
        const maxAbsVsDefault = ref && ref.length === noise.length ? noise.reduce((m, x, i) => Math.max(m, Math.abs(x - ref[i])), 0) : undefined;
        const defaultScale = ref?.reduce((m, x) => Math.max(m, Math.abs(x)), 0);
        dense.push({ device, form, size: o.sparseSize, latent: o.sparseSize / 8, ...r, maxAbsVsDefault, defaultScale });
        log(`dense ${device} ${o.sparseSize} px, attention ${form}: session ${(r.sessionMs / 1000).toFixed(1)} s, step ${r.step.median.toFixed(1)} ms (min ${r.step.min.toFixed(1)}), max abs vs ${o.forms[0]} ${maxAbsVsDefault?.toExponential(2) ?? '—'}`);
      } catch (e) {
        log(`dense ${device} ${o.sparseSize} px, attention ${form} failed: ${(e as Error).message}`);
      }
    }
  }
  result.dense = dense;
  save();

  // 2. sparse steps at the sparse size, per device, against that device's dense step
  const sparse: SparseRow[] = [];
  // The first device's sparse rows come first; the others' leave time for the end-to-end edits, the
  // issue's headline figures (an estimate: sessions, a root and 4 x reps generations of the first device).
  const first = o.devices.find((d) => devices.includes(d));
  const firstStep = (first && defaultRow(first, o.sparseSize)?.step.median) ?? 0;
  const e2eReserveS = o.quick ? 0 : 90 + ((2 + 4 * o.reps) * o.steps * firstStep * 1.3) / 1000;
  for (const device of o.devices.filter((d) => devices.includes(d))) {
    const reserveS = device === first || !o.e2eDevices.length ? 0 : e2eReserveS;
    const latent = o.sparseSize / 8;
    let denseStat = defaultRow(device, o.sparseSize)?.step;
    if (!denseStat) {
      if (!budget.allows(`dense step ${device} ${o.sparseSize} px (for the sparse rows)`, 30)) continue;
      denseStat = (await denseStep(folder, device, latent, o)).step;
    }
    if (!budget.allows(`sparse sessions ${device}`, (4 * denseStat.median) / 1000 + 20, reserveS)) continue;
    sparse.push(...(await sparseSteps(folder, device, latent, o, budget, denseStat, reserveS)));
  }
  result.sparse = sparse;
  save();
  // The weights are not needed past here (the e2e phase loads its own sessions from the folder).
  (folder.unet.weights as Map<string, unknown>).clear();

  // 3. edit end to end against dense regeneration
  const e2e: E2ERow[] = [];
  const e2eSize = o.sparseSize;
  for (const device of o.e2eDevices.filter((d) => devices.includes(d))) {
    const step = defaultRow(device, e2eSize)?.step.median;
    // Five sessions to load (≈ 10 s each at SD width on an H200), a recorded root, warm-ups.
    if (!budget.allows(`edit e2e ${device} (load + root)`, step ? (4 * o.steps * step) / 1000 + 60 : 90)) continue;
    e2e.push(...(await endToEnd(device, e2eSize, o, budget, step)));
  }
  result.e2e = e2e;
  save();

  // Report, devices side by side.
  const shown = o.devices.filter((d) => devices.includes(d));
  console.log(`\nFISEdit GPU bench — ${o.preset} random weights, CFG batch 2, ${o.reps} reps (median ms), ${os.cpus().length} cores`);
  console.log(`\n1. dense UNet step\nsize   | ${shown.map((d) => d.padStart(10)).join(' | ')}`);
  for (const size of o.sizes) console.log(`${String(size).padEnd(6)} | ${shown.map((d) => fmt(defaultRow(d, size)?.step.median).padStart(10)).join(' | ')}`);
  if (copies.length) {
    console.log(`\n1c. host↔device copies (median ms; upload/download net of a device-only run)`);
    for (const line of COPY_TABLE_HEAD) console.log(line);
    for (const c of copies) console.log(copyRow(c));
    const lat = copies.find((c) => c.label === STEP_TENSORS[0][0]);
    const step = lat && defaultRow(lat.device, o.sparseSize)?.step.median;
    if (lat && step) {
      const trip = lat.uploadMs + lat.downloadMs;
      console.log(`per step: latents up + ε down ${trip.toFixed(2)} ms = ${((100 * trip) / step).toFixed(1)} % of the ${o.sparseSize} px dense ${lat.device} step (${step.toFixed(1)} ms)`);
    }
  }
  if (profiles.length) {
    console.log('\n1a. GPU profile of the dense step (ms per run; GPU kernel sum vs wall; top op types)');
    for (const p of profiles) {
      const wall = p.wallMs.length ? [...p.wallMs].sort((a, b) => a - b)[Math.floor(p.wallMs.length / 2)] : NaN;
      console.log(`${p.device} ${p.size} px ${formLabel(p.form)}: wall ${fmt(wall)} ms, GPU kernels ${fmt(p.gpuKernelMs)} ms (${p.kernelsPerRun.toFixed(0)} dispatches), CPU-EP nodes ${fmt(p.hostCpuNodeMs)} ms; ${p.byOp.slice(0, 5).map((r) => `${r.key} ${r.ms.toFixed(1)} (${(100 * r.share).toFixed(0)} %)`).join(', ')}`);
    }
  }
  const formRows = dense.filter((r) => r.form !== o.forms[0] || (r.device !== 'cpu' && o.forms.length > 1 && r.size === o.sparseSize));
  if (formRows.length) {
    console.log(`\n1b. dense step on the GPU at ${o.sparseSize} px per variant (attention form = FISEDIT_WEBGPU_ATTENTION, ${formLabel(o.forms[0])} the default; +nchw/+novalidation: WebGPU EP options)`);
    console.log('(max abs: the predicted noise against the default variant\'s, same device and inputs, and as a share of its largest |value|;');
    console.log(' float32 reordering gives up to ~1e-4 of it, the FlashAttention kernel that is wrong on lavapipe ~1e-2)');
    for (const r of formRows) console.log(`${r.device.padEnd(7)} ${formLabel(r.form).padEnd(20)} | ${fmt(r.step.median).padStart(9)} ms (min ${fmt(r.step.min)}) | max abs ${r.maxAbsVsDefault === undefined ? '—'.padStart(8) : `${r.maxAbsVsDefault.toExponential(1).padStart(8)} (${r.defaultScale ? (r.maxAbsVsDefault / r.defaultScale).toExponential(1) : '—'})`} | session ${(r.sessionMs / 1000).toFixed(1)} s`);
  }

  console.log(`\n2. sparse step at ${o.sparseSize} px (ms, speedup over the same device's dense step; MAC ratio = ideal)`);
  console.log('(host: the parent\'s entries assembled on the host and uploaded each step; device: fed from device memory)');
  console.log(`area  | active | MAC ratio | ${shown.map((d) => `${d} host ms  x | device ms  x`.padStart(30)).join(' | ')}`);
  for (const target of o.fractions) {
    const rs = shown.map((d) => sparse.find((r) => r.device === d && r.target === target));
    const any = rs.find(Boolean);
    if (!any) continue;
    console.log(`${(100 * target).toFixed(0).padStart(4)}% | ${(100 * any.activeFraction).toFixed(1).padStart(5)}% | ${(1 / any.macRatio).toFixed(2).padStart(8)}x | ${rs.map((r) => `${fmt(r?.sparseStep.median).padStart(9)} ${fmt(r?.speedup, 2).padStart(5)}x | ${fmt(r?.sparseStepDevice?.median).padStart(9)} ${fmt(r?.speedupDevice, 2).padStart(5)}x`).join(' | ')}`);
  }
  console.log(`\n3. edit end to end vs dense regeneration, ${e2eSize} px, ${o.steps} steps (median ms)`);
  console.log('device | area | mode   | dense ms | edit ms | speedup | outside px changed | steps from device / host');
  for (const r of e2e) console.log(`${r.device.padEnd(6)} | ${(100 * r.target).toFixed(0).padStart(3)}% | ${r.mode.padEnd(6)} | ${fmt(r.dense.median, 0).padStart(8)} | ${fmt(r.edit.median, 0).padStart(7)} | ${r.speedup.toFixed(2).padStart(6)}x | ${String(r.outsideChangedPixels).padStart(18)} | ${r.deviceTierHits ?? '—'} / ${r.deviceTierMisses ?? '—'}`);
  if (budget.skipped.length) console.log(`\nskipped for the time budget (${o.budgetS} s): ${budget.skipped.join('; ')}`);
  if (Object.keys(unavailable).length) console.log(`unavailable devices: ${Object.entries(unavailable).map(([d, m]) => `${d}: ${m}`).join('; ')}`);
  console.log(`bench total ${budget.elapsedS().toFixed(1)} s`);
  if (o.out) log(`wrote ${o.out}`);
}

main().catch((e) => {
  process.stderr.write(`${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exitCode = 1;
});
