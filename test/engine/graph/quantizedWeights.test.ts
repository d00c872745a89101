/** @jest-environment ./test/engine/runtime/ortTestEnvironment.js */
// int8 and int4 weights (graph/quantizedWeights.ts): the block quantisation against a float64 reference
// written here, the conv rows in the sparse conv's column order, MatMulNBits against a fp32 MatMul of the
// dequantised weights, and whole UNets: the dense quantised step near the fp32 one, and the sparse step
// with the parent's cache recorded from the same input near the dense step of the same weights (it
// quantises its activations where the dense Conv does not).

import { buildUNetGraph } from '../../../src/engine/arch/unet';
import { GraphBuilder } from '../../../src/engine/graph/graphBuilder';
import { dequantizedConvWeight, dequantizeRows, matMulQuantized, quantizeRows, QUANT_BLOCK, weightRows, type QuantBits } from '../../../src/engine/graph/quantizedWeights';
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

describe.each([8, 4] as QuantBits[])('int%i block quantisation', (bits) => {
  const top = bits === 8 ? 127 : 7;
  const zero = bits === 8 ? 128 : 8;
  /** Stored value (q + zero point) of element i of [N, kBlocks, block], unpacking nibbles (low first). */
  const stored = (q: Uint8Array, i: number) => (bits === 8 ? q[i] : (q[i >> 1] >> ((i & 1) * 4)) & 15);

  it(`matches a float64 reference: per-block scale max|w|/${top}, error at most half a step, K padded`, () => {
    const n = 3;
    const k = 2 * QUANT_BLOCK + 37; // a ragged last block
    const rows = randArray(n * k, 5, 2);
    rows[7] = 0;
    const qr = quantizeRows(rows, n, k, QUANT_BLOCK, bits);
    expect(qr.kBlocks).toBe(3);
    expect(qr.q.length).toBe((n * 3 * QUANT_BLOCK * bits) / 8);
    const deq = dequantizeRows(qr);
    for (let r = 0; r < n; r++) {
      for (let b = 0; b < 3; b++) {
        const block = Array.from(rows.subarray(r * k + b * QUANT_BLOCK, r * k + Math.min(k, (b + 1) * QUANT_BLOCK)));
        const scale = Math.max(...block.map(Math.abs)) / top;
        expect(qr.scales[r * 3 + b]).toBeCloseTo(scale, 6);
        block.forEach((w, i) => {
          const at = r * k + b * QUANT_BLOCK + i;
          expect(Math.abs(deq[at] - w)).toBeLessThanOrEqual(scale / 2 + 1e-6);
          expect(deq[at] === Math.fround(Math.round(w / qr.scales[r * 3 + b]) * qr.scales[r * 3 + b])).toBe(true); // ±0 alike
          expect(stored(qr.q, (r * 3 + b) * QUANT_BLOCK + i)).toBe(Math.round(w / qr.scales[r * 3 + b]) + zero);
        });
      }
      // Padding past K is the zero point (contributes 0).
      for (let i = k - 2 * QUANT_BLOCK; i < QUANT_BLOCK; i++) expect(stored(qr.q, (r * 3 + 2) * QUANT_BLOCK + i)).toBe(zero);
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
    const back = dequantizedConvWeight(w, bits);
    const deqRows = dequantizeRows(quantizeRows(rows, n, k, QUANT_BLOCK, bits));
    for (let o = 0; o < co; o++) for (let c = 0; c < ci; c++) for (let t = 0; t < 9; t++) expect(back[(o * ci + c) * 9 + t]).toBe(deqRows[o * k + t * ci + c]);
  });

  it('MatMulNBits computes x·Wᵀ with the dequantised weights up to its int8 activations', async () => {
    const format = bits === 8 ? 'int8' : 'int4';
    const [m, k, n] = [6, 300, 40];
    const wData = randArray(n * k, 3, 1 / Math.sqrt(k));
    const w = f32Weight('lin.weight', [n, k], wData);
    const x = randArray(m * k, 4, 1);
    const g = new GraphBuilder(format, { weights: format });
    g.output('y', matMulQuantized(g, g.input('x', 'float32', ['M', k]), w, 'linear'), 'float32', ['M', n]);
    const s = await createSession(g.build(), { intraOpNumThreads: 1 });
    const y = (await s.run({ x: float32Tensor(x, [m, k]) })).y.data as Float32Array;
    await s.release();
    const deq = dequantizeRows(quantizeRows(wData, n, k, QUANT_BLOCK, bits));
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
    console.log(`MatMulNBits ${format}: rel err ${vsDequantised.toExponential(2)} vs dequantised weights, ${vsFp32.toExponential(2)} vs fp32`);
    expect(vsDequantised).toBeLessThan(2e-2);
    expect(vsDequantised).toBeGreaterThan(0); // the activations are quantised too (accuracy_level 4)
    // 4 bits: a step of max|w|/7, so ~1/√3·(1/14)/(mean |w|/max|w|) ≈ 10 % of each weight, averaging down over K
    expect(vsFp32).toBeLessThan(bits === 8 ? 3e-2 : 0.15);
  });
});

describe.each(['int8', 'int4'] as const)('%s UNet (sd-narrow)', (format) => {
  // int4's step is 16× int8's: its UNet output moves ~10× as far from fp32
  const vsFp32 = format === 'int8' ? 2e-2 : 0.2;
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

  it(`the dense ${format} step is near fp32 and its graph runs MatMulNBits`, async () => {
    const eps: Float32Array[] = [];
    for (const weights of ['fp32', format] as const) {
      const b = buildUNetGraph(cfg, model.unet.weights, { graph: { weights } });
      if (weights === format) expect(b.g.stats().opCounts.MatMulNBits).toBeGreaterThan(10);
      const s = await createSession(b.g.build(), { intraOpNumThreads: 1 });
      eps.push((await s.run(feeds())).noise_pred.data as Float32Array);
      await s.release();
    }
    const err = relErr(eps[1], eps[0]);
    console.log(`sd-narrow dense ${format} vs fp32: rel err ${err.toExponential(2)}`);
    expect(err).toBeGreaterThan(0);
    expect(err).toBeLessThan(vsFp32);
  });

  it(`the sparse ${format} step (parent recorded from the same input) is within 2 % of the dense ${format} step`, async () => {
    const runner = await SparseUNetRunner.create(cfg, model.unet.weights, { intraOpNumThreads: 1, weights: format, sessions: { dense: false } });
    try {
      expect(runner.weights).toBe(format);
      const rec = await runner.recordStep(sample, H, H, T, text);
      const pyr = buildMaskPyramid(blobMask(H, H, [3, 5, 8, 9]), { levels: cfg.blockOutChannels.length });
      const res = await runner.sparseStep(runner.preparePyramid(pyr), gatherActiveRows(sample, BATCH, cfg.inChannels, H * H, pyr[0].active), T, text, (n) => rec.entries.get(n)!.data);
      const ref = gatherActiveRows(rec.noise, BATCH, cfg.outChannels, H * H, pyr[0].active);
      const err = relErr(res.noise, ref);
      console.log(`sd-narrow sparse ${format} vs dense ${format} at ${(100 * pyr[0].fraction).toFixed(1)} %: rel err ${err.toExponential(2)}`);
      expect(err).toBeLessThan(2e-2);
    } finally {
      await runner.release();
    }
  });
});
