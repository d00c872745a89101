import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { openDatabase, Database } from '../../../src/db/client';
import { bearerToken, createToken, hashToken, revokeToken, TokenAuthenticator } from '../../../src/service/auth/tokens';

let database: Database;
let dir: string;
beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fisedit-tokens-'));
  database = await openDatabase({ url: `file:${dir}/t.db` });
});
afterAll(async () => {
  await database.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

it('stores only the sha256 of a token and authenticates it', async () => {
  const { token, user, createdUser } = await createToken(database.db, 'ann');
  expect(createdUser).toBe(true);
  const rows = await database.db.apiToken.findMany({ where: { userId: user.id } });
  expect(rows).toHaveLength(1);
  expect(rows[0].tokenHash).toBe(hashToken(token));
  expect(JSON.stringify(rows)).not.toContain(token);
  const auth = new TokenAuthenticator(database.db, 0);
  expect((await auth.authenticate(token))?.name).toBe('ann');
  expect(await auth.authenticate(token.slice(0, -1) + (token.endsWith('A') ? 'B' : 'A'))).toBeNull();
  expect(await auth.authenticate('not-a-token')).toBeNull();
  expect(await auth.authenticate('')).toBeNull();
  // A second token for the same user; both work.
  const second = await createToken(database.db, 'ann');
  expect(second.createdUser).toBe(false);
  expect((await auth.authenticate(second.token))?.id).toBe(user.id);
});

it('stops accepting a revoked token (after the cache period)', async () => {
  const { token } = await createToken(database.db, 'ben');
  const auth = new TokenAuthenticator(database.db, 0);
  expect(await auth.authenticate(token)).not.toBeNull();
  expect(await revokeToken(database.db, token)).toBe(1);
  expect(await auth.authenticate(token)).toBeNull();
  expect(await revokeToken(database.db, token)).toBe(0);
});

it('parses Bearer headers strictly', () => {
  expect(bearerToken('Bearer fse_abc')).toBe('fse_abc');
  expect(bearerToken('bearer   fse_abc  ')).toBe('fse_abc');
  expect(bearerToken('Basic abc')).toBeNull();
  expect(bearerToken('Bearer a b')).toBeNull();
  expect(bearerToken(undefined)).toBeNull();
});
