// What each host↔device copy costs on an execution provider that keeps data on the device (WebGPU):
// a Relu graph timed with its input and output on the host or in device memory (gpu-buffer), at the
// sizes the engine moves per step; upload ≈ t(host in, device out) − t(device in, device out), download ≈
// t(device in, host out) − t(device in, device out). Then the bundled model's UNet step with the text
// embeddings uploaded every step vs kept on the device (DiffusionEngine does the latter on webgpu).
//   XDG_RUNTIME_DIR=/tmp/xdg npx tsx bench/gpu/copies.ts [--reps 15] [--model DIR]
// Medians in ms. A run whose input and output stay on the device returns once its work is queued (there
// is no sync point without a download), so upload and download include the wait for queued work.
// On Mesa lavapipe "device memory" is host memory behind Vulkan: the numbers are Dawn's staging and copy
// overheads on the CPU, not PCIe; rerun on a GPU for those.
import * as path from 'path';
import { GraphBuilder } from '../../src/engine/graph/graphBuilder';
import { DiffusionEngine } from '../../src/engine/pipeline/engine';
import { gaussianFloat32 } from '../../src/engine/random/gaussian';
import { createSession, float32Tensor, type DeviceTensor, type EngineTensor } from '../../src/engine/runtime/ortSession';

const argv = process.argv.slice(2);
const opt = (name: string, dflt: string) => (argv.includes(`--${name}`) ? argv[argv.indexOf(`--${name}`) + 1] : dflt);
const REPS = Number(opt('reps', '15'));
const MODEL = path.resolve(opt('model', path.join(__dirname, '../../models/default')));

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** Median ms of each variant, the variants interleaved rep by rep so that load on the machine hits all alike. */
async function timeAll(fns: (() => Promise<unknown>)[]): Promise<number[]> {
  for (const fn of fns) await fn(); // warm-up (pipeline compilation, buffer pools)
  const ts: number[][] = fns.map(() => []);
  for (let i = 0; i < REPS; i++) {
    for (let k = 0; k < fns.length; k++) {
      const t0 = performance.now();
      await fns[k]();
      ts[k].push(performance.now() - t0);
    }
  }
  return ts.map(median);
}

async function copyCosts(label: string, n: number): Promise<string> {
  const g = new GraphBuilder('relu');
  g.output('y', g.op('Relu', [g.input('x', 'float32', [n])]), 'float32', [n]);
  const built = g.build();
  const toHost = await createSession(built, { device: 'webgpu' });
  const toDevice = await createSession(built, { device: 'webgpu', deviceOutputs: ['y'] });
  const x: EngineTensor = float32Tensor(gaussianFloat32(1n, n), [n]);
  let onDevice: DeviceTensor = (await toDevice.runWithDevice({ x })).device.y;
  const [hh, dd, hd, dh] = await timeAll([
    () => toHost.run({ x }),
    async () => {
      const r = await toDevice.runWithDevice({ x: onDevice });
      onDevice.release();
      onDevice = r.device.y;
    },
    async () => (await toDevice.runWithDevice({ x })).device.y.release(),
    () => toHost.run({ x: onDevice }),
  ]);
  onDevice.release();
  await Promise.all([toHost.release(), toDevice.release()]);
  const mib = (4 * n) / 2 ** 20;
  return `| ${label} | ${mib.toFixed(2)} | ${dd.toFixed(2)} | ${hh.toFixed(2)} | ${(hd - dd).toFixed(2)} | ${(dh - dd).toFixed(2)} |`;
}

async function unetText(): Promise<string[]> {
  const engine = await DiffusionEngine.load(MODEL, { sessionOptions: { device: 'webgpu' }, components: ['textEncoder', 'unet'] });
  const { latentChannels: C, defaultHeight, vaeScaleFactor } = engine.info;
  const h = defaultHeight / vaeScaleFactor;
  const ids = [engine.tokenize('').ids, engine.tokenize('a red circle on the left').ids];
  const text = await engine.encodeText(ids); // kept on the device for this array
  const copy = Float32Array.from(text); // another array: uploaded every call
  const sample = gaussianFloat32(2n, 2 * C * h * h);
  const [dev, up] = await timeAll([() => engine.predictNoise(sample, 2, h, h, 500, text), () => engine.predictNoise(sample, 2, h, h, 500, copy)]);
  await engine.dispose();
  return [
    `UNet step (${path.basename(MODEL)}, CFG batch 2, ${h}×${h} latent), text [2, ${ids[0].length}, ${text.length / (2 * ids[0].length)}] = ${((4 * text.length) / 2 ** 20).toFixed(2)} MiB:`,
    `  text kept on the device ${dev.toFixed(1)} ms, uploaded every step ${up.toFixed(1)} ms (difference ${(up - dev).toFixed(1)} ms)`,
  ];
}

async function main(): Promise<void> {
  console.log(`WebGPU copies, median of ${REPS} (after one warm-up), ms`);
  console.log('| tensor | MiB | device→device run | host→host run | upload | download |');
  console.log('|---|---|---|---|---|---|');
  const sizes: [string, number][] = [
    ['SD latents, CFG batch 2, 512 px (also ε)', 2 * 4 * 64 * 64],
    ['CLIP text embeddings, CFG batch 2', 2 * 77 * 768],
    ['SD image, 512 px (VAE output)', 3 * 512 * 512],
    ['16 MiB of cached rows', 4 * 2 ** 20],
    ['64 MiB of cached rows', 16 * 2 ** 20],
  ];
  for (const [label, n] of sizes) console.log(await copyCosts(label, n));
  for (const line of await unetText()) console.log(line);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
