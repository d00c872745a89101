// fisedit generate --state and fisedit edit, spawned as a user runs them (node bin/fisedit.js) on the
// tiny fixture model: node ids, the JSON report, edits of edits, and refusals with their exit codes
// that leave the state directory as it was.
import * as fs from 'node:fs';
import * as path from 'node:path';
import sharp from 'sharp';
import { readPngText } from '../../src/engine/image/png';
import { fingerprint, rectMask, tempDir, TINY, writeMaskFile } from '../engine/pipeline/editFixtures';
import { runFisedit, type CliRun } from '../helpers/runCli';

const tmp = tempDir('fisedit-cli-edit-');
const STATE = path.join(tmp, 'state');
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const fisedit = (...args: string[]) => runFisedit(tmp, args);

const json = (r: CliRun) => {
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  return JSON.parse(r.stdout);
};

let first: string;
let second: string;
let child: string;

describe('fisedit generate --state, fisedit edit', () => {
  test('generate --state records root nodes and prints their ids', async () => {
    const a = json(await fisedit('generate', '--model', TINY, '--prompt', 'a red circle on the left', '--seed', '4', '--steps', '6', '--state', STATE, '--out', path.join(tmp, 'a.png'), '--json'));
    expect(a).toMatchObject({ parentId: null, mode: 'DENSE', state: STATE, steps: 6 });
    expect(a.nodeId).toMatch(/^[0-9a-f]{10}$/);
    expect(a.cacheBytes).toBeGreaterThan(0);
    expect(a.timings.saveNode).toBeGreaterThanOrEqual(0);
    first = a.nodeId;
    const b = await fisedit('generate', '--model', TINY, '--prompt', 'a red square', '--seed', '5', '--steps', '6', '--state', STATE, '--out', path.join(tmp, 'b.png'));
    expect(b.code).toBe(0);
    second = /node ([0-9a-f]{10}) in /.exec(b.stdout)![1];
    expect(fs.readdirSync(path.join(STATE, 'nodes')).sort()).toEqual([first, second].sort());
  });

  test('edit: the newest node by default, a user mask, the JSON report, the PNG and the mask written', async () => {
    const maskFile = path.join(tmp, 'mask.png');
    await writeMaskFile(maskFile, rectMask(32, 32, 4, 6, 18, 20));
    const out = path.join(tmp, 'edit.png');
    const saved = path.join(tmp, 'saved-mask.png');
    const j = json(await fisedit('edit', '--model', TINY, '--state', STATE, '--prompt', 'a blue square', '--mask', maskFile, '--save-mask', saved, '--out', out, '--json'));
    expect(j).toMatchObject({ parentId: second, mode: 'SPARSE', strategy: 'mask', coarseCover: 'any', denseSteps: 0, sparseSteps: 6, captureSteps: 0, cacheFallback: null, out });
    expect(j.maskedFraction).toBeCloseTo((7 * 7) / 256, 4);
    expect(j.maskedFractionPerLevel.map((l: { level: number; width: number }) => [l.level, l.width])).toEqual([[0, 16], [1, 8]]);
    expect(j.cacheBytes).toBeGreaterThan(0);
    expect(j.tokens).toEqual({ removed: ['red</w>'], added: ['blue</w>'] });
    expect(Object.keys(j.timings)).toEqual(['loadModel', 'loadParent', 'encodeText', 'capture', 'mask', 'rerecordParent', 'denoise', 'decode', 'composite', 'createSessions', 'saveNode', 'writeOutput']);
    expect(j.totalMs).toBeGreaterThan(0);
    expect(j.totalMs).toBeLessThan(j.timings.loadModel + j.totalMs); // loading is reported beside it, not in it
    expect(readPngText(out)).toMatchObject({ prompt: 'a blue square', seed: '5', steps: '6', node: j.nodeId, parent: second });
    const m = await sharp(saved).raw().toBuffer({ resolveWithObject: true });
    expect([m.info.width, m.info.height]).toEqual([32, 32]);
    expect(m.data.filter((v) => v === 255).length).toBe(14 * 14 * m.info.channels);
    child = j.nodeId;
  });

  test('edit of an edit, latent strategy with --parent; strategy dense', async () => {
    // --decode sparse: the sparse decoder reads the parent's decoder page, which its own process (the
    // previous edit, decoded in full) spilled to the state directory
    const j = json(await fisedit('edit', '--model', TINY, '--state', STATE, '--parent', child, '--prompt', 'a blue square on the right', '--capture-steps', '2', '--dense-above', '1', '--decode', 'sparse', '--out', path.join(tmp, 'e2.png'), '--json'));
    expect(j).toMatchObject({ parentId: child, strategy: 'latent', captureSteps: 2, denseSteps: 2, sparseSteps: 4, mode: 'SPARSE', cacheFallback: null, decodeMethod: 'SPARSE', decodeBox: null });
    expect(j.decodeMacFraction).toBeGreaterThan(0);
    const d = json(await fisedit('edit', '--model', TINY, '--state', STATE, '--parent', first, '--prompt', 'a green circle', '--strategy', 'dense', '--out', path.join(tmp, 'e3.png'), '--json'));
    expect(d).toMatchObject({ parentId: first, mode: 'DENSE', denseSteps: 6, sparseSteps: 0, maskedFraction: 1 });
    const text = await fisedit('edit', '--model', TINY, '--state', STATE, '--parent', first, '--prompt', 'a red circle on the left', '--out', path.join(tmp, 'e4.png'));
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/PARENT, 0\.0 % of the latent recomputed/);
  });

  test('refusals: exit code, message, and the state directory unchanged', async () => {
    const before = fingerprint(STATE);
    const cases: Array<[string[], number, RegExp]> = [
      [['--parent', '0123456789', '--prompt', 'x'], 2, /edit: state directory .* no node "0123456789"/],
      [['--prompt', ''], 2, /edit: --prompt must not be empty/],
      [['--prompt', '   '], 2, /edit: --prompt must not be empty/],
      [['--prompt', 'x', '--strategy', 'magic'], 2, /--strategy must be one of auto, latent, attention, mask, dense/],
      [['--prompt', 'x', '--decode', 'tiles'], 2, /--decode must be auto, sparse, crop or full/],
      [['--prompt', 'x', '--coarse-cover', 'most'], 2, /--coarse-cover must be any or half/],
    ];
    const small = path.join(tmp, 'small.png');
    await writeMaskFile(small, rectMask(16, 16, 0, 0, 4, 4));
    cases.push([['--prompt', 'x', '--mask', small], 2, /edit: --mask .*small\.png: mask is 16x16, the image is 32x32/]);
    for (const [args, code, message] of cases) {
      const r = await fisedit('edit', '--model', TINY, '--state', STATE, ...args);
      expect([r.code, r.stdout]).toEqual([code, '']);
      expect(r.stderr).toMatch(message);
    }
    expect(fingerprint(STATE)).toEqual(before);

    const notState = path.join(tmp, 'not-state');
    fs.mkdirSync(notState);
    fs.writeFileSync(path.join(notState, 'notes.txt'), 'mine');
    for (const cmd of [['edit', '--prompt', 'x'], ['generate', '--prompt', 'x', '--seed', '1']]) {
      const r = await fisedit(cmd[0], '--model', TINY, '--state', notState, ...cmd.slice(1));
      expect(r.code).toBe(4);
      expect(r.stderr).toMatch(/state directory .*not-state: is not a fisedit state directory \(no store\.json\)/);
    }
    expect(fs.readdirSync(notState)).toEqual(['notes.txt']);

    const damaged = path.join(tmp, 'damaged');
    fs.cpSync(STATE, damaged, { recursive: true });
    fs.writeFileSync(path.join(damaged, 'nodes', first, 'node.json'), '{');
    const snap = fingerprint(damaged);
    const r = await fisedit('edit', '--model', TINY, '--state', damaged, '--parent', first, '--prompt', 'x');
    expect(r.code).toBe(4);
    expect(r.stderr).toMatch(new RegExp(`nodes/${first}/node\\.json: not valid JSON`));
    expect(fingerprint(damaged)).toEqual(snap);
  });
});
