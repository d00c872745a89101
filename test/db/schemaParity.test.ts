// SQLite and PostgreSQL keep separate schema files and migration histories; their models must not drift.
import * as fs from 'fs';
import * as path from 'path';

const root = path.resolve(__dirname, '../..');
const models = (file: string) =>
  fs
    .readFileSync(path.join(root, file), 'utf8')
    .split('\n')
    .filter((l) => !l.trim().startsWith('//'))
    .join('\n')
    .replace(/generator client \{[^}]*\}/, '')
    .replace(/datasource db \{[^}]*\}/, '')
    .trim();

it('prisma/schema.prisma and prisma/postgres/schema.prisma define the same models', () => {
  expect(models('prisma/postgres/schema.prisma')).toBe(models('prisma/schema.prisma'));
});

it('each migration history names its own provider', () => {
  expect(fs.readFileSync(path.join(root, 'prisma/migrations/migration_lock.toml'), 'utf8')).toMatch(/provider = "sqlite"/);
  expect(fs.readFileSync(path.join(root, 'prisma/postgres/migrations/migration_lock.toml'), 'utf8')).toMatch(/provider = "postgresql"/);
});
