/**
 * The golongpoll pattern: each transport's handler on its own, wrapped by the application's own
 * check, on the application's own routes; herald's mounted routes replaced by wrapped ones; extra
 * route sets; the prefix option.
 */
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { after, describe, test } from 'node:test';
import express from 'express';
import WebSocket from 'ws';
import { ConfigError } from '../../src/server/config.js';
import { startServer } from '../../src/server/server.js';
import { attachUpgrades, createHerald, heraldExpress, mount, rejectUpgrade, type Herald, type HeraldHandler, type RouteHandler } from '../../src/mount/index.js';
import { call } from '../server/helpers.js';
import { closeServer, listen, listening } from './app-helpers.js';

const cleanup: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of cleanup.reverse()) await c();
});

async function newHerald(options: Parameters<typeof createHerald>[0] = {}): Promise<Herald> {
  const herald = await createHerald(options);
  cleanup.push(() => herald.close());
  return herald;
}

const authorized = (req: IncomingMessage): boolean => req.headers.authorization === 'Bearer let-me-in';

/** The application's auth check in front of any of herald's handlers. */
function requireAuth(handler: HeraldHandler): RouteHandler {
  return (req, res, url) => {
    if (!authorized(req)) {
      res.writeHead(401, { 'content-type': 'text/plain' }).end('who are you?');
      return;
    }
    return handler(req, res, url);
  };
}

function upgradeStatus(url: string, headers: Record<string, string> = {}): Promise<number> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers });
    ws.once('unexpected-response', (_req, res) => {
      resolve(res.statusCode ?? 0);
      res.resume();
      ws.terminate();
    });
    ws.once('open', () => {
      ws.terminate();
      resolve(101);
    });
    ws.once('error', reject);
  });
}

describe('handlers wrapped by the application', () => {
  test("golongpoll's handlers alone on the application's routes, behind its own auth check (Express)", async () => {
    const herald = await newHerald();
    const app = express();
    const auth: express.RequestHandler = (req, res, next) => (authorized(req) ? next() : res.status(401).send('who are you?'));
    app.get('/events', auth, (req, res) => herald.handlers.golongpollEvents(req, res));
    app.post('/publish', auth, (req, res) => herald.handlers.golongpollPublish(req, res));
    const server = app.listen(0, '127.0.0.1');
    const base = await listening(server);
    cleanup.push(() => closeServer(server));
    const key = { authorization: 'Bearer let-me-in' };

    assert.equal((await call(base, 'POST', '/publish', { json: { category: 'c', data: 1 } })).status, 401);
    const published = await call(base, 'POST', '/publish', { json: { category: 'c', data: 'hello' }, headers: key });
    assert.deepEqual([published.status, published.json], [200, { success: true }]);
    assert.equal((await call(base, 'GET', '/events?category=c&timeout=1&since_time=1')).status, 401);
    const events = await call(base, 'GET', '/events?category=c&timeout=1&since_time=1', { headers: key });
    assert.deepEqual(
      events.json.events.map((e: { data: unknown }) => e.data),
      ['hello'],
    );
  });

  test('a mounted route replaced by a wrapped handler: <prefix>/poll needs the check, the rest is unchanged', async () => {
    const herald = await newHerald({ prefix: '/rt' });
    herald.routes.set('* /poll', requireAuth(herald.handlers.poll));
    const server = createServer((_req, res) => res.writeHead(404).end());
    mount(server, herald);
    const base = await listen(server);
    cleanup.push(() => closeServer(server));

    const denied = await call(base, 'GET', '/rt/poll?channel=a&timeout=1');
    assert.deepEqual([denied.status, denied.text], [401, 'who are you?']);
    // Through to the poll handler: it answers (here, that the timeout is out of range).
    const allowed = await call(base, 'GET', '/rt/poll?channel=a&timeout=999', { headers: { authorization: 'Bearer let-me-in' } });
    assert.deepEqual([allowed.status, allowed.json.error.code], [400, 'bad_request']);
    assert.match(allowed.json.error.message, /"timeout"/);
    assert.equal((await call(base, 'GET', '/rt/healthz')).status, 200);
  });

  test('the WebSocket upgrade wrapped: refused with 401 without the check, served with it', async () => {
    const herald = await newHerald({ prefix: '/rt' });
    herald.upgrades.set('/ws', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      if (!authorized(req)) return rejectUpgrade(socket, 401, 'who are you?');
      herald.handlers.websocket(req, socket, head);
    });
    const server = createServer((_req, res) => res.writeHead(404).end());
    mount(server, herald);
    const base = await listen(server);
    cleanup.push(() => closeServer(server));

    assert.equal(await upgradeStatus(`${base.replace('http', 'ws')}/rt/ws`), 401);
    const ok = new WebSocket(`${base.replace('http', 'ws')}/rt/ws`, { headers: { authorization: 'Bearer let-me-in' } });
    await new Promise<void>((resolve, reject) => {
      ok.once('open', () => resolve());
      ok.once('error', reject);
    });
    ok.close();
  });

  test('handlers.api serves the /api/ route named by the end of any path, with the API key guard', async () => {
    const herald = await newHerald({ apiKey: ['k1'] });
    const server = createServer((req: IncomingMessage, res: ServerResponse) => {
      if (req.url?.startsWith('/admin/')) void herald.handlers.api(req, res);
      else res.writeHead(404).end();
    });
    const base = await listen(server);
    cleanup.push(() => closeServer(server));

    const denied = await call(base, 'POST', '/admin/api/publish', { json: { channel: 'c', data: 1 } });
    assert.deepEqual([denied.status, denied.json.error.code], [401, 'unauthorized']);
    const ok = await call(base, 'POST', '/admin/api/publish', { json: { channel: 'c', data: 1 }, headers: { authorization: 'Bearer k1' } });
    assert.deepEqual([ok.status, ok.json.offset], [200, 1]);
    const stats = await call(base, 'GET', '/admin/api/stats', { headers: { authorization: 'Bearer k1' } });
    assert.equal(stats.json.published, 1);
  });

  test('a handler used alone answers its failures itself (never rejects)', async () => {
    const herald = await newHerald();
    const server = createServer((req, res) => void herald.handlers.poll(req, res));
    const base = await listen(server);
    cleanup.push(() => closeServer(server));
    const bad = await call(base, 'GET', '/whatever?channel=a&timeout=999');
    assert.deepEqual([bad.status, bad.json.error.code], [400, 'bad_request']);
  });
});

describe('createHerald', () => {
  test('extraRoutes add routes and upgrades under the prefix (API guard included) and are closed with herald', async () => {
    let closed = 0;
    const herald = await createHerald({
      prefix: '/rt',
      apiKey: ['k1'],
      extraRoutes: [
        ({ hub }) => ({
          routes: {
            'GET /api/extra': async (_req, res) => {
              res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ channels: (await hub.channelList()).length }));
            },
            'GET /extra/page': (_req, res) => void res.writeHead(200, { 'content-type': 'text/plain' }).end('page'),
          },
          upgrades: { '/extra/ws': (_req, socket) => rejectUpgrade(socket, 418, 'teapot') },
          close: async () => {
            closed++;
          },
        }),
      ],
    });
    const server = createServer((_req, res) => res.writeHead(404).end());
    mount(server, herald);
    const base = await listen(server);
    cleanup.push(() => closeServer(server));

    assert.equal((await call(base, 'GET', '/rt/api/extra')).status, 401, 'the API key guard applies to extra /api/ routes');
    assert.deepEqual((await call(base, 'GET', '/rt/api/extra', { headers: { authorization: 'Bearer k1' } })).json, { channels: 0 });
    assert.equal((await call(base, 'GET', '/rt/extra/page')).text, 'page');
    assert.equal(await upgradeStatus(`${base.replace('http', 'ws')}/rt/extra/ws`), 418);
    await herald.close();
    assert.equal(closed, 1);
  });

  test('at the root it takes only the paths it serves; the application keeps the rest', async () => {
    const herald = await newHerald();
    const app = express();
    app.use(heraldExpress(herald));
    app.get('/', (_req, res) => void res.send('app home'));
    app.get('/api/users', (_req, res) => void res.json(['ann']));
    const server = app.listen(0, '127.0.0.1');
    const base = await listening(server);
    attachUpgrades(server, herald);
    cleanup.push(() => closeServer(server));
    assert.equal((await call(base, 'GET', '/')).text, 'app home', 'no demo page unless asked for');
    assert.deepEqual((await call(base, 'GET', '/api/users')).json, ['ann']);
    assert.equal((await call(base, 'GET', '/api/stats')).status, 200);
    assert.equal(herald.owns({ method: 'GET', url: '/api/users', headers: {} } as IncomingMessage), false);
    assert.equal(herald.owns({ method: 'GET', url: '/api/stats', headers: {} } as IncomingMessage), true);
  });

  test('prefix is normalized ("/rt/" → "/rt", "/" → ""), and a malformed one is a ConfigError naming it', async () => {
    assert.equal((await newHerald({ prefix: '/rt/' })).prefix, '/rt');
    assert.equal((await newHerald({ prefix: '/' })).prefix, '');
    await assert.rejects(createHerald({ prefix: 'rt' }), (err: unknown) => err instanceof ConfigError && err.key === 'prefix');
    await assert.rejects(createHerald({ prefix: '/a?b' }), (err: unknown) => err instanceof ConfigError);
  });

  test('startServer takes the same options: with a prefix its own server answers 404 outside it', async () => {
    const srv = await startServer({ port: 0, prefix: '/rt' });
    cleanup.push(() => srv.close());
    assert.deepEqual((await call(srv.url, 'GET', '/rt/healthz')).json, { status: 'ok' });
    const outside = await call(srv.url, 'GET', '/healthz');
    assert.deepEqual([outside.status, outside.json.error.code], [404, 'not_found']);
    assert.equal(srv.herald.prefix, '/rt');
  });

  test('hooks pass through to the hub', async () => {
    const herald = await newHerald({
      prefix: '/rt',
      hooks: { beforePublish: (_channel, data) => ({ wrapped: data }) },
    });
    const result = await herald.hub.publish('c', 1);
    const history = await herald.hub.history('c', {});
    assert.equal(result.offset, 1);
    assert.deepEqual(history.events[0]!.data, { wrapped: 1 });
  });
});
