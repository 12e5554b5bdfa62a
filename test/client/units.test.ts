import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { RECONNECT_DEFAULTS, backoffDelay, resolveReconnect } from '../../src/client/backoff.js';
import { Emitter } from '../../src/client/emitter.js';
import { HeraldClientError } from '../../src/client/errors.js';
import { Subscription, type SubscribedInfo } from '../../src/client/subscription.js';
import { endpointUrl, utf8LongerThan } from '../../src/client/transport.js';
import { SseParser, httpError, type SseMessage } from '../../src/client/http.js';
import { HeraldClient } from '../../src/client/index.js';
import type { HeraldEvent, SubscribeResult } from '../../src/protocol/index.js';

function ev(offset: number, epoch = 'e1', channel = 'c'): HeraldEvent {
  return { channel, offset, epoch, id: `id-${epoch}-${offset}`, timestamp: 0, data: offset };
}

function answer(offset: number, events: HeraldEvent[], recovered = true, epoch = 'e1'): SubscribeResult {
  return { channel: 'c', epoch, offset, recovered, events };
}

const host = { unsubscribe: (s: Subscription) => s._end('unsubscribed by the client') };

describe('backoff', () => {
  it('grows by the factor from minDelay up to maxDelay, jitter taking off at most its share', () => {
    const o = RECONNECT_DEFAULTS;
    assert.deepEqual([0, 1, 2, 3, 10, 100].map((a) => backoffDelay(a, o, () => 0)), [500, 1000, 2000, 4000, 20_000, 20_000]);
    assert.equal(backoffDelay(0, o, () => 1), 250);
    assert.equal(backoffDelay(10, o, () => 0.999999), 10_000);
    assert.equal(backoffDelay(2, { ...o, jitter: 0 }, () => 1), 2000);
  });

  it('refuses options that cannot work, naming the key', () => {
    assert.throws(() => resolveReconnect({ maxDelay: 10 }), /reconnect\.maxDelay/);
    assert.throws(() => resolveReconnect({ jitter: 2 }), /reconnect\.jitter/);
    assert.throws(() => resolveReconnect({ factor: 0.5 }), /reconnect\.factor/);
    assert.deepEqual(resolveReconnect(undefined), RECONNECT_DEFAULTS);
  });
});

describe('endpointUrl', () => {
  it('derives the WebSocket and HTTP endpoints from either kind of base', () => {
    assert.equal(endpointUrl('http://127.0.0.1:8080', '/ws', 'ws'), 'ws://127.0.0.1:8080/ws');
    assert.equal(endpointUrl('https://h.example/', '/ws', 'ws'), 'wss://h.example/ws');
    assert.equal(endpointUrl('ws://h:1/ws', '/ws', 'ws'), 'ws://h:1/ws');
    assert.equal(endpointUrl('wss://h/prefix/ws?x=1#y', '/api/publish', 'http'), 'https://h/prefix/api/publish');
    assert.equal(endpointUrl('http://[::1]:9/base/', '/sse', 'http'), 'http://[::1]:9/base/sse');
    assert.throws(() => endpointUrl('ftp://h', '/ws', 'ws'), /http\(s\):\/\/ or ws\(s\):\/\//);
  });
});

describe('utf8LongerThan', () => {
  it('counts UTF-8 bytes exactly at the limit', () => {
    assert.equal(utf8LongerThan('a'.repeat(10), 10), false);
    assert.equal(utf8LongerThan('a'.repeat(11), 10), true);
    assert.equal(utf8LongerThan('é'.repeat(5), 10), false); // 2 bytes each
    assert.equal(utf8LongerThan('é'.repeat(6), 11), true);
    assert.equal(utf8LongerThan('😀'.repeat(2), 8), false); // a surrogate pair is 4 bytes
    assert.equal(utf8LongerThan('😀'.repeat(2) + 'a', 8), true);
    assert.equal(utf8LongerThan('€'.repeat(3), 9), false);
    assert.equal(utf8LongerThan('€'.repeat(3), 8), true);
  });
});

describe('Emitter', () => {
  class E extends Emitter<{ x: [n: number] }> {
    fire(n: number): void {
      this.emit('x', n);
    }
  }

  it('calls listeners in order, once() once, and the returned function removes', () => {
    const e = new E();
    const seen: string[] = [];
    const off = e.on('x', (n) => seen.push(`a${n}`));
    e.once('x', (n) => seen.push(`b${n}`));
    e.fire(1);
    off();
    e.fire(2);
    assert.deepEqual(seen, ['a1', 'b1']);
    assert.equal(e.listenerCount('x'), 0);
  });

  it('a throwing listener does not stop the others; its error is re-thrown asynchronously', () => {
    const e = new E();
    let second = false;
    e.on('x', () => {
      throw new Error('listener bug');
    });
    e.on('x', () => (second = true));
    const deferred: (() => void)[] = [];
    const real = globalThis.queueMicrotask;
    globalThis.queueMicrotask = (fn) => deferred.push(fn);
    try {
      e.fire(1);
    } finally {
      globalThis.queueMicrotask = real;
    }
    assert.equal(second, true);
    assert.equal(deferred.length, 1);
    assert.throws(() => deferred[0]!(), /listener bug/);
  });
});

describe('Subscription: resume, dedup and gaps', () => {
  it('takes the answer\'s events, then live events; drops duplicates; reports a skip as a gap', () => {
    const sub = new Subscription(host, 'c');
    const seen: number[] = [];
    sub.on('event', (e) => seen.push(e.offset));
    assert.equal(sub._live(ev(1)), 'ok', 'events before the answer are dropped');
    sub._subscribed(answer(2, []), undefined);
    assert.deepEqual(sub.position, { epoch: 'e1', offset: 2 }, 'a quiet channel still has a position');
    assert.equal(sub._live(ev(2)), 'ok');
    assert.equal(sub._live(ev(3)), 'ok');
    assert.equal(sub._live(ev(3)), 'ok');
    assert.equal(sub._live(ev(5)), 'gap');
    assert.deepEqual(seen, [3]);
    assert.deepEqual(sub.position, { epoch: 'e1', offset: 3 });
    // The client resubscribes from the position: the answer fills the hole, duplicates are dropped.
    sub._subscribing();
    assert.equal(sub._live(ev(4)), 'ok');
    sub._subscribed(answer(5, [ev(3), ev(4), ev(5)]), { epoch: 'e1', offset: 3 });
    assert.equal(sub._live(ev(5)), 'ok');
    assert.equal(sub._live(ev(6)), 'ok');
    assert.deepEqual(seen, [3, 4, 5, 6]);
  });

  it('an event of another epoch that does not start it is a gap; one that does is taken', () => {
    const sub = new Subscription(host, 'c');
    sub._subscribed(answer(7, []), undefined);
    assert.equal(sub._live(ev(3, 'e2')), 'gap');
    assert.equal(sub._live(ev(1, 'e2')), 'ok');
    assert.deepEqual(sub.position, { epoch: 'e2', offset: 1 });
  });

  it('recovered:false is surfaced (subscribed event, then onRecovered) before the retained events, none of them dropped as duplicates', () => {
    const order: string[] = [];
    const sub = new Subscription(host, 'c', {
      since: { epoch: 'e1', offset: 50 },
      onRecovered: (info) => order.push(`onRecovered:${info.recovered}`),
      onEvent: (e) => order.push(`onEvent:${e.epoch}/${e.offset}`),
    });
    let info: SubscribedInfo | undefined;
    sub.on('subscribed', (i) => {
      info = i;
      order.push(`subscribed:${i.recovered}`);
    });
    sub._subscribed(answer(12, [ev(11, 'e2'), ev(12, 'e2')], false, 'e2'), { epoch: 'e1', offset: 50 });
    assert.deepEqual(info, { channel: 'c', epoch: 'e2', offset: 12, recovered: false, resumed: true });
    assert.deepEqual(order, ['subscribed:false', 'onRecovered:false', 'onEvent:e2/11', 'onEvent:e2/12']);
    assert.deepEqual(sub.position, { epoch: 'e2', offset: 12 });
  });

  it('without a position, recovered is true and onRecovered is not called', () => {
    let called = false;
    const sub = new Subscription(host, 'c', { onRecovered: () => (called = true) });
    let info: SubscribedInfo | undefined;
    sub.on('subscribed', (i) => (info = i));
    sub._subscribed(answer(0, []), undefined);
    assert.equal(info?.recovered, true);
    assert.equal(info?.resumed, false);
    assert.equal(called, false);
  });
});

describe('Subscription: async iterator', () => {
  it('yields queued and later events in order and ends when unsubscribed', async () => {
    const sub = new Subscription(host, 'c');
    sub._subscribed(answer(0, []), undefined);
    const it = sub[Symbol.asyncIterator]();
    sub._live(ev(1));
    sub._live(ev(2));
    const first = it.next();
    assert.equal((await it.next()).value?.offset, 2);
    assert.equal((await first).value?.offset, 1);
    sub._live(ev(3));
    assert.equal((await it.next()).value?.offset, 3);
    const pending = it.next();
    sub.unsubscribe();
    assert.deepEqual(await pending, { value: undefined, done: true });
  });

  it('overflow: yields what it queued, then throws `overflow` naming the last queued position; the subscription goes on', async () => {
    const sub = new Subscription(host, 'c', { bufferSize: 3 });
    sub._subscribed(answer(0, []), undefined);
    const it = sub.events();
    const other = sub.events({ bufferSize: 10 });
    for (let i = 1; i <= 5; i++) sub._live(ev(i));
    const got: number[] = [];
    for (let i = 0; i < 3; i++) got.push((await it.next()).value!.offset);
    assert.deepEqual(got, [1, 2, 3]);
    await assert.rejects(it.next(), (err: unknown) => err instanceof HeraldClientError && err.code === 'overflow' && /offset: 3\}/.test(err.message));
    assert.deepEqual(await it.next(), { value: undefined, done: true });
    assert.equal((await other.next()).value?.offset, 1, 'another iterator is unaffected');
    assert.equal(sub.state, 'subscribed');
  });

  it('a failed subscription makes its iterators throw the error', async () => {
    const sub = new Subscription(host, 'c');
    const it = sub.events();
    const pending = it.next();
    sub._end('subscribe refused: forbidden', new HeraldClientError('forbidden', 'no'));
    await assert.rejects(pending, { code: 'forbidden' });
  });

  it('break in for-await detaches the iterator', async () => {
    const sub = new Subscription(host, 'c');
    sub._subscribed(answer(0, []), undefined);
    sub._live(ev(1));
    const it = sub.events();
    sub._live(ev(2));
    for await (const e of it) {
      assert.equal(e.offset, 2);
      break;
    }
    sub._live(ev(3));
    assert.deepEqual(await it.next(), { value: undefined, done: true });
  });
});

describe('HeraldClient options', () => {
  it('validates url, transports and timeout up front', () => {
    assert.throws(() => new HeraldClient({}), /`url` is required/);
    assert.throws(() => new HeraldClient({ url: 'http://h', transports: ['carrier-pigeon' as 'sse'] }), /not available/);
    assert.throws(() => new HeraldClient({ url: 'http://h', timeout: 0 }), /`timeout`/);
    assert.throws(() => new HeraldClient({ url: 'http://h', reconnect: { minDelay: -1 } }), /reconnect\.minDelay/);
  });

  it('refuses bad channel names and a second subscription to a channel synchronously', () => {
    const client = new HeraldClient({ url: 'http://127.0.0.1:1' });
    assert.throws(() => client.subscribe(''), { code: 'bad_request' });
    assert.throws(() => client.subscribe('a\u0001'), { code: 'bad_request' });
    client.subscribe('a');
    assert.throws(() => client.subscribe('a'), { code: 'bad_request' });
    client.close();
    assert.equal(client.state, 'closed');
  });

  it('a command while closed is rejected with `closed`; one before connect() waits and times out', async () => {
    const client = new HeraldClient({ url: 'http://127.0.0.1:1', timeout: 30 });
    await assert.rejects(client.publish('a', 1), (err: unknown) => err instanceof HeraldClientError && err.code === 'timeout');
    client.close();
    await assert.rejects(client.publish('a', 1), { code: 'closed' });
    await assert.rejects(client.publish('a', undefined), { code: 'bad_request' });
  });
});

describe('SseParser', () => {
  const parse = (chunks: string[]): SseMessage[] => {
    const out: SseMessage[] = [];
    const p = new SseParser((m) => out.push(m));
    for (const c of chunks) p.feed(c);
    return out;
  };

  it('reads herald\'s stream: retry, ready, events with ids, heartbeat comments', () => {
    const stream = 'retry: 3000\n\nid: c0\nevent: ready\ndata: {"cursor":"c0","recovered":true}\n\n: heartbeat\n\nid: c1\nevent: event\ndata: {"offset":1}\n\n';
    const expected = [
      { event: 'ready', data: '{"cursor":"c0","recovered":true}', id: 'c0' },
      { event: 'event', data: '{"offset":1}', id: 'c1' },
    ];
    assert.deepEqual(parse([stream]), expected);
    // Any split into chunks gives the same messages.
    for (let cut = 1; cut < stream.length; cut += 7) assert.deepEqual(parse([stream.slice(0, cut), stream.slice(cut)]), expected);
    assert.deepEqual(parse([...stream]), expected);
  });

  it('CRLF, CR and a CRLF split between chunks; multi-line data; a field without a value', () => {
    assert.deepEqual(parse(['data: a\r\ndata: b\r', '\n\r\n']), [{ event: 'message', data: 'a\nb', id: undefined }]);
    assert.deepEqual(parse(['event: x\rdata\r\r']), [], 'a CR last waits for the next chunk');
    assert.deepEqual(parse(['event: x\rdata\r\r', 'event: y\n']), [{ event: 'x', data: '', id: undefined }]);
    assert.deepEqual(parse(['event: nodata\n\n']), [], 'no data line: nothing is dispatched');
    assert.deepEqual(parse(['data:no-space\n\n']), [{ event: 'message', data: 'no-space', id: undefined }]);
  });
});

describe('httpError', () => {
  it('keeps the server\'s code from an error body, else maps the status', () => {
    assert.equal(httpError(413, { error: { code: 'too_large', message: 'big' } }).code, 'too_large');
    assert.equal(httpError(404, undefined).code, 'not_found');
    assert.equal(httpError(502, 'gateway').code, 'unavailable');
    assert.equal(httpError(429, null).code, 'rate_limited');
  });
});
