/**
 * Rate and connection limits (transports/limits.ts): a client over its rate gets `rate_limited`
 * answers and, if it keeps on, disconnect 4029; others are unaffected; an address gets at most
 * its share of connections and requests on every transport.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import WebSocket from 'ws';
import { TokenBucket, TransportLimits, addressKey, MAX_REFUSALS } from '../../src/transports/limits.js';
import { TestClient, type Msg } from '../websocket/helpers.js';
import { ManualClock, fetchRaw, json, startSecure, until, type SecureServer } from './helpers.js';

const OPEN = { anonymousSubscribe: true, anonymousPublish: true };

function wsUrl(srv: SecureServer): string {
  return `${srv.url.replace(/^http/, 'ws')}/ws`;
}

/** Status of an upgrade: 101 when accepted (the socket is closed right away). */
function upgradeStatus(url: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    ws.once('unexpected-response', (_req, res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      ws.on('error', () => {});
    });
    ws.once('open', () => {
      ws.close();
      resolve({ status: 101, body: '' });
    });
    ws.once('error', (err) => reject(err));
  });
}

describe('token bucket and address keys', () => {
  test('a bucket allows its burst, then its rate', () => {
    const b = new TokenBucket(10, 20, 0);
    let ok = 0;
    for (let i = 0; i < 50; i++) if (b.take(0)) ok++;
    assert.equal(ok, 20);
    assert.equal(b.take(50), false, 'half a token after 50 ms');
    assert.equal(b.take(100), true, 'one token per 100 ms');
    assert.equal(b.waitMs(100), 100);
    assert.equal(b.full(100_000), true);
  });

  test('IPv4 as is, IPv4-mapped IPv6 as IPv4, IPv6 by /64', () => {
    assert.equal(addressKey('203.0.113.7'), '203.0.113.7');
    assert.equal(addressKey('::ffff:203.0.113.7'), '203.0.113.7');
    assert.equal(addressKey('2001:db8:1:2:3:4:5:6'), '2001:db8:1:2::/64');
    assert.equal(addressKey('2001:0db8:0001:0002::9'), '2001:db8:1:2::/64');
    assert.equal(addressKey('2001:db8::1'), '2001:db8:0:0::/64');
    assert.equal(addressKey('2001:DB8:1:2::1%eth0'), '2001:db8:1:2::/64');
    assert.equal(addressKey('::1'), '0:0:0:0::/64');
    assert.equal(addressKey(undefined), 'unknown');
  });

  test('options are checked', () => {
    assert.throws(() => new TransportLimits({ commandRate: -1 }), /commandRate/);
    assert.throws(() => new TransportLimits({ bogus: 1 } as never), /unknown option "bogus"/);
    assert.equal(new TransportLimits().options.maxConnectionsPerIp, 1000);
  });
});

describe('WebSocket rate limits', () => {
  test('a flooding client gets rate_limited answers, then disconnect 4029; a well-behaved client is unaffected', async () => {
    const srv = await startSecure({ namespaceBase: OPEN, limits: { commandRate: 10, ipCommandRate: 0 } });
    try {
      const good = await TestClient.connect(wsUrl(srv));
      assert.ok((await good.request('subscribe', { channel: 'calm' })).result);
      const flood = await TestClient.connect(wsUrl(srv));
      for (let i = 0; i < 500; i++) flood.fire('ping');
      const closed = await flood.waitClosed();
      assert.deepEqual(closed, { code: 4029, reason: 'rate limited' });
      const answers = flood.messages.filter((m) => typeof m.id === 'number');
      const okIds = answers.filter((m) => m.result).map((m) => m.id as number);
      const limited = answers.filter((m) => m.error?.code === 'rate_limited');
      // connect took one token of the burst of 20 (and the bucket refills at 10/s meanwhile).
      assert.ok(okIds.length >= 19 && okIds.length <= 22, `answered: ${okIds.length}`);
      assert.equal(limited.length, MAX_REFUSALS + 1);
      assert.ok(limited.every((m) => typeof m.id === 'number' && /slow down/.test(m.error.message)), 'each refusal carries its id');
      assert.deepEqual(flood.messages.at(-1), { push: 'disconnect', code: 4029, reason: 'rate limited', reconnect: true });

      // Meanwhile and afterwards, the other client is served normally.
      for (let i = 0; i < 5; i++) {
        await srv.hub.publish('calm', i);
        assert.ok((await good.request('ping')).result);
      }
      await good.next((m) => m.push === 'event' && m.event.data === 4);
      assert.deepEqual(good.events('calm').map((e) => e.data), [0, 1, 2, 3, 4]);
      assert.ok(!good.messages.some((m: Msg) => m.error), 'no error for the calm client');
      good.close();
    } finally {
      await srv.close();
    }
  });

  test('a burst over the rate is refused, not punished: after a pause the client is served again', async () => {
    const clock = new ManualClock();
    const srv = await startSecure({ namespaceBase: OPEN, limits: { commandRate: 10, ipCommandRate: 0 }, clock: clock.now });
    try {
      const c = await TestClient.connect(wsUrl(srv));
      const ids = Array.from({ length: 30 }, () => c.fire('ping'));
      const answers = await Promise.all(ids.map((id) => c.next((m) => m.id === id)));
      const served = answers.filter((a) => a.result).length;
      assert.ok(served >= 19 && served <= 22, `served ${served}`);
      assert.equal(answers.filter((a) => a.error?.code === 'rate_limited').length, 30 - served);
      clock.advance(1100);
      for (let i = 0; i < 5; i++) assert.ok((await c.request('ping')).result);
      assert.ok(c.isOpen);
      c.close();
    } finally {
      await srv.close();
    }
  });

  test('a client that stays over its rate past the grace period is closed 4029 even below the refusal count', async () => {
    const srv = await startSecure({ namespaceBase: OPEN, limits: { commandRate: 10, ipCommandRate: 0, rateLimitGraceMs: 500 } });
    try {
      const c = await TestClient.connect(wsUrl(srv));
      const started = Date.now();
      const timer = setInterval(() => c.isOpen && c.fire('ping'), 20);
      try {
        assert.equal((await c.waitClosed(5000)).code, 4029);
      } finally {
        clearInterval(timer);
      }
      const refused = c.messages.filter((m) => m.error?.code === 'rate_limited').length;
      assert.ok(refused < MAX_REFUSALS, `closed by time, after ${refused} refusals`);
      assert.ok(Date.now() - started < 3000);
    } finally {
      await srv.close();
    }
  });

  test('publishes have their own, lower rate; other commands still pass', async () => {
    const srv = await startSecure({ namespaceBase: OPEN, limits: { commandRate: 1000, publishRate: 2, ipCommandRate: 0 } });
    try {
      const c = await TestClient.connect(wsUrl(srv));
      const ids = Array.from({ length: 10 }, (_, i) => c.fire('publish', { channel: 'p', data: i }));
      const answers = await Promise.all(ids.map((id) => c.next((m) => m.id === id)));
      assert.equal(answers.filter((a) => a.result).length, 4);
      assert.ok(answers.slice(4).every((a) => a.error?.code === 'rate_limited' && /publishes/.test(a.error.message)));
      assert.ok((await c.request('ping')).result);
      assert.equal((await srv.hub.history('p', {})).events.length, 4, 'refused publishes were not published');
      c.close();
    } finally {
      await srv.close();
    }
  });

  test('an address shares one budget over its connections', async () => {
    const srv = await startSecure({ namespaceBase: OPEN, limits: { commandRate: 0, ipCommandRate: 5 } });
    try {
      const a = await TestClient.connect(wsUrl(srv));
      const b = await TestClient.connect(wsUrl(srv));
      // Two connects took 2 of the 10; a takes the rest.
      const ids = Array.from({ length: 8 }, () => a.fire('ping'));
      for (const id of ids) assert.ok((await a.next((m) => m.id === id)).result);
      assert.equal((await b.request('ping')).error?.code, 'rate_limited');
      a.close();
      b.close();
    } finally {
      await srv.close();
    }
  });
});

describe('connections and requests per address', () => {
  test('WebSocket, SSE and polls count against maxConnectionsPerIp; 429 limit_exceeded beyond; freed when they end', async () => {
    const srv = await startSecure({ namespaceBase: OPEN, limits: { maxConnectionsPerIp: 3 } });
    try {
      const a = await TestClient.connect(wsUrl(srv));
      const b = await TestClient.connect(wsUrl(srv));
      const stream = fetchRaw(srv.url, '/sse?channel=s', { maxMs: 1500 });
      await until(() => srv.limits.connectionsOf('127.0.0.1') === 3, 'the SSE stream to count');
      const refused = await upgradeStatus(wsUrl(srv));
      assert.equal(refused.status, 429);
      assert.equal(JSON.parse(refused.body).error.code, 'limit_exceeded');
      const sse = await fetchRaw(srv.url, '/sse?channel=s');
      assert.equal(sse.status, 429);
      assert.equal(json(sse).error.code, 'limit_exceeded');
      const poll = await fetchRaw(srv.url, '/poll?channel=s&timeout=1');
      assert.equal(poll.status, 429);
      const glp = await fetchRaw(srv.url, '/golongpoll/events?timeout=1&category=s');
      assert.equal(glp.status, 429);
      a.close();
      await a.waitClosed();
      await until(() => srv.limits.connectionsOf('127.0.0.1') === 2, 'the closed connection to free its slot');
      assert.equal((await upgradeStatus(wsUrl(srv))).status, 101, 'a closed connection frees its slot');
      await stream;
      await until(() => srv.limits.connectionsOf('127.0.0.1') <= 1, 'the stream and the probe to end');
      assert.equal(srv.limits.connectionsOf('127.0.0.1'), 1, 'only b is left');
      b.close();
      await b.waitClosed();
      await until(() => srv.limits.connectionsOf('127.0.0.1') === 0, 'b to free its slot');
      assert.equal(srv.limits.connectionsOf('127.0.0.1'), 0);
    } finally {
      await srv.close();
    }
  });

  test('HTTP transport requests over the address rate get 429 rate_limited with Retry-After', async () => {
    const clock = new ManualClock();
    const srv = await startSecure({ namespaceBase: OPEN, limits: { ipCommandRate: 5, ipPublishRate: 1 }, clock: clock.now });
    try {
      const statuses: number[] = [];
      let limited: Awaited<ReturnType<typeof fetchRaw>> | undefined;
      for (let i = 0; i < 14; i++) {
        const reply = await fetchRaw(srv.url, '/poll?timeout=1');
        statuses.push(reply.status);
        if (reply.status === 429) limited ??= reply;
      }
      assert.deepEqual(statuses.slice(0, 10), Array(10).fill(400), 'the burst is served (400: no channel)');
      assert.ok(statuses.slice(10).every((s) => s === 429), statuses.join());
      assert.equal(json(limited!).error.code, 'rate_limited');
      assert.match(String(limited!.headers['retry-after']), /^[1-9]\d*$/);
      assert.equal((await fetchRaw(srv.url, '/sse?channel=a')).status, 429);
      assert.equal((await fetchRaw(srv.url, '/gpoll?client-id=0')).status, 429);
      clock.advance(1100);
      const publish = (): Promise<number> => fetchRaw(srv.url, '/golongpoll/publish', { method: 'POST', body: '{"category":"c","data":1}' }).then((r) => r.status);
      assert.deepEqual([await publish(), await publish(), await publish()], [200, 200, 429], 'publishes have their own budget (burst 2)');
    } finally {
      await srv.close();
    }
  });
});
