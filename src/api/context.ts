// Per-operation context: who is asking (null until authenticated) and the service. Built from the HTTP
// Authorization header or from graphql-ws connectionParams.authorization — the same token, the same check.
import type { User } from '../generated/sqlite/client';
import { UnauthenticatedError } from '../service/errors';
import type { Service } from '../service/service';

export interface ApiContext {
  user: User | null;
  service: Service;
  /** Absolute base for image URLs, e.g. http://127.0.0.1:4000 (no trailing slash). */
  baseUrl: string;
  /** The request id on this operation's log lines (WebSocket operations; HTTP requests carry theirs in the log context). */
  reqId?: string;
}

export function requireUser(ctx: ApiContext): User {
  if (!ctx.user) throw new UnauthenticatedError();
  return ctx.user;
}
