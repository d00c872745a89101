import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import Database from 'better-sqlite3';
import { openDatabase, readSqlitePragmas } from '../../src/db/client';
import { checksumOf, migrationsDir, readMigrations } from '../../src/db/migrate';
import { exerciseModels } from './exerciseModels';

describe('SQLite database', () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fisedit-db-'));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('sets WAL, synchronous, busy_timeout and foreign_keys, read back through the client connection', async () => {
    const { db, close } = await openDatabase({ url: `file:${path.join(dir, 'a.db')}` });
    try {
      expect(await readSqlitePragmas(db)).toEqual({ journalMode: 'wal', synchronous: 2, busyTimeout: 5000, foreignKeys: 1 });
    } finally {
      await close();
    }
    const normal = await openDatabase({ url: `file:${path.join(dir, 'a.db')}`, synchronous: 'NORMAL', busyTimeoutMs: 1234 });
    try {
      const p = await readSqlitePragmas(normal.db);
      expect(p.synchronous).toBe(1);
      expect(p.busyTimeout).toBe(1234);
    } finally {
      await normal.close();
    }
  });

  it('applies migrations once and records them as prisma migrate deploy does', async () => {
    const file = path.join(dir, 'b.db');
    const first = await openDatabase({ url: `file:${file}` });
    await first.close();
    const second = await openDatabase({ url: `file:${file}` });
    await second.close();
    const names = readMigrations(migrationsDir('sqlite')).map((m) => m.name);
    expect(first.migrations.applied).toEqual(names);
    expect(second.migrations.applied).toEqual([]);
    expect(second.migrations.alreadyApplied).toEqual(names);

    const raw = new Database(file, { readonly: true });
    const rows = raw.prepare('SELECT * FROM _prisma_migrations ORDER BY migration_name').all() as Record<string, unknown>[];
    raw.close();
    expect(rows.map((r) => r.migration_name)).toEqual(names);
    for (const r of rows) {
      const sql = fs.readFileSync(path.join(migrationsDir('sqlite'), String(r.migration_name), 'migration.sql'), 'utf8');
      expect(r.checksum).toBe(checksumOf(sql));
      expect(r.checksum).toMatch(/^[0-9a-f]{64}$/);
      expect(r.id).toMatch(/^[0-9a-f-]{36}$/);
      expect(r.finished_at).not.toBeNull();
      expect(r.rolled_back_at).toBeNull();
      expect(r.applied_steps_count).toBe(1);
    }
  });

  it('refuses to start when an applied migration changed on disk', async () => {
    const file = path.join(dir, 'c.db');
    (await openDatabase({ url: `file:${file}` })).close();
    const raw = new Database(file);
    raw.prepare('UPDATE _prisma_migrations SET checksum = ?').run('0'.repeat(64));
    raw.close();
    await expect(openDatabase({ url: `file:${file}` })).rejects.toThrow(/changed after it was applied/);
  });

  it('refuses to start after a migration that never finished', async () => {
    const file = path.join(dir, 'd.db');
    (await openDatabase({ url: `file:${file}` })).close();
    const raw = new Database(file);
    raw.prepare('UPDATE _prisma_migrations SET finished_at = NULL').run();
    raw.close();
    await expect(openDatabase({ url: `file:${file}` })).rejects.toThrow(/did not finish/);
  });

  it('round-trips every model, enums and cascades', async () => {
    const { db, close } = await openDatabase({ url: `file:${path.join(dir, 'e.db')}` });
    try {
      await exerciseModels(db);
    } finally {
      await close();
    }
  });
});
