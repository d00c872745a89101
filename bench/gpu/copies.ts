// What each host↔device copy costs on an execution provider that keeps data on the device (WebGPU), at
// the sizes the engine moves per step (copyCosts.ts), then the bundled model's UNet step with the text
// embeddings uploaded every step vs kept on the device (DiffusionEngine does the latter on webgpu).
//   XDG_RUNTIME_DIR=/tmp/xdg npx tsx bench/gpu/copies.ts [--reps 15] [--model DIR]
// Medians in ms. On Mesa lavapipe "device memory" is host memory behind Vulkan: the numbers are Dawn's
// staging and copy overheads on the CPU, not PCIe; the GPU bench (bench.ts, phase 1c) measures them on a GPU.
import * as path from 'path';
import { DiffusionEngine } from '../../src/engine/pipeline/engine';
import { gaussianFloat32 } from '../../src/engine/random/gaussian';
import { COPY_TABLE_HEAD, copyCost, copyRow, STEP_TENSORS, timeInterleaved } from './copyCosts';

const argv = process.argv.slice(2);
const opt = (name: string, dflt: string) => (argv.includes(`--${name}`) ? argv[argv.indexOf(`--${name}`) + 1] : dflt);
const REPS = Number(opt('reps', '15'));
const MODEL = path.resolve(opt('model', path.join(__dirname, '../../models/default')));

async function unetText(): Promise<string[]> {
  const engine = await DiffusionEngine.load(MODEL, { sessionOptions: { device: 'webgpu' }, components: ['textEncoder', 'unet'] });
  const { latentChannels: C, defaultHeight, vaeScaleFactor } = engine.info;
  const h = defaultHeight / vaeScaleFactor;
  const ids = [engine.tokenize('').ids, engine.tokenize('a red circle on the left').ids];
  const text = await engine.encodeText(ids); // kept on the device for this array
  const copy = Float32Array.from(text); // another array: uploaded every call
  const sample = gaussianFloat32(2n, 2 * C * h * h);
  const [dev, up] = await timeInterleaved([() => engine.predictNoise(sample, 2, h, h, 500, text), () => engine.predictNoise(sample, 2, h, h, 500, copy)], REPS);
  await engine.dispose();
  return [
    `UNet step (${path.basename(MODEL)}, CFG batch 2, ${h}×${h} latent), text [2, ${ids[0].length}, ${text.length / (2 * ids[0].length)}] = ${((4 * text.length) / 2 ** 20).toFixed(2)} MiB:`,
    `  text kept on the device ${dev.toFixed(1)} ms, uploaded every step ${up.toFixed(1)} ms (difference ${(up - dev).toFixed(1)} ms)`,
  ];
}

async function main(): Promise<void> {
  console.log(`WebGPU copies, median of ${REPS} (after one warm-up), ms`);
  for (const line of COPY_TABLE_HEAD) console.log(line);
  for (const [label, n] of STEP_TENSORS) console.log(copyRow(await copyCost(label, n, REPS)));
  for (const line of await unetText()) console.log(line);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
