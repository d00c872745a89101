// The browser side of `fisedit serve`, built into dist/web by src/web/build.ts (during `npm ci`):
//   GET /                      the prompt-tree editor (index.html, app.js, app.css)
//   GET /graphql, Accept: text/html   the GraphQL explorer (GraphiQL, explorer.*); POST /graphql,
//                              GET /graphql for JSON and the WebSocket stay the API's
// Files are read from disk per request (a rebuild shows at once) and sent with a CSP that allows this
// origin only, so a client that tried to load anything from elsewhere would fail in the browser.
import * as fs from 'fs';
import type * as http from 'http';
import * as path from 'path';

export const WEB_DIR = path.join(__dirname, '../../dist/web');

const PAGES: Record<string, { file: string; type: string }> = {
  '/': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/app.js': { file: 'app.js', type: 'text/javascript; charset=utf-8' },
  '/app.css': { file: 'app.css', type: 'text/css; charset=utf-8' },
  '/explorer.js': { file: 'explorer.js', type: 'text/javascript; charset=utf-8' },
  '/explorer.css': { file: 'explorer.css', type: 'text/css; charset=utf-8' },
};
const EXPLORER = { file: 'explorer.html', type: 'text/html; charset=utf-8' };

// Images come from /images (signed URLs) and previews are data: URLs; GraphiQL sets inline styles.
const CSP = "default-src 'self'; img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'; font-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'";

export function isWebClientPath(pathname: string): boolean {
  return Object.hasOwn(PAGES, pathname);
}

/** A browser navigating to /graphql (GET, Accept text/html) gets the explorer; API clients never send that. */
export function wantsExplorer(req: http.IncomingMessage): boolean {
  return req.method === 'GET' && /\btext\/html\b/.test(req.headers.accept ?? '');
}

export async function serveWebClient(req: http.IncomingMessage, res: http.ServerResponse, pathname: string, dir = WEB_DIR): Promise<void> {
  const page = pathname === '/graphql' ? EXPLORER : PAGES[pathname];
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain; charset=utf-8' }).end('use GET\n');
    return;
  }
  let body: Buffer;
  try {
    body = await fs.promises.readFile(path.join(dir, page.file));
  } catch {
    res.writeHead(503, { 'content-type': 'text/plain; charset=utf-8' });
    res.end(`The web client is not built (no ${page.file} in ${dir}): run "npm run build:web". The GraphQL API is at /graphql (POST; WebSocket graphql-transport-ws on the same path) with "Authorization: Bearer <token>".\n`);
    return;
  }
  res.writeHead(200, {
    'content-type': page.type,
    'content-length': body.length,
    'cache-control': 'no-cache',
    'x-content-type-options': 'nosniff',
    ...(page.type.startsWith('text/html') ? { 'content-security-policy': CSP } : {}),
  });
  res.end(req.method === 'HEAD' ? undefined : body);
}
