import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { DirectorySpillStore } from '../../../src/engine/cache/directorySpillStore';
import { describeSpillStoreConformance } from './spillStoreConformance';

const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'spill-'));

describeSpillStoreConformance('DirectorySpillStore', async () => {
  const dir = tmp();
  return { store: new DirectorySpillStore(path.join(dir, 'not-yet-created')), cleanup: async () => fs.rmSync(dir, { recursive: true, force: true }) };
});

describe('DirectorySpillStore specifics', () => {
  let dir: string;
  beforeEach(() => (dir = tmp()));
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  test('layout is DIR/<node>/node.json and DIR/<node>/step-<n>.page; stray files are ignored', async () => {
    const s = new DirectorySpillStore(dir);
    await s.writeNode('r1', { base: null });
    await s.writePage('r1', 4, Uint8Array.of(1, 2, 3));
    expect(fs.readdirSync(path.join(dir, 'r1')).sort()).toEqual(['node.json', 'step-4.page']);
    fs.writeFileSync(path.join(dir, 'r1', 'step-5.page.tmp-1-2'), 'half');
    fs.writeFileSync(path.join(dir, 'README'), 'not a node');
    fs.mkdirSync(path.join(dir, '.trash'));
    expect(await s.listNodes()).toEqual([{ node: 'r1', meta: { base: null }, pages: [{ step: 4, bytes: 3 }] }]);
  });

  test('unreadable metadata is reported as null, an unreadable page as "unreadable"', async () => {
    const s = new DirectorySpillStore(dir);
    await s.writePage('n', 0, Uint8Array.of(1));
    fs.writeFileSync(path.join(dir, 'n', 'node.json'), '{ not json');
    expect((await s.listNodes())[0].meta).toBeNull();
    fs.mkdirSync(path.join(dir, 'n', 'step-1.page')); // a directory where a page file should be
    const r = await s.readPage('n', 1);
    expect(r).toMatchObject({ ok: false, reason: 'unreadable' });
  });
});
