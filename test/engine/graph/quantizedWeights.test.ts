/** @jest-environment ./test/engine/runtime/ortTestEnvironment.js */
// int8 weights (graph/quantizedWeights.ts): the block quantisation against a float64 reference written
// here, the conv rows in the sparse conv's column order, MatMulNBits against a fp32 MatMul of the
// dequantised weights, and whole UNets: the dense int8 step near the fp32 one, and the sparse int8 step
// with the parent's cache recorded from the same input near the dense int8 step (it quantises its
// activations where the dense Conv does not).

import { buildUNetGraph } from '../../../src/engine/arch/unet';
import { GraphBuilder } from '../../../src/engine/graph/graphBuilder';
import { dequantizedConvWeight, dequantizeRows, matMulInt8, quantizeRows, QUANT_BLOCK, weightRows } from '../../../src/engine/graph/quantizedWeights';
import { buildMaskPyramid } from '../../../src/engine/mask/pyramid';
import type { WeightTensor } from '../../../src/engine/model/tensor';
import { createSession, float32Tensor } from '../../../src/engine/runtime/ortSession';
import { gatherActiveRows } from '../../../src/engine/sparse/activeRows';
import { SparseUNetRunner } from '../../../src/engine/sparse/sparseUNetRunner';
import { fixtureModel } from '../arch/goldens';
import { BATCH, blobMask, goldenText, seededSample } from '../sparse/sparseFixtures';
import { randArray, relErr } from './reference';

function f32Weight(name: string, shape: number[], data: Float32Array): WeightTensor {
  return { name, dtype: 'F32', shape, data: new Uint8Array(data.buffer) } as WeightTensor;
}

describe('int8 block quantisation', () => {
  it('matches a float64 reference: per-block scale max|w|/127, error at most half a step, K padded', () => {
    const n = 3;
    const k = 2 * QUANT_BLOCK + 37; // a ragged last block
    const rows = randArray(n * k, 5, 2);
    rows[7] = 0;
    const qr = quantizeRows(rows, n, k);
    expect(qr.kBlocks).toBe(3);
    expect(qr.q.length).toBe(n * 3 * QUANT_BLOCK);
    const deq = dequantizeRows(qr);
    for (let r = 0; r < n; r++) {
      for (let b = 0; b < 3; b++) {
        const block = Array.from(rows.subarray(r * k + b * QUANT_BLOCK, r * k + Math.min(k, (b + 1) * QUANT_BLOCK)));
        const scale = Math.max(...block.map(Math.abs)) / 127;
        expect(qr.scales[r * 3 + b]).toBeCloseTo(scale, 6);
        block.forEach((w, i) => {
          const at = r * k + b * QUANT_BLOCK + i;
          expect(Math.abs(deq[at] - w)).toBeLessThanOrEqual(scale / 2 + 1e-6);
          expect(deq[at] === Math.fround(Math.round(w / qr.scales[r * 3 + b]) * qr.scales[r * 3 + b])).toBe(true); // ±0 alike
        });
      }
      // Padding past K is the zero point (contributes 0).
      for (let i = k - 2 * QUANT_BLOCK; i < QUANT_BLOCK; i++) expect(qr.q[(r * 3 + 2) * QUANT_BLOCK + i]).toBe(128);
    }
  });

  it('a conv weight [out, in, 3, 3] becomes rows of taps (ky, kx, cin), the sparse conv column order, and back', () => {
    const [co, ci] = [4, 5];
    const data = randArray(co * ci * 9, 9, 1);
    const w = f32Weight('conv.weight', [co, ci, 3, 3], data);
    const { rows, n, k } = weightRows(w, 'conv');
    expect([n, k]).toEqual([co, 9 * ci]);
    for (let o = 0; o < co; o++) for (let c = 0; c < ci; c++) for (let ky = 0; ky < 3; ky++) for (let kx = 0; kx < 3; kx++) {
      expect(rows[o * k + (ky * 3 + kx) * ci + c]).toBe(data[((o * ci + c) * 3 + ky) * 3 + kx]);
    }
    const back = dequantizedConvWeight(w);
    const deqRows = dequantizeRows(quantizeRows(rows, n, k));
    for (let o = 0; o < co; o++) for (let c = 0; c < ci; c++) for (let t = 0; t < 9; t++) expect(back[(o * ci + c) * 9 + t]).toBe(deqRows[o * k + t * ci + c]);
  });

  it('MatMulNBits computes x·Wᵀ with the dequantised weights up to its int8 activations', async () => {
    const [m, k, n] = [6, 300, 40];
    const wData = randArray(n * k, 3, 1 / Math.sqrt(k));
    const w = f32Weight('lin.weight', [n, k], wData);
    const x = randArray(m * k, 4, 1);
    const g = new GraphBuilder('q8');
    g.output('y', matMulInt8(g, g.input('x', 'float32', ['M', k]), w, 'linear'), 'float32', ['M', n]);
    const s = await createSession(g.build(), { intraOpNumThreads: 1 });
    const y = (await s.run({ x: float32Tensor(x, [m, k]) })).y.data as Float32Array;
    await s.release();
    const deq = dequantizeRows(quantizeRows(wData, n, k));
    const ref = new Float32Array(m * n);
    const exact = new Float32Array(m * n);
    for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) {
      let a = 0;
      let b = 0;
      for (let t = 0; t < k; t++) {
        a += x[i * k + t] * deq[j * k + t];
        b += x[i * k + t] * wData[j * k + t];
      }
      ref[i * n + j] = a;
      exact[i * n + j] = b;
    }
    const vsDequantised = relErr(y, ref);
    const vsFp32 = relErr(y, exact);
    console.log(`MatMulNBits int8: rel err ${vsDequantised.toExponential(2)} vs dequantised weights, ${vsFp32.toExponential(2)} vs fp32`);
    expect(vsDequantised).toBeLessThan(2e-2);
    expect(vsDequantised).toBeGreaterThan(0); // the activations are quantised too (accuracy_level 4)
    expect(vsFp32).toBeLessThan(3e-2);
  });
});

describe('int8 UNet (sd-narrow)', () => {
  const model = fixtureModel('sd-narrow');
  const cfg = model.unet.config;
  const H = 16;
  const T = 601;
  const sample = seededSample(cfg.inChannels, H, H);
  const text = goldenText('sd-narrow');
  const feeds = () => ({
    sample: float32Tensor(sample, [BATCH, cfg.inChannels, H, H]),
    timestep: float32Tensor(new Float32Array([T, T]), [BATCH]),
    encoder_hidden_states: float32Tensor(text, [BATCH, text.length / (BATCH * cfg.crossAttentionDim), cfg.crossAttentionDim]),
  });

  it('the dense int8 step is within 2 % of fp32 and its graph runs MatMulNBits', async () => {
    const eps: Float32Array[] = [];
    for (const weights of ['fp32', 'int8'] as const) {
      const b = buildUNetGraph(cfg, model.unet.weights, { graph: { weights } });
      if (weights === 'int8') expect(b.g.stats().opCounts.MatMulNBits).toBeGreaterThan(10);
      const s = await createSession(b.g.build(), { intraOpNumThreads: 1 });
      eps.push((await s.run(feeds())).noise_pred.data as Float32Array);
      await s.release();
    }
    const err = relErr(eps[1], eps[0]);
    console.log(`sd-narrow dense int8 vs fp32: rel err ${err.toExponential(2)}`);
    expect(err).toBeGreaterThan(0);
    expect(err).toBeLessThan(2e-2);
  });

  it('the sparse int8 step (parent recorded from the same input) is within 2 % of the dense int8 step', async () => {
    const runner = await SparseUNetRunner.create(cfg, model.unet.weights, { intraOpNumThreads: 1, weights: 'int8', sessions: { dense: false } });
    try {
      expect(runner.weights).toBe('int8');
      const rec = await runner.recordStep(sample, H, H, T, text);
      const pyr = buildMaskPyramid(blobMask(H, H, [3, 5, 8, 9]), { levels: cfg.blockOutChannels.length });
      const res = await runner.sparseStep(runner.preparePyramid(pyr), gatherActiveRows(sample, BATCH, cfg.inChannels, H * H, pyr[0].active), T, text, (n) => rec.entries.get(n)!.data);
      const ref = gatherActiveRows(rec.noise, BATCH, cfg.outChannels, H * H, pyr[0].active);
      const err = relErr(res.noise, ref);
      console.log(`sd-narrow sparse int8 vs dense int8 at ${(100 * pyr[0].fraction).toFixed(1)} %: rel err ${err.toExponential(2)}`);
      expect(err).toBeLessThan(2e-2);
    } finally {
      await runner.release();
    }
  });
});
