// fisedit eval end to end on the tiny fixture model: the numbers are meaningless for random weights, so
// this checks the report's structure and that its per-attribute accuracy agrees with its own items.
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import sharp from 'sharp';
import { pickEvenly } from '../../src/cli/commands/evalCommand';

const root = path.resolve(__dirname, '..', '..');
const cli = path.join(root, 'bin', 'fisedit.js');
const model = path.join(root, 'test', 'fixtures', 'models', 'tiny-2level');

describe('fisedit eval', () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'fisedit-eval-'));
  afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it('writes a JSON report consistent with its items and a contact sheet', async () => {
    const json = path.join(tmp, 'r.json');
    const sheet = path.join(tmp, 's.png');
    const out = execFileSync('node', [cli, 'eval', '--model', model, '--limit', '4', '--steps', '2', '--json', json, '--sheet', sheet], { encoding: 'utf8' });
    expect(out).toMatch(/colour\+position\s+\d+\.\d %/);
    const r = JSON.parse(fs.readFileSync(json, 'utf8'));
    expect(r.items).toHaveLength(4);
    expect(r.items.map((i: { seed: number }) => i.seed)).toEqual([1000, 1001, 1002, 1003]);
    const objs = r.items.flatMap((i: { objects: { colourPosition: boolean }[] }) => i.objects);
    expect(r.summary.objects).toBe(objs.length);
    expect(r.summary.colourPosition).toBeCloseTo(objs.filter((o: { colourPosition: boolean }) => o.colourPosition).length / objs.length, 10);
    const meta = await sharp(sheet).metadata();
    expect(meta.width).toBe(4 * (128 + 6)); // 4 tiles of 64 px ×2 with 3-px frames
    expect(meta.height).toBe(2 * (128 + 6)); // reference row + generated row
  });

  it('refuses a bad captions file and a bad option with typed exit codes', () => {
    const bad = path.join(tmp, 'bad.json');
    fs.writeFileSync(bad, '{"nope": 1}');
    const r1 = spawnSync('node', [cli, 'eval', '--model', model, '--captions', bad], { encoding: 'utf8' });
    expect(r1.status).toBe(4);
    expect(r1.stderr).toMatch(/expected \{"scenes"/);
    const r2 = spawnSync('node', [cli, 'eval', '--model', model, '--scheduler', 'pndm'], { encoding: 'utf8' });
    expect(r2.status).toBe(2);
    const r3 = spawnSync('node', [cli, 'eval', '--model', model, '--edits', '--strategy', 'mask'], { encoding: 'utf8' });
    expect(r3.status).toBe(2);
    expect(r3.stderr).toMatch(/--strategy must be one of auto, latent, attention, dense/);
    const r4 = spawnSync('node', [cli, 'eval', '--model', model, '--edits', '--steps', '3', '--capture-steps', '4'], { encoding: 'utf8' });
    expect(r4.status).toBe(2);
    expect(r4.stderr).toMatch(/--capture-steps must be an integer in \[1, 3\]/);
    const r5 = spawnSync('node', [cli, 'eval', '--model', model, '--edits', '--decode', 'tiles'], { encoding: 'utf8' });
    expect(r5.status).toBe(2);
    expect(r5.stderr).toMatch(/--decode must be auto, sparse, crop or full/);
    const r6 = spawnSync('node', [cli, 'eval', '--model', model, '--edits', '--coarse-cover', 'most'], { encoding: 'utf8' });
    expect(r6.status).toBe(2);
    expect(r6.stderr).toMatch(/--coarse-cover must be any or half/);
  });

  it('--edits: edit quality, nothing outside the edit regions changed, a parent/edit sheet; --state keeps the nodes', async () => {
    const json = path.join(tmp, 'e.json');
    const sheet = path.join(tmp, 'e.png');
    const state = path.join(tmp, 'state');
    const out = execFileSync('node', [cli, 'eval', '--model', model, '--edits', '--limit', '3', '--steps', '3', '--capture-steps', '2', '--decode', 'sparse', '--json', json, '--sheet', sheet, '--state', state], { encoding: 'utf8' });
    expect(out).toMatch(/shows the new attribute\s+\d+\.\d %/);
    expect(out).toMatch(/strategy auto, 2 capture steps\)/);
    expect(out).toMatch(/pixels changed outside the edit region\s+0\n/);
    const r = JSON.parse(fs.readFileSync(json, 'utf8'));
    expect(r.items.map((i: { kind: string }) => i.kind)).toEqual(['colour', 'shape', 'colour']);
    expect(r.summary.success).toBeCloseTo(r.items.filter((i: { success: boolean }) => i.success).length / 3, 10);
    expect(out).toMatch(/dense regeneration shows it\s+\d+\.\d %/);
    expect(r.summary.denseSuccess).toBeCloseTo(r.items.filter((i: { denseSuccess: boolean }) => i.denseSuccess).length / 3, 10);
    expect(r.items.every((i: { denseMs: number }) => i.denseMs > 0)).toBe(true);
    expect(r.items.every((i: { outsideChanged: number }) => i.outsideChanged === 0)).toBe(true);
    expect((await sharp(sheet).metadata()).height).toBe(2 * (64 + 6)); // parents above edits (32-px images ×2)
    expect(fs.readdirSync(path.join(state, 'nodes')).length).toBeGreaterThanOrEqual(6);
  });
});

test('--limit spreads the captions over the file (held-out files list 1-, 2-, 3-object scenes in blocks)', () => {
  const all = Array.from({ length: 100 }, (_, i) => i);
  expect(pickEvenly(all, 4)).toEqual([0, 25, 50, 75]);
  expect(pickEvenly(all, undefined)).toBe(all);
  expect(pickEvenly(all, 200)).toBe(all);
});
