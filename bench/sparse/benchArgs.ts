// The command line the sparse benches share: [modelDir] [latent or image side] [areas] [reps], with
// `--flag VALUE` pairs anywhere among them; and the two small measures they all print.

import * as fs from 'fs';
import * as path from 'path';
import { loadModelFolder } from '../../src/engine/model/modelFolder';

export interface BenchArgs {
  /** Each asked-for flag's value (undefined when not given). */
  flags: Record<string, string | undefined>;
  dir: string;
  side: number;
  areas: number[];
  reps: number;
}

export function parseBenchArgs(argv: readonly string[], flagNames: readonly string[], defaults: { side: number; areas: string; reps: number }): BenchArgs {
  const args = [...argv];
  const flags: Record<string, string | undefined> = {};
  for (const name of flagNames) {
    const i = args.indexOf(name);
    flags[name] = i >= 0 ? args.splice(i, 2)[1] : undefined;
  }
  const [dirArg, sideArg, areasArg, repsArg] = args;
  return {
    flags,
    dir: path.resolve(dirArg ?? 'test/fixtures/models/sd-narrow'),
    side: Number(sideArg ?? defaults.side),
    areas: (areasArg ?? defaults.areas).split(',').map(Number),
    reps: Number(repsArg ?? defaults.reps),
  };
}

export const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** This process's resident memory, GiB. */
export const rssGiB = () => Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync('/proc/self/status', 'utf8'))![1]) / 2 ** 20;

/** A model folder's VAE, its levels L and scale factor F, and the latent [C, h, w] of a side × side image. */
export function vaeAtSide(dir: string, side: number) {
  const vae = loadModelFolder(dir).vae;
  const L = vae.config.blockOutChannels.length;
  const F = 2 ** (L - 1);
  return { vae, L, F, C: vae.config.latentChannels, h: side / F, w: side / F };
}
