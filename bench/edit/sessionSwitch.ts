// What a session's spinning threads cost the session that runs next (issue 15 item 2). onnxruntime's
// intra-op threads spin for more work after a run before they sleep (ORT's default), and on 2 cores the
// spinning threads of the session that ran last took the cores from the next one. One process; per
// SessionOptions.spinning mode (always: ORT's default; in-run: the engine's DEFAULT_SPINNING; never) its
// own sessions of the same graphs; each round runs every mode (order rotating), after a 200 ms pause
// (spinning threads sleep by then). Medians over the rounds.
//
//   --part decode (default): one UNet session (in-run), one VAE decoder per mode. `steps` UNet steps, a
//     decode (timed), then `steps` UNet steps timed one by one: the decoder's spin against the steps after it.
//   --part unet: two UNet sessions A and B per mode. `steps` steps on A, then `steps` on B, each timed: the
//     switch an edit makes from its capture steps' session to its sparse steps' one, and A's steps in a row.
//
//   npx tsx bench/edit/sessionSwitch.ts [--part decode|unet] [--model DIR] [--rounds N] [--steps N] [--out FILE.json]

import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { buildUNetGraph } from '../../src/engine/arch/unet';
import { buildVaeDecoderGraph } from '../../src/engine/arch/vaeDecoder';
import { loadModelFolder } from '../../src/engine/model/modelFolder';
import { createSession, float32Tensor, type OrtModelSession, type SpinMode } from '../../src/engine/runtime/ortSession';

const MODES: SpinMode[] = ['always', 'in-run', 'never'];
const ROOT = path.resolve(__dirname, '../..');

function args(argv: string[]) {
  const o = { part: 'decode', model: path.join(ROOT, 'models/default'), rounds: 12, steps: 5, out: '' };
  for (let i = 0; i < argv.length; i++) {
    const v = () => argv[++i];
    if (argv[i] === '--part') o.part = v();
    else if (argv[i] === '--model') o.model = path.resolve(v());
    else if (argv[i] === '--rounds') o.rounds = Number(v());
    else if (argv[i] === '--steps') o.steps = Number(v());
    else if (argv[i] === '--out') o.out = path.resolve(v());
    else throw new Error(`bench/edit/sessionSwitch: unknown argument ${argv[i]}`);
  }
  if (o.part !== 'decode' && o.part !== 'unet') throw new Error('bench/edit/sessionSwitch: --part is decode or unet');
  return o;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** Per step position, the median over the rounds. */
const perStep = (runs: number[][]) => runs[0].map((_, i) => median(runs.map((r) => r[i])));
const fmt = (xs: number[]) => xs.map((v) => v.toFixed(1)).join(' / ');

async function main(): Promise<void> {
  const o = args(process.argv.slice(2));
  const { unet: u, vae } = loadModelFolder(o.model);
  const side = u.config.sampleSize;
  const C = u.config.inChannels;
  const D = u.config.crossAttentionDim;
  let x = 7;
  const rnd = () => ((x = (Math.imul(x, 1664525) + 1013904223) >>> 0) / 2 ** 32) * 2 - 1;
  const feeds = {
    sample: float32Tensor(Float32Array.from({ length: 2 * C * side * side }, rnd), [2, C, side, side]),
    timestep: float32Tensor(new Float32Array([500, 500]), [2]),
    encoder_hidden_states: float32Tensor(Float32Array.from({ length: 2 * 77 * D }, rnd), [2, 77, D]),
  };
  const latents = { latents: float32Tensor(Float32Array.from({ length: vae.config.latentChannels * side * side }, rnd), [1, vae.config.latentChannels, side, side]) };
  const unetBytes = buildUNetGraph(u.config, u.weights).g.build();
  const steps = async (s: OrtModelSession, into?: number[]) => {
    for (let i = 0; i < o.steps; i++) {
      const t = performance.now();
      await s.run(feeds, ['noise_pred']);
      into?.push(performance.now() - t);
    }
  };
  /** Each mode's sessions, warmed up; then `round(mode)` per mode per round, order rotating. */
  const rounds = async <T>(make: (m: SpinMode) => Promise<T>, warm: (t: T) => Promise<void>, round: (t: T, m: SpinMode) => Promise<void>) => {
    const made = new Map<SpinMode, T>();
    for (const m of MODES) made.set(m, await make(m));
    for (const t of made.values()) await warm(t);
    for (let r = 0; r < o.rounds; r++) {
      for (let k = 0; k < MODES.length; k++) {
        const m = MODES[(r + k) % MODES.length];
        await sleep(200);
        await round(made.get(m)!, m);
      }
    }
    return made;
  };
  const header = `${path.basename(o.model)}, ${side}² latent, CFG batch 2, ${o.rounds} rounds; load ${os.loadavg().map((v) => v.toFixed(1)).join(' ')}`;
  let rows: Record<string, unknown>;
  const sessions: OrtModelSession[] = [];
  if (o.part === 'decode') {
    const unet = await createSession(unetBytes, { intraOpNumThreads: 2, spinning: 'in-run' });
    sessions.push(unet);
    const vaeBytes = buildVaeDecoderGraph(vae.config, vae.weights).g.build();
    const decodes = Object.fromEntries(MODES.map((m) => [m, [] as number[]]));
    const after = Object.fromEntries(MODES.map((m) => [m, [] as number[][]]));
    await steps(unet);
    const made = await rounds(
      (m) => createSession(vaeBytes, { intraOpNumThreads: 2, spinning: m }),
      async (d) => void (await d.run(latents, ['image'])),
      async (d, m) => {
        await steps(unet); // a decode follows UNet steps, as in every job
        const t = performance.now();
        await d.run(latents, ['image']);
        decodes[m].push(performance.now() - t);
        const ms: number[] = [];
        await steps(unet, ms);
        after[m].push(ms);
      },
    );
    sessions.push(...made.values());
    rows = Object.fromEntries(MODES.map((m) => [m, { decodeMedianMs: median(decodes[m]), stepsAfterMs: perStep(after[m]), stepsAfterTotalMs: median(after[m].map(sum)) }]));
    console.log(`decode part: a VAE decode after ${o.steps} UNet steps (UNet in-run), then ${o.steps} UNet steps; ${header}`);
    for (const m of MODES) {
      const r = rows[m] as { decodeMedianMs: number; stepsAfterMs: number[]; stepsAfterTotalMs: number };
      console.log(`decoder ${m.padEnd(7)}: decode ${r.decodeMedianMs.toFixed(1)} ms; steps after it ${fmt(r.stepsAfterMs)} ms; total ${r.stepsAfterTotalMs.toFixed(1)} ms`);
    }
  } else {
    const a = Object.fromEntries(MODES.map((m) => [m, [] as number[][]]));
    const b = Object.fromEntries(MODES.map((m) => [m, [] as number[][]]));
    const made = await rounds(
      async (m) => [await createSession(unetBytes, { intraOpNumThreads: 2, spinning: m }), await createSession(unetBytes, { intraOpNumThreads: 2, spinning: m })] as const,
      async ([sa, sb]) => {
        await steps(sa);
        await steps(sb);
      },
      async ([sa, sb], m) => {
        const ma: number[] = [];
        const mb: number[] = [];
        await steps(sa, ma);
        await steps(sb, mb);
        a[m].push(ma);
        b[m].push(mb);
      },
    );
    for (const pair of made.values()) sessions.push(...pair);
    rows = Object.fromEntries(MODES.map((m) => [m, { aPerStepMs: perStep(a[m]), bPerStepMs: perStep(b[m]), aTotalMs: median(a[m].map(sum)), bTotalMs: median(b[m].map(sum)) }]));
    console.log(`unet part: ${o.steps} steps on UNet session A, then ${o.steps} on B; ${header}`);
    for (const m of MODES) {
      const r = rows[m] as { aPerStepMs: number[]; bPerStepMs: number[]; aTotalMs: number; bTotalMs: number };
      console.log(`${m.padEnd(7)}: A ${fmt(r.aPerStepMs)} ms (${r.aTotalMs.toFixed(1)}); B after the switch ${fmt(r.bPerStepMs)} ms (${r.bTotalMs.toFixed(1)}); A+B ${(r.aTotalMs + r.bTotalMs).toFixed(1)} ms`);
    }
  }
  if (o.out) fs.writeFileSync(o.out, `${JSON.stringify({ bench: 'edit/sessionSwitch', part: o.part, date: new Date().toISOString(), model: path.basename(o.model), machine: { cpu: os.cpus()[0]?.model, cores: os.cpus().length, loadavg: os.loadavg() }, rounds: o.rounds, steps: o.steps, rows }, null, 2)}\n`);
  await Promise.all(sessions.map((s) => s.release()));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
