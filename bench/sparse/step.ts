// Quick timing print (not a test): one sparse UNet step against one dense step of the same model and
// latent size, at several mask areas and pyramid dilations. For small models dense and sparse runs are
// interleaved so machine load drifts hit both alike; SD-size models run one session at a time (memory).
// Min and median of `reps` runs are shown, with the MAC ratio (unetMacs.ts) as the ideal speedup.
//
//   npx tsx bench/sparse/step.ts [modelDir] [latentSide] [reps] [fractions] [threads] [dilations]
//   e.g. npx tsx bench/sparse/step.ts test/fixtures/models/sd-narrow 64 5 0.1,0.25,0.5
//        npx tsx bench/sparse/step.ts bench/.cache/sd15-random 32 3 0.1,0.25,0.5 1 "1;1,0,0,0"
//
// Caches come from a real recorded step (recording session created, used once, released before the
// sparse session is created so only one extra weight copy is alive at a time).

import * as path from 'path';
import { buildUNetGraph } from '../../src/engine/arch/unet';
import { loadModelFolder } from '../../src/engine/model/modelFolder';
import { buildMaskPyramid } from '../../src/engine/mask/pyramid';
import { createSession, float32Tensor, OrtModelSession } from '../../src/engine/runtime/ortSession';
import { stepCacheBytes } from '../../src/engine/sparse/cacheManifest';
import { SparseUNetRunner } from '../../src/engine/sparse/sparseUNetRunner';
import { unetMacs } from '../../src/engine/sparse/unetMacs';

const [dirArg, sideArg, repsArg, fracArg, threadsArg, dilationArg] = process.argv.slice(2);
const dir = path.resolve(dirArg ?? 'test/fixtures/models/sd-narrow');
const side = Number(sideArg ?? 64);
const reps = Number(repsArg ?? 5);
const fractions = (fracArg ?? '0.1,0.25,0.5').split(',').map(Number);
/** onnxruntime intra-op threads (default all cores); 1 is steadier on a loaded machine. */
const threads = threadsArg ? Number(threadsArg) : undefined;
/** Pyramid dilations per level (mask/pyramid.ts) to compare, ';'-separated, e.g. "1;1,0,0,0"; default 1 px at every level. */
const dilations: (number | number[])[] = dilationArg ? dilationArg.split(';').map((d) => (d.includes(',') ? d.split(',').map(Number) : Number(d))) : [1];

function lcg(seed: number): () => number {
  let x = seed >>> 0;
  return () => ((x = (Math.imul(x, 1664525) + 1013904223) >>> 0) / 2 ** 32) * 2 - 1;
}

const stats = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return { min: s[0], med: s[Math.floor(s.length / 2)] };
};

/** Centered square whose DILATED level-0 area is close to `fraction`. */
function squareMask(fraction: number) {
  const data = new Uint8Array(side * side);
  const a = Math.max(1, Math.round(Math.sqrt(fraction) * side) - 2); // −2: the pyramid dilates by 1 px
  const o = Math.floor((side - a) / 2);
  for (let y = o; y < o + a; y++) for (let x = o; x < o + a; x++) data[y * side + x] = 1;
  return { width: side, height: side, data };
}

async function main(): Promise<void> {
  const t0 = performance.now();
  const folder = loadModelFolder(dir);
  const cfg = folder.unet.config;
  const weights = folder.unet.weights;
  const levels = cfg.blockOutChannels.length;
  const B = 2;
  const rnd = lcg(1);
  const sample = Float32Array.from({ length: B * cfg.inChannels * side * side }, rnd);
  const text = Float32Array.from({ length: B * 77 * cfg.crossAttentionDim }, rnd);
  const t = 500;
  console.log(`model ${path.basename(dir)} channels [${cfg.blockOutChannels}] latent ${side}x${side}, load ${((performance.now() - t0) / 1000).toFixed(1)} s`);

  // 1. record one step (then free that session)
  let t1 = performance.now();
  const recorder = await SparseUNetRunner.create(cfg, weights, { sessions: { sparse: false }, intraOpNumThreads: threads });
  console.log(`recording session ${((performance.now() - t1) / 1000).toFixed(1)} s`);
  t1 = performance.now();
  const rec = await recorder.recordStep(sample, side, side, t, text);
  const recordMs = performance.now() - t1;
  console.log(`record step ${recordMs.toFixed(0)} ms (first run), cache ${(stepCacheBytes(recorder.manifest, B, side, side) / 2 ** 20).toFixed(1)} MiB per step, ${recorder.manifest.length} entries`);
  await recorder.release();

  // 2. dense and sparse sessions. Small models: both alive, runs interleaved. SD-size models: one
  //    session at a time (this machine's memory is shared), dense runs first, then the sparse ones.
  const weightBytes = [...weights.values()].reduce((a, w) => a + w.data.byteLength, 0);
  const sequential = weightBytes > 1e9;
  const denseFeeds = {
    sample: float32Tensor(sample, [B, cfg.inChannels, side, side]),
    timestep: float32Tensor(new Float32Array([t, t]), [B]),
    encoder_hidden_states: float32Tensor(text, [B, 77, cfg.crossAttentionDim]),
  };
  const read = (n: string) => rec.entries.get(n)!.data;
  const denseMacs = unetMacs(cfg, side, side).total;
  console.log(`dense step ${((B * denseMacs) / 1e9).toFixed(1)} GMAC (batch ${B}); ${sequential ? 'sequential' : 'interleaved'} runs`);
  const openDense = async () => {
    const a = performance.now();
    const sess = await createSession(buildUNetGraph(cfg, weights).g.build(), { intraOpNumThreads: threads });
    console.log(`dense session ${((performance.now() - a) / 1000).toFixed(1)} s`);
    await sess.run(denseFeeds); // warm-up
    return sess;
  };
  const openSparse = async () => {
    const a = performance.now();
    const r = await SparseUNetRunner.create(cfg, weights, { sessions: { recording: false }, intraOpNumThreads: threads });
    console.log(`sparse session ${((performance.now() - a) / 1000).toFixed(1)} s`);
    return r;
  };
  const timeDense = async (sess: OrtModelSession, times: number[]) => {
    const a = performance.now();
    await sess.run(denseFeeds);
    times.push(performance.now() - a);
  };
  const configs = dilations.flatMap((dilation) =>
    fractions.map((f) => {
      const pyr = buildMaskPyramid(squareMask(f), { levels, dilation });
      const sampleRows = Float32Array.from({ length: B * pyr[0].active.length * cfg.inChannels }, rnd);
      return { dilation, pyr, sampleRows, dense: [] as number[], sparse: [] as number[] };
    }),
  );
  let dense: OrtModelSession | null = null;
  if (sequential) {
    dense = await openDense();
    for (const c of configs) for (let r = 0; r < reps; r++) await timeDense(dense, c.dense);
    await dense.release();
    dense = null;
  } else {
    dense = await openDense();
  }
  const runner = await openSparse();
  for (const c of configs) {
    const feed = runner.preparePyramid(c.pyr);
    await runner.sparseStep(feed, c.sampleRows, t, text, read); // warm-up (first run allocates)
    for (let r = 0; r < reps; r++) {
      if (dense) await timeDense(dense, c.dense);
      const a = performance.now();
      await runner.sparseStep(feed, c.sampleRows, t, text, read);
      c.sparse.push(performance.now() - a);
    }
  }
  await Promise.all([dense?.release(), runner.release()]);

  const rows: string[] = [];
  for (const c of configs) {
    const { pyr } = c;
    const macRatio = unetMacs(cfg, side, side, { activeCounts: pyr.map((l) => l.active.length) }).total / denseMacs;
    const ds = stats(c.dense);
    const ss = stats(c.sparse);
    const fr = pyr.map((l) => `${(100 * l.fraction).toFixed(0)}%`).join('/');
    rows.push(
      `${String(c.dilation).padEnd(8)} | ${(100 * pyr[0].fraction).toFixed(1).padStart(5)}% | ${fr.padEnd(18)} | ${ds.min.toFixed(0).padStart(6)} ${ds.med.toFixed(0).padStart(6)} | ` +
        `${ss.min.toFixed(0).padStart(6)} ${ss.med.toFixed(0).padStart(6)} | ${(ds.min / ss.min).toFixed(2)}x | ${(1 / macRatio).toFixed(2)}x | ${(0.7 / pyr[0].fraction).toFixed(1)}x`,
    );
  }
  console.log(`\nthreads ${threads ?? 'all'}; dilation = px per level ("1" = 1 px at every level, "0" = none, the edit default); squares shrink by 2 px for the dilation`);
  console.log(`dilation | area  | per level          | dense ms min/med | sparse ms min/med | speedup (min) | MAC ratio | target 0.7/area`);
  for (const r of rows) console.log(r);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
