/**
 * The browser end to end: real Chromium (playwright-core), the real server, the built bundle
 * served at /herald.js (`npm run build` first; `npm test` does it).
 *
 * Chromium missing: skipped with "install Chromium: apt-get install -y chromium", unless
 * HERALD_REQUIRE_BROWSER=1 (or HERALD_REQUIRE_BINARIES=1), which makes it fail instead.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { chromium as playwright, type Browser, type Page } from 'playwright-core';
import { startServer, type HeraldServer } from '../../src/server/index.js';
import { TcpProxy } from '../client/proxy.js';
import { requireBinary } from '../helpers/require-binary.js';

const chromiumPath = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const chromium = requireBinary('Chromium', chromiumPath, 'apt-get install -y chromium', { env: 'HERALD_REQUIRE_BROWSER' });
const BUNDLE = new URL('../../dist/browser/herald.js', import.meta.url);

/** The page's view of the client, kept on `window` by the page-side code below. */
interface PageState {
  events: { offset: number; epoch: string; data: unknown }[];
  subscribed: { recovered: boolean; resumed: boolean }[];
  states: string[];
  clientId: string | undefined;
  state: string;
}

/**
 * The app under test, run in the page as plain JavaScript (as a user's page would be; a function
 * passed from this TypeScript file would carry the test compiler's helpers into the page).
 */
const PAGE_APP = `async (channel, transports = ['websocket']) => {
  const state = { events: [], subscribed: [], states: [], clientId: undefined, state: 'new' };
  window.state = state;
  const client = new Herald.HeraldClient({ url: location.origin, transports, reconnect: { minDelay: 20, maxDelay: 200 } });
  window.client = client;
  client.on('state', (s) => {
    state.states.push(s);
    state.state = s;
    state.clientId = client.clientId;
  });
  const sub = client.subscribe(channel, { onEvent: (e) => state.events.push({ offset: e.offset, epoch: e.epoch, data: e.data }) });
  sub.on('subscribed', (info) => state.subscribed.push({ recovered: info.recovered, resumed: info.resumed }));
  const subscribed = new Promise((resolve) => sub.once('subscribed', resolve));
  await client.connect();
  state.clientId = client.clientId;
  await subscribed;
  return client.publish(channel, { from: 'page' });
}`;

describe('browser: push to a real Chromium', { skip: chromium.skip, timeout: 90_000 }, () => {
  let browser: Browser | undefined;
  let server: HeraldServer;
  const pageErrors: string[] = [];

  before(async () => {
    if (!chromium.available) throw new Error(chromium.failure);
    if (!existsSync(BUNDLE)) throw new Error('dist/browser/herald.js is missing: run `npm run build` (npm test does) before this suite');
    server = await startServer({ port: 0, host: '127.0.0.1' });
    browser = await playwright.launch({
      executablePath: chromiumPath,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
      timeout: 30_000,
    });
  });

  after(async () => {
    await browser?.close();
    await server?.close();
  });

  async function newPage(): Promise<Page> {
    const page = await browser!.newPage();
    page.setDefaultTimeout(10_000);
    page.on('pageerror', (err) => pageErrors.push(String(err)));
    return page;
  }

  /** Resolves once the server lists a subscriber on `channel` (its subscribe was answered and is live). */
  async function subscriberOn(channel: string): Promise<void> {
    const deadline = Date.now() + 10_000;
    for (;;) {
      const res = await fetch(`${server.url}/api/presence?channel=${encodeURIComponent(channel)}`);
      const body = (await res.json()) as { clients: unknown[] };
      if (res.status === 200 && body.clients.length > 0) return;
      if (Date.now() > deadline) throw new Error(`no subscriber on ${channel} after 10 s`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  it('the demo page shows an event published with POST /api/publish', async () => {
    const page = await newPage();
    await page.goto(`${server.url}/push`);
    await page.locator('#status').filter({ hasText: 'connected' }).waitFor();
    const channel = 'browser-demo';
    await page.fill('#channel', channel);
    await page.click('#subscribe');
    await subscriberOn(channel);

    // The curl stand-in: the HTTP API, from outside the page.
    const res = await fetch(`${server.url}/api/publish`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ channel, data: { from: 'curl', n: 1 } }),
    });
    assert.equal(res.status, 200);
    const ack = (await res.json()) as { channel: string; offset: number };
    assert.equal(ack.channel, channel);
    assert.equal(ack.offset, 1);

    const item = page.locator('#events li.event');
    await item.first().waitFor();
    assert.equal(await item.count(), 1);
    assert.deepEqual(JSON.parse((await item.first().textContent()) ?? ''), { from: 'curl', n: 1 });

    // And the page's own publish form goes through the same API to the same list.
    await page.fill('#publish-data', '{"from":"form"}');
    await page.click('#publish');
    await item.nth(1).waitFor();
    assert.deepEqual(JSON.parse((await item.nth(1).textContent()) ?? ''), { from: 'form' });
    assert.equal(await page.locator('#status').getAttribute('data-state'), 'connected');
    await page.close();
  });

  it('/herald.js in the page: subscribe, publish through the client, receive; resume after server disconnects with no loss', async () => {
    const page = await newPage();
    // A same-origin page with nothing else on it, then the bundle as the app would load it.
    await page.goto(`${server.url}/healthz`);
    await page.addScriptTag({ url: '/herald.js' });
    const channel = 'browser-client';
    const ack = (await page.evaluate(`(${PAGE_APP})(${JSON.stringify(channel)})`)) as { offset: number };
    assert.equal(ack.offset, 1);
    const read = (): Promise<PageState> => page.evaluate('window.state') as Promise<PageState>;
    await page.waitForFunction('window.state.events.length === 1');
    assert.deepEqual((await read()).events[0]!.data, { from: 'page' });

    // Three server-side disconnects, with events published while the page is away.
    let offset = 1;
    for (let round = 0; round < 3; round++) {
      const { clientId } = await read();
      assert.ok(clientId && server.hub.disconnectClient(clientId), `round ${round}: the page's connection is known to the server`);
      for (let i = 0; i < 40; i++) {
        await server.hub.publish(channel, { round, i });
        offset++;
      }
      await page.waitForFunction(`window.state.state === 'connected' && window.state.events.length >= ${offset} && window.state.subscribed.length >= ${round + 2}`, undefined, { timeout: 10_000 });
    }
    // A little more live traffic after the last resume.
    for (let i = 0; i < 10; i++) await server.hub.publish(channel, { live: i });
    offset += 10;
    await page.waitForFunction(`window.state.events.length >= ${offset}`);
    await new Promise((r) => setTimeout(r, 100)); // a late duplicate would land here
    const state = await read();
    assert.deepEqual(state.events.map((e) => e.offset), Array.from({ length: offset }, (_, i) => i + 1), 'every event once, in order');
    assert.equal(state.subscribed.length, 4);
    assert.ok(state.subscribed.every((s) => s.recovered));
    assert.deepEqual(state.subscribed.map((s) => s.resumed), [false, true, true, true]);
    assert.deepEqual(state.states.slice(0, 5), ['connecting', 'connected', 'disconnected', 'connecting', 'connected']);
    await page.evaluate('window.client.close()');
    await page.close();
    assert.deepEqual(pageErrors, []);
  });

  for (const transport of ['sse', 'longpoll'] as const) {
    it(`/herald.js in the page over ${transport}: subscribe, publish, receive; resume after the connection is cut with no loss`, async () => {
      // Through a TCP proxy, to cut the connections.
      const proxy = await TcpProxy.start(server.port);
      try {
        const page = await newPage();
        await page.goto(`${proxy.url}/healthz`);
        await page.addScriptTag({ url: '/herald.js' });
        const channel = `browser-${transport}`;
        const ack = (await page.evaluate(`(${PAGE_APP})(${JSON.stringify(channel)}, [${JSON.stringify(transport)}])`)) as { offset: number };
        assert.equal(ack.offset, 1);
        await page.waitForFunction('window.state.events.length === 1');
        let offset = 1;
        for (let round = 0; round < 2; round++) {
          assert.ok(proxy.cutAll() >= 1, 'a live connection was cut');
          for (let i = 0; i < 20; i++) {
            await server.hub.publish(channel, { round, i });
            offset++;
          }
          await page.waitForFunction(`window.state.state === 'connected' && window.state.events.length >= ${offset}`, undefined, { timeout: 10_000 });
        }
        await new Promise((r) => setTimeout(r, 100));
        const state = (await page.evaluate('window.state')) as PageState;
        assert.deepEqual(state.events.map((e) => e.offset), Array.from({ length: offset }, (_, i) => i + 1), 'every event once, in order');
        assert.ok(state.subscribed.every((s) => s.recovered));
        // A cut SSE stream ends the connection; a cut poll may instead be retried by Chromium itself (idempotent GET).
        if (transport === 'sse') assert.ok(state.states.includes('disconnected'), 'the cut was noticed');
        await page.evaluate('window.client.close()');
        await page.close();
        assert.deepEqual(pageErrors, []);
      } finally {
        await proxy.close();
      }
    });
  }
});
