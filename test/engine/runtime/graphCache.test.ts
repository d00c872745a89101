/** @jest-environment ./test/engine/runtime/ortTestEnvironment.js */
// The on-disk cache of optimised graphs: a session loaded from it computes exactly what a freshly
// optimised one does, and a corrupt, stale or foreign entry is refused with its reason and rebuilt.

import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { buildUNetGraph } from '../../../src/engine/arch/unet';
import type { BuiltModel } from '../../../src/engine/graph/graphBuilder';
import type { WeightMap } from '../../../src/engine/model/tensor';
import { GraphCache } from '../../../src/engine/runtime/graphCache';
import { createSession, float32Tensor, type OrtModelSession } from '../../../src/engine/runtime/ortSession';
import { fixtureModel } from '../arch/goldens';
import { goldenText, seededSample } from '../sparse/sparseFixtures';

const model = fixtureModel('tiny-2level');
const cfg = model.unet.config;
const H = 8;
const sample = seededSample(cfg.inChannels, H, H);
const text = goldenText('tiny-2level');

function unetGraph(weights: WeightMap = model.unet.weights, externalThresholdBytes?: number): BuiltModel {
  return buildUNetGraph(cfg, weights).g.build({ externalThresholdBytes });
}

async function noise(s: OrtModelSession): Promise<Float32Array> {
  const out = await s.run({
    sample: float32Tensor(sample, [2, cfg.inChannels, H, H]),
    timestep: float32Tensor(new Float32Array([501, 501]), [2]),
    encoder_hidden_states: float32Tensor(text, [2, text.length / (2 * cfg.crossAttentionDim), cfg.crossAttentionDim]),
  });
  const data = out.noise_pred.data as Float32Array;
  await s.release();
  return data;
}

/** Bit patterns, so that -0/+0 and NaN payloads count too. */
const bits = (a: Float32Array) => Array.from(new Uint32Array(a.buffer, a.byteOffset, a.length));

function entryDirs(dir: string): string[] {
  return fs.readdirSync(dir).filter((n) => !n.startsWith('.'));
}

describe('GraphCache', () => {
  let dir: string;
  let lines: string[];
  let cache: GraphCache;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fisedit-graph-cache-'));
    lines = [];
    cache = new GraphCache({ dir, log: (m) => lines.push(m) });
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('a cache hit computes bit for bit what a freshly optimised session does (inline and external weights)', async () => {
    for (const threshold of [undefined, 0]) {
      const fresh = await noise(await createSession(unetGraph(undefined, threshold), { intraOpNumThreads: 1 }));
      const first = await createSession(unetGraph(undefined, threshold), { intraOpNumThreads: 1, graphCache: cache });
      expect(first.graphSource).toBe('cache-write');
      const written = await noise(first);
      const second = await createSession(unetGraph(undefined, threshold), { intraOpNumThreads: 1, graphCache: cache });
      expect(second.graphSource).toBe('cache-hit');
      const hit = await noise(second);
      expect(bits(written)).toEqual(bits(fresh));
      expect(bits(hit)).toEqual(bits(fresh));
    }
    // One entry per distinct graph: the external-data build serialises differently.
    expect(entryDirs(dir)).toHaveLength(2);
    const entry = path.join(dir, entryDirs(dir)[0]);
    expect(fs.readdirSync(entry).sort()).toEqual(['meta.json', 'model.onnx', 'model.onnx.data']);
  });

  it('different weights or session config are a different entry, never a hit', async () => {
    await (await createSession(unetGraph(), { intraOpNumThreads: 1, graphCache: cache })).release();
    const changed: WeightMap = new Map(model.unet.weights);
    const [name, w] = [...changed.entries()].find(([, t]) => t.dtype === 'F32' && t.data.byteLength > 1000)!;
    const data = Uint8Array.from(w.data);
    data[0] ^= 1;
    changed.set(name, { ...w, data });
    const other = await createSession(unetGraph(changed), { intraOpNumThreads: 1, graphCache: cache });
    expect(other.graphSource).toBe('cache-write');
    await other.release();
    const config = await createSession(unetGraph(), { intraOpNumThreads: 1, graphCache: cache, sessionConfig: { 'session.disable_prepacking': '1' } });
    expect(config.graphSource).toBe('cache-write');
    await config.release();
    expect(entryDirs(dir)).toHaveLength(3);
  });

  it('a corrupted file is detected by its sha256, logged, and the entry rebuilt', async () => {
    const fresh = await noise(await createSession(unetGraph(), { intraOpNumThreads: 1, graphCache: cache }));
    const entry = path.join(dir, entryDirs(dir)[0]);
    const dataFile = path.join(entry, 'model.onnx.data');
    const bytes = fs.readFileSync(dataFile);
    bytes[Math.floor(bytes.length / 2)] ^= 0x40; // one flipped bit, same size
    fs.writeFileSync(dataFile, bytes);
    const rebuilt = await createSession(unetGraph(), { intraOpNumThreads: 1, graphCache: cache });
    expect(rebuilt.graphSource).toBe('cache-write');
    expect(lines.join('\n')).toMatch(/refused entry \w+: model\.onnx\.data does not match its sha256 \(corrupt\); rebuilding it/);
    expect(bits(await noise(rebuilt))).toEqual(bits(fresh));
    const again = await createSession(unetGraph(), { intraOpNumThreads: 1, graphCache: cache });
    expect(again.graphSource).toBe('cache-hit');
    expect(bits(await noise(again))).toEqual(bits(fresh));
  });

  it('a file written again (same bytes, new stamp) is hashed again and kept; its mtime put back does not hide a change', async () => {
    const fresh = await noise(await createSession(unetGraph(), { intraOpNumThreads: 1, graphCache: cache }));
    const entry = path.join(dir, entryDirs(dir)[0]);
    const dataFile = path.join(entry, 'model.onnx.data');
    const stampBefore = JSON.parse(fs.readFileSync(path.join(entry, 'meta.json'), 'utf8')).files['model.onnx.data'].stat;
    fs.writeFileSync(dataFile, fs.readFileSync(dataFile)); // same bytes, new ctime
    const hit = await createSession(unetGraph(), { intraOpNumThreads: 1, graphCache: cache });
    expect(hit.graphSource).toBe('cache-hit');
    expect(bits(await noise(hit))).toEqual(bits(fresh));
    const stampAfter = JSON.parse(fs.readFileSync(path.join(entry, 'meta.json'), 'utf8')).files['model.onnx.data'].stat;
    expect(stampAfter.ctimeMs).toBeGreaterThan(stampBefore.ctimeMs);
    // A flipped bit with the old mtime restored: ctime still moves, so it is hashed and refused.
    const bytes = fs.readFileSync(dataFile);
    bytes[7] ^= 1;
    fs.writeFileSync(dataFile, bytes);
    fs.utimesSync(dataFile, new Date(stampAfter.mtimeMs), new Date(stampAfter.mtimeMs));
    const rebuilt = await createSession(unetGraph(), { intraOpNumThreads: 1, graphCache: cache });
    expect(rebuilt.graphSource).toBe('cache-write');
    expect(lines.join('\n')).toMatch(/model\.onnx\.data does not match its sha256 \(corrupt\)/);
    await rebuilt.release();
  });

  it('a truncated file, a torn meta.json and a stale entry are refused with their reasons', async () => {
    await (await createSession(unetGraph(), { intraOpNumThreads: 1, graphCache: cache })).release();
    const entry = () => path.join(dir, entryDirs(dir)[0]);
    const reopen = async () => {
      const s = await createSession(unetGraph(), { intraOpNumThreads: 1, graphCache: cache });
      expect(s.graphSource).toBe('cache-write');
      await s.release();
    };
    fs.truncateSync(path.join(entry(), 'model.onnx'), 100);
    await reopen();
    expect(lines.join('\n')).toMatch(/model\.onnx has 100 bytes, \d+ were written/);
    fs.writeFileSync(path.join(entry(), 'meta.json'), '{"format": 1, "key"');
    await reopen();
    expect(lines.join('\n')).toMatch(/meta\.json unreadable/);
    const metaFile = path.join(entry(), 'meta.json');
    const meta = JSON.parse(fs.readFileSync(metaFile, 'utf8'));
    meta.facts.ortVersion = '0.0.1';
    fs.writeFileSync(metaFile, JSON.stringify(meta));
    await reopen();
    expect(lines.join('\n')).toMatch(/stale: written for .*0\.0\.1/);
  });

  it('keeps to its byte budget by removing the least recently used entries', async () => {
    await (await createSession(unetGraph(), { intraOpNumThreads: 1, graphCache: cache })).release();
    const first = entryDirs(dir)[0];
    const one = fs.readdirSync(path.join(dir, first)).reduce((s, f) => s + fs.statSync(path.join(dir, first, f)).size, 0);
    const small = new GraphCache({ dir, maxBytes: one * 1.5, log: (m) => lines.push(m) });
    await (await createSession(unetGraph(undefined, 0), { intraOpNumThreads: 1, graphCache: small })).release();
    expect(entryDirs(dir)).not.toContain(first);
    expect(entryDirs(dir)).toHaveLength(1);
    expect(lines.join('\n')).toMatch(new RegExp(`removed entry ${first} .*least recently used`));
  });

  it('is not used off the CPU or where optimisation is disabled', async () => {
    const s = await createSession(unetGraph(), { intraOpNumThreads: 1, graphCache: cache, graphOptimizationLevel: 'disabled' });
    expect(s.graphSource).toBe('built');
    await s.release();
    expect(fs.existsSync(dir) ? entryDirs(dir) : []).toEqual([]);
  });
});
