/** @jest-environment ./test/engine/runtime/ortTestEnvironment.js */
// The device tier (cache/deviceEntryTier.ts) on WebGPU: an edit of a root and an edit of that edit read
// their parent's entries from device memory, and give exactly the latents and image of the same edits
// fed from the host cache (tier off): the tier moves bytes, it computes nothing. tiny-2level, 4 steps
// (lavapipe runs WebGPU on the CPU).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { editNode } from '../../../src/engine/pipeline/edit';
import { generateNode } from '../../../src/engine/pipeline/editRecord';
import { loadEditComponents, releaseEditComponents, type EditComponents } from '../../../src/engine/pipeline/editUNet';
import { DiffusionEngine } from '../../../src/engine/pipeline/engine';
import type { StateContext } from '../../../src/engine/pipeline/editTypes';
import { NodeStore } from '../../../src/engine/state/nodeStore';
import type { SparseUNetRunner } from '../../../src/engine/sparse/sparseUNetRunner';
import { describeWithWebGpu } from '../../helpers/webgpu';
import { maxAbsDiff, rectMask, tempDir, TINY } from '../pipeline/editFixtures';

const H = 16;

describeWithWebGpu('device-resident parent caches on webgpu (tiny-2level)', () => {
  let engine: DiffusionEngine;
  const parts: Record<'tier' | 'host', EditComponents | null> = { tier: null, host: null };
  let dir: string;

  beforeAll(async () => {
    engine = await DiffusionEngine.load(TINY, { intraOpNumThreads: 1, sessionOptions: { device: 'webgpu' } });
    parts.tier = await loadEditComponents(TINY, { intraOpNumThreads: 1, device: 'webgpu', decoder: false });
    parts.host = await loadEditComponents(TINY, { intraOpNumThreads: 1, device: 'webgpu', decoder: false, deviceTierBytes: 0 });
    dir = tempDir('fisedit-webgpu-tier-');
  }, 120_000);
  afterAll(async () => {
    await releaseEditComponents(parts.tier);
    await releaseEditComponents(parts.host);
    await engine?.dispose();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  /** root → edit → edit of the edit, in a store of its own; returns each node's latents and image. */
  async function chain(which: 'tier' | 'host') {
    const store = await NodeStore.open(path.join(dir, which), { create: true });
    const ctx: StateContext = { models: engine, store, cache: await store.openCache(Infinity), unet: parts[which]!.unet, decoder: null, stepCosts: null };
    const root = await generateNode(ctx, { prompt: 'a red circle on the left', seed: 5, steps: 4 });
    const a = await editNode(ctx, { parentId: root.record.id, prompt: 'a blue circle on the left', mask: rectMask(H, H, 2, 3, 8, 10), strategy: 'mask', denseAboveFraction: 1 });
    const b = await editNode(ctx, { parentId: a.node.id, prompt: 'a blue square on the left', mask: rectMask(H, H, 3, 4, 9, 11), strategy: 'mask', denseAboveFraction: 1 });
    return { modes: [a.mode, b.mode], latents: [store.readLatents(a.node), store.readLatents(b.node)], rgb: [a.rgb, b.rgb] };
  }

  test('edits read their parents from device memory and equal the host-fed edits', async () => {
    const tier = (parts.tier!.unet as SparseUNetRunner).deviceTier!;
    expect(tier).not.toBeNull();
    expect((parts.host!.unet as SparseUNetRunner).deviceTier).toBeNull();
    const onDevice = await chain('tier');
    const stats = tier.stats;
    const fromHost = await chain('host');
    console.log(`device tier: ${stats.hits} sparse steps fed from device memory, ${stats.misses} from the host; ${stats.nodes} nodes, ${(stats.bytes / 2 ** 20).toFixed(1)} MiB held`);
    expect(onDevice.modes).toEqual(['SPARSE', 'SPARSE']);
    expect(fromHost.modes).toEqual(['SPARSE', 'SPARSE']);
    // Both edits' sparse steps (the second one reads its parent's device entries made by the first).
    expect(stats.hits).toBeGreaterThanOrEqual(4);
    expect(stats.misses).toBe(0);
    expect(stats.nodes).toBe(3);
    for (const i of [0, 1]) {
      expect(maxAbsDiff(onDevice.latents[i], fromHost.latents[i])).toBe(0);
      expect(maxAbsDiff(onDevice.rgb[i], fromHost.rgb[i])).toBe(0);
    }
  }, 300_000);
});
