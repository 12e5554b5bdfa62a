// Every close code of SPEC §2 the WebSocket transport can produce, and refused upgrades.
import assert from 'node:assert/strict';
import { after, afterEach, describe, test } from 'node:test';
import { TestClient, refusedStatus, startHarness, type Harness } from './helpers.js';

const harnesses: Harness[] = [];
afterEach(async () => {
  await Promise.all(harnesses.splice(0).map((h) => h.stop()));
});
after(async () => {
  await Promise.all(harnesses.splice(0).map((h) => h.stop()));
});

async function harness(options: Parameters<typeof startHarness>[0] = {}): Promise<Harness> {
  const h = await startHarness(options);
  harnesses.push(h);
  return h;
}

describe('WebSocket close codes', () => {
  test('4000 "connect required" for any command before connect', async () => {
    const h = await harness();
    const c = await TestClient.open(h.url);
    c.send({ id: 1, op: 'subscribe', channel: 'news' });
    assert.deepEqual(await c.waitClosed(), { code: 4000, reason: 'connect required' });
    assert.equal(c.messages.length, 0);
  });

  test('4000 "connect timeout" when no connect arrives within connectTimeout', async () => {
    const h = await harness({ transport: { connectTimeout: 150 } });
    const idle = await TestClient.open(h.url);
    const connected = await TestClient.connect(h.url);
    const started = Date.now();
    assert.deepEqual(await idle.waitClosed(2000), { code: 4000, reason: 'connect timeout' });
    assert.ok(Date.now() - started < 1000);
    // A client that connected in time is not affected.
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.deepEqual((await connected.request('ping')).result, {});
  });

  test('4001 after the unauthorized answer to a bad token', async () => {
    const h = await harness({
      hub: {
        hooks: {
          authenticate(token) {
            if (token !== 'good') throw Object.assign(new Error('nope'), { code: 'unauthorized' });
            return { user: 'u' };
          },
        },
      },
    });
    const c = await TestClient.open(h.url);
    assert.equal((await c.request('connect', { token: 'forged' })).error.code, 'unauthorized');
    assert.equal((await c.waitClosed()).code, 4001);
    await h.logged('connection closed', (f) => f.code !== undefined);
    assert.equal(h.transport.connections, 0);
  });

  test('1009 for a frame over 64 KiB while another client keeps receiving events', async () => {
    const h = await harness();
    const other = await TestClient.connect(h.url);
    await other.request('subscribe', { channel: 'news' });
    const big = await TestClient.connect(h.url);
    big.send({ id: 2, op: 'publish', channel: 'news', data: 'x'.repeat(65 * 1024) });
    assert.equal((await big.waitClosed()).code, 1009);
    await h.hub.publish('news', 'still flowing');
    assert.equal((await other.next((m) => m.push === 'event')).event.data, 'still flowing');
    assert.deepEqual(other.events('news').length, 1, 'the oversized publish was never accepted');
  });

  test('4002 with a disconnect push (reconnect: true) when the server API disconnects a client', async () => {
    const h = await harness();
    const c = await TestClient.connect(h.url);
    await c.request('subscribe', { channel: 'news' });
    assert.equal(h.hub.disconnectClient(c.clientId), true);
    const push = await c.next((m) => m.push === 'disconnect');
    assert.deepEqual(push, { push: 'disconnect', code: 4002, reason: 'disconnected by the server', reconnect: true });
    assert.deepEqual(await c.waitClosed(), { code: 4002, reason: 'disconnected by the server' });
    await h.released(c.clientId);
    assert.equal(h.hub.disconnectClient(c.clientId), false, 'unregistered on close');
    assert.equal(h.hub.stats().subscriptions, 0, 'unsubscribed on close');
  });

  test('1001 with a disconnect push on transport.close(), for connected and not yet connected clients', async () => {
    const h = await harness();
    const a = await TestClient.connect(h.url);
    await a.request('subscribe', { channel: 'news' });
    const early = await TestClient.open(h.url);
    await h.transport.close();
    assert.equal(h.transport.connections, 0, 'close() resolves once every socket is gone');
    for (const c of [a, early]) {
      assert.deepEqual(c.messages.at(-1), { push: 'disconnect', code: 1001, reason: 'server shutting down', reconnect: true });
      assert.deepEqual(await c.waitClosed(), { code: 1001, reason: 'server shutting down' });
    }
    assert.equal(await refusedStatus(h.url, {}), 503, 'no new connection after close');
  });

  test('1001 with a disconnect push on hub.close()', async () => {
    const h = await harness();
    const c = await TestClient.connect(h.url);
    await h.hub.close();
    assert.deepEqual(await c.next((m) => m.push === 'disconnect'), { push: 'disconnect', code: 1001, reason: 'server shutting down', reconnect: true });
    assert.equal((await c.waitClosed()).code, 1001);
  });
});

describe('WebSocket upgrade origin check', () => {
  test('by default a cross-origin upgrade gets HTTP 403; same origin and no Origin are accepted', async () => {
    const h = await harness();
    assert.equal(await refusedStatus(h.url, { origin: 'https://evil.example' }), 403);
    const same = await TestClient.connect(h.url, undefined, { origin: h.origin });
    const none = await TestClient.connect(h.url);
    assert.equal(h.transport.connections, 2);
    same.close();
    none.close();
  });

  test('with allowedOrigins only the listed origins may upgrade', async () => {
    const h = await harness({ transport: { allowedOrigins: ['https://app.example'] } });
    assert.equal(await refusedStatus(h.url, { origin: 'https://evil.example' }), 403);
    assert.equal(await refusedStatus(h.url, { origin: h.origin }), 403);
    const ok = await TestClient.connect(h.url, undefined, { origin: 'https://app.example' });
    assert.equal((await ok.request('ping')).result !== undefined, true);
    ok.close();
  });
});
