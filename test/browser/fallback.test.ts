/**
 * The client's transport fallback in real Chromium: a page where the WebSocket cannot be used
 * (no `WebSocket` global, a constructor that throws, upgrades refused by a proxy) still
 * subscribes, publishes through the client and receives, over SSE; and where SSE cannot be used
 * either, over long-poll.
 *
 * The client's SSE transport streams with `fetch` (not `EventSource`), so "SSE does not work" is
 * made at the network: the page's `/sse` requests are refused (as by a proxy that blocks them);
 * `EventSource` is removed too, to show the client never needed it.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { startServer, type HeraldServer } from '../../src/server/index.js';
import { TcpProxy } from '../client/proxy.js';
import { assertBrowserReady, chromium, launchChromium, newPage } from './chromium.js';

/** The page's view, kept on `window.state`. */
interface PageState {
  events: { offset: number; data: unknown }[];
  transports: string[];
  errors: string[];
  transportName: string;
  state: string;
}

/**
 * The app under test, as plain page JavaScript: the client with all three transports, one
 * subscription, a publish through the client. Resolves with the publish's answer.
 */
const PAGE_APP = `async (channel) => {
  const state = { events: [], transports: [], errors: [], transportName: '', state: 'new' };
  window.state = state;
  const client = new Herald.HeraldClient({
    url: location.origin,
    transports: ['websocket', 'sse', 'longpoll'],
    reconnect: { minDelay: 20, maxDelay: 200 },
    timeout: 5000,
  });
  window.client = client;
  client.on('connected', (info) => state.transports.push(info.transport));
  client.on('error', (e) => state.errors.push(e.code + ': ' + e.message));
  client.on('state', (s) => {
    state.state = s;
    state.transportName = client.transportName;
  });
  const sub = client.subscribe(channel, { onEvent: (e) => state.events.push({ offset: e.offset, data: e.data }) });
  const subscribed = new Promise((resolve) => sub.once('subscribed', resolve));
  await client.connect();
  await subscribed;
  state.transportName = client.transportName;
  return client.publish(channel, { from: 'page' });
}`;

/** Init scripts: what the page's environment lacks. */
const NO_WEBSOCKET = `Object.defineProperty(window, 'WebSocket', { value: undefined, configurable: true, writable: true });`;
const THROWING_WEBSOCKET = `Object.defineProperty(window, 'WebSocket', {
  value: function WebSocket() { throw new DOMException('WebSockets are disabled', 'SecurityError'); },
  configurable: true, writable: true,
});`;
const NO_EVENTSOURCE = `Object.defineProperty(window, 'EventSource', { value: undefined, configurable: true, writable: true });`;

describe('browser: transport fallback when the WebSocket is unavailable', { skip: chromium.skip, timeout: 90_000 }, () => {
  let browser: Browser | undefined;
  let server: HeraldServer;
  const pageErrors: string[] = [];

  before(async () => {
    assertBrowserReady(true);
    server = await startServer({ port: 0, host: '127.0.0.1' });
    browser = await launchChromium();
  });

  after(async () => {
    await browser?.close();
    await server?.close();
  });

  /**
   * Loads the bundle in a page of `origin`, runs the app, publishes once from the server side,
   * and checks both events arrived over `expected`. `setup` prepares the page before it loads.
   */
  async function receivesAndPublishes(origin: string, channel: string, expected: 'sse' | 'longpoll', setup: (page: Page) => Promise<unknown>): Promise<PageState> {
    const page = await newPage(browser!, pageErrors);
    try {
      await setup(page);
      await page.goto(`${origin}/healthz`);
      await page.addScriptTag({ url: '/herald.js' });
      const ack = (await page.evaluate(`(${PAGE_APP})(${JSON.stringify(channel)})`)) as { channel: string; offset: number };
      assert.deepEqual([ack.channel, ack.offset], [channel, 1], 'the publish through the client was accepted');
      await page.waitForFunction('window.state.events.length >= 1');
      const published = await server.hub.publish(channel, { from: 'server' });
      assert.equal(published.offset, 2);
      await page.waitForFunction('window.state.events.length >= 2');
      await new Promise((r) => setTimeout(r, 100)); // a duplicate would land here
      const state = (await page.evaluate('window.state')) as PageState;
      assert.deepEqual(state.events, [
        { offset: 1, data: { from: 'page' } },
        { offset: 2, data: { from: 'server' } },
      ]);
      assert.equal(state.transportName, expected);
      assert.equal(await page.evaluate('window.client.transportName'), expected);
      assert.equal(state.state, 'connected');
      assert.equal(state.transports.at(-1), expected, 'the connection that worked used the expected transport');
      await page.evaluate('window.client.close()');
      return state;
    } finally {
      await page.close();
    }
  }

  it('no WebSocket global: falls back to SSE, receives its own publish and the server\'s', async () => {
    const state = await receivesAndPublishes(server.url, 'fallback-no-ws', 'sse', (page) => page.addInitScript(NO_WEBSOCKET));
    assert.deepEqual(state.transports, ['sse']);
    assert.deepEqual(pageErrors, []);
  });

  it('a WebSocket constructor that throws: falls back to SSE', async () => {
    const state = await receivesAndPublishes(server.url, 'fallback-ws-throws', 'sse', (page) => page.addInitScript(THROWING_WEBSOCKET));
    assert.deepEqual(state.transports, ['sse']);
    assert.deepEqual(pageErrors, []);
  });

  it('WebSocket upgrades refused by a proxy (403): falls back to SSE', async () => {
    const proxy = await TcpProxy.start(server.port);
    try {
      proxy.blockWebSocket = true;
      const state = await receivesAndPublishes(proxy.url, 'fallback-ws-blocked', 'sse', async () => {});
      assert.deepEqual(state.transports, ['sse']);
      assert.ok(state.errors.length >= 1, 'the failed WebSocket attempt was reported');
    } finally {
      await proxy.close();
    }
    assert.deepEqual(pageErrors, []);
  });

  it('no WebSocket, no EventSource and /sse refused: falls back to long-poll', async () => {
    let refused = 0;
    const state = await receivesAndPublishes(server.url, 'fallback-longpoll', 'longpoll', async (page) => {
      await page.addInitScript(NO_WEBSOCKET + NO_EVENTSOURCE);
      await page.route(
        (url) => url.pathname === '/sse',
        (route) => {
          refused++;
          return route.abort('connectionrefused');
        },
      );
    });
    assert.ok(refused >= 1, 'the client tried SSE first');
    assert.deepEqual(state.transports.filter((t) => t === 'longpoll'), ['longpoll']);
    assert.deepEqual(pageErrors, []);
  });
});
