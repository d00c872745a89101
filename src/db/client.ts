// The database factory: picks the driver adapter from the URL (better-sqlite3 for file:, pg for
// postgres://), applies pending migrations, and on SQLite sets the durability pragmas that the Prisma
// adapter leaves at SQLite's defaults (it issues none):
//   journal_mode = WAL      readers never block the writer (persistent in the file)
//   synchronous  = FULL     a committed job/edit survives power loss, not only a process crash
//                           (NORMAL is faster and only loses the last commits on power loss; configurable)
//   busy_timeout = 5000 ms  wait for a lock instead of failing at once
//   foreign_keys = ON       cascades (deleting a subtree deletes its jobs) depend on it
// The rest of the service sees one type, `Db` (the SQLite client's type; the PostgreSQL client has the
// same models and methods, generated from the same model definitions).

import * as fs from 'fs';
import * as path from 'path';
import Database from 'better-sqlite3';
import { PrismaBetterSqlite3 } from '@prisma/adapter-better-sqlite3';
import { PrismaPg } from '@prisma/adapter-pg';
import { Client as PgClient } from 'pg';
import { PrismaClient as SqlitePrismaClient } from '../generated/sqlite/client';
import { PrismaClient as PostgresPrismaClient } from '../generated/postgres/client';
import { DbProvider, parseDatabaseUrl } from './databaseUrl';
import { migratePostgres, migrateSqlite, MigrationReport } from './migrate';

export type Db = SqlitePrismaClient;
export type SqliteSynchronous = 'FULL' | 'NORMAL';

export interface OpenDatabaseOptions {
  /** file:PATH or postgres://…; relative file paths resolve against baseDir. */
  url: string;
  baseDir?: string;
  /** SQLite only; default FULL. */
  synchronous?: SqliteSynchronous;
  /** SQLite only; default 5000. */
  busyTimeoutMs?: number;
  /** Apply pending migrations first (default true). */
  migrate?: boolean;
}

export interface Database {
  db: Db;
  provider: DbProvider;
  migrations: MigrationReport;
  close(): Promise<void>;
}

export async function openDatabase(opts: OpenDatabaseOptions): Promise<Database> {
  const target = parseDatabaseUrl(opts.url, opts.baseDir);
  const migrate = opts.migrate ?? true;
  if (target.provider === 'sqlite') {
    const file = target.location;
    if (file === ':memory:') throw new Error('src/db/client.ts: in-memory SQLite is not supported (migrations run on their own connection); use a temporary file');
    fs.mkdirSync(path.dirname(file), { recursive: true });
    const busyTimeoutMs = opts.busyTimeoutMs ?? 5000;
    // Migrations and the file-level journal mode on a short-lived connection of our own.
    let migrations: MigrationReport = { applied: [], alreadyApplied: [] };
    const raw = new Database(file, { timeout: busyTimeoutMs });
    try {
      raw.pragma('journal_mode = WAL');
      if (migrate) migrations = migrateSqlite(raw);
    } finally {
      raw.close();
    }
    const adapter = new PrismaBetterSqlite3({ url: file, timeout: busyTimeoutMs });
    const db = new SqlitePrismaClient({ adapter });
    // Per-connection settings on the adapter's own (single) connection.
    await db.$executeRawUnsafe(`PRAGMA synchronous = ${opts.synchronous ?? 'FULL'}`);
    await db.$executeRawUnsafe('PRAGMA foreign_keys = ON');
    return { db, provider: 'sqlite', migrations, close: () => db.$disconnect() };
  }
  let migrations: MigrationReport = { applied: [], alreadyApplied: [] };
  if (migrate) {
    const client = new PgClient({ connectionString: target.location });
    await client.connect();
    try {
      migrations = await migratePostgres(client);
    } finally {
      await client.end();
    }
  }
  const pg = new PostgresPrismaClient({ adapter: new PrismaPg({ connectionString: target.location }) });
  return { db: pg as unknown as Db, provider: 'postgresql', migrations, close: () => pg.$disconnect() };
}

export interface SqlitePragmas {
  journalMode: string;
  synchronous: number;
  busyTimeout: number;
  foreignKeys: number;
}

/** Reads the pragmas back through the client's own connection (what the service actually runs with). */
export async function readSqlitePragmas(db: Db): Promise<SqlitePragmas> {
  const one = async (name: string): Promise<unknown> => {
    const rows = (await db.$queryRawUnsafe(`PRAGMA ${name}`)) as Record<string, unknown>[];
    return Object.values(rows[0] ?? {})[0];
  };
  return {
    journalMode: String(await one('journal_mode')),
    synchronous: Number(await one('synchronous')),
    busyTimeout: Number(await one('busy_timeout')),
    foreignKeys: Number(await one('foreign_keys')),
  };
}
