// The first ETA of a job against the time it really had left, for the service's old estimate
// (elapsed / steps done × steps left, which spreads the start-up over every step) and the measured
// step-time model the job runner uses now (src/service/jobs/etaModel.ts), fed the same progress events.
// Also the step-preview colour of a white background at steps 5/10/15/20, drawn by the old linear map
// fitted to random latents and by the model's decoder (what previews use where decoding is cheap).
//
//   npx tsx bench/progress/eta.ts [--model DIR] [--jobs N] [--steps N] [--out bench/results/progress.json]
//
// Runs the real engine worker (child process, engine state, as `fisedit serve`), one job at a time.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { DiffusionEngine } from '../../src/engine/pipeline/engine';
import { gaussianFloat32 } from '../../src/engine/random/gaussian';
import { WorkerInferenceBackend } from '../../src/service/inference/workerBackend';
import { decodedToRgb, fitLatentRgbMap, latentColourSamples, latentsToRgb } from '../../src/service/inference/latentPreview';
import { EtaModel, RunClock } from '../../src/service/jobs/etaModel';

const COLOURS = ['red', 'green', 'blue', 'yellow', 'purple', 'orange', 'white', 'black', 'gray'];
const SHAPES = ['circle', 'square', 'triangle'];

async function etaRuns(modelDir: string, jobs: number, steps: number) {
  const stateDir = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'bench-eta-')), 'engine-state');
  const backend = new WorkerInferenceBackend({ modelDir, mode: 'process', previewIntervalMs: 250, stateDir });
  const info = await backend.start();
  const model = new EtaModel();
  const rows: { job: number; totalMs: number; oldFirstEta: number; oldRatio: number; newFirstStep: number | null; newFirstEta: number | null; newRatio: number | null }[] = [];
  for (let k = 0; k < jobs; k++) {
    const clock = new RunClock();
    const seen: { step: number; at: number; oldEta: number; newEta: number | null }[] = [];
    const prompt = `a ${COLOURS[k % 9]} ${SHAPES[k % 3]} on the left on a ${COLOURS[(k + 4) % 9]} background`;
    const t0 = performance.now();
    await backend.generate(`eta-${k}`, { prompt, negativePrompt: '', seed: 100 + k, steps, guidance: 7.5, scheduler: 'dpmpp-2m', width: info.defaultWidth, height: info.defaultHeight }, (p) => {
      if (p.phase !== 'DENOISING' && p.phase !== 'DECODING') return;
      const s = { step: p.step, totalSteps: p.totalSteps, at: performance.now() };
      clock.step(s);
      seen.push({ step: p.step, at: s.at, oldEta: (p.elapsedMs / p.step) * (p.totalSteps - p.step), newEta: model.eta('generate', clock, s) });
    });
    const end = performance.now();
    model.finished('generate', clock, end);
    const first = seen[0];
    const firstNew = seen.find((e) => e.newEta !== null) ?? null;
    rows.push({
      job: k + 1,
      totalMs: end - t0,
      oldFirstEta: first.oldEta,
      oldRatio: first.oldEta / (end - first.at),
      newFirstStep: firstNew?.step ?? null,
      newFirstEta: firstNew?.newEta ?? null,
      newRatio: firstNew ? firstNew.newEta! / (end - firstNew.at) : null,
    });
  }
  await backend.close();
  return rows;
}

async function previewColours(modelDir: string, steps: number) {
  const e = await DiffusionEngine.load(modelDir);
  try {
    const { info } = e;
    const s = info.vaeScaleFactor;
    const C = info.latentChannels;
    const h = info.defaultHeight / s;
    const w = info.defaultWidth / s;
    const zs: Float32Array[] = [];
    const rgbs: Float32Array[] = [];
    for (let k = 0; k < 3; k++) {
      const z = gaussianFloat32(1000 + k, C * h * w);
      const sm = latentColourSamples(z, await e.decodeLatents(z.map((v) => v / info.scalingFactor), h, w), C, h, w, s);
      zs.push(sm.z);
      rgbs.push(sm.rgb);
    }
    const cat = (p: Float32Array[]) => Float32Array.from(p.flatMap((x) => Array.from(x)));
    const oldMap = fitLatentRgbMap(cat(zs), cat(rgbs), C);
    const latents: Float32Array[] = [];
    const r = await e.generate(
      { prompt: 'a red circle on the left on a white background', negativePrompt: '', seed: 40, steps, guidance: 7.5, scheduler: 'dpmpp-2m', width: info.defaultWidth, height: info.defaultHeight },
      { onStep: async (st) => void latents.push(st.latents.slice()) },
    );
    const px = (a: Uint8Array) => [a[0], a[1], a[2]];
    const at = [0.25, 0.5, 0.75, 1].map((f) => Math.max(1, Math.round(f * steps)));
    const out = [];
    for (const step of at) {
      const z = latents[step - 1];
      const decoded = decodedToRgb(await e.decodeLatents(z.map((v) => v / info.scalingFactor), h, w), info.defaultWidth, info.defaultHeight);
      let err = 0;
      for (let i = 0; i < decoded.length; i++) err += Math.abs(decoded[i] - r.rgb[i]);
      out.push({ step, finalCorner: px(r.rgb), mapCorner: px(latentsToRgb(z, C, h, w, oldMap)), decoderCorner: px(decoded), decoderMeanAbsErrToFinal: err / decoded.length });
    }
    return out;
  } finally {
    await e.dispose();
  }
}

async function main() {
  const { values } = parseArgs({ options: { model: { type: 'string' }, jobs: { type: 'string' }, steps: { type: 'string' }, out: { type: 'string' } } });
  const modelDir = path.resolve(values.model ?? path.join(__dirname, '../../models/default'));
  const steps = Number(values.steps ?? 20);
  const eta = await etaRuns(modelDir, Number(values.jobs ?? 5), steps);
  console.log('job  total ms  old first ETA (×truth)  new first ETA (step, ×truth)');
  for (const r of eta) console.log(`${r.job}    ${r.totalMs.toFixed(0).padStart(6)}  ${r.oldFirstEta.toFixed(0).padStart(6)} (×${r.oldRatio.toFixed(2)})        ${r.newFirstEta === null ? 'none' : `${r.newFirstEta.toFixed(0)} (step ${r.newFirstStep}, ×${r.newRatio!.toFixed(2)})`}`);
  const previews = await previewColours(modelDir, steps);
  console.log('step  final corner     old map corner     decoder corner (mean |err| to final)');
  for (const p of previews) console.log(`${String(p.step).padEnd(5)} ${JSON.stringify(p.finalCorner).padEnd(16)} ${JSON.stringify(p.mapCorner).padEnd(18)} ${JSON.stringify(p.decoderCorner)} (${p.decoderMeanAbsErrToFinal.toFixed(1)})`);
  const out = values.out ?? path.join(__dirname, '../results/progress.json');
  fs.writeFileSync(out, `${JSON.stringify({ model: modelDir, machine: { cpus: os.cpus().length, load: os.loadavg() }, eta, previews }, null, 2)}\n`);
  console.log(`wrote ${out}`);
}

void main();
