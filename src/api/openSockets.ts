// Authenticated WebSockets by user. Two guards live here:
//   - a bound on open sockets per user (a greedy client cannot hold the server's sockets and memory);
//   - revocation: every `periodMs` (the authenticator's revocation bound) the tokens of all open
//     sockets are read again in one query, and a socket whose token was revoked is closed with
//     4401, which ends its subscriptions. Operations on it are refused sooner still: each subscribe
//     re-authenticates through the same cache (server.ts).
import type { WebSocket } from 'ws';
import { hashToken, type TokenAuthenticator } from '../service/auth/tokens';
import { log } from '../service/log';

/** graphql-ws's Unauthorized: the token of this connection was revoked. */
export const CLOSE_REVOKED = 4401;
/** The user has `maxPerUser` sockets open already (graphql-ws uses 4429 for "too many"). */
export const CLOSE_TOO_MANY = 4429;
/** The server is stopping (SIGTERM, a rolling restart): WebSocket 1012 "service restart", which graphql-ws clients retry. */
export const CLOSE_RESTART = 1012;

export class OpenSockets {
  private readonly byUser = new Map<string, Set<WebSocket>>();
  private readonly tokenHash = new Map<WebSocket, string>();
  private timer: NodeJS.Timeout | null = null;
  private checking = false;

  constructor(private readonly auth: TokenAuthenticator, readonly maxPerUser: number) {}

  /** Registers an authenticated socket; false (and nothing registered) when the user is at the bound. */
  add(socket: WebSocket, userId: string, token: string): boolean {
    const mine = this.byUser.get(userId) ?? new Set<WebSocket>();
    if (mine.size >= this.maxPerUser) return false;
    mine.add(socket);
    this.byUser.set(userId, mine);
    this.tokenHash.set(socket, hashToken(token));
    socket.once('close', () => {
      mine.delete(socket);
      if (mine.size === 0 && this.byUser.get(userId) === mine) this.byUser.delete(userId);
      this.tokenHash.delete(socket);
    });
    return true;
  }

  countOf(userId: string): number {
    return this.byUser.get(userId)?.size ?? 0;
  }

  start(periodMs: number): void {
    this.timer = setInterval(() => void this.recheck(), periodMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** Closes every socket whose token is revoked now; returns how many. */
  async recheck(): Promise<number> {
    if (this.checking || this.tokenHash.size === 0) return 0;
    this.checking = true;
    try {
      const revoked = await this.auth.revokedAmong([...new Set(this.tokenHash.values())]);
      let closed = 0;
      for (const [socket, hash] of this.tokenHash) {
        if (!revoked.has(hash)) continue;
        socket.close(CLOSE_REVOKED, 'token revoked');
        closed++;
      }
      return closed;
    } catch (e) {
      log.warn({ err: e }, 'cannot re-check the tokens of open WebSockets; trying again next period');
      return 0;
    } finally {
      this.checking = false;
    }
  }
}
