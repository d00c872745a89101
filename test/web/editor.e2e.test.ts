// The web client end to end in a real headless Chromium against the real server (tiny model): sign in,
// generate with a live progress bar and preview, edit with a painted mask (changed words highlighted),
// branch; a second user in another browser context watches the first one's edits appear live, is
// refused an edit as VIEWER, and misses nothing across a dropped connection. Screenshots of the main
// screens go to out/web-screenshots/.
import * as fs from 'fs';
import * as path from 'path';
import type { Browser, BrowserContext, Page, WebSocketRoute } from 'playwright-core';
import { buildWeb } from '../../src/web/build';
import { NODES_PAGE } from '../../src/web/operations';
import { describeWithChromium, launchChromium } from '../helpers/browser';
import { gqlOk, Harness, startHarness, waitForStatus } from '../api/harness';

const SHOTS = path.join(__dirname, '../../out/web-screenshots');
const ROOT = 'a red circle on the left';
const BLUE = 'a blue circle on the left';
const SQUARE = 'a red square on the left';
const GREEN = 'a green circle on the left';
// Real jobs run beside the rest of the suite on shared cores: generous limits, never sleeps.
const TEST_MS = 300_000;
const ACTION_MS = 60_000;

describeWithChromium('web client in Chromium', () => {
  let h: Harness;
  let browser: Browser;
  let alice: Page;
  let bobContext: BrowserContext;
  let bob: Page;
  const requests: string[] = [];

  beforeAll(async () => {
    await buildWeb(); // the server serves dist/web: test the sources as they are now
    fs.mkdirSync(SHOTS, { recursive: true });
    h = await startHarness();
    browser = await launchChromium();
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 860 } });
    ctx.on('request', (r) => requests.push(r.url()));
    ctx.setDefaultTimeout(ACTION_MS);
    alice = await ctx.newPage();
  }, TEST_MS);
  afterAll(async () => {
    await browser?.close();
    await h?.stop();
  });

  async function signIn(page: Page, token: string): Promise<void> {
    await page.goto(h.url);
    await page.getByLabel('API token').fill(token);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByText(/^Signed in as /).waitFor();
  }

  // Polls a condition on the page (the page's CSP forbids waitForFunction's string evaluation).
  async function until(cond: () => Promise<boolean>, timeoutMs = 60_000): Promise<void> {
    const end = Date.now() + timeoutMs;
    while (!(await cond())) {
      if (Date.now() > end) throw new Error('condition not met in time');
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  const item = (page: Page, prompt: string) => page.getByRole('treeitem', { name: prompt, exact: true });
  const details = (page: Page) => page.locator('#node-details');

  it('serves the editor at / and GraphiQL at /graphql to browsers, with POST /graphql unchanged', async () => {
    const index = await fetch(`${h.url}/`);
    expect(index.status).toBe(200);
    expect(index.headers.get('content-type')).toMatch(/^text\/html/);
    expect(index.headers.get('content-security-policy')).toContain("default-src 'self'");
    const explorer = await fetch(`${h.url}/graphql`, { headers: { accept: 'text/html,application/xhtml+xml' } });
    expect(explorer.status).toBe(200);
    expect(await explorer.text()).toContain('/explorer.js');
    const token = await h.token('carol');
    expect((await gqlOk(h.url, '{ me { name } }', {}, token)).me.name).toBe('carol');

  }, TEST_MS);

  it('refuses a bad token, then signs in, generates and shows the progress bar and previews', async () => {
    await alice.goto(h.url);
    await alice.getByLabel('API token').fill('fse_not-a-token');
    await alice.getByRole('button', { name: 'Sign in' }).click();
    await alice.getByText('That token is not valid (or was revoked).').waitFor();
    await alice.screenshot({ path: path.join(SHOTS, 'sign-in.png') });

    await signIn(alice, await h.token('alice'));
    await alice.getByLabel('Prompt', { exact: true }).fill(ROOT);
    await alice.getByText('Settings for a new tree').click();
    await alice.getByLabel('Seed').fill('42');
    await alice.getByLabel('Steps').fill('60');
    await alice.getByRole('button', { name: 'Generate', exact: true }).click();

    const bar = alice.getByRole('progressbar');
    await bar.waitFor();
    expect(await bar.getAttribute('aria-valuemax')).toBe('60');
    await until(async () => Number(await bar.getAttribute('aria-valuenow')) >= 5); // steps stream in
    const preview = alice.getByRole('img', { name: `Preview of ${ROOT}`, exact: true });
    await preview.waitFor();
    expect(await preview.getAttribute('src')).toMatch(/^data:image\/webp;base64,/);
    await alice.screenshot({ path: path.join(SHOTS, 'generating.png') });

    const image = alice.getByRole('img', { name: ROOT, exact: true });
    await image.waitFor({ timeout: 90_000 });
    await bar.waitFor({ state: 'detached' });
    expect(await image.getAttribute('src')).toContain('/images/');
    expect(await image.evaluate((img: any) => img.naturalWidth)).toBe(32); // loaded, at the model's size
    await expect(details(alice).textContent()).resolves.toMatch(/StatusSUCCEEDED.*ModeDENSE.*seed 42, 60 steps/);
    await item(alice, ROOT).waitFor();
    expect(await alice.getByRole('tree').getByRole('treeitem').count()).toBe(1);
  }, TEST_MS);

  it('edits the selected node with a painted mask (changed words highlighted), then branches', async () => {
    const prompt = alice.getByLabel('Prompt', { exact: true });
    await prompt.fill(BLUE);
    // The words the edit changes, while it is typed:
    await expect(alice.locator('#prompt-changes ins').allTextContents()).resolves.toEqual(['blue']);
    await expect(alice.locator('#prompt-changes del').allTextContents()).resolves.toEqual(['red']);

    await alice.getByLabel('Paint mask on the image').check();
    const mask = alice.getByLabel('Edit mask (paint the area that may change)');
    const box = (await mask.boundingBox())!;
    await alice.mouse.move(box.x + box.width * 0.2, box.y + box.height * 0.3);
    await alice.mouse.down();
    await alice.mouse.move(box.x + box.width * 0.35, box.y + box.height * 0.7, { steps: 8 });
    await alice.mouse.up();
    await alice.getByRole('button', { name: 'Edit', exact: true }).click();

    const child = item(alice, BLUE);
    await child.waitFor();
    expect(await child.getAttribute('aria-selected')).toBe('true');
    await alice.getByRole('img', { name: BLUE, exact: true }).waitFor({ timeout: 90_000 });
    const text = await details(alice).textContent();
    expect(text).toMatch(/StatusSUCCEEDED/);
    expect(text).toMatch(/Mask\d+(\.\d)? % recomputed/);
    await expect(alice.locator('#node-details mark').allTextContents()).resolves.toEqual(['blue']);
    // It sits under the root in the tree.
    await item(alice, ROOT).getByRole('group').getByRole('treeitem', { name: BLUE, exact: true }).waitFor();

    // A branch: a second edit of the root.
    await item(alice, ROOT).locator('.row').first().click();
    await expect(prompt.inputValue()).resolves.toBe(ROOT);
    await prompt.fill(SQUARE);
    await alice.getByLabel('Paint mask on the image').uncheck();
    await alice.getByRole('button', { name: 'Edit', exact: true }).click();
    await alice.getByRole('img', { name: SQUARE, exact: true }).waitFor({ timeout: 90_000 });
    const branches = item(alice, ROOT).getByRole('group').getByRole('treeitem');
    await expect(branches.evaluateAll((els) => els.map((e) => e.getAttribute('aria-label')))).resolves.toEqual([BLUE, SQUARE]);
    await alice.screenshot({ path: path.join(SHOTS, 'editor.png'), fullPage: true });
  }, TEST_MS);

  it("a VIEWER sees the owner's edits live, is refused an edit, and misses nothing across a dropped connection", async () => {
    const bobToken = await h.token('bob');
    await alice.getByLabel('User name').fill('bob');
    await alice.getByLabel('Role').selectOption('VIEWER');
    await alice.getByRole('button', { name: 'Share', exact: true }).click();
    await alice.getByText('bob — viewer').waitFor();

    bobContext = await browser.newContext({ viewport: { width: 1280, height: 860 } });
    // Bob's WebSocket goes through a switch the test can open and close.
    let blocked = false;
    const open: WebSocketRoute[] = [];
    await bobContext.routeWebSocket(/\/graphql$/, (ws) => {
      if (blocked) return void ws.close({ code: 1012, reason: 'test: server away' });
      ws.connectToServer();
      open.push(ws);
    });
    bobContext.setDefaultTimeout(ACTION_MS);
    bob = await bobContext.newPage();
    await signIn(bob, bobToken);
    await item(bob, SQUARE).waitFor();
    await bob.getByText('Your role: VIEWER').waitFor();
    await bob.getByText('Live', { exact: true }).waitFor();

    // Alice edits in her browser; Bob's tree shows it without a reload.
    await item(alice, BLUE).locator('.row').first().click();
    await alice.getByLabel('Prompt', { exact: true }).fill(GREEN);
    await alice.getByRole('button', { name: 'Edit', exact: true }).click();
    await item(bob, GREEN).waitFor();
    await item(bob, GREEN).locator('.row').first().click();
    await bob.getByRole('img', { name: GREEN, exact: true }).waitFor({ timeout: 90_000 });

    // Bob tries an edit: the server refuses, the page says why.
    await bob.getByLabel('Prompt', { exact: true }).fill('a yellow circle on the left');
    await bob.getByRole('button', { name: 'Edit', exact: true }).click();
    await bob.getByRole('alert').filter({ hasText: 'FORBIDDEN' }).waitFor();
    await bob.screenshot({ path: path.join(SHOTS, 'viewer.png'), fullPage: true });

    // Progress streams to Bob too: an edit of Alice's, queued behind a long job of hers, then running.
    const tree = (await gqlOk(h.url, '{ trees { edges { node { id root { id } } } } }', {}, bobToken)).trees.edges[0].node;
    const aliceToken = await h.token('alice');
    const blocker = (await gqlOk(h.url, 'mutation($i: GenerateInput!) { generate(input: $i) { id } }', { i: { prompt: 'a long job ahead', steps: 150 } }, aliceToken)).generate;
    await waitForStatus(h.url, aliceToken, blocker.id, ['RUNNING']);
    const MIDDLE = 'a red circle in the middle';
    await gqlOk(h.url, 'mutation($i: EditInput!) { edit(input: $i) { id } }', { i: { parentId: tree.root.id, prompt: MIDDLE } }, aliceToken);
    await item(bob, MIDDLE).locator('.row').first().click();
    const bar = bob.getByRole('progressbar');
    await bar.waitFor();
    expect(await bar.getAttribute('aria-valuetext')).toMatch(/^Queued/);
    const sawPreview = bob.getByRole('img', { name: `Preview of ${MIDDLE}`, exact: true }).waitFor({ timeout: 90_000 });
    await gqlOk(h.url, 'mutation($id: ID!) { cancelJob(nodeId: $id) { id } }', { id: blocker.id }, aliceToken);
    await sawPreview;
    await until(async () => Number((await bar.getAttribute('aria-valuenow', { timeout: 1000 }).catch(() => '0')) ?? 0) >= 5);
    await bob.getByRole('img', { name: MIDDLE, exact: true }).waitFor({ timeout: 90_000 });

    // The connection drops; while it is down Alice makes an edit; once back, Bob sees it (replayed by afterSeq).
    blocked = true;
    for (const ws of open.splice(0)) await ws.close({ code: 1012, reason: 'test: connection dropped' });
    await bob.getByText('Reconnecting…').waitFor();
    await gqlOk(h.url, 'mutation($i: EditInput!) { edit(input: $i) { id } }', { i: { parentId: tree.root.id, prompt: 'a red circle on the right' } }, aliceToken);
    await new Promise((r) => setTimeout(r, 300));
    expect(await item(bob, 'a red circle on the right').count()).toBe(0);
    blocked = false;
    await item(bob, 'a red circle on the right').waitFor({ timeout: 20_000 });
    await bob.getByText('Live', { exact: true }).waitFor();
  }, TEST_MS);

  it('cancels, retries and deletes a branch; the VIEWER sees the branch go', async () => {
    await alice.getByLabel('Prompt', { exact: true }).fill('a long job to cancel');
    await alice.getByRole('button', { name: 'Generate', exact: true }).click();
    await alice.getByRole('progressbar').waitFor();
    await alice.getByRole('button', { name: 'Cancel', exact: true }).click();
    await alice.getByRole('progressbar').waitFor({ state: 'detached' });
    await expect(details(alice).textContent()).resolves.toMatch(/StatusCANCELLED/);
    await alice.getByRole('button', { name: 'Retry', exact: true }).click();
    await alice.getByRole('progressbar').waitFor();
    await alice.getByRole('img', { name: 'a long job to cancel', exact: true }).waitFor({ timeout: 90_000 });
    await expect(details(alice).textContent()).resolves.toMatch(/StatusSUCCEEDED/);

    // Back to the first tree; delete the branch made while Bob was away (two presses: ask, then delete).
    await alice.getByRole('button', { name: /^a red circle on the left/ }).click();
    const gone = 'a red circle on the right';
    await item(alice, gone).locator('.row').first().click();
    await alice.getByRole('button', { name: 'Delete branch', exact: true }).click();
    await alice.getByRole('button', { name: 'Confirm delete', exact: true }).click();
    await item(alice, gone).waitFor({ state: 'detached' });
    await item(bob, gone).waitFor({ state: 'detached' });
    expect(await item(bob, BLUE).count()).toBe(1);
  }, TEST_MS);

  it('shows every node of a tree larger than one page of Tree.nodes', async () => {
    const token = await h.token('alice');
    const root = (await gqlOk(h.url, 'mutation($i: GenerateInput!) { generate(input: $i) { id } }', { i: { prompt: 'many edits', steps: 1, seed: 1 } }, token)).generate;
    const count = NODES_PAGE + 3; // two pages
    for (let i = 0; i < count; i++) {
      await gqlOk(h.url, 'mutation($i: EditInput!) { edit(input: $i) { id } }', { i: { parentId: root.id, prompt: `many edits ${i}` } }, token);
    }
    await alice.getByRole('button', { name: 'Refresh', exact: true }).click();
    await alice.getByRole('button', { name: /^many edits/ }).click();
    await item(alice, `many edits ${count - 1}`).waitFor();
    expect(await alice.getByRole('tree').getByRole('treeitem').count()).toBe(count + 1);
  }, TEST_MS);

  it('GraphiQL at /graphql has the signed-in token in its headers and runs queries', async () => {
    await alice.goto(`${h.url}/graphql`);
    await alice.locator('.graphiql-container').waitFor();
    await alice.getByText('Headers', { exact: true }).click();
    await alice.locator('.graphiql-editor-tool').getByText(/Bearer fse_/).first().waitFor();
    await alice.getByRole('button', { name: /Execute query/ }).click();
    await alice.locator('.result-window').getByText('"alice"').waitFor();
    await alice.screenshot({ path: path.join(SHOTS, 'explorer.png') });
  }, TEST_MS);

  it('loaded nothing from anywhere but the server', () => {
    const elsewhere = requests.filter((u) => !u.startsWith(h.url) && !u.startsWith('data:') && !u.startsWith(h.wsUrl.replace(/\/graphql$/, '')));
    expect(elsewhere).toEqual([]);
    expect(requests.some((u) => u.endsWith('/app.js'))).toBe(true);
  });
});
