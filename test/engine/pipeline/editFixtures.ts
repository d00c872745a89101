// Shared helpers for the edit pipeline tests: temporary state directories, directory fingerprints,
// rectangle masks and pixel comparisons.
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import sharp from 'sharp';
import type { BinaryMask } from '../../../src/engine/mask/binaryMask';
import type { StateContext } from '../../../src/engine/pipeline/editTypes';
import { loadEditUNet, type EditUNet } from '../../../src/engine/pipeline/editUNet';
import { DiffusionEngine } from '../../../src/engine/pipeline/engine';
import { NodeStore } from '../../../src/engine/state/nodeStore';

export const TINY = path.resolve(__dirname, '../../fixtures/models/tiny-2level');

export function tempDir(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

/** relative path → sha256 of every file under dir (directories listed with a marker). */
export function fingerprint(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string) => {
    for (const name of fs.readdirSync(d).sort()) {
      const p = path.join(d, name);
      const rel = path.relative(dir, p);
      if (fs.statSync(p).isDirectory()) {
        out[`${rel}/`] = 'dir';
        walk(p);
      } else out[rel] = createHash('sha256').update(fs.readFileSync(p)).digest('hex');
    }
  };
  walk(dir);
  return out;
}

/** Mask with the rectangle [x0, x1) × [y0, y1) active. */
export function rectMask(width: number, height: number, x0: number, y0: number, x1: number, y1: number): BinaryMask {
  const data = new Uint8Array(width * height);
  for (let y = y0; y < y1; y++) for (let x = x0; x < x1; x++) data[y * width + x] = 1;
  return { width, height, data };
}

/** A mask PNG (white = edit) from a mask at image resolution. */
export async function writeMaskFile(file: string, m: BinaryMask): Promise<void> {
  await sharp(Buffer.from(m.data.map((v) => v * 255)), { raw: { width: m.width, height: m.height, channels: 1 } }).png().toFile(file);
}

/** Counts of RGB pixels that differ, inside and outside an image-resolution region. */
export function pixelDiffs(a: Uint8Array, b: Uint8Array, region: BinaryMask): { inside: number; outside: number } {
  let inside = 0;
  let outside = 0;
  for (let p = 0; p < region.data.length; p++) {
    const d = a[3 * p] !== b[3 * p] || a[3 * p + 1] !== b[3 * p + 1] || a[3 * p + 2] !== b[3 * p + 2];
    if (!d) continue;
    if (region.data[p]) inside++;
    else outside++;
  }
  return { inside, outside };
}

/** Latent values [T+1, C, hw] that differ from the parent's outside mask M, over all steps. */
export function latentDiffsOutside(child: Float32Array, parent: Float32Array, mask: BinaryMask, channels: number): number {
  const hw = mask.width * mask.height;
  let n = 0;
  for (let i = 0; i < child.length; i++) {
    const p = i % hw;
    if (!mask.data[p] && !Object.is(child[i], parent[i])) n++;
  }
  expect(child.length % (channels * hw)).toBe(0);
  return n;
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/**
 * Registers beforeAll/afterAll that load the tiny fixture model (engine + recording/sparse UNet, one
 * thread) and a temporary directory; `state()` opens a new node store with an unbounded cache in it.
 */
export function useTinyStateContext(prefix: string): { state: () => Promise<StateContext> } {
  let engine: DiffusionEngine;
  let unet: EditUNet;
  let dir: string;
  let n = 0;
  beforeAll(async () => {
    engine = await DiffusionEngine.load(TINY, { intraOpNumThreads: 1 });
    unet = await loadEditUNet(TINY, { intraOpNumThreads: 1 });
    dir = tempDir(prefix);
  });
  afterAll(async () => {
    await unet?.release();
    await engine?.dispose();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });
  return {
    state: async () => {
      const store = await NodeStore.open(path.join(dir, `state-${n++}`), { create: true });
      return { models: engine, store, cache: await store.openCache(Infinity), unet };
    },
  };
}
