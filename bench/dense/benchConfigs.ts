// What the dense bench measures: (model, latent size) pairs, each at batch 2 (classifier-free guidance),
// and where each one's torch.onnx.export baseline comes from (tools/reference/export_unet_onnx.py).

import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';

export const ROOT = path.resolve(__dirname, '..', '..');
const CACHE = path.join(ROOT, 'bench', '.cache');
const EXPORTER = path.join(ROOT, 'tools', 'reference', 'export_unet_onnx.py');

export interface BenchConfig {
  name: string;
  /** Diffusers folder (relative to the repo root). */
  model: string;
  /** torch.onnx.export of the same UNet (relative to the repo root). */
  torchOnnx: string;
  /** How to (re)create torchOnnx; null when it is too slow to do implicitly. */
  export: { args: string[]; approxMinutes: number } | null;
  /** Latent height = width; image side = latent × 8 (both models' VAEs have 4 levels). */
  latent: number;
  imageSize: number;
  batch: number;
  warmup: number;
  /**
   * Timed steps per variant. On a busy 2-core machine a 10 ms step's median is mostly other processes'
   * time slices (30 rounds at 8×8 gave torch/ours 0.73 once and 1.17 another time; 200 rounds gave
   * 1.28–1.38 in three runs), so small configs get many rounds; SD 1.5 steps are seconds long.
   */
  rounds: number;
  /** max |ours − torch| / max |torch| allowed before timing. */
  tolerance: number;
}

const NARROW = 'test/fixtures/models/sd-narrow';
const SD15 = 'bench/.cache/sd15-random';

export const CONFIGS: BenchConfig[] = [
  // The SD-1.5-shaped narrow fixture ([32,64,64,64]) at its own size (64×64 image) and at 256×256.
  {
    name: 'sd-narrow@8x8', model: NARROW, torchOnnx: 'bench/.cache/sd-narrow/unet_torch.onnx',
    export: { args: [NARROW, '--name', 'sd-narrow'], approxMinutes: 1.5 },
    latent: 8, imageSize: 64, batch: 2, warmup: 5, rounds: 200, tolerance: 1e-4,
  },
  {
    name: 'sd-narrow@32x32', model: NARROW, torchOnnx: 'bench/.cache/sd-narrow/unet_torch.onnx',
    export: { args: [NARROW, '--name', 'sd-narrow'], approxMinutes: 1.5 },
    latent: 32, imageSize: 256, batch: 2, warmup: 3, rounds: 40, tolerance: 1e-4,
  },
  // SD 1.5's exact UNet ([320,640,1280,1280], 860M parameters, random weights) at 256×256.
  {
    name: 'sd15-random@32x32', model: SD15, torchOnnx: `${SD15}/unet_torch.onnx`,
    export: null,
    latent: 32, imageSize: 256, batch: 2, warmup: 1, rounds: 12, tolerance: 1e-4,
  },
];

export const SD15_EXPORT_COMMAND = '/usr/bin/python3 tools/reference/export_unet_onnx.py --sd15-random  # ~8.5 min, 7 GB RAM, 7 GB disk';

function mtime(file: string): number {
  return fs.statSync(file).mtimeMs;
}

/**
 * Returns null when the config can run, else why not. A missing or stale torch export (older than the
 * model's UNet weights) is re-exported when that is cheap; the SD 1.5 one must be made by hand.
 */
export function prepareConfig(c: BenchConfig, log: (s: string) => void): string | null {
  const weights = path.join(ROOT, c.model, 'unet', 'diffusion_pytorch_model.safetensors');
  const onnx = path.join(ROOT, c.torchOnnx);
  if (!fs.existsSync(weights)) {
    return c.export ? `missing ${c.model}` : `missing ${c.model}: create it with ${SD15_EXPORT_COMMAND}`;
  }
  const stale = fs.existsSync(onnx) && mtime(onnx) < mtime(weights);
  if (fs.existsSync(onnx) && !stale) return null;
  if (!c.export) return `${stale ? 'stale' : 'missing'} ${c.torchOnnx}: create it with ${SD15_EXPORT_COMMAND}`;
  log(`${c.name}: ${stale ? 'torch export older than the weights' : 'no torch export'}; exporting (~${c.export.approxMinutes} min) …`);
  fs.mkdirSync(CACHE, { recursive: true });
  execFileSync('/usr/bin/python3', [EXPORTER, ...c.export.args], { cwd: ROOT, stdio: ['ignore', 'inherit', 'inherit'] });
  return null;
}

/** Bytes of the config's UNet weights file (F32: 4 bytes per parameter). */
export function unetWeightBytes(c: BenchConfig): number {
  return fs.statSync(path.join(ROOT, c.model, 'unet', 'diffusion_pytorch_model.safetensors')).size;
}
