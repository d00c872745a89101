// Which database a URL names. SQLite is the default (one file under the data dir); PostgreSQL is chosen
// by a postgres:// or postgresql:// URL (DATABASE_URL). Each provider has its own generated client and
// its own migration history (prisma/migrations, prisma/postgres/migrations).

import * as path from 'path';

export type DbProvider = 'sqlite' | 'postgresql';

export interface DatabaseTarget {
  provider: DbProvider;
  /** For SQLite: an absolute file path or ':memory:'. For PostgreSQL: the connection string as given. */
  location: string;
}

export class DatabaseUrlError extends Error {
  constructor(readonly url: string, readonly reason: string) {
    super(`database URL ${JSON.stringify(redactUrl(url))}: ${reason}`);
    this.name = 'DatabaseUrlError';
  }
}

/** The URL with any password replaced, for messages and logs. */
export function redactUrl(url: string): string {
  return url.replace(/\/\/([^:/@]+):[^@/]*@/, '//$1:***@');
}

/**
 * `file:./x.db`, `file:/abs/x.db` or `file::memory:` → SQLite (relative paths against `baseDir`);
 * `postgres://…` / `postgresql://…` → PostgreSQL. Anything else is refused rather than guessed.
 */
export function parseDatabaseUrl(url: string, baseDir: string = process.cwd()): DatabaseTarget {
  if (/^postgres(ql)?:\/\//i.test(url)) return { provider: 'postgresql', location: url };
  if (url.startsWith('file:')) {
    const p = url.slice('file:'.length).replace(/\?.*$/, '');
    if (p === '' ) throw new DatabaseUrlError(url, 'file: URL without a path');
    if (p === ':memory:') return { provider: 'sqlite', location: ':memory:' };
    return { provider: 'sqlite', location: path.resolve(baseDir, p) };
  }
  throw new DatabaseUrlError(url, 'expected file:PATH (SQLite) or postgres://… (PostgreSQL)');
}

/** The default: SQLite file `fisedit.db` in the data dir. */
export function defaultDatabaseUrl(dataDir: string): string {
  return `file:${path.resolve(dataDir, 'fisedit.db')}`;
}
