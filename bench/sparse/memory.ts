// Resident memory and time of sparse UNet steps under ORT memory options (not a test). One recorded step,
// then one sparse session created with the variant's options runs 10, 25 and 50 % centred squares three
// times each; the process's resident and peak memory are printed after each area. Run each variant in its
// own process (peak memory is per process):
//
//   npx tsx bench/sparse/memory.ts [modelDir] [latentSide] [default|noarena|nopattern|neither]
//   e.g. npx tsx bench/sparse/memory.ts bench/.cache/sd15-sdvae 64 noarena

import * as fs from 'fs';
import * as path from 'path';
import { loadModelFolder } from '../../src/engine/model/modelFolder';
import { buildMaskPyramid } from '../../src/engine/mask/pyramid';
import { SparseUNetRunner } from '../../src/engine/sparse/sparseUNetRunner';

const [dirArg, sideArg, variantArg] = process.argv.slice(2);
const dir = path.resolve(dirArg ?? 'test/fixtures/models/sd-narrow');
const side = Number(sideArg ?? 64);
const variant = variantArg ?? 'default';
const OPTIONS: Record<string, { enableCpuMemArena?: boolean; enableMemPattern?: boolean }> = {
  // What ORT does by default (the runner's own default is now noarena: set the arena back on explicitly).
  default: { enableCpuMemArena: true },
  noarena: { enableCpuMemArena: false },
  nopattern: { enableCpuMemArena: true, enableMemPattern: false },
  neither: { enableCpuMemArena: false, enableMemPattern: false },
};
if (!OPTIONS[variant]) throw new Error(`bench/sparse/memory: variant must be one of ${Object.keys(OPTIONS).join(', ')}`);

const memory = () => {
  const s = fs.readFileSync('/proc/self/status', 'utf8');
  const gib = (k: string) => Number(new RegExp(`${k}:\\s+(\\d+)`).exec(s)![1]) / 2 ** 20;
  return `resident ${gib('VmRSS').toFixed(2)} GiB, peak ${gib('VmHWM').toFixed(2)} GiB`;
};
function lcg(seed: number): () => number {
  let x = seed >>> 0;
  return () => ((x = (Math.imul(x, 1664525) + 1013904223) >>> 0) / 2 ** 32) * 2 - 1;
}
function square(fraction: number) {
  const data = new Uint8Array(side * side);
  const a = Math.round(Math.sqrt(fraction) * side);
  const o = Math.floor((side - a) / 2);
  for (let y = o; y < o + a; y++) for (let x = o; x < o + a; x++) data[y * side + x] = 1;
  return { width: side, height: side, data };
}

async function main(): Promise<void> {
  const folder = loadModelFolder(dir);
  const cfg = folder.unet.config;
  const levels = cfg.blockOutChannels.length;
  const rnd = lcg(1);
  const B = 2;
  const sample = Float32Array.from({ length: B * cfg.inChannels * side * side }, rnd);
  const text = Float32Array.from({ length: B * 77 * cfg.crossAttentionDim }, rnd);
  const recorder = await SparseUNetRunner.create(cfg, folder.unet.weights, { sessions: { sparse: false }, intraOpNumThreads: 2 });
  const rec = await recorder.recordStep(sample, side, side, 500, text);
  await recorder.release();
  console.log(`${variant}: one step recorded; ${memory()}`);
  const runner = await SparseUNetRunner.create(cfg, folder.unet.weights, { sessions: { recording: false }, intraOpNumThreads: 2, sessionOptions: OPTIONS[variant] });
  console.log(`${variant}: sparse session created; ${memory()}`);
  for (const f of [0.1, 0.25, 0.5]) {
    const pyr = buildMaskPyramid(square(f), { levels, dilation: new Array(levels).fill(0) });
    const feed = runner.preparePyramid(pyr);
    const rows = Float32Array.from({ length: B * pyr[0].active.length * cfg.inChannels }, rnd);
    const times: number[] = [];
    for (let i = 0; i < 3; i++) {
      const a = performance.now();
      await runner.sparseStep(feed, rows, 500, text, (n) => rec.entries.get(n)!.data);
      times.push(performance.now() - a);
    }
    console.log(`${variant}: ${(100 * f).toFixed(0)} % step ${times.map((t) => t.toFixed(0)).join(' / ')} ms; ${memory()}`);
  }
  await runner.release();
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
