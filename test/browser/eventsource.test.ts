/**
 * SSE (SPEC §3) with the browser's own `EventSource`, no herald client in the page: real Chromium
 * reconnects by itself after the server drops the stream, sends `Last-Event-ID` by itself, and the
 * server resumes from it with nothing lost or repeated. The server's `retry: 3000` sets the pace,
 * so each drop costs about 3 s: two drops (one per way a stream can end).
 */
import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import type { Browser } from 'playwright-core';
import { startServer, type HeraldServer } from '../../src/server/index.js';
import { assertBrowserReady, chromium, launchChromium, newPage } from './chromium.js';

/** What the page records, kept on `window.es`. */
interface PageLog {
  /** `event` messages: the event's offset and data, and the message's id (the cursor after it). */
  events: { offset: number; n: unknown; id: string }[];
  ready: { recovered: boolean; id: string; afterEvents: number }[];
  opens: number;
  /** Each `error` (the stream ended; EventSource reconnects): the last id it had seen, and how many events. */
  errors: { lastEventId: string; afterEvents: number; readyState: number }[];
  /** Messages of any other type (`disconnect`), by type. */
  other: string[];
}

/** Plain JavaScript run in the page: a native EventSource on the page's own origin. */
const PAGE_APP = `(channel) => new Promise((resolve, reject) => {
  const log = { events: [], ready: [], opens: 0, errors: [], other: [] };
  window.es = log;
  let lastEventId = '';
  const source = new EventSource('/sse?channel=' + encodeURIComponent(channel));
  window.source = source;
  source.onopen = () => { log.opens++; };
  source.onerror = () => {
    log.errors.push({ lastEventId, afterEvents: log.events.length, readyState: source.readyState });
    if (log.ready.length === 0) reject(new Error('the first stream failed'));
  };
  source.addEventListener('ready', (m) => {
    lastEventId = m.lastEventId;
    const body = JSON.parse(m.data);
    log.ready.push({ recovered: body.recovered, id: m.lastEventId, afterEvents: log.events.length });
    resolve(log.ready.length);
  });
  source.addEventListener('event', (m) => {
    lastEventId = m.lastEventId;
    const e = JSON.parse(m.data);
    log.events.push({ offset: e.offset, n: e.data.n, id: m.lastEventId });
  });
  source.addEventListener('disconnect', (m) => log.other.push('disconnect ' + m.data));
})`;

describe('browser: native EventSource resumes with Last-Event-ID', { skip: chromium.skip, timeout: 60_000 }, () => {
  let browser: Browser | undefined;
  let server: HeraldServer;
  const pageErrors: string[] = [];
  /** Every `/sse` request the server got: its Last-Event-ID and its socket (to drop it). */
  const streams: { lastEventId: string | undefined; socket: Socket }[] = [];

  before(async () => {
    assertBrowserReady(false);
    server = await startServer({ port: 0, host: '127.0.0.1' });
    server.http.on('request', (req: IncomingMessage) => {
      if (req.url?.startsWith('/sse')) {
        const header = req.headers['last-event-id'];
        streams.push({ lastEventId: typeof header === 'string' ? header : undefined, socket: req.socket });
      }
    });
    browser = await launchChromium();
  });

  after(async () => {
    await browser?.close();
    await server?.close();
  });

  async function publish(channel: string, n: number): Promise<number> {
    const res = await fetch(`${server.url}/api/publish`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ channel, data: { n } }),
    });
    assert.equal(res.status, 200);
    return ((await res.json()) as { offset: number }).offset;
  }

  it('every one of 300 events arrives once, in order, across a server disconnect and a cut socket', async () => {
    const page = await newPage(browser!, pageErrors);
    await page.goto(`${server.url}/healthz`);
    const channel = 'es-resume';
    assert.equal(await page.evaluate(`(${PAGE_APP})(${JSON.stringify(channel)})`), 1);
    assert.equal(streams.length, 1);
    assert.equal(streams[0]!.lastEventId, undefined, 'the first request has no Last-Event-ID');
    const read = (): Promise<PageLog> => page.evaluate('window.es') as Promise<PageLog>;

    // 1..100 live; then the server ends the stream (POST /api/disconnect: a `disconnect` message, then the end).
    for (let n = 1; n <= 100; n++) assert.equal(await publish(channel, n), n);
    const presence = (await (await fetch(`${server.url}/api/presence?channel=${channel}`)).json()) as { clients: { client: string }[] };
    assert.equal(presence.clients.length, 1);
    const dropped = await fetch(`${server.url}/api/disconnect`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ client: presence.clients[0]!.client }) });
    assert.equal(dropped.status, 200);
    // 101..200 while the page waits out `retry: 3000`: they come back from history.
    for (let n = 101; n <= 200; n++) await publish(channel, n);
    await page.waitForFunction('window.es.events.length >= 200 && window.es.ready.length === 2', undefined, { timeout: 15_000 });
    assert.equal(streams.length, 2);

    // 201..250 live; then the stream's socket is destroyed on the server (no goodbye), 251..300 meanwhile.
    for (let n = 201; n <= 250; n++) await publish(channel, n);
    streams[1]!.socket.destroy();
    for (let n = 251; n <= 300; n++) await publish(channel, n);
    await page.waitForFunction('window.es.events.length >= 300 && window.es.ready.length === 3', undefined, { timeout: 15_000 });
    await new Promise((r) => setTimeout(r, 200)); // a late duplicate would land here

    const log = await read();
    const all = Array.from({ length: 300 }, (_, i) => i + 1);
    assert.deepEqual(log.events.map((e) => e.offset), all, 'every offset 1..300 once, in order');
    assert.deepEqual(log.events.map((e) => e.n), all, 'each with its own data');
    assert.equal(streams.length, 3, 'two reconnects, no more');
    assert.equal(log.opens, 3);
    assert.equal(log.errors.length, 2, 'one error (reconnecting) per drop');
    for (const [i, err] of log.errors.entries()) {
      assert.equal(err.readyState, 0, `drop ${i + 1}: EventSource is reconnecting (CONNECTING), not closed`);
      assert.ok(err.lastEventId !== '', `drop ${i + 1}: an id had been seen`);
      assert.equal(streams[i + 1]!.lastEventId, err.lastEventId, `drop ${i + 1}: the browser sent the last id it saw as Last-Event-ID`);
    }
    // The first drop ended cleanly, after everything queued: nothing was left for the resume to re-send.
    assert.equal(log.errors[0]!.afterEvents, 100);
    assert.deepEqual(log.other, ['disconnect {"code":4002,"reason":"disconnected by the server","reconnect":true}']);
    assert.deepEqual(log.ready.map((r) => r.recovered), [true, true, true], 'each resume was recovered from history');
    // Each resumed stream's ready cursor is where the page left off (the position before the missed events).
    assert.equal(log.ready[1]!.id, log.errors[0]!.lastEventId);
    assert.equal(log.ready[2]!.id, log.errors[1]!.lastEventId);
    assert.equal(log.ready[1]!.afterEvents, 100);
    assert.equal(log.ready[2]!.afterEvents, log.errors[1]!.afterEvents);

    await page.evaluate('window.source.close()');
    await page.close();
    assert.deepEqual(pageErrors, []);
  });
});
