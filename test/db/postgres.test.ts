// PostgreSQL path: its own migration history applied to a fresh database, then every model exercised.
// Skips (with the reason in the test name) when no server listens at FISEDIT_TEST_PG_URL.
import { randomBytes } from 'crypto';
import { Client } from 'pg';
import { openDatabase } from '../../src/db/client';
import { migrationsDir, readMigrations } from '../../src/db/migrate';
import { exerciseModels } from './exerciseModels';
import { PG_URL, postgresAvailable } from '../helpers/services';

let available = false;
const dbName = `fisedit_test_${randomBytes(4).toString('hex')}`;
let url = '';

beforeAll(async () => {
  available = await postgresAvailable();
  if (!available) {
    console.warn(`skipping PostgreSQL tests: nothing listens at ${PG_URL}`);
    return;
  }
  const admin = new Client({ connectionString: PG_URL });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${dbName}`);
  await admin.end();
  const u = new URL(PG_URL);
  u.pathname = `/${dbName}`;
  url = u.toString();
});

afterAll(async () => {
  if (!available) return;
  const admin = new Client({ connectionString: PG_URL });
  await admin.connect();
  await admin.query(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
  await admin.end();
});

describe('PostgreSQL database', () => {
  it('applies its own migration history once and runs every model', async () => {
    if (!available) return; // reason printed in beforeAll
    const first = await openDatabase({ url });
    try {
      expect(first.provider).toBe('postgresql');
      expect(first.migrations.applied).toEqual(readMigrations(migrationsDir('postgresql')).map((m) => m.name));
      await exerciseModels(first.db);
    } finally {
      await first.close();
    }
    const second = await openDatabase({ url });
    await second.close();
    expect(second.migrations.applied).toEqual([]);
    const c = new Client({ connectionString: url });
    await c.connect();
    const rows = (await c.query('SELECT migration_name, finished_at, applied_steps_count FROM _prisma_migrations')).rows;
    await c.end();
    expect(rows).toHaveLength(readMigrations(migrationsDir('postgresql')).length);
    expect(rows[0].finished_at).toBeInstanceOf(Date);
  });
});
