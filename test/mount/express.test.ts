/** herald in an Express 5 application. */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import express from 'express';
import { attachUpgrades, createHerald, heraldExpress, type Herald } from '../../src/mount/index.js';
import { TestWs, call } from '../server/helpers.js';
import { closeServer, listening } from './app-helpers.js';
import { mountContract } from './contract.js';

mountContract('express', async (herald, echo) => {
  const app = express();
  app.use(heraldExpress(herald));
  app.use(express.json());
  app.get('/hello', (_req, res) => {
    res.type('text/plain').send('hello from express');
  });
  app.post('/app/echo', (req, res) => {
    res.json(req.body);
  });
  app.use((_req, res) => {
    res.status(404).type('text/plain').send('app: not found');
  });
  const server = app.listen(0, '127.0.0.1');
  attachUpgrades(server, herald, echo);
  const base = await listening(server);
  return { base, close: () => closeServer(server) };
});

describe('express specifics', () => {
  const cleanup: (() => Promise<void>)[] = [];
  after(async () => {
    for (const c of cleanup) await c();
  });

  async function start(setup: (app: express.Express, herald: Herald) => void): Promise<{ base: string; herald: Herald }> {
    const herald = await createHerald({ prefix: '/rt' });
    const app = express();
    setup(app, herald);
    const server = app.listen(0, '127.0.0.1');
    attachUpgrades(server, herald);
    const base = await listening(server);
    cleanup.push(async () => {
      await herald.close();
      await closeServer(server);
    });
    return { base, herald };
  }

  test('mounted with a path (app.use("/rt", …)) it still sees the full path and serves', async () => {
    const { base } = await start((app, herald) => app.use('/rt', heraldExpress(herald)));
    assert.deepEqual((await call(base, 'GET', '/rt/healthz')).json, { status: 'ok' });
    const published = await call(base, 'POST', '/rt/api/publish', { json: { channel: 'c', data: 1 } });
    assert.equal(published.status, 200, published.text);
  });

  test('behind a body parser that already read the body, a POST is answered 500 internal saying so, instead of hanging', async () => {
    const { base } = await start((app, herald) => {
      app.use(express.json());
      app.post('/publish', (req, res) => herald.handlers.golongpollPublish(req, res));
      app.use(heraldExpress(herald));
    });
    for (const path of ['/rt/api/publish', '/publish']) {
      const answer = await call(base, 'POST', path, { json: { channel: 'c', category: 'c', data: 1 } });
      assert.equal(answer.status, 500, path);
      assert.equal(answer.json.error.code, 'internal');
      assert.match(answer.json.error.message, /mount herald before body parsers/);
    }
    // GET routes are unaffected.
    assert.equal((await call(base, 'GET', '/rt/healthz')).status, 200);
  });

  test('the WebSocket transport works on the server app.listen() returned once upgrades are attached', async () => {
    const { base } = await start((app, herald) => app.use(heraldExpress(herald)));
    const { ws } = await TestWs.subscribed(`${base}/rt`, 'x');
    ws.ws.close();
    await ws.closed;
  });
});
