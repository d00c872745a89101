// fisedit edit --state without --model edits with the folder the parent was made with (recorded in its
// node.json as modelDir); --model overrides it; a recorded folder that is gone is exit 3 naming it;
// records from before the folder was recorded keep the old rule (default model, or --model).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { tempDir, TINY } from '../engine/pipeline/editFixtures';
import { runFisedit } from '../helpers/runCli';

const tmp = tempDir('fisedit-cli-edit-modeldir-');
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));
const fisedit = (...args: string[]) => runFisedit(tmp, args);

const STATE = path.join(tmp, 'state');
const MODEL = path.join(tmp, 'a', 'tiny-copy');
const MOVED = path.join(tmp, 'b', 'tiny-copy');
let root: string;

const nodeJson = (id: string) => path.join(STATE, 'nodes', id, 'node.json');

describe('fisedit edit uses the model folder its parent was made with', () => {
  beforeAll(async () => {
    fs.cpSync(TINY, MODEL, { recursive: true });
    const g = await fisedit('generate', '--model', MODEL, '--prompt', 'a red circle on the left', '--seed', '4', '--steps', '4', '--state', STATE, '--out', path.join(tmp, 'g.png'), '--json');
    expect(g.code).toBe(0);
    root = JSON.parse(g.stdout).nodeId;
  });

  test('generate records the absolute folder in node.json', () => {
    expect(JSON.parse(fs.readFileSync(nodeJson(root), 'utf8'))).toMatchObject({ model: 'tiny-copy', modelDir: MODEL });
  });

  test('edit without --model loads that folder (the default model would be refused as another model)', async () => {
    const r = await fisedit('edit', '--state', STATE, '--parent', root, '--prompt', 'a blue circle on the left', '--out', path.join(tmp, 'e1.png'), '--json');
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j.model).toBe('tiny-copy');
    // The edit records the folder it ran with too, so an edit of the edit finds it.
    expect(JSON.parse(fs.readFileSync(nodeJson(j.nodeId), 'utf8')).modelDir).toBe(MODEL);
  });

  test('a recorded folder that is gone: exit 3 naming it, state untouched; --model overrides with a copy', async () => {
    fs.mkdirSync(path.dirname(MOVED), { recursive: true });
    fs.renameSync(MODEL, MOVED);
    const before = fs.readdirSync(path.join(STATE, 'nodes')).sort();
    const r = await fisedit('edit', '--state', STATE, '--parent', root, '--prompt', 'a green circle on the left', '--out', path.join(tmp, 'e2.png'));
    expect(r.code).toBe(3);
    expect(r.stderr).toContain(MODEL);
    expect(r.stderr).toMatch(/missing/);
    expect(fs.readdirSync(path.join(STATE, 'nodes')).sort()).toEqual(before);
    const o = await fisedit('edit', '--model', MOVED, '--state', STATE, '--parent', root, '--prompt', 'a green circle on the left', '--out', path.join(tmp, 'e3.png'), '--json');
    expect(o.stderr).toBe('');
    expect(o.code).toBe(0);
    expect(JSON.parse(fs.readFileSync(nodeJson(JSON.parse(o.stdout).nodeId), 'utf8')).modelDir).toBe(MOVED);
  });

  test('a record without modelDir (written before it was recorded) still needs --model for another model', async () => {
    const rec = JSON.parse(fs.readFileSync(nodeJson(root), 'utf8'));
    delete rec.modelDir;
    fs.writeFileSync(nodeJson(root), JSON.stringify(rec, null, 1));
    const r = await fisedit('edit', '--state', STATE, '--parent', root, '--prompt', 'a green circle on the left', '--out', path.join(tmp, 'e4.png'));
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/was made with model "tiny-copy".*pass the parent's model folder/);
    const o = await fisedit('edit', '--model', MOVED, '--state', STATE, '--parent', root, '--prompt', 'a green circle on the left', '--out', path.join(tmp, 'e5.png'));
    expect(o.code).toBe(0);
  });
});
