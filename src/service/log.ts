// Structured server logs: one JSON object per line (pino), on stderr. Every line written while a request
// is handled carries that request's id (`reqId`): the HTTP server and graphql-ws run each request inside
// `withRequestId`, and the logger's mixin reads the id from AsyncLocalStorage, so service code logs
// through `log` and gets the id without passing it along. Level: FISEDIT_LOG_LEVEL (default info).
import { AsyncLocalStorage } from 'async_hooks';
import pino, { type DestinationStream, type Logger } from 'pino';

export type { Logger };

const current = new AsyncLocalStorage<{ reqId: string }>();

/** Runs fn with `reqId` on every log line it (and whatever it awaits) writes. */
export function withRequestId<T>(reqId: string, fn: () => T): T {
  return current.run({ reqId }, fn);
}

export function currentRequestId(): string | undefined {
  return current.getStore()?.reqId;
}

export function createLogger(opts: { level?: string; destination?: DestinationStream } = {}): Logger {
  return pino(
    {
      level: opts.level ?? process.env.FISEDIT_LOG_LEVEL ?? 'info',
      mixin: () => {
        const reqId = current.getStore()?.reqId;
        return reqId ? { reqId } : {};
      },
    },
    // Synchronous: the line about a crash must not be lost with the process.
    opts.destination ?? pino.destination({ fd: 2, sync: true }),
  );
}

/** The process's logger (a live binding: `setLogger` replaces it for every module). */
export let log: Logger = createLogger();

/** Replaces the process's logger; returns the previous one (tests capture lines this way). */
export function setLogger(next: Logger): Logger {
  const previous = log;
  log = next;
  return previous;
}
