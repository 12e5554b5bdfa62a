/**
 * The demo page (public/index.html) in real Chromium: no CSP violations, event data shown as
 * text (never as HTML), and a clear message when the client bundle is missing. The end-to-end
 * push through the page is in test/browser/push.test.ts.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { chromium as playwright, type Browser, type Page } from 'playwright-core';
import { startServer, type HeraldServer } from '../../src/server/index.js';
import { requireBinary } from '../helpers/require-binary.js';
import { ROOT } from './helpers.js';

const chromiumPath = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const chromium = requireBinary('Chromium', chromiumPath, 'apt-get install -y chromium', { env: 'HERALD_REQUIRE_BROWSER' });

describe('demo page in Chromium', { skip: chromium.skip, timeout: 60_000 }, () => {
  let browser: Browser | undefined;
  let server: HeraldServer;

  before(async () => {
    if (!chromium.available) throw new Error(chromium.failure);
    if (!existsSync(`${ROOT}dist/browser/herald.js`)) throw new Error('dist/browser/herald.js is missing: run `npm run build` (npm test does) before this suite');
    server = await startServer({ port: 0 });
    browser = await playwright.launch({ executablePath: chromiumPath, args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run'], timeout: 30_000 });
  });
  after(async () => {
    await browser?.close();
    await server?.close();
  });

  /** A page that records console errors (CSP violations are reported there) and page errors. */
  async function open(): Promise<{ page: Page; problems: string[] }> {
    const page = await browser!.newPage();
    page.setDefaultTimeout(10_000);
    const problems: string[] = [];
    page.on('console', (m) => {
      if (m.type() === 'error') problems.push(m.text());
    });
    page.on('pageerror', (err) => problems.push(String(err)));
    return { page, problems };
  }

  test('connects under its CSP and shows HTML-looking data as text', async () => {
    const { page, problems } = await open();
    await page.goto(`${server.url}/push`);
    await page.locator('#status').filter({ hasText: /^connected$/ }).waitFor();
    assert.equal(await page.locator('#current-channel').textContent(), 'news');
    // Subscribed once the server lists the page on the channel.
    for (let i = 0; i < 200 && (await server.hub.presence('news')).length === 0; i++) await page.waitForTimeout(10);
    const hostile = '<img src=x onerror="window.pwned=1">';
    await server.hub.publish('news', hostile);
    const item = page.locator('#events li.event').first();
    await item.waitFor();
    assert.equal(await item.textContent(), JSON.stringify(hostile));
    assert.equal(await page.locator('#events img').count(), 0);
    assert.equal(await page.evaluate('window.pwned'), undefined);
    assert.deepEqual(problems, []);
    await page.close();
  });

  test('without the client bundle it says so, and publishing still works', async () => {
    const { page } = await open();
    await page.route('**/herald.js', (route) => route.fulfill({ status: 404, contentType: 'application/json', body: '{"error":{"code":"not_found","message":"x"}}' }));
    await page.goto(`${server.url}/push`);
    await page.locator('#status').filter({ hasText: 'unavailable' }).waitFor();
    assert.match((await page.locator('#message').textContent()) ?? '', /did not load/);
    assert.equal(await page.locator('#subscribe').isDisabled(), true);
    await page.fill('#channel', 'no-bundle');
    await page.fill('#publish-data', 'plain text');
    await page.click('#publish');
    await page.locator('#publish-result').filter({ hasText: 'published to no-bundle at offset 1' }).waitFor();
    const history = await server.hub.history('no-bundle', {});
    assert.equal(history.events[0]!.data, 'plain text');
    await page.close();
  });
});
