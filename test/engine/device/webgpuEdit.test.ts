/** @jest-environment ./test/engine/runtime/ortTestEnvironment.js */
// A recorded generation and a sparse edit of it with every session on WebGPU (tiny-2level, few steps:
// lavapipe runs WebGPU on the CPU, slowly): the edit keeps every pixel outside its affected region equal
// to the parent's, as on the CPU; the root's image stays close to the CPU's (same graphs, float noise).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { editNode } from '../../../src/engine/pipeline/edit';
import { generateNode } from '../../../src/engine/pipeline/editRecord';
import { loadEditComponents, releaseEditComponents, type EditComponents } from '../../../src/engine/pipeline/editUNet';
import { DiffusionEngine } from '../../../src/engine/pipeline/engine';
import type { StateContext } from '../../../src/engine/pipeline/editTypes';
import { NodeStore } from '../../../src/engine/state/nodeStore';
import { describeWithWebGpu } from '../../helpers/webgpu';
import { latentDiffsOutside, pixelDiffs, rectMask, tempDir, TINY } from '../pipeline/editFixtures';

const STEPS = 4;
const PROMPT = 'a red circle on the left';
const H = 16;

describeWithWebGpu('a generation and a sparse edit on webgpu (tiny-2level)', () => {
  let engine: DiffusionEngine;
  let parts: EditComponents;
  let cpu: DiffusionEngine;
  let dir: string;

  beforeAll(async () => {
    engine = await DiffusionEngine.load(TINY, { intraOpNumThreads: 1, sessionOptions: { device: 'webgpu' } });
    parts = await loadEditComponents(TINY, { intraOpNumThreads: 1, device: engine.device });
    cpu = await DiffusionEngine.load(TINY, { intraOpNumThreads: 1 });
    dir = tempDir('fisedit-webgpu-edit-');
  }, 120_000);
  afterAll(async () => {
    await releaseEditComponents(parts);
    await engine?.dispose();
    await cpu?.dispose();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  test('the edit changes its region only; the root matches the CPU generation within float noise', async () => {
    const store = await NodeStore.open(path.join(dir, 'state'), { create: true });
    const ctx: StateContext = { models: engine, store, cache: await store.openCache(Infinity), unet: parts.unet, decoder: parts.decoder };
    const root = await generateNode(ctx, { prompt: PROMPT, seed: 3, steps: STEPS });
    const onCpu = await cpu.generate({ prompt: PROMPT, seed: 3, steps: STEPS });
    let worst = 0;
    root.result.latents.forEach((v, i) => (worst = Math.max(worst, Math.abs(v - onCpu.latents[i]))));
    let levels = 0;
    root.result.rgb.forEach((v, i) => (levels = Math.max(levels, Math.abs(v - onCpu.rgb[i]))));
    console.log(`webgpu vs cpu, ${STEPS}-step generation: final latents max abs ${worst.toExponential(2)}, image max ${levels} levels`);
    expect(worst).toBeLessThan(1e-3);
    expect(levels).toBeLessThanOrEqual(1);

    const parentImage = await store.readImage(root.record);
    const e = await editNode(ctx, { parentId: root.record.id, prompt: 'a blue circle on the left', mask: rectMask(H, H, 2, 3, 8, 10), strategy: 'mask', decode: 'sparse' });
    expect(e.mode).toBe('SPARSE');
    expect(e.sparseSteps).toBeGreaterThan(0);
    const d = pixelDiffs(e.rgb, parentImage.rgb, e.affected);
    console.log(`webgpu sparse edit: ${d.inside} pixels changed inside the affected region, ${d.outside} outside; decode ${e.decodeMethod}`);
    expect(d.outside).toBe(0);
    expect(d.inside).toBeGreaterThan(0);
    expect(latentDiffsOutside(store.readLatents(e.node), store.readLatents(root.record), e.mask, 4)).toBe(0);
  }, 300_000);
});
