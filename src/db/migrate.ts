// Applies the committed migration SQL at start-up, keeping Prisma's own bookkeeping table
// (_prisma_migrations) exactly as `prisma migrate deploy` does, so either tool can take over:
//   id (uuid), checksum (sha256 hex of migration.sql), finished_at, migration_name, logs,
//   rolled_back_at, started_at, applied_steps_count.
// Why our own runner: the Prisma CLI needs a native schema-engine binary that is downloaded at install
// time, which offline machines and sandboxes cannot do; the runtime client needs no engine at all.
//
// Rules (those of migrate deploy): migrations apply in folder-name order; an applied migration whose file
// changed is an error (never silently re-run); a migration that started but never finished (a crash
// mid-migration) blocks start-up until someone resolves it.

import { createHash, randomUUID } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import type BetterSqlite3 from 'better-sqlite3';
import type { Client as PgClient } from 'pg';
import { DbProvider } from './databaseUrl';

export class MigrationError extends Error {
  constructor(readonly migration: string, readonly reason: string) {
    super(`migration ${migration}: ${reason}`);
    this.name = 'MigrationError';
  }
}

export interface MigrationFile {
  /** Folder name, e.g. 20261127000000_init. */
  name: string;
  file: string;
  sql: string;
  checksum: string;
}

export interface MigrationReport {
  applied: string[];
  alreadyApplied: string[];
}

/** The repository root: the nearest ancestor of this file holding prisma/schema.prisma (works from src/ and dist/src/). */
export function projectRoot(from: string = __dirname): string {
  for (let dir = from; ; dir = path.dirname(dir)) {
    if (fs.existsSync(path.join(dir, 'prisma', 'schema.prisma'))) return dir;
    if (path.dirname(dir) === dir) throw new Error(`src/db/migrate.ts: no prisma/schema.prisma above ${from}`);
  }
}

export function migrationsDir(provider: DbProvider): string {
  const root = projectRoot();
  return provider === 'sqlite' ? path.join(root, 'prisma', 'migrations') : path.join(root, 'prisma', 'postgres', 'migrations');
}

export function checksumOf(sql: string): string {
  return createHash('sha256').update(sql, 'utf8').digest('hex');
}

export function readMigrations(dir: string): MigrationFile[] {
  if (!fs.existsSync(dir)) throw new MigrationError(dir, 'migrations folder is missing');
  return fs
    .readdirSync(dir, { withFileTypes: true })
    .filter((d) => d.isDirectory())
    .map((d) => d.name)
    .sort()
    .map((name) => {
      const file = path.join(dir, name, 'migration.sql');
      if (!fs.existsSync(file)) throw new MigrationError(name, `${file} is missing`);
      const sql = fs.readFileSync(file, 'utf8');
      return { name, file, sql, checksum: checksumOf(sql) };
    });
}

interface AppliedRow {
  migration_name: string;
  checksum: string;
  finished_at: unknown;
  rolled_back_at: unknown;
}

/** Decide what to run; throws on a changed or half-applied migration. */
export function planMigrations(files: MigrationFile[], rows: AppliedRow[]): { pending: MigrationFile[]; done: string[] } {
  const live = rows.filter((r) => r.rolled_back_at === null || r.rolled_back_at === undefined);
  const known = new Set(files.map((f) => f.name));
  for (const r of live) {
    if (r.finished_at === null || r.finished_at === undefined) {
      throw new MigrationError(r.migration_name, 'started but did not finish (crash during migration?); fix the database, then mark it rolled back or applied with `prisma migrate resolve`');
    }
    if (!known.has(r.migration_name)) {
      throw new MigrationError(r.migration_name, 'is applied in the database but missing from this checkout (database is newer than the code?)');
    }
  }
  const pending: MigrationFile[] = [];
  const done: string[] = [];
  for (const f of files) {
    const row = live.find((r) => r.migration_name === f.name);
    if (!row) pending.push(f);
    else if (row.checksum !== f.checksum) throw new MigrationError(f.name, `${f.file} changed after it was applied (checksum ${row.checksum.slice(0, 12)}… in the database, ${f.checksum.slice(0, 12)}… on disk)`);
    else done.push(f.name);
  }
  return { pending, done };
}

// Prisma's own DDL for the bookkeeping table, per provider.
const SQLITE_TABLE = `CREATE TABLE IF NOT EXISTS "_prisma_migrations" (
    "id"                    TEXT PRIMARY KEY NOT NULL,
    "checksum"              TEXT NOT NULL,
    "finished_at"           DATETIME,
    "migration_name"        TEXT NOT NULL,
    "logs"                  TEXT,
    "rolled_back_at"        DATETIME,
    "started_at"            DATETIME NOT NULL DEFAULT current_timestamp,
    "applied_steps_count"   INTEGER UNSIGNED NOT NULL DEFAULT 0
)`;

const PG_TABLE = `CREATE TABLE IF NOT EXISTS "_prisma_migrations" (
    "id"                    VARCHAR(36) PRIMARY KEY NOT NULL,
    "checksum"              VARCHAR(64) NOT NULL,
    "finished_at"           TIMESTAMPTZ,
    "migration_name"        VARCHAR(255) NOT NULL,
    "logs"                  TEXT,
    "rolled_back_at"        TIMESTAMPTZ,
    "started_at"            TIMESTAMPTZ NOT NULL DEFAULT now(),
    "applied_steps_count"   INTEGER NOT NULL DEFAULT 0
)`;

/** SQLite: one migration per transaction; the bookkeeping row commits with the schema change. */
export function migrateSqlite(db: BetterSqlite3.Database, dir = migrationsDir('sqlite')): MigrationReport {
  db.exec(SQLITE_TABLE);
  const rows = db.prepare('SELECT migration_name, checksum, finished_at, rolled_back_at FROM "_prisma_migrations"').all() as AppliedRow[];
  const { pending, done } = planMigrations(readMigrations(dir), rows);
  const insert = db.prepare(
    'INSERT INTO "_prisma_migrations" (id, checksum, finished_at, migration_name, logs, rolled_back_at, started_at, applied_steps_count) VALUES (?, ?, ?, ?, NULL, NULL, ?, 1)',
  );
  for (const m of pending) {
    const started = Date.now();
    // Prisma stores SQLite timestamps as Unix milliseconds.
    db.transaction(() => {
      db.exec(m.sql);
      insert.run(randomUUID(), m.checksum, Date.now(), m.name, started);
    })();
  }
  return { applied: pending.map((m) => m.name), alreadyApplied: done };
}

/**
 * PostgreSQL: the same, under Prisma's advisory lock (72707369) so two servers starting together do not
 * both migrate; DDL is transactional in PostgreSQL, so a failed migration leaves nothing behind.
 */
export async function migratePostgres(client: PgClient, dir = migrationsDir('postgresql')): Promise<MigrationReport> {
  await client.query('SELECT pg_advisory_lock(72707369)');
  try {
    await client.query(PG_TABLE);
    const rows = (await client.query('SELECT migration_name, checksum, finished_at, rolled_back_at FROM "_prisma_migrations"')).rows as AppliedRow[];
    const { pending, done } = planMigrations(readMigrations(dir), rows);
    for (const m of pending) {
      const started = new Date();
      await client.query('BEGIN');
      try {
        await client.query(m.sql);
        await client.query(
          'INSERT INTO "_prisma_migrations" (id, checksum, finished_at, migration_name, logs, rolled_back_at, started_at, applied_steps_count) VALUES ($1, $2, now(), $3, NULL, NULL, $4, 1)',
          [randomUUID(), m.checksum, m.name, started],
        );
        await client.query('COMMIT');
      } catch (e) {
        await client.query('ROLLBACK');
        throw new MigrationError(m.name, (e as Error).message);
      }
    }
    return { applied: pending.map((m) => m.name), alreadyApplied: done };
  } finally {
    await client.query('SELECT pg_advisory_unlock(72707369)');
  }
}
