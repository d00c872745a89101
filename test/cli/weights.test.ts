// --weights as a user meets it: a root made with int8 weights records them, its edits run them without
// being told (--json says so), an edit asking for other weights than its parent's is refused (exit 2,
// nothing written), and an unknown format is a usage error.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { tempDir, TINY } from '../engine/pipeline/editFixtures';
import { runFisedit, type CliRun } from '../helpers/runCli';

const tmp = tempDir('fisedit-cli-weights-');
const STATE = path.join(tmp, 'state');
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const fisedit = (...args: string[]) => runFisedit(tmp, [...args, '--graph-cache', 'off']);
const json = (r: CliRun) => {
  expect(r.code).toBe(0);
  return JSON.parse(r.stdout);
};
const nodes = () => fs.readdirSync(path.join(STATE, 'nodes')).sort();

describe('fisedit --weights', () => {
  test('an int8 root records its weights and its edits run them', async () => {
    const root = json(await fisedit('generate', '--model', TINY, '--prompt', 'a red circle on the left', '--seed', '4', '--steps', '3', '--state', STATE, '--weights', 'int8', '--out', path.join(tmp, 'a.png'), '--json'));
    expect(root.weights).toBe('int8');
    expect(JSON.parse(fs.readFileSync(path.join(STATE, 'nodes', root.nodeId, 'node.json'), 'utf8')).weights).toBe('int8');
    const edit = json(await fisedit('edit', '--model', TINY, '--state', STATE, '--prompt', 'a blue circle on the left', '--strategy', 'dense', '--out', path.join(tmp, 'b.png'), '--json'));
    expect(edit).toMatchObject({ parentId: root.nodeId, weights: 'int8' });
    expect(JSON.parse(fs.readFileSync(path.join(STATE, 'nodes', edit.nodeId, 'node.json'), 'utf8')).weights).toBe('int8');
  });

  test('an edit with other weights than its parent is refused before anything is written', async () => {
    const before = nodes();
    const r = await fisedit('edit', '--model', TINY, '--state', STATE, '--prompt', 'a green circle on the left', '--weights', 'fp32', '--out', path.join(tmp, 'c.png'));
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/was made with --weights int8; its edits run the same weights/);
    expect(nodes()).toEqual(before);
    expect(fs.existsSync(path.join(tmp, 'c.png'))).toBe(false);
  });

  test('an unknown format is a usage error', async () => {
    const r = await fisedit('generate', '--model', TINY, '--prompt', 'a red circle', '--weights', 'int4', '--out', path.join(tmp, 'd.png'));
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--weights must be one of fp32, int8 \(got "int4"\)/);
  });
});
