// --graph-cache as a user meets it: the first `generate --state` writes the optimised graphs into
// STATE/graph-cache, the second loads them all from there and draws the same image byte for byte, a
// corrupted entry is reported on stderr and rebuilt, and the option refuses an empty value.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { tempDir, TINY } from '../engine/pipeline/editFixtures';
import { runFisedit, type CliRun } from '../helpers/runCli';

const tmp = tempDir('fisedit-cli-graph-cache-');
const STATE = path.join(tmp, 'state');
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

// No FISEDIT_GRAPH_CACHE from the environment running the tests.
const fisedit = (...args: string[]) => runFisedit(tmp, args, { FISEDIT_GRAPH_CACHE: undefined });
const generate = (out: string, ...more: string[]) =>
  fisedit('generate', '--model', TINY, '--prompt', 'a red circle on the left', '--seed', '4', '--steps', '3', '--state', STATE, '--out', path.join(tmp, out), '--json', ...more);

const json = (r: CliRun) => {
  expect(r.code).toBe(0);
  return JSON.parse(r.stdout);
};

describe('fisedit --graph-cache', () => {
  test('the second call loads every graph from STATE/graph-cache and draws the same image', async () => {
    const a = json(await generate('a.png'));
    expect(a.graphCache).toMatchObject({ dir: path.join(STATE, 'graph-cache'), hits: 0, refused: 0 });
    expect(a.graphCache.writes).toBeGreaterThanOrEqual(3);
    const b = json(await generate('b.png'));
    expect(b.graphCache).toMatchObject({ hits: a.graphCache.writes, writes: 0, refused: 0 });
    expect(fs.readFileSync(path.join(tmp, 'b.png')).equals(fs.readFileSync(path.join(tmp, 'a.png')))).toBe(true);
    const off = json(await generate('c.png', '--graph-cache', 'off'));
    expect(off.graphCache).toBeNull();
  });

  test('a corrupted entry is reported with its reason and rebuilt; the image is unchanged', async () => {
    const dir = path.join(STATE, 'graph-cache');
    const entry = fs.readdirSync(dir).find((n) => !n.startsWith('.'))!;
    const file = path.join(dir, entry, 'model.onnx');
    const bytes = fs.readFileSync(file);
    bytes[bytes.length - 1] ^= 0xff;
    fs.writeFileSync(file, bytes);
    const r = await generate('d.png');
    const j = json(r);
    expect(r.stderr).toMatch(new RegExp(`generate: graph cache: refused entry ${entry}: model\\.onnx does not match its sha256 \\(corrupt\\); rebuilding it`));
    expect(j.graphCache).toMatchObject({ writes: 1, refused: 1 });
    expect(fs.readFileSync(path.join(tmp, 'd.png')).equals(fs.readFileSync(path.join(tmp, 'a.png')))).toBe(true);
  });

  test('an empty --graph-cache is a usage error (exit 2)', async () => {
    const r = await generate('e.png', '--graph-cache', ' ');
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--graph-cache must be a folder or off/);
  });
});
