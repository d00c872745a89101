// `fisedit images copy`: a deployment moving from DATA/images to the database (or a shared folder) takes
// every file its nodes name along, and the service then serves them from the new store alone.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { runImages } from '../../src/cli/images';
import { openDatabase } from '../../src/db/client';
import { DatabaseImageStore } from '../../src/service/images/databaseImageStore';
import { gqlOk, startHarness, waitForStatus } from '../api/harness';

function bufferIo() {
  const out: string[] = [];
  const err: string[] = [];
  return { io: { stdout: { write: (s: string) => out.push(s) }, stderr: { write: (s: string) => err.push(s) } }, out, err };
}

it('copies every file the nodes name into the database; the service then serves them from there', async () => {
  const h = await startHarness();
  const token = await h.token('alice');
  const { generate: root } = await gqlOk(h.url, 'mutation { generate(input: { prompt: "a red circle", seed: 3, steps: 3 }) { id } }', {}, token);
  await waitForStatus(h.url, token, root.id, ['SUCCEEDED']);
  const { edit } = await gqlOk(h.url, 'mutation($p: ID!) { edit(input: { parentId: $p, prompt: "a green circle" }) { id } }', { p: root.id }, token);
  await waitForStatus(h.url, token, edit.id, ['SUCCEEDED']);
  const dataDir = h.dataDir;
  await h.stop();

  const b = bufferIo();
  expect(await runImages(['copy', '--data', dataDir, '--to-database'], b.io)).toBe(0);
  const db = await openDatabase({ url: `file:${dataDir}/fisedit.db` });
  const nodes = await db.db.node.findMany();
  const paths = nodes.flatMap((n) => [n.imagePath, n.thumbPath, n.maskPath, n.inputMaskPath]).filter((p): p is string => !!p);
  expect(paths.length).toBeGreaterThanOrEqual(4);
  expect(b.out.join('')).toContain(`copied ${paths.length} of ${paths.length} image files`);
  const stored = new DatabaseImageStore(db.db, db.provider);
  for (const rel of paths) expect((await stored.read(rel)).equals(fs.readFileSync(path.join(dataDir, 'images', rel)))).toBe(true);
  await db.close();

  // Without the folder, on the database store: the same bytes over HTTP.
  const original = fs.readFileSync(path.join(dataDir, 'images', nodes[0].imagePath!));
  fs.rmSync(path.join(dataDir, 'images'), { recursive: true });
  const h2 = await startHarness({ dataDir, images: { kind: 'database' } });
  try {
    const r = await fetch(`${h2.url}/images/${nodes[0].id}/image.png`, { headers: { authorization: `Bearer ${token}` } });
    expect(r.status).toBe(200);
    expect(Buffer.from(await r.arrayBuffer()).equals(original)).toBe(true);
  } finally {
    await h2.stop();
  }

  // Back to a folder; a file the source lacks is named and makes it exit 4.
  const db2 = await openDatabase({ url: `file:${dataDir}/fisedit.db` });
  await new DatabaseImageStore(db2.db, db2.provider).remove([paths[0]]);
  await db2.close();
  const shared = fs.mkdtempSync(path.join(os.tmpdir(), 'fisedit-shared-images-'));
  const c = bufferIo();
  expect(await runImages(['copy', '--data', dataDir, '--from-database', '--to-images-dir', shared], c.io)).toBe(4);
  expect(c.out.join('')).toContain(`copied ${paths.length - 1} of ${paths.length}`);
  expect(c.err.join('')).toContain(paths[0]);
  expect(fs.readFileSync(path.join(shared, paths[1])).length).toBeGreaterThan(0);
}, 120_000);

it.each([
  [['copy'], /say where to/],
  [['copy', '--to-database', '--to-images-dir', '/tmp/x'], /not both/],
  [['copy', '--data', '/tmp/d', '--to-images-dir', '/tmp/d/images'], /the same store/],
  [['move', '--to-database'], /unknown action/],
  [['copy', '--to-database', '--bogus'], /Unknown option/],
])('images %j → usage error (exit 2)', async (argv, message) => {
  const b = bufferIo();
  expect(await runImages(argv as string[], b.io)).toBe(2);
  expect(b.err.join('')).toMatch(message);
});
