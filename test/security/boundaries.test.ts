/**
 * Every transport of a real server enforces the token's claims (SPEC §8): no subscribe, publish or
 * presence outside them on WebSocket, SSE, long-poll, golongpoll or gpoll; bad tokens are
 * `unauthorized` everywhere; the HTTP API takes API keys only; a forged cursor reaches nothing.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { encodeCursor } from '../../src/protocol/index.js';
import { startServer, type HeraldServer } from '../../src/server/index.js';
import { createJwtAuthenticator } from '../../src/server/jwt.js';
import { TestClient } from '../websocket/helpers.js';
import { ALICE, SECRET, badTokens, fetchRaw, json, sign, sseMessages, type Reply } from './helpers.js';

const API_KEY = 'api-key-for-the-app-server-0123456789';

let srv: HeraldServer;
let ws: string;
let alice: string;
let bad: Record<string, string>;
let newsEpoch: string;

before(async () => {
  srv = await startServer({ port: 0, jwtSecret: SECRET, apiKey: [API_KEY], hooks: { authenticate: createJwtAuthenticator({ secret: SECRET }) } });
  ws = `${srv.url.replace(/^http/, 'ws')}/ws`;
  alice = await sign(ALICE);
  bad = await badTokens();
  newsEpoch = (await srv.hub.publish('news', { n: 1 })).epoch;
  await srv.hub.publish('secret', { n: 1 });
});
after(() => srv.close());

function assertJsonError(reply: Reply, status: number, code: string): void {
  assert.equal(reply.status, status, reply.text);
  const body = json(reply);
  assert.deepEqual(Object.keys(body), ['error']);
  assert.equal(body.error.code, code);
  assert.equal(typeof body.error.message, 'string');
  assert.ok(!/\n\s+at /.test(reply.text), 'no stack trace');
}

const q = encodeURIComponent;

describe('WebSocket', () => {
  test('a token allows exactly its patterns: subscribe, history, publish, presence', async () => {
    const c = await TestClient.connect(ws, alice);
    const forbidden = async (op: string, fields: Record<string, unknown>): Promise<void> => {
      const answer = await c.request(op, fields);
      assert.equal(answer.error?.code, 'forbidden', `${op} ${JSON.stringify(fields)}: ${JSON.stringify(answer)}`);
    };
    assert.ok((await c.request('subscribe', { channel: 'news' })).result);
    assert.ok((await c.request('subscribe', { channel: 'user:alice:inbox' })).result);
    await forbidden('subscribe', { channel: 'secret' });
    await forbidden('subscribe', { channel: 'user:bob:inbox' });
    await forbidden('subscribe', { channel: 'user:alice' });
    await forbidden('subscribe', { channel: 'news2' });
    assert.ok((await c.request('history', { channel: 'news' })).result);
    await forbidden('history', { channel: 'secret' });
    await forbidden('history', { channel: 'secret', since: { epoch: newsEpoch, offset: 0 } });
    assert.ok((await c.request('publish', { channel: 'user:alice:outbox', data: 1 })).result);
    await forbidden('publish', { channel: 'news', data: 1 });
    await forbidden('publish', { channel: 'user:bob:inbox', data: 1 });
    assert.ok((await c.request('presence', { channel: 'news' })).result);
    await forbidden('presence', { channel: 'user:alice:inbox' });
    await forbidden('presence', { channel: 'secret' });
    assert.ok(c.isOpen, 'refusals do not close the connection');
    c.close();
  });

  test('expired, alg none, wrong key, tampered, exp-less and garbage tokens: unauthorized, then close 4001', async () => {
    for (const [name, token] of Object.entries(bad)) {
      const c = await TestClient.open(ws);
      const answer = await c.request('connect', { token });
      assert.equal(answer.error?.code, 'unauthorized', `${name}: ${JSON.stringify(answer)}`);
      assert.equal((await c.waitClosed()).code, 4001, name);
    }
  });

  test('without a token a client is anonymous: connected, but allowed nothing (anonymous access is off with JWT)', async () => {
    const c = await TestClient.connect(ws);
    assert.equal((await c.request('subscribe', { channel: 'news' })).error?.code, 'forbidden');
    assert.equal((await c.request('publish', { channel: 'news', data: 1 })).error?.code, 'forbidden');
    assert.equal((await c.request('presence', { channel: 'news' })).error?.code, 'forbidden');
    c.close();
  });
});

describe('SSE', () => {
  const ready = (text: string): boolean => text.includes('event: ready');

  test('a stream of allowed channels starts; one forbidden channel refuses the whole stream with 403', async () => {
    const ok = await fetchRaw(srv.url, `/sse?channel=news&channel=user:alice:x&token=${q(alice)}`, { until: ready });
    assert.equal(ok.status, 200);
    assert.ok(ready(ok.text));
    assertJsonError(await fetchRaw(srv.url, `/sse?channel=news&channel=secret&token=${q(alice)}`), 403, 'forbidden');
    assertJsonError(await fetchRaw(srv.url, `/sse?channel=news`), 403, 'forbidden');
  });

  test('bad tokens are 401 unauthorized', async () => {
    for (const [name, token] of Object.entries(bad)) {
      const reply = await fetchRaw(srv.url, `/sse?channel=news&token=${q(token)}`);
      assert.equal(reply.status, 401, name);
      assertJsonError(reply, 401, 'unauthorized');
    }
  });

  test('a forged Last-Event-ID naming a forbidden channel streams only the query channels', async () => {
    const forged = encodeCursor(new Map([['secret', { epoch: newsEpoch, offset: 0 }], ['news', { epoch: newsEpoch, offset: 0 }]]));
    const reply = await fetchRaw(srv.url, `/sse?channel=news&token=${q(alice)}`, { headers: { 'last-event-id': forged }, until: (t) => t.includes('event: event') });
    assert.equal(reply.status, 200);
    const events = sseMessages(reply.text).filter((m) => m.event === 'event').map((m) => JSON.parse(m.data) as { channel: string });
    assert.ok(events.length > 0);
    assert.ok(events.every((e) => e.channel === 'news'), JSON.stringify(events));
    assert.ok(!reply.text.includes('"channel":"secret"'));
  });
});

describe('long-poll', () => {
  const cursorOf = (...channels: string[]): string => encodeCursor(new Map(channels.map((c) => [c, { epoch: newsEpoch, offset: 0 }])));

  test('allowed channels are answered; a forbidden one is 403; bad tokens 401', async () => {
    const ok = await fetchRaw(srv.url, `/poll?channel=news&cursor=${cursorOf('news')}&token=${q(alice)}`);
    assert.equal(ok.status, 200, ok.text);
    assert.ok(json(ok).events.length > 0);
    assertJsonError(await fetchRaw(srv.url, `/poll?channel=secret&cursor=${cursorOf('secret')}&token=${q(alice)}`), 403, 'forbidden');
    assertJsonError(await fetchRaw(srv.url, `/poll?channel=news&channel=secret&timeout=1&token=${q(alice)}`), 403, 'forbidden');
    assertJsonError(await fetchRaw(srv.url, `/poll?channel=news&timeout=1`), 403, 'forbidden');
    for (const [name, token] of Object.entries(bad)) {
      const reply = await fetchRaw(srv.url, `/poll?channel=news&timeout=1&token=${q(token)}`);
      assert.equal(reply.status, 401, name);
      assertJsonError(reply, 401, 'unauthorized');
    }
  });

  test('a forged cursor cannot reach a channel the token does not allow', async () => {
    const reply = await fetchRaw(srv.url, `/poll?channel=news&cursor=${cursorOf('secret', 'news')}&token=${q(alice)}`);
    assert.equal(reply.status, 200);
    const body = json(reply);
    assert.ok(body.events.length > 0);
    assert.ok(body.events.every((e: { channel: string }) => e.channel === 'news'), reply.text);
    assert.ok(!reply.text.includes('"secret"'), 'nothing of the forbidden channel, not even its name in the cursor');
  });
});

describe('golongpoll and gpoll', () => {
  test('golongpoll: subscribe and publish follow the claims (query token or Bearer); bad tokens 401', async () => {
    const events = await fetchRaw(srv.url, `/golongpoll/events?timeout=1&category=news&since_time=0&token=${q(alice)}`);
    assert.equal(events.status, 200);
    assert.ok(json(events).events.length > 0);
    const viaHeader = await fetchRaw(srv.url, `/golongpoll/events?timeout=1&category=news&since_time=0`, { headers: { authorization: `Bearer ${alice}` } });
    assert.ok(json(viaHeader).events.length > 0);
    const denied = await fetchRaw(srv.url, `/golongpoll/events?timeout=1&category=secret&since_time=0&token=${q(alice)}`);
    assert.equal(denied.status, 403);
    assert.equal(typeof json(denied).error, 'string');
    assert.equal((await fetchRaw(srv.url, `/golongpoll/events?timeout=1&category=news&since_time=0`)).status, 403);

    const publish = (category: string, token?: string): Promise<Reply> =>
      fetchRaw(srv.url, `/golongpoll/publish${token ? `?token=${q(token)}` : ''}`, { method: 'POST', body: JSON.stringify({ category, data: { x: 1 } }) });
    const ok = await publish('user:alice:glp', alice);
    assert.equal(ok.status, 200);
    assert.deepEqual(json(ok), { success: true });
    assert.equal((await publish('news', alice)).status, 403);
    assert.equal((await publish('user:alice:glp')).status, 403);
    for (const [name, token] of Object.entries(bad)) {
      assert.equal((await publish('user:alice:glp', token)).status, 401, name);
      assert.equal((await fetchRaw(srv.url, `/golongpoll/events?timeout=1&category=news&token=${q(token)}`)).status, 401, name);
    }
  });

  test('gpoll: registering needs the subscribe permission on its channel', async () => {
    assert.equal((await fetchRaw(srv.url, `/gpoll?client-id=0&token=${q(alice)}`)).status, 403);
    assert.equal((await fetchRaw(srv.url, `/gpoll?client-id=0`)).status, 403);
    const reader = await sign({ sub: 'r', subscribe: ['broadcast'] });
    const ok = await fetchRaw(srv.url, `/gpoll?client-id=0&token=${q(reader)}`);
    assert.equal(ok.status, 200);
    assert.match(json(ok)['client-id'], /^\d+\$[0-9a-f-]{36}$/);
    for (const [name, token] of Object.entries(bad)) assert.equal((await fetchRaw(srv.url, `/gpoll?client-id=0&token=${q(token)}`)).status, 401, name);
  });
});

describe('HTTP API', () => {
  test('guarded by API keys only: a client token is not a key', async () => {
    const body = JSON.stringify({ channel: 'news', data: 1 });
    const headers = { 'content-type': 'application/json' };
    assertJsonError(await fetchRaw(srv.url, '/api/publish', { method: 'POST', body, headers }), 401, 'unauthorized');
    assertJsonError(await fetchRaw(srv.url, '/api/publish', { method: 'POST', body, headers: { ...headers, authorization: `Bearer ${alice}` } }), 401, 'unauthorized');
    assertJsonError(await fetchRaw(srv.url, `/api/history?channel=secret`, { headers: { authorization: `Bearer ${alice}` } }), 401, 'unauthorized');
    const ok = await fetchRaw(srv.url, '/api/publish', { method: 'POST', body, headers: { ...headers, authorization: `Bearer ${API_KEY}` } });
    assert.equal(ok.status, 200, ok.text);
  });
});
