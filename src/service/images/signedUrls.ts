// Image URLs that work in an <img> tag (which cannot send an Authorization header) without putting the
// API token in the URL: the API signs (user, node, file, expiry) with a server secret. A request for the
// file is then checked twice: the signature (this URL was issued to that user) and the user's CURRENT
// role on the tree (the same check as the API). Requests with a Bearer header need no signature.
// Expiry is rounded up to whole days so a node's URL stays the same for a day (browser caches work).

import { createHmac, randomBytes, timingSafeEqual } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import type { Db } from '../../db/client';

export type ImageKind = 'image.png' | 'thumb.webp' | 'mask.png' | 'input-mask.png';
export const IMAGE_KINDS: readonly ImageKind[] = ['image.png', 'thumb.webp', 'mask.png', 'input-mask.png'];
const DAY_S = 86_400;

const KEY_NAME = 'url-signing-key';

/**
 * The per-installation secret, kept in the database (table ServiceSecret) so that every replica on it
 * signs and verifies alike: a URL one replica issued works on any other. The first process to start
 * creates it; an older installation's <dataDir>/url-signing.key becomes it, so its URLs stay valid.
 */
export async function loadSigningKey(db: Db, dataDir: string): Promise<Buffer> {
  const stored = await db.serviceSecret.findUnique({ where: { name: KEY_NAME } });
  let hex = stored?.value;
  if (!hex) {
    const legacy = path.join(dataDir, 'url-signing.key');
    const candidate = fs.existsSync(legacy) ? fs.readFileSync(legacy, 'utf8').trim() : randomBytes(32).toString('hex');
    try {
      await db.serviceSecret.create({ data: { name: KEY_NAME, value: candidate } });
      hex = candidate;
    } catch {
      // Another process created it first: use theirs.
      hex = (await db.serviceSecret.findUnique({ where: { name: KEY_NAME } }))?.value;
      if (!hex) throw new Error('src/service/images/signedUrls.ts: cannot create or read the URL signing key');
    }
  }
  const key = Buffer.from(hex, 'hex');
  if (key.length < 16) throw new Error(`the URL signing key (ServiceSecret ${KEY_NAME}) must be at least 16 bytes of hex`);
  return key;
}

export class UrlSigner {
  constructor(private readonly key: Buffer, private readonly validDays = 2) {}

  private mac(userId: string, nodeId: string, kind: string, exp: number): string {
    return createHmac('sha256', this.key).update(`${userId}\n${nodeId}\n${kind}\n${exp}`).digest('base64url');
  }

  /** Query string (without "?") for this user and file. */
  sign(userId: string, nodeId: string, kind: ImageKind, nowMs = Date.now()): string {
    const exp = (Math.floor(nowMs / 1000 / DAY_S) + this.validDays) * DAY_S;
    return `u=${encodeURIComponent(userId)}&exp=${exp}&sig=${this.mac(userId, nodeId, kind, exp)}`;
  }

  /** The user id the signature vouches for, or null. */
  verify(params: URLSearchParams, nodeId: string, kind: ImageKind, nowMs = Date.now()): string | null {
    const u = params.get('u');
    const exp = Number(params.get('exp'));
    const sig = params.get('sig');
    if (!u || !sig || !Number.isInteger(exp) || exp * 1000 < nowMs) return null;
    const want = Buffer.from(this.mac(u, nodeId, kind, exp));
    const got = Buffer.from(sig);
    return want.length === got.length && timingSafeEqual(want, got) ? u : null;
  }
}
