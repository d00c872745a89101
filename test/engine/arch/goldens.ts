// Fixture models and PyTorch goldens (test/fixtures, produced by tools/reference/make_fixtures.py).

import * as fs from 'fs';
import * as path from 'path';
import { loadModelFolder, ModelFolder } from '../../../src/engine/model/modelFolder';
import { readNpy } from '../../../src/engine/io/npy';

export const FIXTURE_MODELS = ['sd-narrow', 'tiny-2level'] as const;
export type FixtureModel = (typeof FIXTURE_MODELS)[number];

const ROOT = path.join(__dirname, '..', '..', 'fixtures');
const folders = new Map<string, ModelFolder>();

export function fixtureModel(name: FixtureModel): ModelFolder {
  let m = folders.get(name);
  if (!m) {
    m = loadModelFolder(path.join(ROOT, 'models', name));
    folders.set(name, m);
  }
  return m;
}

export interface GoldenMeta {
  prompt: string;
  negative: string;
  steps: number;
  guidance: number;
  height: number;
  width: number;
  unet_timestep: number;
}

export function goldenMeta(name: FixtureModel): GoldenMeta {
  return JSON.parse(fs.readFileSync(path.join(ROOT, 'golden', name, 'meta.json'), 'utf8'));
}

export function goldenF32(name: FixtureModel, file: string): { data: Float32Array; shape: number[] } {
  const a = readNpy(path.join(ROOT, 'golden', name, file));
  if (a.dtype !== 'float32') throw new Error(`${file}: expected float32, got ${a.dtype}`);
  return { data: a.data as Float32Array, shape: a.shape };
}

/** Token ids of a prompt from tokens.json (the tokenizer golden). */
export function goldenTokenIds(name: FixtureModel, prompt: string): number[] {
  const toks: { prompt: string; ids: number[] }[] = JSON.parse(fs.readFileSync(path.join(ROOT, 'golden', name, 'tokens.json'), 'utf8'));
  const hit = toks.find((t) => t.prompt === prompt);
  if (!hit) throw new Error(`tokens.json of ${name} has no entry for ${JSON.stringify(prompt)}`);
  return hit.ids;
}
