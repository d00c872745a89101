// UNet steps right after a decode (issue 15 item 2): onnxruntime's intra-op threads spin for more work
// after a run before they sleep (ORT's default), and on 2 cores a decoder's spinning threads took the
// UNet's cores for the next few steps. One process, one UNet session (the engine's DEFAULT_SPINNING), one VAE decoder
// session of the same graph per SessionOptions.spinning mode (always: ORT's default; in-run; never). Each
// round, per mode (order rotating): one decode, timed, then `after` UNet steps timed one by one, then a
// 200 ms pause (spinning threads sleep by then). Printed per mode: the median decode, the median of each
// step position after it, and the UNet steps' total.
//
//   npx tsx bench/edit/sessionSwitch.ts [--model DIR] [--rounds N] [--after N] [--out FILE.json]

import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { buildUNetGraph } from '../../src/engine/arch/unet';
import { buildVaeDecoderGraph } from '../../src/engine/arch/vaeDecoder';
import { loadModelFolder } from '../../src/engine/model/modelFolder';
import { createSession, DEFAULT_SPINNING, float32Tensor, type SpinMode } from '../../src/engine/runtime/ortSession';

const MODES: SpinMode[] = ['always', 'in-run', 'never'];

const ROOT = path.resolve(__dirname, '../..');

function args(argv: string[]) {
  const o = { model: path.join(ROOT, 'models/default'), rounds: 12, after: 5, out: '' };
  for (let i = 0; i < argv.length; i++) {
    const v = () => argv[++i];
    if (argv[i] === '--model') o.model = path.resolve(v());
    else if (argv[i] === '--rounds') o.rounds = Number(v());
    else if (argv[i] === '--after') o.after = Number(v());
    else if (argv[i] === '--out') o.out = path.resolve(v());
    else throw new Error(`bench/edit/sessionSwitch: unknown argument ${argv[i]}`);
  }
  return o;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function main(): Promise<void> {
  const o = args(process.argv.slice(2));
  const folder = loadModelFolder(o.model);
  const { unet: u, vae } = folder;
  const side = u.config.sampleSize;
  const C = u.config.inChannels;
  const D = u.config.crossAttentionDim;
  const unet = await createSession(buildUNetGraph(u.config, u.weights).g.build(), { intraOpNumThreads: 2 });
  const vaeBytes = buildVaeDecoderGraph(vae.config, vae.weights).g.build();
  const decoders = new Map<SpinMode, Awaited<ReturnType<typeof createSession>>>();
  for (const m of MODES) decoders.set(m, await createSession(vaeBytes, { intraOpNumThreads: 2, spinning: m }));
  let x = 7;
  const rnd = () => ((x = (Math.imul(x, 1664525) + 1013904223) >>> 0) / 2 ** 32) * 2 - 1;
  const feeds = {
    sample: float32Tensor(Float32Array.from({ length: 2 * C * side * side }, rnd), [2, C, side, side]),
    timestep: float32Tensor(new Float32Array([500, 500]), [2]),
    encoder_hidden_states: float32Tensor(Float32Array.from({ length: 2 * 77 * D }, rnd), [2, 77, D]),
  };
  const latents = { latents: float32Tensor(Float32Array.from({ length: vae.config.latentChannels * side * side }, rnd), [1, vae.config.latentChannels, side, side]) };
  for (let i = 0; i < 5; i++) await unet.run(feeds, ['noise_pred']);
  for (const d of decoders.values()) await d.run(latents, ['image']);
  const steps = Object.fromEntries(MODES.map((m) => [m, [] as number[][]]));
  const decodes = Object.fromEntries(MODES.map((m) => [m, [] as number[]]));
  const unetSteps = async (into?: number[]) => {
    for (let i = 0; i < o.after; i++) {
      const t = performance.now();
      await unet.run(feeds, ['noise_pred']);
      into?.push(performance.now() - t);
    }
  };
  for (let r = 0; r < o.rounds; r++) {
    for (let k = 0; k < MODES.length; k++) {
      const m = MODES[(r + k) % MODES.length];
      await sleep(200);
      await unetSteps(); // the decode follows UNet steps, as in every job
      const t = performance.now();
      await decoders.get(m)!.run(latents, ['image']);
      decodes[m].push(performance.now() - t);
      const ms: number[] = [];
      await unetSteps(ms);
      steps[m].push(ms);
    }
  }
  const rows = Object.fromEntries(
    MODES.map((m) => [m, { decodeMedianMs: median(decodes[m]), perStepMedianMs: Array.from({ length: o.after }, (_, i) => median(steps[m].map((v) => v[i]))), totalMedianMs: median(steps[m].map((v) => v.reduce((a, b) => a + b, 0))) }]),
  );
  console.log(`${path.basename(o.model)}: a VAE decode after ${o.after} UNet steps (UNet spinning ${DEFAULT_SPINNING}), then ${o.after} UNet steps (CFG batch 2, ${side}² latent), ${o.rounds} rounds; load ${os.loadavg().map((v) => v.toFixed(1)).join(' ')}`);
  for (const [m, r] of Object.entries(rows)) console.log(`decoder ${m.padEnd(7)}: decode ${r.decodeMedianMs.toFixed(1)} ms; steps after it ${r.perStepMedianMs.map((v) => v.toFixed(1)).join(' / ')} ms; total ${r.totalMedianMs.toFixed(1)} ms`);
  if (o.out) fs.writeFileSync(o.out, `${JSON.stringify({ bench: 'edit/sessionSwitch', date: new Date().toISOString(), model: path.basename(o.model), machine: { cpu: os.cpus()[0]?.model, cores: os.cpus().length, loadavg: os.loadavg() }, rounds: o.rounds, after: o.after, unetSpinning: DEFAULT_SPINNING, rows }, null, 2)}\n`);
  await Promise.all([unet.release(), ...[...decoders.values()].map((d) => d.release())]);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
