/** @jest-environment ./test/engine/runtime/ortTestEnvironment.js */
// Bad input to an edit and unusable state directories: every case is a typed error with a message
// that names the problem, and the state directory is byte-for-byte what it was before.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { UserMaskError } from '../../../src/engine/mask/userMask';
import { editNode } from '../../../src/engine/pipeline/edit';
import { generateNode } from '../../../src/engine/pipeline/editRecord';
import { EditInputError, type EditRequest, type StateContext } from '../../../src/engine/pipeline/editTypes';
import { DiffusionEngine } from '../../../src/engine/pipeline/engine';
import type { NodeRecord } from '../../../src/engine/state/nodeRecord';
import { NodeStore, StateDirError, UnknownNodeError } from '../../../src/engine/state/nodeStore';
import { fingerprint, rectMask, tempDir, TINY, writeMaskFile } from './editFixtures';

let engine: DiffusionEngine;
let tmp: string;
let stateDir: string;
let ctx: StateContext;
let root: NodeRecord;

beforeAll(async () => {
  engine = await DiffusionEngine.load(TINY, { intraOpNumThreads: 1 });
  tmp = tempDir('fisedit-edit-inputs-');
  stateDir = path.join(tmp, 'state');
  const store = await NodeStore.open(stateDir, { create: true });
  ctx = { models: engine, store, cache: await store.openCache(Infinity), unet: null };
  root = (await generateNode(ctx, { prompt: 'a red circle', seed: 1, steps: 4 })).record;
});
afterAll(async () => {
  await engine?.dispose();
  fs.rmSync(tmp, { recursive: true, force: true });
});

async function refused(req: Partial<EditRequest>, type: new (...a: never[]) => Error, message: RegExp): Promise<void> {
  const before = fingerprint(stateDir);
  const p = editNode(ctx, { parentId: root.id, prompt: 'a blue circle', ...req });
  await expect(p).rejects.toBeInstanceOf(type);
  await expect(p).rejects.toThrow(message);
  expect(fingerprint(stateDir)).toEqual(before);
}

describe('edit refuses bad input and writes nothing', () => {
  test('unknown parent (and ids that are not ids)', async () => {
    await refused({ parentId: 'ffffffffff' }, UnknownNodeError, new RegExp(`no node "ffffffffff" \\(it holds 1 node\\(s\\): ${root.id}\\)`));
    await refused({ parentId: '../state' }, UnknownNodeError, /no node "\.\.\/state"/);
  });

  test('empty prompt', async () => {
    await refused({ prompt: '' }, EditInputError, /^prompt: must not be empty/);
    await refused({ prompt: '  \n' }, EditInputError, /^prompt: must not be empty/);
  });

  test('mask of the wrong size (file and in-memory)', async () => {
    const small = path.join(tmp, 'small-mask.png');
    await writeMaskFile(small, rectMask(16, 16, 2, 2, 8, 8));
    await refused({ mask: { file: small } }, UserMaskError, /mask is 16x16, the image is 32x32/);
    await refused({ mask: rectMask(8, 8, 1, 1, 4, 4) }, EditInputError, /^mask: is 8x8; node \w+ has a 16x16 latent/);
    await refused({ mask: { file: path.join(tmp, 'missing.png') } }, UserMaskError, /cannot read the mask file/);
  });

  test('inconsistent options', async () => {
    await refused({ strategy: 'dense', captureSteps: 2 }, EditInputError, /^captureSteps: applies to the latent and attention strategies only/);
    await refused({ strategy: 'latent', mask: rectMask(16, 16, 0, 0, 4, 4) }, EditInputError, /^mask: a mask was given with strategy "latent"/);
    await refused({ strategy: 'mask' }, EditInputError, /^mask: strategy "mask" needs a mask/);
    await refused({ captureSteps: 0 }, EditInputError, /^captureSteps: must be an integer in \[1, 4\]/);
    await refused({ captureSteps: 5 }, EditInputError, /^captureSteps: must be an integer in \[1, 4\]/);
    await refused({ strategy: 'bogus' as never }, EditInputError, /^strategy: must be one of auto, latent, attention, mask, dense/);
  });
});

describe('unusable state directories are refused with a StateDirError, nothing changed', () => {
  /** A copy of the good state directory to damage. */
  function copyState(): string {
    const d = fs.mkdtempSync(path.join(tmp, 'copy-'));
    fs.cpSync(stateDir, d, { recursive: true });
    return d;
  }

  async function refusedDir(dir: string, problem: string, message: RegExp, act: (s: NodeStore) => Promise<unknown> = async () => undefined): Promise<void> {
    const before = fs.existsSync(dir) && fs.statSync(dir).isDirectory() ? fingerprint(dir) : null;
    const run = async () => act(await NodeStore.open(dir));
    const err = await run().then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(StateDirError);
    expect((err as StateDirError).problem).toBe(problem);
    expect((err as Error).message).toMatch(message);
    if (before) expect(fingerprint(dir)).toEqual(before);
  }

  test('missing, a file, a folder that is not ours', async () => {
    await refusedDir(path.join(tmp, 'nope'), 'missing', /does not exist/);
    const file = path.join(tmp, 'a-file');
    fs.writeFileSync(file, 'x');
    await refusedDir(file, 'not-a-directory', /is not a directory/);
    const foreign = fs.mkdtempSync(path.join(tmp, 'foreign-'));
    fs.writeFileSync(path.join(foreign, 'holiday.jpg'), 'not ours');
    await refusedDir(foreign, 'not-a-state-dir', /no store\.json/);
    // creating refuses a non-empty foreign folder too
    await expect(NodeStore.open(foreign, { create: true })).rejects.toThrow(/no store\.json/);
    expect(fs.readdirSync(foreign)).toEqual(['holiday.jpg']);
  });

  test('damaged store.json, node.json, latents or image', async () => {
    const a = copyState();
    fs.writeFileSync(path.join(a, 'store.json'), '{"format": "something-else"}');
    await refusedDir(a, 'corrupt', /store\.json is not a fisedit state marker/);

    const b = copyState();
    fs.writeFileSync(path.join(b, 'nodes', root.id, 'node.json'), '{"format": 1, "id": "');
    await refusedDir(b, 'corrupt', /node\.json: not valid JSON/, async (s) => editNode({ ...ctx, store: s }, { parentId: root.id, prompt: 'a blue circle' }));
    await refusedDir(b, 'corrupt', /node\.json: not valid JSON/, async (s) => s.latest());

    const c = copyState();
    const rec = JSON.parse(fs.readFileSync(path.join(c, 'nodes', root.id, 'node.json'), 'utf8'));
    fs.writeFileSync(path.join(c, 'nodes', root.id, 'node.json'), JSON.stringify({ ...rec, steps: 'four' }));
    await refusedDir(c, 'corrupt', /field "steps" must be a positive integer/, async (s) => editNode({ ...ctx, store: s }, { parentId: root.id, prompt: 'a blue circle' }));

    const d = copyState();
    const lat = path.join(d, 'nodes', root.id, 'latents.npy');
    fs.writeFileSync(lat, fs.readFileSync(lat).subarray(0, 300));
    await refusedDir(d, 'corrupt', /latents\.npy/, async (s) => editNode({ ...ctx, store: s }, { parentId: root.id, prompt: 'a blue circle' }));

    const e = copyState();
    fs.writeFileSync(path.join(e, 'nodes', root.id, 'image.png'), 'not a png');
    await refusedDir(e, 'corrupt', /cannot read the image of node/, async (s) => editNode({ ...ctx, store: s }, { parentId: root.id, prompt: 'a blue circle' }));
  });
});
