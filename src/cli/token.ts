// `fisedit token create --user NAME [--data DIR] [--label TEXT]`: creates the user if needed and prints
// a new API token (stdout: the token alone, so `TOKEN=$(fisedit token create --user me)` works).
// `fisedit token revoke --token TOKEN [--data DIR]`. Only the token's sha256 is stored.

import * as path from 'path';
import { openDatabase } from '../db/client';
import { defaultDatabaseUrl } from '../db/databaseUrl';
import { createToken, revokeToken } from '../service/auth/tokens';
import { ServiceError } from '../service/errors';
import type { CliIo } from './commands/io';
import { CliError, EXIT, usageError } from './exitCodes';
import { parseOptions, requireString } from './options';

export const TOKEN_HELP = `Usage: fisedit token create --user NAME [--data DIR] [--database-url URL] [--label TEXT]
       fisedit token revoke --token TOKEN [--data DIR] [--database-url URL]

create  makes the user if needed and prints a new API token on stdout (shown once; only its hash is kept).
revoke  stops a token from working (within 10 s on a running server).
--data defaults to FISEDIT_DATA or ./data; --database-url to DATABASE_URL or the SQLite file in --data.
`;

const SPEC = {
  user: { type: 'string' },
  token: { type: 'string' },
  label: { type: 'string' },
  data: { type: 'string' },
  'database-url': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

const defaultIo: CliIo = { stdout: process.stdout, stderr: process.stderr };

export async function runToken(argv: string[], io: CliIo = defaultIo): Promise<number> {
  try {
    const [action, ...rest] = argv;
    if (action === undefined || action === '--help' || action === '-h' || action === 'help') {
      (action === undefined ? io.stderr : io.stdout).write(TOKEN_HELP);
      return action === undefined ? EXIT.usage : EXIT.ok;
    }
    if (action !== 'create' && action !== 'revoke') throw usageError(`token: unknown action ${JSON.stringify(action)} (create or revoke)`);
    const o = parseOptions(rest, SPEC, 'token');
    if (o.help) {
      io.stdout.write(TOKEN_HELP);
      return EXIT.ok;
    }
    const dataDir = path.resolve(o.data ?? process.env.FISEDIT_DATA ?? 'data');
    const url = o['database-url'] ?? process.env.DATABASE_URL ?? defaultDatabaseUrl(dataDir);
    let database;
    try {
      database = await openDatabase({ url });
    } catch (e) {
      throw new CliError(EXIT.io, `cannot open the database: ${(e as Error).message}`);
    }
    try {
      if (action === 'create') {
        const user = requireString(o.user, 'user', 'token create');
        const r = await createToken(database.db, user, o.label);
        io.stderr.write(`${r.createdUser ? 'created user' : 'user'} ${r.user.name}; new token (shown once):\n`);
        io.stdout.write(`${r.token}\n`);
      } else {
        const n = await revokeToken(database.db, requireString(o.token, 'token', 'token revoke'));
        if (n === 0) throw usageError('token revoke: no such active token');
        io.stderr.write('token revoked\n');
      }
      return EXIT.ok;
    } finally {
      await database.close();
    }
  } catch (e) {
    if (e instanceof ServiceError) {
      io.stderr.write(`fisedit: ${e.message}\n`);
      return EXIT.usage;
    }
    if (e instanceof CliError) {
      io.stderr.write(`fisedit: ${e.message}\n`);
      return e.exitCode;
    }
    throw e;
  }
}
