// Fresh databases for tests: a SQLite file in a temp dir, and (when a server listens) a new PostgreSQL
// database that is dropped afterwards.
import { randomBytes } from 'crypto';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { Client } from 'pg';
import { Database, openDatabase } from '../../src/db/client';
import { PG_URL, postgresAvailable } from './services';

export interface TestDatabase {
  name: string;
  /** The database URL (for createService's databaseUrl). */
  url: string;
  open(): Promise<Database>;
  /** Drops/deletes the database. */
  destroy(): Promise<void>;
}

export function sqliteTestDatabase(): TestDatabase {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fisedit-testdb-'));
  return {
    name: 'SQLite',
    url: `file:${path.join(dir, 'test.db')}`,
    open: () => openDatabase({ url: `file:${path.join(dir, 'test.db')}` }),
    destroy: async () => fs.rmSync(dir, { recursive: true, force: true }),
  };
}

/** A new database on the PostgreSQL server (gate the suite with describeWithService(postgresProbe(), …)). */
export async function postgresTestDatabase(): Promise<TestDatabase> {
  if (!(await postgresAvailable())) throw new Error(`no PostgreSQL server at ${PG_URL}`);
  const dbName = `fisedit_test_${randomBytes(5).toString('hex')}`;
  const admin = new Client({ connectionString: PG_URL });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${dbName}`);
  await admin.end();
  const u = new URL(PG_URL);
  u.pathname = `/${dbName}`;
  return {
    name: 'PostgreSQL',
    url: u.toString(),
    open: () => openDatabase({ url: u.toString() }),
    destroy: async () => {
      const c = new Client({ connectionString: PG_URL });
      await c.connect();
      await c.query(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
      await c.end();
    },
  };
}
