/** @jest-environment ./test/engine/runtime/ortTestEnvironment.js */
// The sparse UNet step against the dense UNet (arch/unet.ts) on both fixture models:
// (a) every pixel active + exact GroupNorm = dense; (b) a partial mask with the parent's cache recorded
// from the SAME input = dense at the active pixels (the approximations are exact then), and the child's
// deltas = the parent's rows; (c) a changed prompt: close to dense, error reported.

import { buildUNetGraph } from '../../../src/engine/arch/unet';
import { buildMaskPyramid } from '../../../src/engine/mask/pyramid';
import { createSession, float32Tensor, OrtModelSession } from '../../../src/engine/runtime/ortSession';
import { gatherActiveRows } from '../../../src/engine/sparse/activeRows';
import { isRowEntry, isSparseInput } from '../../../src/engine/sparse/cacheManifest';
import { buildRecordingUNetGraph } from '../../../src/engine/sparse/recordingUNet';
import { SparseInputError } from '../../../src/engine/sparse/pyramidInputs';
import { buildSparseUNetGraph } from '../../../src/engine/sparse/sparseUNet';
import { CACHE_INPUT_PREFIX } from '../../../src/engine/sparse/sparseLayers';
import { RecordedStep, SparseUNetRunner } from '../../../src/engine/sparse/sparseUNetRunner';
import { FIXTURE_MODELS, fixtureModel } from '../arch/goldens';
import { relErr } from '../graph/reference';
import { BATCH, blobMask, editedText, fullMask, goldenText, seededSample, selectRows } from './sparseFixtures';

const H = 16;
const W = 16;
const T = 601;

/** Root-mean-square difference. */
function rms(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += (a[i] - b[i]) ** 2;
  return Math.sqrt(s / a.length);
}

describe.each(FIXTURE_MODELS)('sparse UNet step (%s)', (name) => {
  const model = fixtureModel(name);
  const cfg = model.unet.config;
  const levels = cfg.blockOutChannels.length;
  const cin = cfg.inChannels;
  const cout = cfg.outChannels;
  const sample = seededSample(cin, H, W);
  const text = goldenText(name);
  const newText = editedText(text, cfg.crossAttentionDim, 4, 7);
  const mask = blobMask(W, H, [3, 5, 8, 9], [[13, 2]]);
  let dense: OrtModelSession;
  let exact32: SparseUNetRunner<'float32'>;
  let cached32: SparseUNetRunner<'float32'>;
  let cached16: SparseUNetRunner;
  let rec32: RecordedStep<'float32'>;
  let rec16: RecordedStep;

  const runDense = async (t: Float32Array): Promise<Float32Array> => {
    const out = await dense.run({
      sample: float32Tensor(sample, [BATCH, cin, H, W]),
      timestep: float32Tensor(new Float32Array([T, T]), [BATCH]),
      encoder_hidden_states: float32Tensor(t, [BATCH, t.length / (BATCH * cfg.crossAttentionDim), cfg.crossAttentionDim]),
    });
    return out.noise_pred.data as Float32Array;
  };

  beforeAll(async () => {
    const opts = { intraOpNumThreads: 1 };
    dense = await createSession(buildUNetGraph(cfg, model.unet.weights).g.build(), opts);
    exact32 = await SparseUNetRunner.create(cfg, model.unet.weights, { ...opts, cacheDType: 'float32', groupNorm: 'exact', sessions: { recording: false } });
    cached32 = await SparseUNetRunner.create(cfg, model.unet.weights, { ...opts, cacheDType: 'float32' });
    cached16 = await SparseUNetRunner.create(cfg, model.unet.weights, opts);
    rec32 = await cached32.recordStep(sample, H, W, T, text);
    rec16 = await cached16.recordStep(sample, H, W, T, text);
  });
  afterAll(async () => {
    await Promise.all([dense?.release(), exact32?.release(), cached32?.release(), cached16?.release()]);
  });

  it('reads exactly the entries the recording graph writes, and uses every weight', () => {
    const rec = buildRecordingUNetGraph(cfg, model.unet.weights);
    const sp = buildSparseUNetGraph(cfg, model.unet.weights);
    expect(sp.unusedWeights).toEqual([]);
    const read = rec.manifest.filter((e) => isSparseInput(e.kind));
    expect(rec.manifest.length - read.length).toBeGreaterThan(0); // attention maps: recorded, not read
    expect(new Set(sp.manifest.map((e) => e.name))).toEqual(new Set(read.map((e) => e.name)));
    expect(sp.manifest.length).toBe(read.length);
    for (const e of sp.manifest) expect(rec.manifest.find((r) => r.name === e.name)).toEqual(e);
    // Every row entry it reads has a delta output for the child's cache.
    expect(new Set(sp.deltas.map((d) => d.name))).toEqual(new Set(read.filter((e) => isRowEntry(e.kind)).map((e) => e.name)));
  });

  it('(a) all-active mask with exact GroupNorm equals the dense UNet within 1e-4', async () => {
    const pyr = buildMaskPyramid(fullMask(W, H), { levels });
    const feed = exact32.preparePyramid(pyr);
    const res = await exact32.sparseStep(feed, gatherActiveRows(sample, BATCH, cin, H * W, pyr[0].active), T, text, (n) => rec32.entries.get(n)!.data);
    const ref = gatherActiveRows(await runDense(text), BATCH, cout, H * W, pyr[0].active);
    const err = relErr(res.noise, ref);
    console.log(`${name} (a) all-active exact GN vs dense: rel err ${err.toExponential(2)}`);
    expect(err).toBeLessThan(1e-4);
  });

  it('(b) partial mask, parent = child input: active rows equal dense within 1e-4 (float32 cache), deltas equal the parent rows', async () => {
    const pyr = buildMaskPyramid(mask, { levels });
    expect(pyr[0].fraction).toBeLessThan(0.5);
    const feed = cached32.preparePyramid(pyr);
    const res = await cached32.sparseStep(feed, gatherActiveRows(sample, BATCH, cin, H * W, pyr[0].active), T, text, (n) => rec32.entries.get(n)!.data);
    const ref = gatherActiveRows(await runDense(text), BATCH, cout, H * W, pyr[0].active);
    const err = relErr(res.noise, ref);
    let worstDelta = 0;
    for (const [n, d] of res.deltas) {
      const full = rec32.entries.get(n)!;
      expect(d.shape).toEqual(full.shape);
      worstDelta = Math.max(worstDelta, relErr(d.data, selectRows(full.data, full.shape[2], d.rows)));
    }
    console.log(`${name} (b) mask ${(100 * pyr[0].fraction).toFixed(1)}% [${pyr.map((l) => l.active.length).join(',')}]: noise rel err ${err.toExponential(2)}, worst delta ${worstDelta.toExponential(2)} over ${res.deltas.size}`);
    expect(err).toBeLessThan(1e-4);
    expect(worstDelta).toBeLessThan(1e-4);
  });

  it("(b-half) coarseCover 'half', parent = child input: a fine pixel under an inactive coarse parent reads the parent's upsampled map, so active rows still equal dense within 1e-4", async () => {
    // No dilation (the edit's default): with 1 px at every level both rules reach the same sets here.
    const pyr = buildMaskPyramid(mask, { levels, dilation: 0, coarseCover: 'half' });
    const any = buildMaskPyramid(mask, { levels, dilation: 0 });
    expect(pyr.slice(0, -1).some((l) => l.upsampleFallback!.length > 0)).toBe(true); // the fallback path runs
    expect(pyr.reduce((n, l) => n + l.active.length, 0)).toBeLessThan(any.reduce((n, l) => n + l.active.length, 0));
    const feed = cached32.preparePyramid(pyr);
    const res = await cached32.sparseStep(feed, gatherActiveRows(sample, BATCH, cin, H * W, pyr[0].active), T, text, (n) => rec32.entries.get(n)!.data);
    const ref = gatherActiveRows(await runDense(text), BATCH, cout, H * W, pyr[0].active);
    const err = relErr(res.noise, ref);
    console.log(`${name} (b-half) active [${pyr.map((l) => l.active.length).join(',')}] against any's [${any.map((l) => l.active.length).join(',')}], fallback [${pyr.slice(0, -1).map((l) => l.upsampleFallback!.length).join(',')}]: noise rel err ${err.toExponential(2)}`);
    expect(err).toBeLessThan(1e-4);
  });

  it('(b16) the same with the production fp16 cache stays within fp16 rounding (1e-2)', async () => {
    const pyr = buildMaskPyramid(mask, { levels });
    const feed = cached16.preparePyramid(pyr);
    const res = await cached16.sparseStep(feed, gatherActiveRows(sample, BATCH, cin, H * W, pyr[0].active), T, text, (n) => rec16.entries.get(n)!.data);
    const ref = gatherActiveRows(await runDense(text), BATCH, cout, H * W, pyr[0].active);
    const err = relErr(res.noise, ref);
    console.log(`${name} (b16) fp16 cache: noise rel err ${err.toExponential(2)}`);
    expect(err).toBeLessThan(1e-2);
  });

  it('(b1) runs without CFG: batch 1 gives the conditional half of the batch-2 result', async () => {
    const half = (a: Float32Array) => a.subarray(a.length / 2);
    const rec1 = await cached32.recordStep(half(sample), H, W, T, half(text));
    const pyr = buildMaskPyramid(mask, { levels });
    const feed = cached32.preparePyramid(pyr);
    const res = await cached32.sparseStep(feed, gatherActiveRows(half(sample), 1, cin, H * W, pyr[0].active), T, half(text), (n) => rec1.entries.get(n)!.data);
    const ref = half(gatherActiveRows(await runDense(text), BATCH, cout, H * W, pyr[0].active));
    expect(res.noise.length).toBe(ref.length);
    expect(relErr(res.noise, ref)).toBeLessThan(1e-4);
    expect(res.deltas.get('conv_in.input')!.shape).toEqual([1, H * W, cin]);
  });

  it('(c) changed prompt: active rows move to the new prompt’s dense output (error reported)', async () => {
    const pyr = buildMaskPyramid(mask, { levels });
    const feed = cached16.preparePyramid(pyr);
    const res = await cached16.sparseStep(feed, gatherActiveRows(sample, BATCH, cin, H * W, pyr[0].active), T, newText, (n) => rec16.entries.get(n)!.data);
    const refNew = gatherActiveRows(await runDense(newText), BATCH, cout, H * W, pyr[0].active);
    const refOld = gatherActiveRows(await runDense(text), BATCH, cout, H * W, pyr[0].active);
    const err = relErr(res.noise, refNew);
    const stale = relErr(refOld, refNew);
    console.log(
      `${name} (c) changed prompt, mask ${(100 * pyr[0].fraction).toFixed(1)}%: sparse vs dense(new) rel err ${err.toExponential(2)} ` +
        `(rms ${rms(res.noise, refNew).toExponential(2)}); parent's output vs dense(new) ${stale.toExponential(2)} (rms ${rms(refOld, refNew).toExponential(2)})`,
    );
    expect(stale).toBeGreaterThan(1e-3); // the edit changes the output at all
    expect(err).toBeLessThan(stale);
    expect(rms(res.noise, refNew)).toBeLessThan(rms(refOld, refNew));
    // Without dilation (the edit's default), 'any' against 'half', which recomputes fewer coarse pixels
    // (errors reported; both must still move toward the new prompt).
    const byCover = async (coarseCover: 'any' | 'half') => {
      const p = buildMaskPyramid(mask, { levels, dilation: 0, coarseCover });
      const r = await cached16.sparseStep(cached16.preparePyramid(p), gatherActiveRows(sample, BATCH, cin, H * W, p[0].active), T, newText, (n) => rec16.entries.get(n)!.data);
      const rows = (t: Float32Array) => gatherActiveRows(t, BATCH, cout, H * W, p[0].active);
      const fresh = rows(await runDense(newText));
      return { err: relErr(r.noise, fresh), stale: relErr(rows(await runDense(text)), fresh) };
    };
    const [any, half] = [await byCover('any'), await byCover('half')];
    console.log(`${name} (c) no dilation: sparse vs dense(new) rel err ${any.err.toExponential(2)} ('any'), ${half.err.toExponential(2)} ('half'); parent's ${any.stale.toExponential(2)}`);
    expect(any.err).toBeLessThan(any.stale);
    expect(half.err).toBeLessThan(half.stale);
  });

  it('refuses a pyramid of the wrong depth and a cache entry of the wrong size', async () => {
    expect(() => cached16.preparePyramid(buildMaskPyramid(mask, { levels: levels + 1 }))).toThrow(SparseInputError);
    const pyr = buildMaskPyramid(mask, { levels });
    const feed = cached16.preparePyramid(pyr);
    const rows = gatherActiveRows(sample, BATCH, cin, H * W, pyr[0].active);
    await expect(cached16.sparseStep(feed, rows, T, text, (n) => rec16.entries.get(n)!.data.subarray(1))).rejects.toThrow(SparseInputError);
    await expect(cached16.sparseStep(feed, rows.subarray(1), T, text, (n) => rec16.entries.get(n)!.data)).rejects.toThrow(SparseInputError);
  });
});

describe('session creation (runtime/lazySession.ts)', () => {
  const model = fixtureModel(FIXTURE_MODELS[0]);
  const cfg = model.unet.config;
  const levels = cfg.blockOutChannels.length;
  const sample = seededSample(cfg.inChannels, H, W);
  const text = goldenText(FIXTURE_MODELS[0]);
  const mask = blobMask(W, H, [3, 5, 8, 9], [[13, 2]]);

  it("a small model's recording and sparse sessions are created at their first use, compute what eagerly created ones do, and report the sparse graph's cache inputs", async () => {
    const lazy = await SparseUNetRunner.create(cfg, model.unet.weights, { intraOpNumThreads: 1 });
    // Without the plain session (sessions.dense false) the recording one serves dense steps: created at once.
    const eager = await SparseUNetRunner.create(cfg, model.unet.weights, { intraOpNumThreads: 1, sessions: { dense: false } });
    const unused = await SparseUNetRunner.create(cfg, model.unet.weights, { intraOpNumThreads: 1 });
    try {
      expect(lazy.createdSessions).toEqual({ recording: false, sparse: false, dense: true });
      expect(eager.createdSessions).toEqual({ recording: true, sparse: true, dense: false });
      expect(lazy.canRecord).toBe(true);
      expect(lazy.denseSession).not.toBeNull();
      const reads = (eager as unknown as { sparse: { created: OrtModelSession } }).sparse.created.inputNames.filter((n) => n.startsWith(CACHE_INPUT_PREFIX)).map((n) => n.slice(CACHE_INPUT_PREFIX.length));
      expect(reads.length).toBeGreaterThan(0);
      expect(lazy.cacheReads).toEqual(reads);
      expect(eager.cacheReads).toEqual(reads);

      const [a, b] = await Promise.all([lazy.recordStep(sample, H, W, T, text), lazy.recordStep(sample, H, W, T, text)]);
      expect(lazy.createdSessions).toEqual({ recording: true, sparse: false, dense: true });
      const e = await eager.recordStep(sample, H, W, T, text);
      expect(a.noise).toEqual(e.noise);
      expect(b.noise).toEqual(e.noise);
      for (const [name, entry] of e.entries) expect(a.entries.get(name)!.data).toEqual(entry.data);

      const pyr = buildMaskPyramid(mask, { levels });
      const rows = gatherActiveRows(sample, BATCH, cfg.inChannels, H * W, pyr[0].active);
      const s1 = await lazy.sparseStep(lazy.preparePyramid(pyr), rows, T, text, (n) => a.entries.get(n)!.data);
      expect(lazy.createdSessions).toEqual({ recording: true, sparse: true, dense: true });
      const s2 = await eager.sparseStep(eager.preparePyramid(pyr), rows, T, text, (n) => e.entries.get(n)!.data);
      expect(s1.noise).toEqual(s2.noise);
    } finally {
      await Promise.all([lazy.release(), eager.release()]);
    }
    // Released before any use: nothing is created, and a later use fails clearly.
    await unused.release();
    expect(unused.createdSessions.recording).toBe(false);
    await expect(unused.recordStep(sample, H, W, T, text)).rejects.toThrow(/after release/);
  });
});
