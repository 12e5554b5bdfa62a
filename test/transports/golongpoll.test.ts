/**
 * golongpoll v1.3 compatibility: its documented requests and answers, byte for byte, and its two
 * clients' request logic (the Go `client.Client` and the browser `js-client/client.js`), emulated
 * request for request since neither can run here unchanged (no Go toolchain; client.js needs a
 * browser's XMLHttpRequest).
 */
import { after, afterEach, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { HeraldError } from '../../src/protocol/index.js';
import { MemoryEngine } from '../../src/engines/memory.js';
import { decodePublishBody, goParseInt, goParseUuid } from '../../src/transports/compat/golongpoll.js';
import { http, range, startHarness, waitFor, type Harness, type HttpAnswer } from './helpers.js';

interface GlpEvent {
  timestamp: number;
  category: string;
  data: unknown;
  id: string;
}

const SUB_HEADERS = { 'content-type': 'application/json', 'cache-control': 'no-cache, no-store, must-revalidate', pragma: 'no-cache', expires: '0' };

function assertSubscribeHeaders(a: HttpAnswer): void {
  for (const [k, v] of Object.entries(SUB_HEADERS)) assert.equal(a.headers[k], v, k);
}

/** Emulates js-client/client.js: its poll URL, its parameter order and escaping, its state updates. */
class JsClient {
  sinceTime: number;
  lastId: string | undefined;
  running = true;
  readonly received: GlpEvent[] = [];
  readonly failures: string[] = [];
  /** Set to abort the request in flight (as an XHR abort: status 0, onFailure, reattempt). */
  abortNext = false;
  inFlight = false;

  constructor(
    private readonly base: string,
    private readonly category: string,
    private readonly pollTimeoutSeconds = 5,
    sinceTime = Date.now(),
  ) {
    this.sinceTime = sinceTime;
  }

  url(): string {
    const params: Record<string, string | number> = { category: this.category, timeout: this.pollTimeoutSeconds, since_time: this.sinceTime, last_id: !this.lastId ? '' : this.lastId };
    const query = Object.keys(params).map((k) => encodeURIComponent(k) + '=' + encodeURIComponent(params[k]!)).join('&');
    return '/golongpoll/events?' + query;
  }

  async pollOnce(signal?: AbortSignal): Promise<'events' | 'timeout' | 'error' | 'failed'> {
    let answer: HttpAnswer;
    try {
      answer = await http(this.base, this.url(), { signal });
    } catch {
      this.failures.push('request FAILED, response status: 0');
      return 'failed';
    }
    if (answer.status !== 200) {
      this.failures.push(`request FAILED, response status: ${answer.status}`);
      return 'failed';
    }
    const data = JSON.parse(answer.body) as { events?: GlpEvent[]; timeout?: string; error?: string };
    if (data && data.events && data.events.length > 0) {
      for (const event of data.events) {
        this.sinceTime = event.timestamp;
        this.lastId = event.id;
        this.received.push(event);
      }
      return 'events';
    }
    if (data && data.timeout) return 'timeout';
    if (data && data.error) {
      this.failures.push(data.error);
      return 'error';
    }
    throw new Error('unexpected response ' + answer.body);
  }

  async publish(category: string, data: unknown): Promise<boolean> {
    const answer = await http(this.base, '/golongpoll/publish', { method: 'POST', headers: { 'Content-type': 'application/json' }, body: JSON.stringify({ category, data }) });
    const json = answer.status === 200 && answer.body ? (JSON.parse(answer.body) as { success?: boolean }) : undefined;
    return json?.success === true;
  }
}

/** Emulates client/client.go: url.Values (sorted keys), since/lastID bookkeeping, timeout handling. */
class GoClient {
  since: number;
  lastId = '';
  readonly received: GlpEvent[] = [];

  constructor(
    private readonly base: string,
    private readonly category: string,
    private readonly pollTimeoutSeconds = 1,
    pollSince = new Date(),
  ) {
    this.since = Math.floor(pollSince.getTime() / 1000) * 1000; // pollSince.Unix() * 1000
  }

  url(): string {
    const q: [string, string][] = [['category', this.category], ['since_time', String(this.since)]];
    if (this.lastId.length > 0) q.push(['last_id', this.lastId]);
    q.push(['timeout', String(this.pollTimeoutSeconds)]);
    q.sort((a, b) => (a[0] < b[0] ? -1 : 1)); // url.Values.Encode sorts by key
    return '/golongpoll/events?' + new URLSearchParams(q).toString();
  }

  async fetchEvents(): Promise<{ events?: GlpEvent[]; timestamp?: number }> {
    const answer = await http(this.base, this.url());
    if (answer.status !== 200) throw new Error(`HTTP response code: ${answer.status}`);
    const resp = JSON.parse(answer.body) as { events?: GlpEvent[]; timestamp?: number; error?: string };
    if (resp.error) throw new Error(`Longpoll API error message: ${resp.error}`);
    return resp;
  }

  async step(): Promise<void> {
    const resp = await this.fetchEvents();
    if (resp.events && resp.events.length > 0) {
      for (const event of resp.events) {
        this.since = event.timestamp;
        this.lastId = event.id;
        this.received.push(event);
      }
    } else if ((resp.timestamp ?? 0) > this.since) this.since = resp.timestamp!;
  }

  async publish(category: string, data: unknown): Promise<void> {
    const answer = await http(this.base, '/golongpoll/publish', { method: 'POST', body: JSON.stringify({ category, data }) });
    if (answer.status !== 200) throw new Error(`HTTP response code: ${answer.status}`);
    const resp = JSON.parse(answer.body) as { success: boolean; error?: string };
    if (!resp.success) throw new Error(resp.error);
  }
}

describe('golongpoll', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness({
      golongpoll: { allowedOrigins: ['http://ok.example'] },
      hub: {
        namespaces: { '': { historySize: 2000 } },
        hooks: {
          authenticate(token) {
            if (token === 'bad') throw new HeraldError('unauthorized', 'invalid token');
            return {};
          },
        },
      },
    });
  });
  after(async () => {
    await h.close();
    assert.deepEqual(h.errors, []);
  });
  afterEach(() => waitFor(() => h.golongpoll.size === 0, 5000, 'polls finished'));

  it('answers invalid subscribe requests with its exact messages, HTTP 200 and its headers', async () => {
    const timeoutError = `{"error": "Invalid or missing 'timeout' arg.  Must be 1-110."}`;
    const categoryError = '{"error": "Invalid subscription category, must be 1-1024 characters long."}';
    const table: [string, string][] = [
      ['', timeoutError],
      ['category=a', timeoutError],
      ['timeout=&category=a', timeoutError],
      ['timeout=abc&category=a', timeoutError],
      ['timeout=0&category=a', timeoutError],
      ['timeout=-5&category=a', timeoutError],
      ['timeout=111&category=a', timeoutError],
      ['timeout=1.5&category=a', timeoutError],
      ['timeout=+5&category=a', timeoutError], // '+' is a space in a query, for Go too
      ['timeout=%205&category=a', timeoutError],
      ['timeout=99999999999999999999&category=a', timeoutError],
      ['timeout=5', categoryError],
      ['timeout=5&category=', categoryError],
      [`timeout=5&category=${'a'.repeat(1025)}`, categoryError],
      [`timeout=5&category=${'%C3%A9'.repeat(513)}`, categoryError], // 1026 bytes
      ['timeout=5&category=a%00b', categoryError],
      ['timeout=5&category=a&since_time=abc', `{"error": "Invalid 'since_time' arg."}`],
      ['timeout=5&category=a&since_time=1.5', `{"error": "Invalid 'since_time' arg."}`],
      ['timeout=5&category=a&since_time=99999999999999999999', `{"error": "Invalid 'since_time' arg."}`],
      ['timeout=5&category=a&last_id=7c17587a-3437-4861-bef7-8f29905589e4', `{"error": "Must provide 'since_time' arg when providing 'last_id'."}`],
      ['timeout=5&category=a&since_time=1&last_id=nope', `{"error": "Param 'last_id' was not a valid UUID."}`],
      ['timeout=5&category=a&since_time=1&last_id=7c17587a-3437-4861-bef7-8f29905589e', `{"error": "Param 'last_id' was not a valid UUID."}`],
      ['timeout=5&category=a&since_time=1&last_id=7c17587a_3437_4861_bef7_8f29905589e4', `{"error": "Param 'last_id' was not a valid UUID."}`],
    ];
    for (const [query, body] of table) {
      const answer = await http(h.base, `/golongpoll/events?${query}`);
      assert.equal(answer.status, 200, query.slice(0, 60));
      assert.equal(answer.body, body, query.slice(0, 60));
      assertSubscribeHeaders(answer);
    }
  });

  it('accepts the valid forms golongpoll accepts (Atoi timeout, 1024-byte category, any UUID form)', async () => {
    await h.hub.publish('valid', 'x');
    const [event] = (await h.hub.history('valid', {})).events;
    const uuid = event!.id;
    const forms = [uuid, uuid.toUpperCase(), `{${uuid}}`, `urn:uuid:${uuid}`, uuid.replace(/-/g, '')];
    for (const form of forms) assert.equal(goParseUuid(form), uuid, form);
    assert.equal(goParseInt('+5'), 5);
    assert.equal(goParseInt('007'), 7);
    // since_time=0: everything retained, golongpoll's event shape, keys in its order.
    for (const query of ['timeout=%2B5&category=valid&since_time=0', 'timeout=110&category=valid&since_time=-1', `timeout=5&category=valid&since_time=0&last_id=`]) {
      const answer = await http(h.base, `/golongpoll/events?${query}`);
      assert.equal(answer.status, 200);
      assertSubscribeHeaders(answer);
      assert.equal(answer.body, `{"events":[{"timestamp":${event!.timestamp},"category":"valid","data":"x","id":"${uuid}"}]}`, query);
    }
    await h.hub.publish('a'.repeat(1024), 1);
    const long = await http(h.base, `/golongpoll/events?timeout=5&category=${'a'.repeat(1024)}&since_time=0`);
    assert.equal((JSON.parse(long.body) as { events: GlpEvent[] }).events.length, 1);
  });

  it('answers golongpoll\'s timeout object when nothing comes', async () => {
    const before = Date.now();
    const answer = await http(h.base, '/golongpoll/events?timeout=1&category=quiet');
    assert.equal(answer.status, 200);
    assertSubscribeHeaders(answer);
    const json = JSON.parse(answer.body) as { timeout: string; timestamp: number };
    assert.deepEqual(Object.keys(json), ['timeout', 'timestamp']);
    assert.equal(json.timeout, 'no events before timeout');
    assert.ok(json.timestamp >= before + 900 && json.timestamp <= Date.now(), String(json.timestamp - before));
  });

  it('answers publish requests like its PublishHandler', async () => {
    const table: [string, string | undefined, number, string][] = [
      ['GET', undefined, 405, '{"error": "Invalid HTTP Method. Only POST allowed."}'],
      ['PUT', '{"category":"p","data":1}', 405, '{"error": "Invalid HTTP Method. Only POST allowed."}'],
      ['POST', '', 400, '{"error": "Invalid POST body json."}'],
      ['POST', '   ', 400, '{"error": "Invalid POST body json."}'],
      ['POST', '{"category":', 400, '{"error": "Invalid POST body json."}'],
      ['POST', '[1,2]', 400, '{"error": "Invalid POST body json."}'],
      ['POST', '"text"', 400, '{"error": "Invalid POST body json."}'],
      ['POST', '42', 400, '{"error": "Invalid POST body json."}'],
      ['POST', '{"category":5,"data":1}', 400, '{"error": "Invalid POST body json."}'],
      ['POST', 'null', 400, `{"error": "Invalid or missing 'category' arg, must be 1-1024 characters long."}`],
      ['POST', '{}', 400, `{"error": "Invalid or missing 'category' arg, must be 1-1024 characters long."}`],
      ['POST', '{"category":"","data":1}', 400, `{"error": "Invalid or missing 'category' arg, must be 1-1024 characters long."}`],
      ['POST', JSON.stringify({ category: 'c'.repeat(1025), data: 1 }), 400, `{"error": "Invalid or missing 'category' arg, must be 1-1024 characters long."}`],
      ['POST', JSON.stringify({ category: 'a\u0001', data: 1 }), 400, `{"error": "Invalid or missing 'category' arg, must be 1-1024 characters long."}`],
      ['POST', '{"category":"p"}', 400, `{"error": "Invalid or missing 'data' arg, must be non-nil."}`],
      ['POST', '{"category":"p","data":null}', 400, `{"error": "Invalid or missing 'data' arg, must be non-nil."}`],
      ['POST', '{"category":"p","data":"hello"}', 200, '{"success": true}'],
      ['POST', '{"category":"p","data":false}', 200, '{"success": true}'],
      ['POST', '{"Category":"p","DATA":{"k":[1]}}', 200, '{"success": true}'],
      ['POST', '{"category":"p","data":0} trailing garbage', 200, '{"success": true}'],
    ];
    for (const [method, body, status, expected] of table) {
      const answer = await http(h.base, '/golongpoll/publish', { method, body, headers: { 'content-type': 'application/json' } });
      assert.equal(answer.status, status, `${method} ${body?.slice(0, 40)}`);
      assert.equal(answer.body, expected, `${method} ${body?.slice(0, 40)}`);
      assert.equal(answer.headers['content-type'], 'application/json');
      assert.equal(answer.headers['x-content-type-options'], 'nosniff');
    }
    const events = (await h.hub.history('p', {})).events.map((e) => e.data);
    assert.deepEqual(events, ['hello', false, { k: [1] }, 0]);
    const big = await http(h.base, '/golongpoll/publish', { method: 'POST', body: JSON.stringify({ category: 'p', data: 'x'.repeat(70_000) }) });
    assert.equal(big.status, 413);
    assert.equal(Object.keys(JSON.parse(big.body)).join(), 'error');
    assert.deepEqual(decodePublishBody('{"category":"a","category":"b","data":1}'), { ok: true, category: 'b', data: 1 });
  });

  it('keeps its {"error"} shape for herald refusals (token, origin)', async () => {
    const unauthorized = await http(h.base, '/golongpoll/events?timeout=1&category=a&token=bad');
    assert.equal(unauthorized.status, 401);
    assert.equal(unauthorized.body, '{"error":"invalid token"}');
    const bearer = await http(h.base, '/golongpoll/publish', { method: 'POST', body: '{"category":"a","data":1}', headers: { authorization: 'Bearer bad' } });
    assert.equal(bearer.status, 401);
    const origin = await http(h.base, '/golongpoll/events?timeout=1&category=a', { headers: { origin: 'http://evil.example' } });
    assert.equal(origin.status, 403);
    assert.equal(origin.body, '{"error": "Origin not allowed."}');
  });

  it('polls stay out of presence and cause no join/leave (as herald\'s own long-poll); the category\'s permission is still checked', async () => {
    const p = await startHarness({ hub: { namespaces: { '': { historySize: 100 }, room: { joinLeave: true }, locked: { anonymousSubscribe: false } } } });
    try {
      const seen: string[] = [];
      const watcher = { client: { id: 'watcher', transport: 'test' }, deliver: () => {}, onPresence: (kind: string, _c: string, info: { client: string }) => seen.push(`${kind}:${info.client}`) };
      await p.hub.subscribe(watcher, 'room:a');
      const pending = http(p.base, '/golongpoll/events?timeout=10&category=room:a');
      await waitFor(() => p.golongpoll.size === 1 && p.hub.stats().subscriptions === 2, 5000, 'the poll waiting');
      assert.deepEqual((await p.hub.presence('room:a')).map((c) => c.client), ['watcher']);
      await p.hub.publish('room:a', 'hi');
      const answer = await pending;
      assert.deepEqual((JSON.parse(answer.body) as { events: GlpEvent[] }).events.map((e) => e.data), ['hi']);
      await waitFor(() => p.hub.stats().subscriptions === 1, 5000, 'the poll unsubscribed');
      assert.deepEqual(seen, [], 'no join or leave for a poll');
      // Anonymous clients may not subscribe to locked:*, with or without since_time.
      for (const q of ['', '&since_time=1']) {
        const refused = await http(p.base, `/golongpoll/events?timeout=1&category=locked:x${q}`);
        assert.equal(refused.status, 403, `since_time ${q || 'absent'}: ${refused.body}`);
        assert.equal(Object.keys(JSON.parse(refused.body)).join(), 'error');
      }
      assert.equal(p.golongpoll.size, 0);
    } finally {
      await p.close();
    }
  });

  it('never skips events published in the same millisecond when resuming with since_time + last_id', async () => {
    const frozen = await startHarness({ engine: new MemoryEngine({ now: () => 1_700_000_000_000 }) });
    try {
      for (let i = 1; i <= 5; i++) await frozen.hub.publish('ms', i);
      const events = (await frozen.hub.history('ms', {})).events;
      assert.ok(events.every((e) => e.timestamp === 1_700_000_000_000));
      const answer = await http(frozen.base, `/golongpoll/events?timeout=5&category=ms&since_time=1700000000000&last_id=${events[1]!.id}`);
      assert.deepEqual((JSON.parse(answer.body) as { events: GlpEvent[] }).events.map((e) => e.data), [3, 4, 5]);
      // Without last_id golongpoll returns only later timestamps: none yet, so it waits for the next event.
      const waiting = http(frozen.base, '/golongpoll/events?timeout=5&category=ms&since_time=1700000000000');
      await waitFor(() => frozen.golongpoll.size === 1 && frozen.hub.stats().subscriptions === 1, 5000, 'waiting');
      await frozen.hub.publish('ms', 6);
      assert.deepEqual((JSON.parse((await waiting).body) as { events: GlpEvent[] }).events.map((e) => e.data), [6]);
    } finally {
      await frozen.close();
    }
  });

  it('falls back to golongpoll\'s timestamp rule when last_id is no longer in history', async () => {
    let clock = 1_000;
    const small = await startHarness({ engine: new MemoryEngine({ now: () => (clock += 10) }), hub: { namespaces: { '': { historySize: 3 } } } });
    try {
      for (let i = 1; i <= 5; i++) await small.hub.publish('ev', i);
      const [e3] = (await small.hub.history('ev', {})).events; // e1, e2 evicted
      const answer = await http(small.base, `/golongpoll/events?timeout=5&category=ev&since_time=${e3!.timestamp - 10}&last_id=00000000-0000-4000-8000-000000000000`);
      assert.deepEqual((JSON.parse(answer.body) as { events: GlpEvent[] }).events.map((e) => e.data), [3, 4, 5]);
    } finally {
      await small.close();
    }
  });

  it('works with its Go client\'s requests: events, timeouts that move since forward, publish', async () => {
    const go = new GoClient(h.base, 'go-cat', 1, new Date(Date.now() - 1000));
    await go.publish('go-cat', { hello: 'go' });
    await go.step();
    assert.deepEqual(go.received.map((e) => e.data), [{ hello: 'go' }]);
    await go.step(); // nothing: a timeout answer moves `since` past the last event, last_id stays
    assert.ok(go.since > go.received[0]!.timestamp);
    await go.publish('go-cat', 'second');
    await go.publish('go-cat', 'third');
    await go.step();
    assert.deepEqual(go.received.map((e) => e.data), [{ hello: 'go' }, 'second', 'third']);
    await assert.rejects(go.publish('go-cat', null), /HTTP response code: 400/);
  });

  it('streams 1,000 events to its browser client exactly once and in order, across an aborted poll', async () => {
    const js = new JsClient(h.base, 'js-cat', 5, Date.now() - 1);
    let release: () => void = () => {};
    const gate = new Promise<void>((r) => (release = r));
    const publishing = (async () => {
      for (let n = 1; n <= 1000; n++) {
        if (n === 501) await gate;
        if (n % 100 === 0) assert.equal(await js.publish('js-cat', n), true);
        else await h.hub.publish('js-cat', n);
        if (n % 20 === 0) await new Promise((r) => setImmediate(r));
      }
    })();
    let aborted = false;
    while (js.received.length < 1000) {
      if (js.received.length === 500 && !aborted) {
        aborted = true;
        const controller = new AbortController();
        const request = js.pollOnce(controller.signal);
        await waitFor(() => h.golongpoll.size === 1, 5000, 'poll waiting');
        controller.abort();
        assert.equal(await request, 'failed'); // the XHR fails; client.js re-polls with the same since_time/last_id
        await waitFor(() => h.golongpoll.size === 0, 5000, 'aborted poll cleaned up');
        release();
        continue;
      }
      const outcome = await js.pollOnce();
      assert.notEqual(outcome, 'error', js.failures.join());
    }
    await publishing;
    assert.ok(aborted);
    assert.deepEqual(js.received.map((e) => e.data), range(1, 1000));
    assert.equal(new Set(js.received.map((e) => e.id)).size, 1000);
    const sameMs = js.received.filter((e, i) => i > 0 && e.timestamp === js.received[i - 1]!.timestamp).length;
    assert.ok(sameMs > 0, 'the run had events sharing a millisecond');
  });

  it('close() answers pending polls with the timeout object', async () => {
    const other = await startHarness();
    const pending = http(other.base, '/golongpoll/events?timeout=100&category=z');
    await waitFor(() => other.golongpoll.size === 1, 5000, 'poll waiting');
    await other.golongpoll.close();
    assert.equal(JSON.parse((await pending).body).timeout, 'no events before timeout');
    await other.close();
  });
});
