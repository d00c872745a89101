// The client's two transports: queries and mutations over HTTP POST, subscriptions over graphql-ws
// (one WebSocket per signed-in session, reconnecting on its own). Errors keep the server's
// extensions.code so the UI can say what went wrong (FORBIDDEN, CONFLICT, ...).
import { createClient, type Client } from 'graphql-ws';

export class GraphqlError extends Error {
  constructor(message: string, readonly code: string) {
    super(message);
  }
}

interface WireError {
  message: string;
  extensions?: { code?: string };
}

function toError(errors: readonly WireError[]): GraphqlError {
  return new GraphqlError(errors.map((e) => e.message).join('; '), errors[0]?.extensions?.code ?? 'INTERNAL_SERVER_ERROR');
}

export interface Sink<T> {
  next(data: T): void;
  error(e: GraphqlError): void;
}

export class GraphqlClient {
  private ws: Client | null = null;

  constructor(private readonly token: string) {}

  async request<T>(query: string, variables: Record<string, unknown> = {}): Promise<T> {
    const res = await fetch('/graphql', {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${this.token}` },
      body: JSON.stringify({ query, variables }),
    });
    let body: { data?: T; errors?: WireError[] };
    try {
      body = await res.json();
    } catch {
      throw new GraphqlError(`server answered ${res.status} without JSON`, 'INTERNAL_SERVER_ERROR');
    }
    if (body.errors?.length) throw toError(body.errors);
    if (!body.data) throw new GraphqlError(`server answered ${res.status} without data`, 'INTERNAL_SERVER_ERROR');
    return body.data;
  }

  /**
   * Subscribes; returns the unsubscribe function. `variables` is sent again on every reconnect, read at
   * that moment (graphql-ws serialises the payload each time it subscribes), so a caller that updates
   * it (treeEvents' afterSeq) resumes where it left off.
   */
  subscribe<T>(query: string, variables: Record<string, unknown>, sink: Sink<T>): () => void {
    return this.socket().subscribe<T>(
      { query, variables },
      {
        next: (r) => {
          if (r.errors?.length) sink.error(toError(r.errors as WireError[]));
          else if (r.data) sink.next(r.data as T);
        },
        error: (e) => sink.error(Array.isArray(e) ? toError(e) : new GraphqlError(describeClose(e), 'CONNECTION_CLOSED')),
        complete: () => {},
      },
    );
  }

  /** Called with true when the WebSocket is up, false when it dropped (it retries on its own). */
  onConnection(listener: (up: boolean) => void): void {
    const ws = this.socket();
    ws.on('connected', () => listener(true));
    ws.on('closed', () => listener(false));
  }

  close(): void {
    void this.ws?.dispose();
    this.ws = null;
  }

  private socket(): Client {
    if (!this.ws) {
      const url = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/graphql`;
      this.ws = createClient({
        url,
        connectionParams: { authorization: `Bearer ${this.token}` },
        lazy: false,
        keepAlive: 10_000,
        retryAttempts: Number.MAX_SAFE_INTEGER,
        // 0.25 s, 0.5 s, 1 s, ... at most 4 s between attempts: a restarted server is found quickly.
        retryWait: (n) => new Promise((r) => setTimeout(r, Math.min(4000, 250 * 2 ** n))),
        // A dropped network is worth retrying; 4403 (token refused) and 4429 (too many sockets) are not.
        shouldRetry: (e) => !(isCloseEvent(e) && (e.code === 4403 || e.code === 4429 || e.code === 4401)),
      });
    }
    return this.ws;
  }
}

function isCloseEvent(e: unknown): e is CloseEvent {
  return typeof e === 'object' && e !== null && 'code' in e;
}

function describeClose(e: unknown): string {
  if (isCloseEvent(e)) return `connection closed (${e.code}${e.reason ? `: ${e.reason}` : ''})`;
  return e instanceof Error ? e.message : 'connection lost';
}
