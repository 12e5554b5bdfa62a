/**
 * Hostile input end to end: prototype-polluting keys travel as plain data and pollute nothing; no
 * answer carries a stack trace or an internal message; served pages and answers carry their
 * security headers; the configuration keeps a "__proto__" namespace a namespace.
 */
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { encodeCursor } from '../../src/protocol/index.js';
import { startServer, validateConfig, type HeraldServer } from '../../src/server/index.js';
import { TestClient } from '../websocket/helpers.js';
import { fetchRaw, json, sseMessages } from './helpers.js';

const POISON = '{"__proto__":{"polluted":"yes"},"constructor":{"prototype":{"polluted":"yes"}},"toString":"x","n":1}';

function assertUnpolluted(): void {
  const probe = {} as Record<string, unknown>;
  assert.equal(probe.polluted, undefined, 'Object.prototype was polluted');
  assert.equal(Object.prototype.hasOwnProperty.call(Object.prototype, 'polluted'), false);
  assert.equal(typeof probe.toString, 'function');
}

/** The data as received: the poisonous keys are own properties of a plain object. */
function assertPoisonAsData(data: unknown): void {
  assert.ok(data && typeof data === 'object');
  assert.equal(Object.getPrototypeOf(data), Object.prototype);
  assert.ok(Object.prototype.hasOwnProperty.call(data, '__proto__'), 'own "__proto__" key kept');
  assert.deepEqual(Object.keys(data as object).sort(), ['__proto__', 'constructor', 'n', 'toString']);
  assert.equal(JSON.stringify(data), POISON);
}

describe('prototype pollution', () => {
  let srv: HeraldServer;
  before(async () => {
    srv = await startServer({ port: 0 });
  });
  after(() => srv.close());

  test('a published {"__proto__":…} round-trips as data on every transport and in history, polluting nothing', async () => {
    const ws = `${srv.url.replace(/^http/, 'ws')}/ws`;
    const sub = await TestClient.connect(ws);
    const first = await sub.request('subscribe', { channel: 'proto' });
    const from = encodeCursor(new Map([['proto', { epoch: first.result.epoch as string, offset: 0 }]]));
    const pub = await TestClient.connect(ws);
    // Raw text, so the keys reach the server exactly as an attacker writes them.
    pub.send(`{"id":7,"op":"publish","channel":"proto","data":${POISON}}`);
    assert.ok((await pub.next((m) => m.id === 7)).result);
    const api = await fetchRaw(srv.url, '/api/publish', { method: 'POST', headers: { 'content-type': 'application/json' }, body: `{"channel":"proto","data":${POISON}}` });
    assert.equal(api.status, 200, api.text);
    const glp = await fetchRaw(srv.url, '/golongpoll/publish', { method: 'POST', body: `{"category":"proto","data":${POISON},"__proto__":{"category":"other"}}` });
    assert.equal(glp.status, 200, glp.text);

    const live = await sub.next((m) => m.push === 'event' && m.event.offset === 3);
    for (const e of sub.events('proto')) assertPoisonAsData(e.data);
    assert.equal(live.event.channel, 'proto');
    const history = await sub.request('history', { channel: 'proto' });
    assert.equal(history.result.events.length, 3);
    for (const e of history.result.events) assertPoisonAsData(e.data);
    const poll = json(await fetchRaw(srv.url, `/poll?channel=proto&cursor=${from}`));
    assert.equal(poll.events.length, 3);
    for (const e of poll.events) assertPoisonAsData(e.data);
    const stream = await fetchRaw(srv.url, '/sse?channel=proto', { headers: { 'last-event-id': from }, until: (t) => t.split('event: event').length > 3 });
    const sseEvents = sseMessages(stream.text).filter((m) => m.event === 'event');
    assert.equal(sseEvents.length, 3);
    for (const m of sseEvents) assertPoisonAsData(JSON.parse(m.data).data);
    const golong = json(await fetchRaw(srv.url, '/golongpoll/events?timeout=1&category=proto&since_time=0'));
    assert.equal(golong.events.length, 3);
    for (const e of golong.events) assertPoisonAsData(e.data);
    assertUnpolluted();
    sub.close();
    pub.close();
  });

  test('"__proto__" in a command does not stand in for its fields', async () => {
    const c = await TestClient.connect(`${srv.url.replace(/^http/, 'ws')}/ws`);
    c.send('{"__proto__":{"id":1,"op":"ping"}}');
    const answer = await c.next((m) => m.error !== undefined);
    assert.deepEqual(answer.error.code, 'bad_request');
    assert.equal(answer.id, undefined);
    c.send('{"id":2,"__proto__":{"op":"ping"}}');
    assert.equal((await c.next((m) => m.id === 2)).error.code, 'bad_request');
    c.send('{"id":3,"op":"publish","__proto__":{"channel":"x","data":1}}');
    assert.equal((await c.next((m) => m.id === 3)).error.code, 'bad_request');
    assertUnpolluted();
    c.close();
  });

  test('a namespace named "__proto__" in the configuration is a namespace, not a prototype', () => {
    const config = validateConfig({ namespaces: JSON.parse('{"__proto__":{"historySize":3},"constructor":{"presence":false}}') as Record<string, unknown> });
    assert.equal(Object.getPrototypeOf(config.namespaces), Object.prototype);
    assert.deepEqual(Object.keys(config.namespaces).sort(), ['__proto__', 'constructor']);
    assert.equal(config.namespaces['__proto__']?.historySize, 3);
    assertUnpolluted();
  });
});

describe('no stack traces, no internal details', () => {
  let srv: HeraldServer;
  const detail = 'db password is hunter2 at /srv/app/secret.js:12';
  before(async () => {
    srv = await startServer({
      port: 0,
      hooks: {
        authenticate: (token) => {
          if (token === 'boom') throw new TypeError(detail);
          return {};
        },
        beforePublish: () => {
          throw new Error(detail);
        },
      },
    });
  });
  after(() => srv.close());

  const clean = (text: string): void => {
    assert.ok(!text.includes('hunter2'), `leaked: ${text}`);
    assert.ok(!/\n\s+at |\.js:\d+/.test(text), `stack trace: ${text}`);
  };

  test('a hook that throws is `internal` with the generic message on every transport', async () => {
    const c = await TestClient.connect(`${srv.url.replace(/^http/, 'ws')}/ws`);
    const answer = await c.request('publish', { channel: 'x', data: 1 });
    assert.deepEqual(answer.error, { code: 'internal', message: 'Internal error.' });
    const refused = await TestClient.open(`${srv.url.replace(/^http/, 'ws')}/ws`);
    const connect = await refused.request('connect', { token: 'boom' });
    assert.deepEqual(connect.error, { code: 'internal', message: 'Internal error.' });
    for (const m of [...c.messages, ...refused.messages]) clean(JSON.stringify(m));

    const api = await fetchRaw(srv.url, '/api/publish', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"channel":"x","data":1}' });
    assert.equal(api.status, 500);
    assert.deepEqual(json(api), { error: { code: 'internal', message: 'Internal error.' } });
    for (const path of ['/sse?channel=x&token=boom', '/poll?channel=x&token=boom&timeout=1', '/golongpoll/events?timeout=1&category=x&token=boom']) {
      const reply = await fetchRaw(srv.url, path);
      assert.equal(reply.status, 500, path);
      clean(reply.text);
    }
    const glp = await fetchRaw(srv.url, '/golongpoll/publish', { method: 'POST', body: '{"category":"x","data":1}' });
    assert.equal(glp.status, 500);
    clean(glp.text);
    c.close();
    refused.close();
  });
});

describe('headers', () => {
  let srv: HeraldServer;
  before(async () => {
    srv = await startServer({ port: 0 });
  });
  after(() => srv.close());

  test('every answer says nosniff; error and API answers are not cached', async () => {
    for (const path of ['/', '/herald.js', '/healthz', '/metrics', '/api/stats', '/nope', '/sse', '/poll', '/golongpoll/events', '/gpoll?client-id=x$y']) {
      const reply = await fetchRaw(srv.url, path, { maxMs: 1000 });
      assert.equal(reply.headers['x-content-type-options'], 'nosniff', path);
    }
    const missing = await fetchRaw(srv.url, '/nope');
    assert.equal(missing.status, 404);
    assert.equal(missing.headers['cache-control'], 'no-store');
  });

  test('the demo page and the browser client carry their policy headers', async () => {
    const page = await fetchRaw(srv.url, '/');
    if (page.status === 200) {
      assert.match(String(page.headers['content-security-policy']), /default-src 'none'/);
      assert.match(String(page.headers['content-security-policy']), /frame-ancestors 'none'/);
      assert.equal(page.headers['x-frame-options'], 'DENY');
      assert.equal(page.headers['referrer-policy'], 'no-referrer');
    } else assert.equal(page.status, 404, 'only missing when not installed');
    const script = await fetchRaw(srv.url, '/herald.js');
    if (script.status === 200) {
      assert.equal(script.headers['referrer-policy'], 'no-referrer');
      assert.equal(script.headers['cross-origin-resource-policy'], 'same-origin');
    } else assert.equal(script.status, 404, 'only missing when not built');
  });
});

describe('SSE over "Connection: close"', () => {
  test('a stream the server ends closes its socket at once (no stray 400 for a next request on it)', async () => {
    // Credentials that expire 300 ms after they are checked: the hub ends the stream then.
    const srv = await startServer({ port: 0, hooks: { authenticate: () => ({ expiresAt: Date.now() + 300 }) } });
    try {
      const port = Number(new URL(srv.url).port);
      const text = await new Promise<string>((resolve) => {
        const socket = connect(port, '127.0.0.1');
        let got = '';
        socket.setEncoding('utf8');
        socket.on('data', (c: string) => {
          got += c;
          if (got.includes('event: disconnect')) setTimeout(() => resolve(`${got}\n[still open]`), 1000).unref();
        });
        socket.on('close', () => resolve(got));
        socket.write('GET /sse?channel=c HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
      });
      assert.match(text, /event: disconnect\ndata: \{"code":4003,"reason":"token expired","reconnect":true\}/);
      assert.doesNotMatch(text, /\[still open\]/);
    } finally {
      await srv.close();
    }
  });
});
