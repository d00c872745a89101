/** @jest-environment ./test/engine/runtime/ortTestEnvironment.js */
// The start-up probe that picks WebGPU's attention form (runtime/attentionProbe.ts, FISEDIT_WEBGPU_ATTENTION=auto).
// On lavapipe the EP's FlashAttention kernel (behind 'mha') is 0.1-0.3 off: the probe must see that and keep
// the written-out form. With two right candidates (mha-unfused and matmul are both right there) it must time
// both and take the faster. The shapes come from the bundled model's configs, as the engine's load does.
import * as path from 'path';
import { loadModelFolder } from '../../../src/engine/model/modelFolder';
import { attentionCasesFor, chooseAttentionForm, maxAbsDifference, resolveWebgpuAttention } from '../../../src/engine/runtime/attentionProbe';
import { graphOptionsFor, rememberAttentionChoice } from '../../../src/engine/runtime/deviceGraphs';
import { checkCudaLibraries } from '../../../src/engine/runtime/ortSession';
import { DiffusionEngine } from '../../../src/engine/pipeline/engine';
import { describeWithWebGpu } from '../../helpers/webgpu';

const MODEL = path.resolve(__dirname, '../../../models/default');

describe('attentionCasesFor', () => {
  test("the model's finest attention level sets the shapes; the text encoder's causal attention is checked too", () => {
    const f = loadModelFolder(MODEL);
    const { checks, timing } = attentionCasesFor(f.unet.config, f.textEncoder.config);
    // The bundled UNet attends only at level 2 (128 channels, 4 heads) of a 32-latent: 8x8 tokens.
    expect(timing).toMatchObject({ batch: 2, L: 64, M: 64, C: 128, heads: 4 });
    expect(checks.map((c) => [c.L, c.M, c.C, c.heads, !!c.causal])).toEqual([
      [64, 64, 128, 4, false],
      [64, 77, 128, 4, false],
      [77, 77, 128, 4, true],
    ]);
    // SD 1.5: level 0 (320 channels, 8 heads) of a 64-latent: 4096 tokens.
    const sd = { ...f.unet.config, blockOutChannels: [320, 640, 1280, 1280], numAttentionHeads: [8, 8, 8, 8], sampleSize: 64, downBlockTypes: ['CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'DownBlock2D'] as typeof f.unet.config.downBlockTypes };
    expect(attentionCasesFor(sd, null).timing).toMatchObject({ L: 4096, M: 4096, C: 320, heads: 8 });
  });

  test('maxAbsDifference: NaN and a length mismatch count as infinitely off', () => {
    expect(maxAbsDifference(new Float32Array([1, 2]), new Float32Array([1, 2.5]))).toBe(0.5);
    expect(maxAbsDifference(new Float32Array([1, NaN]), new Float32Array([1, 2]))).toBe(Infinity);
    expect(maxAbsDifference(new Float32Array([1]), new Float32Array([1, 2]))).toBe(Infinity);
  });

  // onnxruntime-node's CUDA provider libraries are not installed here (.npmrc skips them): every CUDA session fails.
  const cudaMissing = (() => {
    try {
      checkCudaLibraries();
      return false;
    } catch {
      return true;
    }
  })();
  if (!cudaMissing) console.warn('skipping "a candidate that cannot run": the CUDA provider libraries are installed, so CUDA sessions do not fail');
  (cudaMissing ? test : test.skip)('a candidate that cannot run is out, with its error, and matmul stays the fallback', async () => {
    const f = loadModelFolder(MODEL);
    const { checks } = attentionCasesFor(f.unet.config, f.textEncoder.config);
    const choice = await chooseAttentionForm({ checks: checks.slice(0, 1), timing: null }, { device: 'cuda' });
    expect(choice.checks.map((c) => [c.form, c.right, c.maxAbs])).toEqual([
      ['mha', false, Infinity],
      ['matmul', false, Infinity],
    ]);
    for (const c of choice.checks) expect(c.error).toMatch(/cuda|CUDA/);
    expect(choice.form).toBe('matmul');
    expect(choice.reason).toMatch(/^no candidate matched the CPU \(mha off by an error \(/);
  });
});

describeWithWebGpu('the WebGPU attention probe', () => {
  const f = loadModelFolder(MODEL);
  const cases = attentionCasesFor(f.unet.config, f.textEncoder.config);

  test('keeps the written-out form where the fused kernel is wrong (lavapipe), and says by how much', async () => {
    const choice = await chooseAttentionForm(cases);
    console.log(`probe: ${choice.reason} (${choice.probeMs.toFixed(0)} ms)`);
    const byForm = Object.fromEntries(choice.checks.map((c) => [c.form, c]));
    expect(byForm.matmul.right).toBe(true);
    expect(byForm.matmul.maxAbs).toBeLessThan(1e-5);
    if (byForm.mha.right) {
      // A Vulkan driver on which FlashAttention is right: then the choice is the faster of the two, timed.
      expect(choice.timings.map((t) => t.form).sort()).toEqual(['matmul', 'mha']);
    } else {
      expect(byForm.mha.maxAbs).toBeGreaterThan(choice.tolerance);
      expect(choice.form).toBe('matmul');
      expect(choice.timings).toEqual([]);
      expect(choice.reason).toMatch(/^matmul: the only form that matched the CPU within 0\.001 \(mha off by \d\.\de-\d\)$/);
    }
  }, 120_000);

  test('with two right candidates it times both at the largest shape and takes the faster', async () => {
    const choice = await chooseAttentionForm(cases, { candidates: ['mha-unfused', 'matmul'], reps: 3 });
    console.log(`probe: ${choice.reason}`);
    expect(choice.checks.every((c) => c.right)).toBe(true);
    expect(choice.timings.map((t) => t.form)).toEqual(['mha-unfused', 'matmul']);
    for (const t of choice.timings) {
      expect(t.ms).toBeGreaterThan(0);
      expect(t.maxAbsVsMatmul).toBeLessThan(1e-5);
    }
    const fastest = [...choice.timings].sort((a, b) => a.ms - b.ms)[0].form;
    expect(choice.form).toBe(fastest);
    expect(choice.reason).toContain(`${fastest}: the fastest right form at unet self 8x8`);
  }, 120_000);

  test("the engine's load runs the probe once and every later WebGPU graph builds the chosen form", async () => {
    rememberAttentionChoice(null);
    const engine = await DiffusionEngine.load(MODEL, { components: ['textEncoder'], sessionOptions: { device: 'webgpu' }, intraOpNumThreads: 1 });
    try {
      expect(engine.attention?.reason).toMatch(/^auto, /);
      expect(graphOptionsFor('webgpu').attention).toBe(engine.attention?.form);
      // Memoised: a second load (an edit pipeline's) gets the same decision without probing again.
      const again = await resolveWebgpuAttention(f.unet.config, f.textEncoder.config);
      expect(`auto, ${again?.reason}`).toBe(engine.attention?.reason);
      // A form named in the environment is not probed.
      expect(resolveWebgpuAttention(f.unet.config, f.textEncoder.config, { FISEDIT_WEBGPU_ATTENTION: 'chunked:4' })).toBeNull();
    } finally {
      await engine.dispose();
    }
  }, 120_000);
});
