// UNet steps right after another session ran (issue 15 item 2): onnxruntime's intra-op threads spin for
// more work after a run before they sleep, and on 2 cores a decoder's spinning threads took the UNet's
// cores for the next few steps. One process, one UNet session, two VAE decoder sessions of the same graph
// (threads spinning as ORT's default, and not: SessionOptions.spinning false, what the engine now uses for
// the text encoder and the decoders). Each round: one decode on either decoder (alternating), then `after`
// UNet steps timed one by one, then a 200 ms pause (spinning threads sleep by then). Printed: the median of
// each step position after each decoder, and the UNet steps' total.
//
//   npx tsx bench/edit/sessionSwitch.ts [--model DIR] [--rounds N] [--after N] [--out FILE.json]

import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { buildUNetGraph } from '../../src/engine/arch/unet';
import { buildVaeDecoderGraph } from '../../src/engine/arch/vaeDecoder';
import { loadModelFolder } from '../../src/engine/model/modelFolder';
import { createSession, float32Tensor } from '../../src/engine/runtime/ortSession';

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
  const decoders = {
    spinning: await createSession(vaeBytes, { intraOpNumThreads: 2 }),
    'not spinning': await createSession(vaeBytes, { intraOpNumThreads: 2, spinning: 'never' }),
  };
  let x = 7;
  const rnd = () => ((x = (Math.imul(x, 1664525) + 1013904223) >>> 0) / 2 ** 32) * 2 - 1;
  const feeds = {
    sample: float32Tensor(Float32Array.from({ length: 2 * C * side * side }, rnd), [2, C, side, side]),
    timestep: float32Tensor(new Float32Array([500, 500]), [2]),
    encoder_hidden_states: float32Tensor(Float32Array.from({ length: 2 * 77 * D }, rnd), [2, 77, D]),
  };
  const latents = { latents: float32Tensor(Float32Array.from({ length: vae.config.latentChannels * side * side }, rnd), [1, vae.config.latentChannels, side, side]) };
  for (let i = 0; i < 5; i++) await unet.run(feeds, ['noise_pred']);
  const steps: Record<string, number[][]> = { spinning: [], 'not spinning': [] };
  for (let r = 0; r < o.rounds; r++) {
    for (const kind of (r % 2 ? ['not spinning', 'spinning'] : ['spinning', 'not spinning']) as (keyof typeof decoders)[]) {
      await sleep(200);
      await decoders[kind].run(latents, ['image']);
      const ms: number[] = [];
      for (let i = 0; i < o.after; i++) {
        const t = performance.now();
        await unet.run(feeds, ['noise_pred']);
        ms.push(performance.now() - t);
      }
      steps[kind].push(ms);
    }
  }
  const rows = Object.fromEntries(
    Object.entries(steps).map(([kind, runs]) => [kind, { perStepMedianMs: Array.from({ length: o.after }, (_, i) => median(runs.map((m) => m[i]))), totalMedianMs: median(runs.map((m) => m.reduce((a, b) => a + b, 0))) }]),
  );
  console.log(`${path.basename(o.model)}: ${o.after} UNet steps (CFG batch 2, ${side}² latent) right after a VAE decode, ${o.rounds} rounds; load ${os.loadavg().map((v) => v.toFixed(1)).join(' ')}`);
  for (const [kind, r] of Object.entries(rows)) console.log(`decoder ${kind.padEnd(12)}: steps ${r.perStepMedianMs.map((v) => v.toFixed(1)).join(' / ')} ms; total ${r.totalMedianMs.toFixed(1)} ms`);
  const ratio = rows.spinning.totalMedianMs / rows['not spinning'].totalMedianMs;
  console.log(`UNet steps after a spinning decoder take ${ratio.toFixed(2)}× those after one that does not spin`);
  if (o.out) fs.writeFileSync(o.out, `${JSON.stringify({ bench: 'edit/sessionSwitch', date: new Date().toISOString(), model: path.basename(o.model), machine: { cpu: os.cpus()[0]?.model, cores: os.cpus().length, loadavg: os.loadavg() }, rounds: o.rounds, after: o.after, rows, ratio }, null, 2)}\n`);
  await Promise.all([unet.release(), decoders.spinning.release(), decoders['not spinning'].release()]);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
