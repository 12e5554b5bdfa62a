/** Start and graceful shutdown of an in-process server (SPEC §5, §8). */
import assert from 'node:assert/strict';
import { Agent, request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { createServer } from 'node:net';
import { describe, test } from 'node:test';
import { ConfigError, startServer } from '../../src/server/index.js';
import { TestWs, call } from './helpers.js';

describe('start', () => {
  test('the url names the bound address and port; an IPv6 address is in brackets', async (t) => {
    const v4 = await startServer({ port: 0 });
    assert.equal(v4.url, `http://127.0.0.1:${v4.port}`);
    assert.equal(v4.host, '127.0.0.1');
    await v4.close();
    const v6 = await startServer({ host: '::1', port: 0 }).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'EADDRNOTAVAIL' || err.code === 'EAFNOSUPPORT') return undefined;
      throw err;
    });
    if (!v6) return t.skip('no IPv6 loopback here');
    assert.equal(v6.url, `http://[::1]:${v6.port}`);
    assert.equal((await call(v6.url, 'GET', '/healthz')).status, 200);
    await v6.close();
  });

  test('a busy port rejects with EADDRINUSE', async () => {
    const first = await startServer({ port: 0 });
    try {
      await assert.rejects(startServer({ port: first.port }), (err: NodeJS.ErrnoException) => err.code === 'EADDRINUSE');
    } finally {
      await first.close();
    }
  });

  test('a bad option rejects with a ConfigError naming it, before anything listens', async () => {
    await assert.rejects(startServer({ port: 0, maxMessageBytes: 5 }), (err: unknown) => err instanceof ConfigError && err.key === 'maxMessageBytes');
    await assert.rejects(startServer({ port: 0, journal: '/tmp/j', redis: 'redis://127.0.0.1:1' }), (err: unknown) => err instanceof ConfigError && err.key === 'journal');
  });

  test('limits and namespaces from the options reach the hub', async () => {
    const srv = await startServer({ port: 0, maxChannelsPerClient: 2, maxMessageBytes: 4096, namespaces: { cap: { historySize: 2 } } });
    try {
      assert.deepEqual({ ...srv.hub.limits }, { maxEventBytes: 4096, maxChannelsPerClient: 2 });
      for (let i = 0; i < 3; i++) await srv.hub.publish('cap:x', i);
      const h = await call(srv.url, 'GET', '/api/history?channel=cap:x');
      assert.deepEqual(h.json.events.map((e: { data: number }) => e.data), [1, 2]);
      const { ws } = await TestWs.subscribed(srv.url, 'a', 'b');
      await assert.rejects(ws.request('subscribe', { channel: 'c' }), (err: { code?: string }) => err.code === 'limit_exceeded');
      ws.ws.terminate();
    } finally {
      await srv.close();
    }
  });
});

describe('graceful shutdown', () => {
  test('a WebSocket client gets disconnect (reconnect: true) then close 1001, and the port is released', async () => {
    const srv = await startServer({ port: 0 });
    const { ws } = await TestWs.subscribed(srv.url, 'news');
    const started = Date.now();
    await srv.close();
    assert.ok(Date.now() - started < 2_000, `closed in ${Date.now() - started} ms`);
    const push = await ws.next((f) => f.push === 'disconnect');
    assert.deepEqual({ code: push.code, reconnect: push.reconnect }, { code: 1001, reconnect: true });
    assert.equal((await ws.closed).code, 1001);
    // Nothing holds the port any more.
    await new Promise<void>((resolve, reject) => {
      const probe = createServer();
      probe.once('error', reject);
      probe.listen(srv.port, '127.0.0.1', () => probe.close(() => resolve()));
    });
  });

  test('an idle keep-alive connection does not hold the shutdown', async () => {
    const srv = await startServer({ port: 0 });
    const agent = new Agent({ keepAlive: true });
    try {
      await new Promise<void>((resolve, reject) => {
        httpRequest(new URL('/healthz', srv.url), { agent }, (res) => res.resume().on('end', resolve)).on('error', reject).end();
      });
      const started = Date.now();
      await srv.close();
      // node's keep-alive timeout is 5 s: well under it means the idle socket was closed, not waited for.
      assert.ok(Date.now() - started < 1_000, `closed in ${Date.now() - started} ms`);
    } finally {
      agent.destroy();
    }
  });

  test('an in-flight request is answered with connection: close before the server closes', async () => {
    let entered!: () => void;
    const inHook = new Promise<void>((resolve) => (entered = resolve));
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const srv = await startServer({
      port: 0,
      hooks: {
        async beforePublish(_channel, data) {
          entered();
          await gate;
          return data;
        },
      },
    });
    const agent = new Agent({ keepAlive: true });
    const answer = new Promise<{ status: number; headers: IncomingHttpHeaders }>((resolve, reject) => {
      const req = httpRequest(new URL('/api/publish', srv.url), { method: 'POST', agent, headers: { 'content-type': 'application/json' } }, (res) => {
        res.resume().on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers }));
      });
      req.on('error', reject);
      req.end(JSON.stringify({ channel: 'slow', data: 1 }));
    });
    await inHook;
    let closed = false;
    const closing = srv.close().then(() => (closed = true));
    assert.equal(srv.close(), srv.close(), 'close() is idempotent');
    assert.equal(closed, false);
    release();
    const { headers } = await answer;
    assert.equal(headers.connection, 'close');
    await closing;
    agent.destroy();
    await assert.rejects(call(srv.url, 'GET', '/healthz'), /ECONNREFUSED/);
  });
});
