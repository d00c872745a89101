// API tokens: `fse_` + 32 random bytes (base64url). Only sha256(token) is stored, so a leaked database
// does not leak usable tokens; the token itself is printed once, by `fisedit token create`.

import { createHash, randomBytes } from 'crypto';
import type { Db } from '../../db/client';
import type { User } from '../../generated/sqlite/client';
import { BadUserInputError } from '../errors';

export const TOKEN_PREFIX = 'fse_';
const USER_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

export function hashToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

export function newToken(): string {
  return TOKEN_PREFIX + randomBytes(32).toString('base64url');
}

export function checkUserName(name: string): string {
  if (!USER_NAME.test(name)) throw new BadUserInputError('userName', 'must be 1–64 characters of letters, digits, "_", "." or "-", starting with a letter or digit');
  return name;
}

export interface CreatedToken {
  user: User;
  token: string;
  createdUser: boolean;
}

/** Creates the user if needed and a new token for them. */
export async function createToken(db: Db, userName: string, label?: string): Promise<CreatedToken> {
  checkUserName(userName);
  const existing = await db.user.findUnique({ where: { name: userName } });
  const user = existing ?? (await db.user.create({ data: { name: userName } }));
  const token = newToken();
  await db.apiToken.create({ data: { userId: user.id, tokenHash: hashToken(token), label: label ?? null } });
  return { user, token, createdUser: !existing };
}

/** Revokes every token whose hash matches; returns how many. */
export async function revokeToken(db: Db, token: string): Promise<number> {
  const r = await db.apiToken.updateMany({ where: { tokenHash: hashToken(token), revokedAt: null }, data: { revokedAt: new Date() } });
  return r.count;
}

/** How long a revoked token may keep working (README: 10 s): the cache's lifetime and the open sockets' re-check. */
export const DEFAULT_REVOCATION_MS = 10_000;

/**
 * Token → user, with a short in-memory cache so each HTTP request and WebSocket subscribe does not cost a
 * database read. A revoked token stops working within `ttlMs`; open WebSockets are re-checked on that
 * period too (`revokedAmong`, api/socketAuth.ts).
 */
export class TokenAuthenticator {
  private readonly cache = new Map<string, { user: User | null; until: number }>();

  constructor(private readonly db: Db, readonly ttlMs = DEFAULT_REVOCATION_MS, private readonly maxEntries = 10_000) {}

  /** Of these token hashes, those that are revoked or gone now (one query per 500, no cache). */
  async revokedAmong(hashes: string[]): Promise<Set<string>> {
    const out = new Set(hashes);
    for (let i = 0; i < hashes.length; i += 500) {
      const rows = await this.db.apiToken.findMany({ where: { tokenHash: { in: hashes.slice(i, i + 500) } }, select: { tokenHash: true, revokedAt: true } });
      for (const r of rows) if (!r.revokedAt) out.delete(r.tokenHash);
    }
    for (const h of out) this.cache.delete(h);
    return out;
  }

  async authenticate(token: string | undefined | null): Promise<User | null> {
    if (!token || !token.startsWith(TOKEN_PREFIX) || token.length > 200) return null;
    const hash = hashToken(token);
    const now = Date.now();
    const hit = this.cache.get(hash);
    if (hit && hit.until > now) return hit.user;
    const row = await this.db.apiToken.findUnique({ where: { tokenHash: hash }, include: { user: true } });
    const user = row && !row.revokedAt ? row.user : null;
    if (row && user && (!row.lastUsedAt || now - row.lastUsedAt.getTime() > 60_000)) {
      // Bookkeeping only: a failed write (a full disk) must not refuse a valid token, nor wait for it.
      this.db.apiToken.update({ where: { id: row.id }, data: { lastUsedAt: new Date(now) } }).catch(() => undefined);
    }
    if (this.cache.size >= this.maxEntries) this.cache.clear();
    this.cache.set(hash, { user, until: now + this.ttlMs });
    return user;
  }

  forget(): void {
    this.cache.clear();
  }
}

/** `Bearer <token>` (case-insensitive scheme) → token; anything else → null. */
export function bearerToken(header: string | string[] | undefined | null): string | null {
  const v = Array.isArray(header) ? header[0] : header;
  if (typeof v !== 'string') return null;
  const m = /^\s*Bearer\s+(\S+)\s*$/i.exec(v);
  return m ? m[1] : null;
}
