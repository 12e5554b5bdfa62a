/** herald in a Fastify 5 application. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import Fastify from 'fastify';
import { attachUpgrades, createHerald, heraldFastify } from '../../src/mount/index.js';
import { TestWs, call } from '../server/helpers.js';
import { mountContract } from './contract.js';

mountContract('fastify', async (herald, echo) => {
  const app = Fastify();
  await app.register(heraldFastify(herald));
  app.get('/hello', async (_req, reply) => reply.type('text/plain').send('hello from fastify'));
  app.post('/app/echo', async (req) => req.body);
  app.setNotFoundHandler((_req, reply) => {
    void reply.code(404).type('text/plain').send('app: not found');
  });
  attachUpgrades(app.server, echo);
  const base = await app.listen({ port: 0, host: '127.0.0.1' });
  return { base, close: () => app.close() };
});

describe('fastify specifics', () => {
  test('fastify.close() closes herald first (preClose): WebSocket clients get 1001 and close does not hang', async () => {
    const herald = await createHerald({ prefix: '/rt' });
    const app = Fastify();
    await app.register(heraldFastify(herald));
    const base = await app.listen({ port: 0, host: '127.0.0.1' });
    const { ws } = await TestWs.subscribed(`${base}/rt`, 'x');
    await app.close();
    assert.equal((await ws.closed).code, 1001);
    assert.equal(herald.state, 'closed');
  });

  test("at the root, herald takes only its own paths and Fastify's routes and not-found handler keep the rest", async () => {
    const herald = await createHerald();
    const app = Fastify();
    await app.register(heraldFastify(herald));
    app.get('/mine', async () => ({ mine: true }));
    app.setNotFoundHandler((_req, reply) => {
      void reply.code(404).type('text/plain').send('app: not found');
    });
    const base = await app.listen({ port: 0, host: '127.0.0.1' });
    try {
      assert.deepEqual((await call(base, 'GET', '/mine')).json, { mine: true });
      assert.deepEqual((await call(base, 'GET', '/healthz')).json, { status: 'ok' });
      assert.equal((await call(base, 'POST', '/api/publish', { json: { channel: 'c', data: 1 } })).status, 200);
      const missing = await call(base, 'GET', '/api/nothing');
      assert.deepEqual([missing.status, missing.text], [404, 'app: not found']);
    } finally {
      await app.close();
    }
  });
});
