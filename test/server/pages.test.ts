/** Health, readiness, metrics, the demo page, the browser bundle and the WebSocket route. */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { MemoryEngine } from '../../src/engines/memory.js';
import { startServer, type HeraldServer } from '../../src/server/index.js';
import { ROOT, TestWs, assertError, call, freePort, raw } from './helpers.js';

let srv: HeraldServer;
let base: string;
before(async () => {
  srv = await startServer({ port: 0 });
  base = srv.url;
});
after(() => srv.close());

describe('health and readiness', () => {
  test('/healthz and /readyz answer 200 once started', async () => {
    const health = await call(base, 'GET', '/healthz');
    assert.equal(health.status, 200);
    assert.deepEqual(health.json, { status: 'ok' });
    const ready = await call(base, 'GET', '/readyz');
    assert.equal(ready.status, 200);
    assert.deepEqual(ready.json, { status: 'ready' });
  });

  test('/readyz is 503 unavailable while the engine starts, and 200 after', async () => {
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    class SlowStart extends MemoryEngine {
      override async start(handler: Parameters<MemoryEngine['start']>[0]): Promise<void> {
        await gate;
        return super.start(handler);
      }
    }
    const port = await freePort();
    const starting = startServer({ port, engine: new SlowStart() });
    const url = `http://127.0.0.1:${port}`;
    // The server listens before the hub has started: poll until it answers at all.
    let answer = await call(url, 'GET', '/readyz').catch(() => undefined);
    for (let i = 0; !answer && i < 500; i++) answer = await call(url, 'GET', '/readyz').catch(() => undefined);
    assert.ok(answer, 'the server listens while the engine starts');
    assertError(answer, 503, 'unavailable');
    assert.equal(answer.json.error.message, 'starting');
    assert.equal((await call(url, 'GET', '/healthz')).status, 200);
    assertError(await call(url, 'POST', '/api/publish', { json: { channel: 'c', data: 1 } }), 503, 'unavailable');
    release();
    const started = await starting;
    try {
      assert.equal((await call(url, 'GET', '/readyz')).status, 200);
    } finally {
      await started.close();
    }
  });

  test('/readyz is 503 unavailable while the engine is unreachable', async () => {
    let up = true;
    class Flaky extends MemoryEngine {
      override available(): boolean {
        return up;
      }
    }
    const flaky = await startServer({ port: 0, engine: new Flaky() });
    try {
      assert.equal((await call(flaky.url, 'GET', '/readyz')).status, 200);
      up = false;
      const answer = await call(flaky.url, 'GET', '/readyz');
      assertError(answer, 503, 'unavailable');
      assert.equal(answer.json.error.message, 'engine unavailable');
      assertError(await call(flaky.url, 'POST', '/api/publish', { json: { channel: 'c', data: 1 } }), 503, 'unavailable');
    } finally {
      await flaky.close();
    }
  });
});

describe('metrics', () => {
  test('/metrics is Prometheus text with the herald gauges and counters read from the hub', async () => {
    const { ws } = await TestWs.subscribed(base, 'm:1');
    try {
      for (let i = 0; i < 3; i++) await call(base, 'POST', '/api/publish', { json: { channel: 'm:1', data: i } });
      await ws.next((f) => f.push === 'event' && f.event.offset === 3);
      const stats = (await call(base, 'GET', '/api/stats')).json;
      const answer = await call(base, 'GET', '/metrics');
      assert.equal(answer.status, 200);
      assert.match(String(answer.headers['content-type']), /^text\/plain; version=0\.0\.4/);
      const value = (name: string): number => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(answer.text)?.[1]);
      assert.equal(value('herald_connections'), 1);
      assert.equal(value('herald_subscriptions'), 1);
      assert.equal(value('herald_channels'), 1);
      assert.equal(value('herald_published_total'), stats.published);
      assert.equal(value('herald_delivered_total'), stats.delivered);
      assert.match(answer.text, /^# TYPE herald_published_total counter$/m);
      assert.match(answer.text, /^# TYPE herald_connections gauge$/m);
      assert.match(answer.text, /^herald_websocket_buffered_bytes \d+$/m);
      assert.equal(value('herald_poll_pace_ms'), 0, 'an idle server does not pace long-polls');
      // A counter never goes down between scrapes.
      await call(base, 'POST', '/api/publish', { json: { channel: 'm:1', data: 'more' } });
      const again = await call(base, 'GET', '/metrics');
      assert.equal(Number(/^herald_published_total (\S+)$/m.exec(again.text)?.[1]), stats.published + 1);
    } finally {
      ws.ws.terminate();
    }
  });

  test('--poll-pace-ms and --poll-pace-load reach the long-poll transport (load 0: always paced)', async () => {
    const paced = await startServer({ port: 0, pollPaceMs: 300, pollPaceLoad: 0 });
    try {
      const text = (await call(paced.url, 'GET', '/metrics')).text;
      assert.match(text, /^herald_poll_pace_ms 300$/m);
    } finally {
      await paced.close();
    }
  });

  test('two servers in one process keep separate registries', async () => {
    const other = await startServer({ port: 0 });
    try {
      await call(other.url, 'POST', '/api/publish', { json: { channel: 'solo', data: 1 } });
      const mine = await call(other.url, 'GET', '/metrics');
      assert.match(mine.text, /^herald_published_total 1$/m);
    } finally {
      await other.close();
    }
  });
});

describe('served files', () => {
  test('/ is the demo page with a CSP that allows exactly its inline script and style', async () => {
    const answer = await call(base, 'GET', '/push');
    assert.equal(answer.status, 200);
    assert.equal(answer.headers['content-type'], 'text/html; charset=utf-8');
    assert.equal(answer.headers['x-content-type-options'], 'nosniff');
    assert.equal(answer.headers['referrer-policy'], 'no-referrer');
    assert.equal(answer.headers['x-frame-options'], 'DENY');
    const csp = String(answer.headers['content-security-policy']);
    assert.match(csp, /default-src 'none'/);
    assert.match(csp, /frame-ancestors 'none'/);
    assert.ok(!csp.includes('unsafe-inline'));
    const html = readFileSync(join(ROOT, 'public', 'index.html'), 'utf8');
    assert.equal(answer.text, html);
    const script = /<script>([\s\S]*?)<\/script>/.exec(html)![1]!;
    assert.ok(csp.includes(`'sha256-${createHash('sha256').update(script).digest('base64')}'`), 'the inline script hash is in script-src');
    for (const id of ['channel', 'subscribe', 'events', 'publish-data', 'publish', 'status']) assert.match(html, new RegExp(`id="${id}"`));
    assert.ok(!/innerHTML/.test(html), 'the page never writes HTML from data');
  });

  test('a page fetched again with its ETag is 304 Not Modified', async () => {
    const first = await call(base, 'GET', '/push');
    const again = await call(base, 'GET', '/push', { headers: { 'if-none-match': String(first.headers.etag) } });
    assert.equal(again.status, 304);
    assert.equal(again.text, '');
  });

  test('/herald.js serves the built browser client, or 404 not_found JSON when it is not built', async () => {
    const answer = await call(base, 'GET', '/herald.js');
    const built = join(ROOT, 'dist', 'browser', 'herald.js');
    if (existsSync(built) && answer.status === 200) {
      assert.equal(answer.headers['content-type'], 'text/javascript; charset=utf-8');
      assert.equal(answer.headers['x-content-type-options'], 'nosniff');
      assert.match(answer.text, /Herald/);
    } else {
      assertError(answer, 404, 'not_found');
      assert.match(answer.json.error.message, /npm run build/);
    }
  });

  test('HEAD / answers the headers without a body', async () => {
    const answer = await call(base, 'HEAD', '/push');
    assert.equal(answer.status, 200);
    assert.equal(answer.text, '');
    assert.ok(Number(answer.headers['content-length']) > 0);
  });
});

describe('WebSocket route', () => {
  test('GET /ws upgrades to the WebSocket protocol', async () => {
    const ws = new TestWs(`${base}/ws`);
    await ws.opened();
    const result = await ws.request('connect');
    assert.equal(result.version, 1);
    assert.equal(result.ping, 25);
    ws.ws.close();
    await ws.closed;
  });

  test('GET /ws without an upgrade is 400 bad_request', async () => {
    assertError(await call(base, 'GET', '/ws'), 400, 'bad_request');
  });

  test('an upgrade on any other path is answered 404 and the socket closed', async () => {
    const text = await raw(base, (s) =>
      s.write('GET /elsewhere HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n'),
    );
    assert.match(text, /^HTTP\/1\.1 404 Not Found\r\n/);
    assert.match(text, /"code":"not_found"/);
  });

  test('an upgrade from a foreign origin is refused with 403', async () => {
    const text = await raw(base, (s) =>
      s.write('GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nOrigin: https://evil.example\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n'),
    );
    assert.match(text, /^HTTP\/1\.1 403 /);
  });
});
