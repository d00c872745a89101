// PostgreSQL path: its own migration history applied to a fresh database, then every model exercised.
// Skips visibly (the reason in the suite name) when no server listens at FISEDIT_TEST_PG_URL; fails under CI=true.
import { Client } from 'pg';
import { openDatabase } from '../../src/db/client';
import { migrationsDir, readMigrations } from '../../src/db/migrate';
import { exerciseModels } from './exerciseModels';
import { describeWithService, postgresProbe } from '../helpers/services';
import { postgresTestDatabase, type TestDatabase } from '../helpers/testDatabases';

let database: TestDatabase | null = null;
let url = '';

describeWithService(postgresProbe(), 'PostgreSQL database', () => {
  beforeAll(async () => {
    database = await postgresTestDatabase();
    url = database.url;
  });

  afterAll(async () => {
    await database?.destroy();
  });

  it('applies its own migration history once and runs every model', async () => {
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
