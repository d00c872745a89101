// The engine worker keeps its optimised graphs beside the engine state (DATA/graph-cache): a second
// worker on the same data dir loads every session from there (each entry's meta.json is touched on a
// hit) and runs the same generation to the same pixels.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import type { GenerateRequest } from '../../../src/service/inference/backend';
import { WorkerInferenceBackend } from '../../../src/service/inference/workerBackend';

const TINY = path.join(__dirname, '../../fixtures/models/tiny-2level');
const data = fs.mkdtempSync(path.join(os.tmpdir(), 'fisedit-worker-graphs-'));
const cacheDir = path.join(data, 'graph-cache');
afterAll(() => fs.rmSync(data, { recursive: true, force: true }));

const request: GenerateRequest = { prompt: 'a red circle on the left', negativePrompt: '', seed: 3, steps: 3, guidance: 7.5, scheduler: 'ddim', width: 32, height: 32 };

async function generateOnce(): Promise<Uint8Array> {
  const backend = new WorkerInferenceBackend({ modelDir: TINY, mode: 'process', intraOpNumThreads: 1, previewIntervalMs: 0, stateDir: path.join(data, 'engine-state') });
  try {
    await backend.start();
    return (await backend.generate(`run-${Math.random()}`, request, () => undefined)).rgb;
  } finally {
    await backend.close();
  }
}

describe('engine worker graph cache', () => {
  it('writes DATA/graph-cache, and a restarted worker loads from it and draws the same image', async () => {
    const first = await generateOnce();
    const entries = fs.readdirSync(cacheDir).filter((n) => !n.startsWith('.'));
    expect(entries.length).toBeGreaterThanOrEqual(4); // text encoder, VAE, recording and sparse UNet, decoders
    for (const e of entries) expect(fs.existsSync(path.join(cacheDir, e, 'meta.json'))).toBe(true);
    const written = new Map(entries.map((e) => [e, fs.statSync(path.join(cacheDir, e, 'meta.json')).mtimeMs]));
    await new Promise((r) => setTimeout(r, 20));
    const second = await generateOnce();
    expect(fs.readdirSync(cacheDir).filter((n) => !n.startsWith('.')).sort()).toEqual([...written.keys()].sort());
    for (const [e, t] of written) expect(fs.statSync(path.join(cacheDir, e, 'meta.json')).mtimeMs).toBeGreaterThan(t);
    expect(Buffer.from(second).equals(Buffer.from(first))).toBe(true);
  });
});
