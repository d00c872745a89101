// Every image store keeps what it was given, as every other process on the same backing sees it: a
// second store instance (another replica) on the same folder or database reads the first one's files.
// The references are independent decoders (sharp, the PNG text-chunk parser), not the store's encoder.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import sharp from 'sharp';
import type { Database } from '../../../src/db/client';
import { parsePngText } from '../../../src/engine/image/png';
import { DatabaseImageStore } from '../../../src/service/images/databaseImageStore';
import { DirectoryImageStore } from '../../../src/service/images/directoryImageStore';
import { ImageMissingError, ImageStore } from '../../../src/service/images/imageStore';
import { loadSigningKey } from '../../../src/service/images/signedUrls';
import { describeWithService, postgresProbe } from '../../helpers/services';
import { postgresTestDatabase, sqliteTestDatabase, TestDatabase } from '../../helpers/testDatabases';

const W = 40;
const H = 24;
const rgb = Uint8Array.from({ length: W * H * 3 }, (_, i) => (i * 37 + (i >> 5)) & 255);
const mask = Uint8Array.from({ length: W * H }, (_, p) => (p % W < 15 ? 255 : 0));

/** Two store instances over one backing (two replicas), and how to tear it down. */
interface Backing {
  a: ImageStore;
  b: ImageStore;
  done(): Promise<void>;
}

function conformance(name: string, open: () => Promise<Backing>): void {
  describe(name, () => {
    let s: Backing;
    beforeAll(async () => {
      s = await open();
    });
    afterAll(async () => {
      await s?.done();
    });

    it('a result written by one replica reads back on the other, pixels and parameters intact', async () => {
      const files = await s.a.saveResult('tree1', 'node1', rgb, W, H, { prompt: 'a red circle', seed: '7' });
      expect(files).toEqual({ imagePath: 'tree1/node1.png', thumbPath: 'tree1/node1.thumb.webp' });
      const png = await s.b.read(files.imagePath);
      const decoded = await sharp(png).raw().toBuffer({ resolveWithObject: true });
      expect([decoded.info.width, decoded.info.height, decoded.info.channels]).toEqual([W, H, 3]);
      expect(Buffer.compare(decoded.data, Buffer.from(rgb))).toBe(0);
      expect(parsePngText(png)).toMatchObject({ prompt: 'a red circle', seed: '7' });
      const thumb = await sharp(await s.b.read(files.thumbPath)).metadata();
      expect([thumb.format, thumb.width, thumb.height]).toEqual(['webp', W, H]);
    });

    it('masks round-trip as 8-bit grey', async () => {
      const rel = await s.a.saveMask('tree1', 'node2', 'input-mask', mask, W, H);
      expect(rel).toBe('tree1/node2.input-mask.png');
      const grey = await sharp(await s.b.read(rel)).greyscale().raw().toBuffer();
      expect(Buffer.compare(grey, Buffer.from(mask))).toBe(0);
    });

    it('a rewrite replaces the whole file; remove deletes it for every replica; a missing file is a typed error', async () => {
      const rel = await s.a.saveMask('tree1', 'node3', 'mask', mask, W, H);
      const inverted = mask.map((v) => 255 - v);
      await s.b.saveMask('tree1', 'node3', 'mask', inverted, W, H);
      expect(Buffer.compare(await sharp(await s.a.read(rel)).greyscale().raw().toBuffer(), Buffer.from(inverted))).toBe(0);
      await s.b.remove([rel, null, 'tree1/never-written.png']);
      await expect(s.a.read(rel)).rejects.toBeInstanceOf(ImageMissingError);
    });

    it('refuses paths that are not <treeId>/<file>', async () => {
      for (const bad of ['../etc/passwd', 'a/../../b.png', '/abs/x.png', 'a/b/c.png', 'x.png']) await expect(s.a.read(bad)).rejects.toThrow(/is not an image path/);
      await expect(s.a.remove(['../outside.png'])).resolves.toBeUndefined();
    });
  });
}

conformance('DirectoryImageStore (one folder, two replicas)', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fisedit-images-'));
  return { a: new DirectoryImageStore(dir), b: new DirectoryImageStore(dir), done: async () => fs.rmSync(dir, { recursive: true, force: true }) };
});

async function databaseBacking(make: () => Promise<TestDatabase>): Promise<Backing & { dbs: Database[] }> {
  const t = await make();
  const dbs = [await t.open(), await t.open()];
  return {
    dbs,
    a: new DatabaseImageStore(dbs[0].db, dbs[0].provider),
    b: new DatabaseImageStore(dbs[1].db, dbs[1].provider),
    done: async () => {
      for (const d of dbs) await d.close();
      await t.destroy();
    },
  };
}

conformance('DatabaseImageStore on SQLite', () => databaseBacking(async () => sqliteTestDatabase()));

describeWithService(postgresProbe(), 'image stores on PostgreSQL', () => {
  conformance('DatabaseImageStore on PostgreSQL (two connections)', () => databaseBacking(postgresTestDatabase));

  it('stores the bytes as bytea, uncompressed out of line (PNG and WebP are compressed already)', async () => {
    const b = await databaseBacking(postgresTestDatabase);
    try {
      await b.a.saveResult('t', 'n', rgb, W, H, {});
      const rows = await b.dbs[0].db.$queryRawUnsafe<{ t: string; storage: string }[]>(
        `SELECT format_type(a.atttypid, a.atttypmod) AS t, a.attstorage::text AS storage FROM pg_attribute a WHERE a.attrelid = '"ImageFile"'::regclass AND a.attname = 'bytes'`,
      );
      expect(rows).toEqual([{ t: 'bytea', storage: 'e' }]);
    } finally {
      await b.done();
    }
  });

  it('every replica on one database signs image URLs with the same key, created once', async () => {
    const b = await databaseBacking(postgresTestDatabase);
    try {
      const dirs = [0, 1].map(() => fs.mkdtempSync(path.join(os.tmpdir(), 'fisedit-key-')));
      const [k1, k2] = await Promise.all([loadSigningKey(b.dbs[0].db, dirs[0]), loadSigningKey(b.dbs[1].db, dirs[1])]);
      expect(k1.length).toBe(32);
      expect(k2.equals(k1)).toBe(true);
      expect(await b.dbs[0].db.serviceSecret.count()).toBe(1);
    } finally {
      await b.done();
    }
  });
});

it('an installation that kept its key in DATA/url-signing.key keeps it (URLs it issued stay valid)', async () => {
  const t = sqliteTestDatabase();
  const d = await t.open();
  try {
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fisedit-key-'));
    const legacy = 'ab'.repeat(32);
    fs.writeFileSync(path.join(dataDir, 'url-signing.key'), legacy);
    expect((await loadSigningKey(d.db, dataDir)).toString('hex')).toBe(legacy);
    fs.rmSync(path.join(dataDir, 'url-signing.key'));
    expect((await loadSigningKey(d.db, dataDir)).toString('hex')).toBe(legacy); // now from the database
  } finally {
    await d.close();
    await t.destroy();
  }
});
