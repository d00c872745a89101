/** @jest-environment ./test/engine/runtime/ortTestEnvironment.js */
// Issue 15 item 1 on the bundled model: "a red circle on the left" → "a green circle on the left" with the
// default strategy (latent, found mask) must not leave a ring of the red circle beside the green one. The
// found mask is the object's core; without growing it over the object's soft edge (editMask.ts
// foundMaskGrowth) these seeds leave 20, 15 and 12 pixels of red/orange/yellow where the dense
// regeneration has none. Counted by src/eval/remnants.ts (tested on drawn scenes in test/eval).
// Seeds: where the shipped model (session 15, step 27212 with the edge-tuned decoder) shows the defect
// without the growth. Over seeds 1–14 the default leaves 1–5 pixels on every seed
// (2/2/3/5/1/5/3/2/1/1/2/5/3/5), the found mask alone 4–20 (12/7/4/9/10/8/20/8/15/12/7/10/10/11). Each newer
// model drew other seeds' edges crisper: the step-23328 weights used seeds 4/12/14, the step-17814 ones
// 1/7/11, the step-14447 ones 1/2/4, the step-13275 ones 2/3/4.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { editNode } from '../../../src/engine/pipeline/edit';
import { generateNode } from '../../../src/engine/pipeline/editRecord';
import type { StateContext } from '../../../src/engine/pipeline/editTypes';
import { loadEditComponents, releaseEditComponents, type EditComponents } from '../../../src/engine/pipeline/editUNet';
import { DiffusionEngine, RECORDING_ENGINE_COMPONENTS } from '../../../src/engine/pipeline/engine';
import { NodeStore } from '../../../src/engine/state/nodeStore';
import { remnantPixels } from '../../../src/eval/remnants';

const MODEL = path.resolve(__dirname, '../../../models/default');
const SEEDS = [7, 9, 10];
const PARENT = 'a red circle on the left on a white background';
const CHILD = 'a green circle on the left on a white background';

let engine: DiffusionEngine;
let parts: EditComponents;
let dir: string;
beforeAll(async () => {
  engine = await DiffusionEngine.load(MODEL, { intraOpNumThreads: 1, components: RECORDING_ENGINE_COMPONENTS });
  parts = await loadEditComponents(MODEL, { intraOpNumThreads: 1 });
  if (parts.unet.denseSession) await engine.adoptUNet(parts.unet.denseSession);
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fisedit-remnants-'));
});
afterAll(async () => {
  await releaseEditComponents(parts);
  await engine?.dispose();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

/** Remnant pixels of each seed's edit (maskGrowth undefined = the default). */
async function remnants(ctx: StateContext, maskGrowth?: number): Promise<number[]> {
  const out: number[] = [];
  for (const seed of SEEDS) {
    const root = await generateNode(ctx, { prompt: PARENT, seed });
    const e = await editNode(ctx, { parentId: root.record.id, prompt: CHILD, maskGrowth });
    const dense = await engine.generate({ prompt: CHILD, seed });
    const { width: W, height: H } = root.result;
    out.push(remnantPixels(root.result.rgb, e.rgb, dense.rgb, W, H, { oldColour: 'red', newColour: 'green', background: 'white' }, e.affected));
  }
  return out;
}

test('recolouring a circle leaves no ring of the old one (found mask grown over its soft edge)', async () => {
  const store = await NodeStore.open(path.join(dir, 'state'), { create: true });
  const ctx: StateContext = { models: engine, store, cache: await store.openCache(2 ** 30), unet: parts.unet, decoder: parts.decoder };
  const grown = await remnants(ctx);
  const core = await remnants(ctx, 0);
  console.log(`remnant pixels, seeds ${SEEDS.join('/')}: default ${grown.join('/')}, found mask only (maskGrowth 0) ${core.join('/')}`);
  // A ring of the old circle is 12+ pixels; what remains with the growth is the new circle's own edge tint.
  for (const n of grown) expect(n).toBeLessThanOrEqual(8);
  expect(grown.reduce((a, b) => a + b, 0)).toBeLessThanOrEqual(15);
  // The measurement sees the defect where it is: without the growth every seed leaves a ring.
  for (const n of core) expect(n).toBeGreaterThanOrEqual(10); // measured 20/15/12
}, 600_000); // 18 runs of the bundled model on one thread
