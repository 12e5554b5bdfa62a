/** The HTTP API of SPEC §5 against a real server on 127.0.0.1: every success shape and error path. */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startServer, type HeraldServer } from '../../src/server/index.js';
import { TestWs, assertError, call } from './helpers.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

let srv: HeraldServer;
let base: string;
before(async () => {
  srv = await startServer({ port: 0 });
  base = srv.url;
});
after(() => srv.close());

const publish = (channel: unknown, data: unknown) => call(base, 'POST', '/api/publish', { json: { channel, data } });

describe('POST /api/publish', () => {
  test('answers {channel, epoch, offset, id, timestamp} with offsets +1 per publish', async () => {
    const before = Date.now();
    const first = await publish('pub:a', { n: 1 });
    const second = await publish('pub:a', null);
    assert.equal(first.status, 200);
    assert.deepEqual(Object.keys(first.json), ['channel', 'epoch', 'offset', 'id', 'timestamp']);
    assert.equal(first.json.channel, 'pub:a');
    assert.equal(first.json.offset, 1);
    assert.equal(second.json.offset, 2);
    assert.equal(second.json.epoch, first.json.epoch);
    assert.match(first.json.id, UUID);
    assert.notEqual(first.json.id, second.json.id);
    assert.ok(first.json.timestamp >= before && first.json.timestamp <= Date.now());
  });

  test('accepts any JSON data, null included, and a 1024-character channel', async () => {
    for (const data of [null, 0, 'text', [1, 2], { deep: { x: true } }]) assert.equal((await publish('pub:any', data)).status, 200);
    assert.equal((await publish('x'.repeat(1024), 1)).status, 200);
  });

  test('malformed JSON is 400 bad_request', async () => {
    assertError(await call(base, 'POST', '/api/publish', { body: '{"channel":', headers: { 'content-type': 'application/json' } }), 400, 'bad_request');
  });

  test('a body that is not a JSON object is 400 bad_request', async () => {
    for (const body of ['[1]', '"x"', 'null', '42']) {
      assertError(await call(base, 'POST', '/api/publish', { body, headers: { 'content-type': 'application/json' } }), 400, 'bad_request');
    }
  });

  test('a body that is not application/json is 400 bad_request', async () => {
    const body = JSON.stringify({ channel: 'c', data: 1 });
    assertError(await call(base, 'POST', '/api/publish', { body, headers: { 'content-type': 'text/plain' } }), 400, 'bad_request');
    assertError(await call(base, 'POST', '/api/publish', { body, headers: { 'content-type': 'application/x-www-form-urlencoded' } }), 400, 'bad_request');
    assertError(await call(base, 'POST', '/api/publish', { body }), 400, 'bad_request');
    assert.equal((await call(base, 'POST', '/api/publish', { body, headers: { 'content-type': 'application/json; charset=utf-8' } })).status, 200);
  });

  test('a missing channel or data is 400 bad_request', async () => {
    assertError(await call(base, 'POST', '/api/publish', { json: { data: 1 } }), 400, 'bad_request');
    assertError(await call(base, 'POST', '/api/publish', { json: { channel: 'c' } }), 400, 'bad_request');
    assertError(await call(base, 'POST', '/api/publish', { json: { channel: 5, data: 1 } }), 400, 'bad_request');
  });

  test('a bad channel is 400 bad_request: empty, a control character, DEL, 1025 characters', async () => {
    for (const channel of ['', 'a\u0001b', 'tab\there', 'del\u007f', 'x'.repeat(1025)]) assertError(await publish(channel, 1), 400, 'bad_request');
  });

  test('a body over 64 KiB is 413 too_large', async () => {
    assertError(await publish('big', 'x'.repeat(70_000)), 413, 'too_large');
  });

  test('an event over 64 KiB built from a body under it is 413 too_large', async () => {
    const answer = await publish('big', 'x'.repeat(65_400));
    assertError(answer, 413, 'too_large');
  });
});

describe('POST /api/broadcast', () => {
  test('answers one result per channel, in order; a bad channel gets {channel, error} and the others succeed', async () => {
    const answer = await call(base, 'POST', '/api/broadcast', { json: { channels: ['bc:a', 'bad\u0000', 'bc:b', 7, 'bc:a'], data: { hi: 1 } } });
    assert.equal(answer.status, 200);
    const { results } = answer.json;
    assert.equal(results.length, 5);
    assert.deepEqual(Object.keys(results[0]), ['channel', 'epoch', 'offset', 'id', 'timestamp']);
    assert.equal(results[0].channel, 'bc:a');
    assert.deepEqual(Object.keys(results[1]), ['channel', 'error']);
    assert.equal(results[1].channel, 'bad\u0000');
    assert.equal(results[1].error.code, 'bad_request');
    assert.equal(typeof results[1].error.message, 'string');
    assert.equal(results[2].channel, 'bc:b');
    assert.equal(results[2].offset, 1);
    assert.equal(results[3].channel, 7);
    assert.equal(results[3].error.code, 'bad_request');
    assert.deepEqual([results[0].offset, results[4].offset].sort(), [1, 2]);
    const history = await call(base, 'GET', '/api/history?channel=bc:b');
    assert.deepEqual(history.json.events.map((e: { data: unknown }) => e.data), [{ hi: 1 }]);
  });

  test('channels that are not a non-empty array, or missing data, are 400 bad_request', async () => {
    for (const json of [{ channels: 'a', data: 1 }, { channels: [], data: 1 }, { data: 1 }, { channels: ['a'] }]) {
      assertError(await call(base, 'POST', '/api/broadcast', { json }), 400, 'bad_request');
    }
  });
});

describe('GET /api/history', () => {
  before(async () => {
    for (let i = 1; i <= 3; i++) await publish('hist', { i });
  });

  test('without since: the last events, oldest first, recovered true', async () => {
    const answer = await call(base, 'GET', '/api/history?channel=hist');
    assert.equal(answer.status, 200);
    assert.deepEqual(Object.keys(answer.json), ['epoch', 'offset', 'recovered', 'events']);
    assert.equal(answer.json.offset, 3);
    assert.equal(answer.json.recovered, true);
    assert.deepEqual(answer.json.events.map((e: { offset: number }) => e.offset), [1, 2, 3]);
    const event = answer.json.events[0];
    assert.deepEqual(Object.keys(event).sort(), ['channel', 'data', 'epoch', 'id', 'offset', 'timestamp']);
    assert.deepEqual(event.data, { i: 1 });
  });

  test('limit gives the newest `limit` events; limit=0 only the position', async () => {
    const two = await call(base, 'GET', '/api/history?channel=hist&limit=2');
    assert.deepEqual(two.json.events.map((e: { offset: number }) => e.offset), [2, 3]);
    const none = await call(base, 'GET', '/api/history?channel=hist&limit=0');
    assert.deepEqual(none.json.events, []);
    assert.equal(none.json.offset, 3);
  });

  test('since_epoch and since_offset give the events after that position', async () => {
    const { json: h } = await call(base, 'GET', '/api/history?channel=hist');
    const answer = await call(base, 'GET', `/api/history?channel=hist&since_epoch=${h.epoch}&since_offset=1`);
    assert.equal(answer.json.recovered, true);
    assert.deepEqual(answer.json.events.map((e: { offset: number }) => e.offset), [2, 3]);
    const limited = await call(base, 'GET', `/api/history?channel=hist&since_epoch=${h.epoch}&since_offset=0&limit=1`);
    assert.deepEqual(limited.json.events.map((e: { offset: number }) => e.offset), [1]);
  });

  test('a position from another epoch, or ahead of the channel, is recovered false with the retained events', async () => {
    const other = await call(base, 'GET', '/api/history?channel=hist&since_epoch=nope&since_offset=1');
    assert.equal(other.json.recovered, false);
    assert.deepEqual(other.json.events.map((e: { offset: number }) => e.offset), [1, 2, 3]);
    const { json: h } = await call(base, 'GET', '/api/history?channel=hist');
    const ahead = await call(base, 'GET', `/api/history?channel=hist&since_epoch=${h.epoch}&since_offset=99`);
    assert.equal(ahead.json.recovered, false);
  });

  test('bad query parameters are 400 bad_request', async () => {
    const bad = [
      '/api/history',
      '/api/history?channel=',
      '/api/history?channel=a%01b',
      `/api/history?channel=${'x'.repeat(1025)}`,
      '/api/history?channel=a&channel=b',
      '/api/history?channel=hist&limit=-1',
      '/api/history?channel=hist&limit=abc',
      '/api/history?channel=hist&limit=1.5',
      '/api/history?channel=hist&since_epoch=e',
      '/api/history?channel=hist&since_offset=1',
      '/api/history?channel=hist&since_epoch=e&since_offset=x',
      '/api/history?channel=hist&since_epoch=e&since_offset=-1',
      `/api/history?channel=hist&since_epoch=${'e'.repeat(65)}&since_offset=1`,
    ];
    for (const path of bad) assertError(await call(base, 'GET', path), 400, 'bad_request');
  });
});

describe('presence, channels, stats and disconnect', () => {
  test('a WebSocket subscriber shows in presence, channels and stats, and /api/disconnect drops it with 4002', async () => {
    const { ws, client } = await TestWs.subscribed(base, 'live:room');
    try {
      const presence = await call(base, 'GET', '/api/presence?channel=live:room');
      assert.equal(presence.status, 200);
      assert.deepEqual(presence.json, { clients: [{ client }] });

      await publish('live:room', 'hello');
      await ws.next((f) => f.push === 'event');

      const channels = await call(base, 'GET', '/api/channels');
      const mine = channels.json.channels.find((c: { channel: string }) => c.channel === 'live:room');
      assert.deepEqual(Object.keys(mine), ['channel', 'subscribers', 'epoch', 'offset']);
      assert.equal(mine.subscribers, 1);
      assert.equal(mine.offset, 1);

      const stats = await call(base, 'GET', '/api/stats');
      assert.deepEqual(Object.keys(stats.json), ['connections', 'subscriptions', 'channels', 'published', 'delivered', 'uptime']);
      for (const value of Object.values(stats.json)) assert.ok(Number.isInteger(value));
      assert.equal(stats.json.connections, 1);
      assert.equal(stats.json.subscriptions, 1);
      assert.ok(stats.json.delivered >= 1);

      const answer = await call(base, 'POST', '/api/disconnect', { json: { client } });
      assert.equal(answer.status, 200);
      assert.deepEqual(answer.json, {});
      const push = await ws.next((f) => f.push === 'disconnect');
      assert.deepEqual({ code: push.code, reconnect: push.reconnect }, { code: 4002, reconnect: true });
      assert.equal((await ws.closed).code, 4002);
    } finally {
      ws.ws.terminate();
    }
  });

  test('presence of a channel nobody is on is an empty list', async () => {
    assert.deepEqual((await call(base, 'GET', '/api/presence?channel=empty')).json, { clients: [] });
    assertError(await call(base, 'GET', '/api/presence'), 400, 'bad_request');
  });

  test('disconnecting an unknown client is 404 not_found; a missing client is 400', async () => {
    assertError(await call(base, 'POST', '/api/disconnect', { json: { client: 'nobody' } }), 404, 'not_found');
    assertError(await call(base, 'POST', '/api/disconnect', { json: {} }), 400, 'bad_request');
  });
});

describe('routing', () => {
  test('an unknown route is 404 not_found, inside /api/ too', async () => {
    assertError(await call(base, 'GET', '/nope'), 404, 'not_found');
    assertError(await call(base, 'GET', '/api/nope'), 404, 'not_found');
    assertError(await call(base, 'GET', '/api'), 404, 'not_found');
  });

  test('a known route with the wrong method is 405 with the bad_request code and an Allow header', async () => {
    const answer = await call(base, 'GET', '/api/publish');
    assert.equal(answer.status, 405);
    assert.equal(answer.json.error.code, 'bad_request');
    assert.equal(answer.headers.allow, 'POST');
    assert.equal((await call(base, 'DELETE', '/healthz')).headers.allow, 'GET, HEAD');
  });

  test('a cross-origin browser request to /api/ is 403 forbidden; same-origin passes', async () => {
    assertError(await call(base, 'GET', '/api/stats', { headers: { origin: 'https://evil.example' } }), 403, 'forbidden');
    const host = new URL(base).host;
    assert.equal((await call(base, 'GET', '/api/stats', { headers: { origin: `http://${host}` } })).status, 200);
  });
});

describe('API keys', () => {
  let guarded: HeraldServer;
  before(async () => {
    guarded = await startServer({ port: 0, apiKey: ['first-key', 'second-key'] });
  });
  after(() => guarded.close());

  test('every /api/ route needs a key: none or a wrong one is 401 unauthorized', async () => {
    for (const [method, path] of [['GET', '/api/stats'], ['POST', '/api/publish'], ['GET', '/api/nope']] as const) {
      const none = await call(guarded.url, method, path, { json: method === 'POST' ? { channel: 'c', data: 1 } : undefined });
      assertError(none, 401, 'unauthorized');
      assert.match(String(none.headers['www-authenticate']), /^Bearer/);
    }
    for (const authorization of ['Bearer wrong-key', 'Bearer first-key2', 'Bearer ', 'Basic Zmlyc3Qta2V5', 'first-key']) {
      assertError(await call(guarded.url, 'GET', '/api/stats', { headers: { authorization } }), 401, 'unauthorized');
    }
  });

  test('each configured key is accepted', async () => {
    for (const key of ['first-key', 'second-key']) {
      const answer = await call(guarded.url, 'POST', '/api/publish', { json: { channel: 'k', data: key }, headers: { authorization: `Bearer ${key}` } });
      assert.equal(answer.status, 200);
    }
    assert.equal((await call(guarded.url, 'GET', '/api/stats', { headers: { authorization: 'bearer second-key' } })).status, 200);
  });

  test('/healthz, /readyz, /metrics, / and /herald.js are never guarded', async () => {
    for (const path of ['/healthz', '/readyz', '/metrics', '/', '/herald.js']) {
      const answer = await call(guarded.url, 'GET', path);
      assert.notEqual(answer.status, 401, path);
    }
    assert.equal((await call(guarded.url, 'GET', '/healthz')).status, 200);
    assert.equal((await call(guarded.url, 'GET', '/metrics')).status, 200);
  });
});
