// Serving the built web client: the files with their types and a self-only CSP on pages, a browser's
// GET /graphql gets the explorer while API requests do not, and an unbuilt client says how to build it.
import * as fs from 'fs';
import * as http from 'http';
import type { AddressInfo } from 'net';
import * as os from 'os';
import * as path from 'path';
import { isWebClientPath, serveWebClient, wantsExplorer } from '../../src/api/webClient';

async function serve(dir: string, fn: (url: string) => Promise<void>): Promise<void> {
  const server = http.createServer((req, res) => void serveWebClient(req, res, new URL(req.url!, 'http://x').pathname, dir));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  try {
    await fn(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
  } finally {
    await new Promise((r) => server.close(r));
  }
}

it('serves the built files, pages with a CSP that allows this origin only', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fisedit-web-'));
  fs.writeFileSync(path.join(dir, 'index.html'), '<!doctype html><title>editor</title>');
  fs.writeFileSync(path.join(dir, 'app.js'), 'console.log(1)');
  fs.writeFileSync(path.join(dir, 'explorer.html'), '<!doctype html><title>explorer</title>');
  await serve(dir, async (url) => {
    const page = await fetch(`${url}/`);
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('editor');
    expect(page.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(page.headers.get('content-security-policy')).toMatch(/default-src 'self';.*connect-src 'self'/);
    const js = await fetch(`${url}/app.js`);
    expect(js.headers.get('content-type')).toBe('text/javascript; charset=utf-8');
    expect(js.headers.get('content-security-policy')).toBeNull();
    expect(await (await fetch(`${url}/graphql`)).text()).toContain('explorer');
    expect((await fetch(`${url}/`, { method: 'POST' })).status).toBe(405);
  });
});

it('says how to build the client when it is not built', async () => {
  await serve(path.join(os.tmpdir(), 'fisedit-no-such-dir'), async (url) => {
    const res = await fetch(`${url}/`);
    expect(res.status).toBe(503);
    expect(await res.text()).toContain('npm run build:web');
  });
});

it('gives browsers the explorer at /graphql, never API clients', () => {
  const req = (method: string, accept?: string) => ({ method, headers: accept ? { accept } : {} }) as http.IncomingMessage;
  expect(wantsExplorer(req('GET', 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8'))).toBe(true);
  expect(wantsExplorer(req('GET', 'application/json'))).toBe(false);
  expect(wantsExplorer(req('GET', 'application/graphql-response+json, application/json'))).toBe(false);
  expect(wantsExplorer(req('GET'))).toBe(false);
  expect(wantsExplorer(req('POST', 'text/html'))).toBe(false);
  expect(['/', '/app.js', '/app.css', '/explorer.js', '/explorer.css'].every(isWebClientPath)).toBe(true);
  expect(isWebClientPath('/index.html')).toBe(false);
  expect(isWebClientPath('/../package.json')).toBe(false);
});
