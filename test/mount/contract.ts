/**
 * The mounting contract, one suite run against every adapter (node:http, Express, Fastify, Koa):
 * herald under `/realtime` of a real application on a real server, next to the application's
 * own routes and its own `herald/sockets` route, with real HTTP and WebSocket clients.
 *
 * Each adapter's test file provides `start`: build the framework's app with
 * - herald mounted (prefix `/realtime`), upgrades included;
 * - `GET /hello` answering the text `hello from <framework>`;
 * - `POST /app/echo` reading a JSON body with the framework's own body parsing, mounted after herald;
 * - the `echo` sockets route on upgrades too;
 * - a not-found handler answering 404 with the text `app: not found`;
 * and listen on 127.0.0.1, port 0.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import WebSocket from 'ws';
import { createHerald, type Herald } from '../../src/mount/index.js';
import { jsonSocket, type SocketRoute } from '../../src/sockets/index.js';
import { TestWs, call } from '../server/helpers.js';
import { SseClient, waitFor } from '../transports/helpers.js';

export interface MountedApp {
  /** http://127.0.0.1:PORT */
  base: string;
  /** Closes the application's server (herald is closed by the suite first). */
  close(): Promise<void>;
}

export type StartApp = (herald: Herald, echo: SocketRoute) => Promise<MountedApp>;

const PREFIX = '/realtime';

function upgradeStatus(url: string, headers: Record<string, string> = {}): Promise<number> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers });
    const timer = setTimeout(() => reject(new Error('no answer to the upgrade')), 3000);
    ws.once('unexpected-response', (_req, res) => {
      clearTimeout(timer);
      resolve(res.statusCode ?? 0);
      res.resume();
      ws.terminate();
    });
    ws.once('open', () => {
      clearTimeout(timer);
      ws.terminate();
      reject(new Error('upgrade was accepted'));
    });
    ws.once('error', () => {});
  });
}

export function mountContract(framework: string, start: StartApp): void {
  describe(`herald mounted in ${framework}`, () => {
    let herald: Herald;
    let app: MountedApp;
    let base: string;
    let rt: string;
    const echo = jsonSocket({ path: '/echo', logLevel: 'silent' }, async (socket) => {
      for await (const msg of socket) await socket.send({ echo: msg });
    });

    before(async () => {
      herald = await createHerald({ prefix: PREFIX });
      app = await start(herald, echo);
      base = app.base;
      rt = `${base}${PREFIX}`;
    });
    after(async () => {
      await herald.close();
      await echo.close();
      await app.close();
    });

    test("the application's own routes, body parsing and not-found handler still work; herald answers under its prefix", async () => {
      const hello = await call(base, 'GET', '/hello');
      assert.equal(hello.status, 200);
      assert.equal(hello.text, `hello from ${framework}`);
      const echoed = await call(base, 'POST', '/app/echo', { json: { a: 1 } });
      assert.equal(echoed.status, 200);
      assert.deepEqual(echoed.json, { a: 1 });
      const missing = await call(base, 'GET', '/nowhere');
      assert.equal(missing.status, 404);
      assert.equal(missing.text, 'app: not found');
      const health = await call(rt, 'GET', `${PREFIX}/healthz`);
      assert.deepEqual([health.status, health.json], [200, { status: 'ok' }]);
      const unknown = await call(base, 'GET', `${PREFIX}/nowhere`);
      assert.equal(unknown.status, 404);
      assert.equal(unknown.json.error.code, 'not_found', "under the prefix, herald's 404");
      assert.equal((await call(base, 'GET', `${PREFIX}/readyz`)).status, 200);
    });

    test('WebSocket at <prefix>/ws: subscribe, then an event published with POST <prefix>/api/publish arrives', async () => {
      const ws = new TestWs(`${rt}/ws`);
      await ws.opened();
      const connected = await ws.request('connect');
      assert.equal(connected.version, 1);
      await ws.request('subscribe', { channel: 'news' });
      const published = await call(base, 'POST', `${PREFIX}/api/publish`, { json: { channel: 'news', data: { n: 1 } } });
      assert.equal(published.status, 200, published.text);
      assert.equal(published.json.offset, 1);
      const push = await ws.next((f) => f.push === 'event');
      assert.deepEqual(push.event.data, { n: 1 });
      // and in: a publish over the socket reaches the HTTP history
      await ws.request('publish', { channel: 'news', data: 'from ws' });
      const history = await call(base, 'GET', `${PREFIX}/api/history?channel=news`);
      assert.deepEqual(
        history.json.events.map((e: { data: unknown }) => e.data),
        [{ n: 1 }, 'from ws'],
      );
      ws.ws.close();
      await ws.closed;
    });

    test('SSE at <prefix>/sse and long-poll at <prefix>/poll receive published events', async () => {
      const sse = new SseClient(base, `${PREFIX}/sse?channel=feed`);
      await waitFor(() => sse.of('ready').length === 1, 3000, 'sse ready');
      assert.equal(sse.status, 200);
      assert.match(String(sse.headers['content-type']), /^text\/event-stream/);
      const polling = call(base, 'GET', `${PREFIX}/poll?channel=feed&timeout=5`);
      // The poll has no cursor: it waits from now. Publish once it is registered.
      await waitFor(() => herald.transports.poll.size === 1, 3000, 'the poll to wait');
      await call(base, 'POST', `${PREFIX}/api/publish`, { json: { channel: 'feed', data: 'x' } });
      await waitFor(() => sse.of('event').length === 1, 3000, 'sse event');
      assert.equal(JSON.parse(sse.of('event')[0]!.data).data, 'x');
      const polled = await polling;
      assert.equal(polled.status, 200);
      assert.deepEqual(
        polled.json.events.map((e: { data: unknown }) => e.data),
        ['x'],
      );
      sse.abort();
      await sse.done;
    });

    test('golongpoll and gpoll endpoints answer under the prefix', async () => {
      const published = await call(base, 'POST', `${PREFIX}/golongpoll/publish`, { json: { category: 'glp', data: 'hi' } });
      assert.equal(published.status, 200, published.text);
      assert.deepEqual(published.json, { success: true });
      const events = await call(base, 'GET', `${PREFIX}/golongpoll/events?category=glp&timeout=1&since_time=1`);
      assert.equal(events.status, 200);
      assert.deepEqual(
        events.json.events.map((e: { data: unknown; category: string }) => [e.category, e.data]),
        [['glp', 'hi']],
      );
      const gp = await call(base, 'GET', `${PREFIX}/gpoll?client-id=0`);
      assert.equal(gp.status, 200);
      assert.match(gp.json['client-id'], /^\d+\$[0-9a-f-]{36}$/);
    });

    test('the browser client is served at <prefix>/herald.js (or herald says it is not built)', async () => {
      const js = await call(base, 'GET', `${PREFIX}/herald.js`);
      if (js.status === 200) assert.match(String(js.headers['content-type']), /^text\/javascript/);
      else assert.deepEqual([js.status, js.json.error.message], [404, 'the browser client is not built: run npm run build']);
    });

    test('a cross-origin upgrade is refused with 403, a 66 KiB frame closes 1009, an unknown upgrade path gets 404', async () => {
      assert.equal(await upgradeStatus(`${rt}/ws`.replace(/^http/, 'ws'), { origin: 'https://evil.example' }), 403);
      const ws = new TestWs(`${rt}/ws`);
      await ws.opened();
      ws.ws.send('x'.repeat(66 * 1024));
      assert.equal((await ws.closed).code, 1009);
      assert.equal(await upgradeStatus(`${base}/nowhere`.replace(/^http/, 'ws')), 404);
    });

    test("the application's own herald/sockets route shares the server's upgrades", async () => {
      const ws = new WebSocket(`${base}/echo`.replace(/^http/, 'ws'));
      const reply = await new Promise<unknown>((resolve, reject) => {
        ws.once('open', () => ws.send('{"ping":1}'));
        ws.once('message', (d) => resolve(JSON.parse(d.toString())));
        ws.once('error', reject);
      });
      assert.deepEqual(reply, { echo: { ping: 1 } });
      ws.close();
    });

    test('herald.close() sends WebSocket clients disconnect then 1001, and later upgrades are refused', async () => {
      const { ws } = await TestWs.subscribed(rt, 'bye');
      await herald.close();
      const push = await ws.next((f) => f.push === 'disconnect');
      assert.deepEqual([push.code, push.reconnect], [1001, true]);
      assert.equal((await ws.closed).code, 1001);
      assert.equal(herald.state, 'closed');
      assert.equal(await upgradeStatus(`${rt}/ws`.replace(/^http/, 'ws')), 503);
    });
  });
}
