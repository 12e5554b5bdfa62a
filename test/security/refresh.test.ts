/**
 * Token expiry and refresh (docs/security.md): at `exp` the server ends the session with 4003
 * "token expired" (reconnect: true); the client asks its token callback for a new token, reconnects
 * and resumes with `since`, so nothing is lost. Polls never outlive the token either.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import WebSocket from 'ws';
import { HeraldClient, type DisconnectedInfo, type TransportName } from '../../src/client/index.js';
import { startServer, type HeraldServer } from '../../src/server/index.js';
import { createJwtAuthenticator } from '../../src/server/jwt.js';
import { TestClient } from '../websocket/helpers.js';
import { waitFor } from '../client/util.js';
import { SECRET, fetchRaw, json, sign, sseMessages, startSecure, type SecureServer } from './helpers.js';

/** A token that expires at the second after next: 1 to 2 s from now. */
function shortLived(claims: Parameters<typeof sign>[0]): Promise<string> {
  return sign(claims, { exp: Math.floor(Date.now() / 1000) + 2 });
}

const q = encodeURIComponent;

describe('expiry on every transport', () => {
  let srv: SecureServer;
  before(async () => {
    srv = await startSecure({ hooks: { authenticate: createJwtAuthenticator({ secret: SECRET }) } });
  });
  after(() => srv.close());

  test('WebSocket: at exp the client gets disconnect 4003 "token expired" (reconnect: true), then close 4003', async () => {
    const token = await shortLived({ sub: 'w', subscribe: ['x'] });
    const exp = JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()).exp as number;
    const c = await TestClient.connect(`${srv.url.replace(/^http/, 'ws')}/ws`, token);
    assert.ok((await c.request('subscribe', { channel: 'x' })).result);
    const push = await c.next((m) => m.push === 'disconnect', 4000);
    assert.deepEqual(push, { push: 'disconnect', code: 4003, reason: 'token expired', reconnect: true });
    assert.deepEqual(await c.waitClosed(), { code: 4003, reason: 'token expired' });
    assert.ok(Date.now() >= exp * 1000, 'not before exp');
    assert.ok(Date.now() < exp * 1000 + 500, 'at exp');
    // The same token cannot come back.
    const again = await TestClient.open(`${srv.url.replace(/^http/, 'ws')}/ws`);
    assert.equal((await again.request('connect', { token })).error?.code, 'unauthorized');
  });

  test('SSE: at exp the stream ends with a disconnect event (4003, reconnect: true)', async () => {
    const token = await shortLived({ sub: 's', subscribe: ['x'] });
    const reply = await fetchRaw(srv.url, `/sse?channel=x&token=${q(token)}`, { maxMs: 4000 });
    assert.equal(reply.status, 200);
    assert.equal(reply.cut, false, 'the server ended the stream');
    const last = sseMessages(reply.text).at(-1)!;
    assert.equal(last.event, 'disconnect');
    assert.deepEqual(JSON.parse(last.data), { code: 4003, reason: 'token expired', reconnect: true });
  });

  test('long-poll: a waiting poll is answered at exp; the next poll with that token is 401', async () => {
    const token = await shortLived({ sub: 'p', subscribe: ['x'] });
    const started = Date.now();
    const reply = await fetchRaw(srv.url, `/poll?channel=x&timeout=30&token=${q(token)}`, { maxMs: 4000 });
    assert.equal(reply.status, 200, reply.text);
    assert.deepEqual(json(reply).events, []);
    assert.ok(Date.now() - started < 2600, 'answered at exp, not at the timeout');
    const next = await fetchRaw(srv.url, `/poll?channel=x&timeout=1&cursor=${json(reply).cursor}&token=${q(token)}`);
    assert.equal(next.status, 401, next.text);
  });

  test('golongpoll: a waiting poll gets the timeout answer at exp; then 401', async () => {
    const token = await shortLived({ sub: 'g', subscribe: ['x'] });
    const started = Date.now();
    const reply = await fetchRaw(srv.url, `/golongpoll/events?timeout=30&category=x&token=${q(token)}`, { maxMs: 4000 });
    assert.equal(reply.status, 200);
    assert.equal(json(reply).timeout, 'no events before timeout');
    assert.ok(Date.now() - started < 2600);
    assert.equal((await fetchRaw(srv.url, `/golongpoll/events?timeout=1&category=x&token=${q(token)}`)).status, 401);
  });

  test('gpoll: a client registered with a token is dropped at exp and gets nothing more', async () => {
    const token = await shortLived({ sub: 'b', subscribe: ['broadcast'] });
    const id = json(await fetchRaw(srv.url, `/gpoll?client-id=0&token=${q(token)}`))['client-id'] as string;
    const exp = JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()).exp as number;
    // The expiry itself ends the waiting poll (an empty 200 at exp): wait for that, then publish.
    const reply = await fetchRaw(srv.url, `/gpoll?client-id=${q(id)}`, { maxMs: 4000 });
    assert.ok(!reply.cut, 'the server ended the poll');
    assert.ok(Date.now() >= exp * 1000, 'closed at exp, not before');
    assert.ok(Date.now() < exp * 1000 + 500, 'at exp');
    assert.equal(reply.status, 200);
    assert.equal(reply.text, '', 'the waiting poll was closed without a message');
    await srv.hub.publish('broadcast', 'after expiry');
    assert.equal((await fetchRaw(srv.url, `/gpoll?client-id=${q(id)}`)).status, 404, 'the client is gone: the message is not kept for it');
  });
});

describe('refresh keeps the stream with zero loss', () => {
  let srv: HeraldServer;
  before(async () => {
    srv = await startServer({ port: 0, jwtSecret: SECRET, hooks: { authenticate: createJwtAuthenticator({ secret: SECRET }) } });
  });
  after(() => srv.close());

  test('WebSocket, SSE and long-poll clients with a token callback see every event once, in order, across several expiries', async () => {
    const transports: TransportName[] = ['websocket', 'sse', 'longpoll'];
    const runs = transports.map((transport) => {
      const channel = `feed:${transport}`;
      const run = { transport, channel, fetched: 0, seen: [] as number[], disconnects: [] as DisconnectedInfo[], client: undefined as unknown as HeraldClient };
      run.client = new HeraldClient({
        url: srv.url,
        WebSocket: WebSocket as never,
        transports: [transport],
        reconnect: { minDelay: 10, maxDelay: 50 },
        token: async () => {
          run.fetched++;
          return shortLived({ sub: transport, subscribe: ['feed:*'] });
        },
      });
      run.client.on('disconnected', (info) => run.disconnects.push(info));
      run.client.subscribe(channel, { onEvent: (e) => run.seen.push(e.data as number) });
      return run;
    });
    try {
      await checkZeroLoss(runs);
    } finally {
      for (const r of runs) r.client.close();
    }
  });

  async function checkZeroLoss(runs: { transport: TransportName; channel: string; fetched: number; seen: number[]; disconnects: DisconnectedInfo[]; client: HeraldClient }[]): Promise<void> {
    await Promise.all(runs.map((r) => r.client.connect()));
    for (const r of runs) await waitFor(`${r.transport} subscribed`, () => r.client.subscription(r.channel)?.state === 'subscribed');

    // Publish all along, until every client has lived through two expiries.
    let n = 0;
    const timer = setInterval(() => {
      n++;
      for (const r of runs) void srv.hub.publish(r.channel, n);
    }, 15);
    try {
      await waitFor('two refreshes on every transport', () => runs.every((r) => r.disconnects.filter((d) => d.code === 4003).length >= 2), 9_000);
    } finally {
      clearInterval(timer);
    }
    const last = n;
    for (const r of runs) {
      await waitFor(`${r.transport} to catch up to ${last}`, () => r.seen.at(-1) === last, 5_000);
      // Its last expiry may have come after the last event: let it finish reconnecting.
      await waitFor(`${r.transport} to reconnect`, () => r.client.state === 'connected', 5_000);
      r.client.close();
      assert.deepEqual(r.seen, Array.from({ length: last }, (_, i) => i + 1), `${r.transport}: every event once, in order`);
      assert.ok(r.fetched >= 3, `${r.transport}: the token callback was asked again (${r.fetched})`);
      assert.ok(r.disconnects.every((d) => d.code === 4003 && d.reconnect), `${r.transport}: ${JSON.stringify(r.disconnects)}`);
    }
  }

  test('a client whose token callback keeps returning the expired token is closed, not looping', async () => {
    const stale = await shortLived({ sub: 'stale', subscribe: ['feed:*'] });
    const c = new HeraldClient({ url: srv.url, WebSocket: WebSocket as never, reconnect: { minDelay: 10, maxDelay: 50 }, token: () => stale });
    let errors = 0;
    c.on('error', () => errors++);
    c.subscribe('feed:stale');
    try {
      await c.connect();
      await waitFor('closed for good', () => c.state === 'closed', 5_000);
      assert.ok(errors >= 1);
    } finally {
      c.close();
    }
  });
});
