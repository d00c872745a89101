// Two UNet sessions taking turns (issue 15 item 2): an edit runs its capture steps on one UNet session and
// its sparse steps on another, and the first steps after the switch were 2–3× slower on 2 cores. ORT's
// intra-op threads spin for more work after a run (ORT's default); the session that ran last keeps the
// cores busy while the next one starts. Modes, each with its own pair of sessions of the same graph:
//   always  — ORT's default: threads spin after each run before they sleep;
//   in-run  — session.force_spinning_stop: they spin during a run and stop when it returns;
//   never   — session.intra_op.allow_spinning 0: they never spin.
// Each round, per mode (order rotating): `steps` on session A, then `steps` on session B, each timed; a
// 200 ms pause between modes. Printed per mode: the median of each step position of B (the steps after
// the switch) and of A (steps of one session in a row), and their totals.
//
//   npx tsx bench/edit/unetSwitch.ts [--model DIR] [--rounds N] [--steps N] [--out FILE.json]

import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { buildUNetGraph } from '../../src/engine/arch/unet';
import { loadModelFolder } from '../../src/engine/model/modelFolder';
import { createSession, float32Tensor, type SpinMode } from '../../src/engine/runtime/ortSession';

const ROOT = path.resolve(__dirname, '../..');
const MODES: SpinMode[] = ['always', 'in-run', 'never'];

function args(argv: string[]) {
  const o = { model: path.join(ROOT, 'models/default'), rounds: 12, steps: 6, out: '' };
  for (let i = 0; i < argv.length; i++) {
    const v = () => argv[++i];
    if (argv[i] === '--model') o.model = path.resolve(v());
    else if (argv[i] === '--rounds') o.rounds = Number(v());
    else if (argv[i] === '--steps') o.steps = Number(v());
    else if (argv[i] === '--out') o.out = path.resolve(v());
    else throw new Error(`bench/edit/unetSwitch: unknown argument ${argv[i]}`);
  }
  return o;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);

async function main(): Promise<void> {
  const o = args(process.argv.slice(2));
  const { unet: u } = loadModelFolder(o.model);
  const side = u.config.sampleSize;
  const C = u.config.inChannels;
  const D = u.config.crossAttentionDim;
  const bytes = buildUNetGraph(u.config, u.weights).g.build();
  const pairs = new Map<SpinMode, { a: Awaited<ReturnType<typeof createSession>>; b: Awaited<ReturnType<typeof createSession>> }>();
  for (const m of MODES) pairs.set(m, { a: await createSession(bytes, { intraOpNumThreads: 2, spinning: m }), b: await createSession(bytes, { intraOpNumThreads: 2, spinning: m }) });
  let x = 7;
  const rnd = () => ((x = (Math.imul(x, 1664525) + 1013904223) >>> 0) / 2 ** 32) * 2 - 1;
  const feeds = {
    sample: float32Tensor(Float32Array.from({ length: 2 * C * side * side }, rnd), [2, C, side, side]),
    timestep: float32Tensor(new Float32Array([500, 500]), [2]),
    encoder_hidden_states: float32Tensor(Float32Array.from({ length: 2 * 77 * D }, rnd), [2, 77, D]),
  };
  for (const { a, b } of pairs.values()) for (let i = 0; i < 3; i++) await Promise.all([await a.run(feeds, ['noise_pred']), await b.run(feeds, ['noise_pred'])]);
  const timed: Record<string, { a: number[][]; b: number[][] }> = Object.fromEntries(MODES.map((m) => [m, { a: [], b: [] }]));
  for (let r = 0; r < o.rounds; r++) {
    for (let k = 0; k < MODES.length; k++) {
      const m = MODES[(r + k) % MODES.length];
      const { a, b } = pairs.get(m)!;
      await sleep(200);
      for (const [s, into] of [[a, timed[m].a], [b, timed[m].b]] as const) {
        const ms: number[] = [];
        for (let i = 0; i < o.steps; i++) {
          const t = performance.now();
          await s.run(feeds, ['noise_pred']);
          ms.push(performance.now() - t);
        }
        into.push(ms);
      }
    }
  }
  const rows = Object.fromEntries(
    MODES.map((m) => {
      const per = (runs: number[][]) => Array.from({ length: o.steps }, (_, i) => median(runs.map((v) => v[i])));
      return [m, { aPerStepMs: per(timed[m].a), bPerStepMs: per(timed[m].b), aTotalMs: median(timed[m].a.map(sum)), bTotalMs: median(timed[m].b.map(sum)) }];
    }),
  );
  console.log(`${path.basename(o.model)}: ${o.steps} steps on UNet session A, then ${o.steps} on B (CFG batch 2, ${side}² latent), ${o.rounds} rounds; load ${os.loadavg().map((v) => v.toFixed(1)).join(' ')}`);
  for (const [m, r] of Object.entries(rows)) {
    console.log(`${m.padEnd(7)}: A ${r.aPerStepMs.map((v) => v.toFixed(1)).join(' / ')} ms (${r.aTotalMs.toFixed(1)}); B after the switch ${r.bPerStepMs.map((v) => v.toFixed(1)).join(' / ')} ms (${r.bTotalMs.toFixed(1)}); A+B ${(r.aTotalMs + r.bTotalMs).toFixed(1)} ms`);
  }
  if (o.out) fs.writeFileSync(o.out, `${JSON.stringify({ bench: 'edit/unetSwitch', date: new Date().toISOString(), model: path.basename(o.model), machine: { cpu: os.cpus()[0]?.model, cores: os.cpus().length, loadavg: os.loadavg() }, rounds: o.rounds, steps: o.steps, rows }, null, 2)}\n`);
  for (const { a, b } of pairs.values()) await Promise.all([a.release(), b.release()]);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
