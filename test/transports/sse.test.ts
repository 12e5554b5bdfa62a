import { after, afterEach, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { decodeCursor, encodeCursor, HeraldError, type HeraldEvent } from '../../src/protocol/index.js';
import { CursorBuilder } from '../../src/transports/http-stream/cursor.js';
import { SseClient, http, range, startHarness, waitFor, type Harness, type SseMessage } from './helpers.js';

function positions(id: string | undefined): Record<string, number> {
  const cursor = decodeCursor(id ?? '');
  assert.ok(cursor, `not a cursor: ${id}`);
  return Object.fromEntries([...cursor].map(([channel, p]) => [channel, p.offset]));
}

function eventOf(m: SseMessage): HeraldEvent {
  return JSON.parse(m.data) as HeraldEvent;
}

async function ready(client: SseClient): Promise<{ cursor: string; recovered: boolean; id: string | undefined }> {
  await waitFor(() => client.of('ready').length > 0 || client.ended, 5000, 'ready');
  const m = client.of('ready')[0];
  assert.ok(m, `no ready (status ${client.status}): ${client.raw}`);
  return { ...(JSON.parse(m.data) as { cursor: string; recovered: boolean }), id: m.id };
}

/** A bare TCP peer that sends `request` and collects what comes back, decoded as `encoding`. */
function rawPeer(port: number, encoding: BufferEncoding, request: string): { socket: Socket; readonly raw: string } {
  const socket = connect(port, '127.0.0.1');
  const peer = { socket, raw: '' };
  socket.setEncoding(encoding);
  socket.on('data', (d: string) => (peer.raw += d));
  socket.write(request);
  return peer;
}

describe('CursorBuilder', () => {
  it('produces cursors that decodeCursor reads back, after any sequence of updates', () => {
    const channels = ['a', 'chat:lobby', 'ü-ñ-✓', 'x'.repeat(1024), 'b', '"quoted"\\'];
    const model = new Map(channels.map((c) => [c, { epoch: 'e1', offset: 0 }]));
    const builder = new CursorBuilder(model);
    assert.deepEqual(decodeCursor(builder.toString()), model);
    let seed = 7;
    for (let i = 0; i < 500; i++) {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      const channel = channels[seed % channels.length]!;
      const p = { epoch: seed % 17 === 0 ? `ep${seed % 5}` : model.get(channel)!.epoch, offset: model.get(channel)!.offset + (seed % 3) };
      model.set(channel, p);
      builder.set(channel, p.epoch, p.offset);
      assert.deepEqual(decodeCursor(builder.toString()), model, `after update ${i}`);
    }
    // Same meaning as the protocol's own encoding.
    assert.deepEqual(decodeCursor(builder.toString()), decodeCursor(encodeCursor(model)));
  });
});

describe('SSE', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness({
      spyWrites: true,
      sse: { heartbeatMs: 40, allowedOrigins: ['http://allowed.example'] },
      hub: {
        namespaces: { '': { historySize: 2000 } },
        hooks: {
          authenticate(token) {
            if (token === 'bad') throw new HeraldError('unauthorized', 'invalid token');
            return token ? { user: token } : {};
          },
        },
      },
    });
  });
  after(async () => {
    await h.close();
    assert.deepEqual(h.errors, []);
  });
  // Every test closes its streams: wait for the server to see it, so counts start clean.
  afterEach(() => waitFor(() => h.sse.size === 0, 5000, 'streams closed'));

  it('starts with retry: 3000, then ready whose id is its cursor, recovered:true without a cursor', async () => {
    const c = new SseClient(h.base, '/sse?channel=r1&channel=r2');
    const r = await ready(c);
    assert.equal(c.status, 200);
    assert.equal(c.headers['content-type'], 'text/event-stream; charset=utf-8');
    assert.ok(c.raw.startsWith('retry: 3000\n\n'), c.raw.slice(0, 40));
    assert.equal(c.messages[0]!.event, 'ready');
    assert.equal(r.id, r.cursor);
    assert.equal(r.recovered, true);
    assert.deepEqual(positions(r.cursor), { r1: 0, r2: 0 });
    c.abort();
  });

  it('gives every event an id that encodes the position of every channel', async () => {
    const c = new SseClient(h.base, '/sse?channel=p1&channel=p2');
    await ready(c);
    await h.hub.publish('p1', { n: 1 });
    await h.hub.publish('p2', 'two');
    await h.hub.publish('p1', null);
    await waitFor(() => c.of('event').length === 3);
    const events = c.of('event');
    assert.deepEqual(events.map((m) => positions(m.id)), [{ p1: 1, p2: 0 }, { p1: 1, p2: 1 }, { p1: 2, p2: 1 }]);
    assert.deepEqual(events.map((m) => [eventOf(m).channel, eventOf(m).offset, eventOf(m).data]), [['p1', 1, { n: 1 }], ['p2', 1, 'two'], ['p1', 2, null]]);
    assert.equal(c.lastEventId, events[2]!.id);
    c.abort();
  });

  it('single-channel streams share one frame per event (built once), with ids that resume without a gap', async () => {
    const a = new SseClient(h.base, '/sse?channel=solo');
    const b = new SseClient(h.base, '/sse?channel=solo');
    const both = new SseClient(h.base, '/sse?channel=solo&channel=solo2');
    await Promise.all([ready(a), ready(b), ready(both)]);
    await h.hub.publish('solo', 1); // alone in its turn: the shared bytes
    await Promise.all([h.hub.publish('solo', 2), h.hub.publish('solo', 3)]); // one turn: one chunk
    await waitFor(() => a.of('event').length === 3 && b.of('event').length === 3 && both.of('event').length === 3);
    assert.deepEqual(a.of('event').map((m) => positions(m.id)), [{ solo: 1 }, { solo: 2 }, { solo: 3 }]);
    assert.deepEqual(b.of('event').map((m) => [m.id, m.data]), a.of('event').map((m) => [m.id, m.data]));
    assert.deepEqual(both.of('event').map((m) => positions(m.id)), [{ solo: 1, solo2: 0 }, { solo: 2, solo2: 0 }, { solo: 3, solo2: 0 }]);
    const from = a.of('event')[0]!.id!;
    a.abort();
    b.abort();
    both.abort();
    await h.hub.publish('solo', 4);
    const again = new SseClient(h.base, '/sse?channel=solo', { 'last-event-id': from });
    assert.equal((await ready(again)).recovered, true);
    await waitFor(() => again.of('event').length === 3);
    assert.deepEqual(again.of('event').map((m) => eventOf(m).offset), [2, 3, 4]);
    again.abort();
  });

  it('resumes every channel from Last-Event-ID with no gap and no duplicate', async () => {
    const c1 = new SseClient(h.base, '/sse?channel=m1&channel=m2');
    await ready(c1);
    for (const [ch, n] of [['m1', 1], ['m2', 1], ['m1', 2]] as const) await h.hub.publish(ch, n);
    await waitFor(() => c1.of('event').length === 3);
    const resumeFrom = c1.of('event')[1]!.id!; // saw m1:1 and m2:1
    c1.abort();
    for (const [ch, n] of [['m2', 2], ['m1', 3], ['m2', 3]] as const) await h.hub.publish(ch, n);
    const c2 = new SseClient(h.base, '/sse?channel=m1&channel=m2', { 'last-event-id': resumeFrom });
    const r = await ready(c2);
    assert.equal(r.recovered, true);
    assert.deepEqual(positions(r.cursor), { m1: 1, m2: 1 });
    await waitFor(() => c2.of('event').length === 4);
    // In order per channel (the SPEC's guarantee); channels may interleave differently.
    const got = c2.of('event').map(eventOf);
    assert.deepEqual(got.filter((e) => e.channel === 'm1').map((e) => e.offset), [2, 3]);
    assert.deepEqual(got.filter((e) => e.channel === 'm2').map((e) => e.offset), [2, 3]);
    assert.deepEqual(positions(c2.lastEventId), { m1: 3, m2: 3 });
    c2.abort();
  });

  it('resumes from a since= parameter, and Last-Event-ID wins over it', async () => {
    await h.hub.publish('s1', 1);
    await h.hub.publish('s1', 2);
    await h.hub.publish('s1', 3);
    const epoch = (await h.hub.history('s1', { limit: 0 })).epoch;
    const at1 = encodeCursor(new Map([['s1', { epoch, offset: 1 }]]));
    const at2 = encodeCursor(new Map([['s1', { epoch, offset: 2 }]]));
    const bySince = new SseClient(h.base, `/sse?channel=s1&since=${at1}`);
    await waitFor(() => bySince.of('event').length === 2);
    assert.deepEqual(bySince.of('event').map((m) => eventOf(m).offset), [2, 3]);
    bySince.abort();
    const both = new SseClient(h.base, `/sse?channel=s1&since=${at1}`, { 'last-event-id': at2 });
    await waitFor(() => both.of('event').length === 1);
    assert.equal((await ready(both)).recovered, true);
    assert.deepEqual(both.of('event').map((m) => eventOf(m).offset), [3]);
    both.abort();
  });

  it('starts a channel missing from the cursor from now, with recovered:false', async () => {
    await h.hub.publish('n1', 'old');
    await h.hub.publish('n2', 'old');
    const epoch = (await h.hub.history('n1', { limit: 0 })).epoch;
    const c = new SseClient(h.base, '/sse?channel=n1&channel=n2', { 'last-event-id': encodeCursor(new Map([['n1', { epoch, offset: 1 }]])) });
    const r = await ready(c);
    assert.equal(r.recovered, false);
    assert.deepEqual(positions(r.cursor), { n1: 1, n2: 1 });
    await h.hub.publish('n2', 'new');
    await waitFor(() => c.of('event').length === 1);
    assert.deepEqual(eventOf(c.of('event')[0]!).data, 'new');
    c.abort();
  });

  it('streams from now with recovered:false for an unparsable cursor (not a 400)', async () => {
    await h.hub.publish('g1', 'before');
    const c = new SseClient(h.base, '/sse?channel=g1', { 'last-event-id': 'this is %% not a cursor' });
    const r = await ready(c);
    assert.equal(c.status, 200);
    assert.equal(r.recovered, false);
    assert.deepEqual(positions(r.cursor), { g1: 1 });
    await h.hub.publish('g1', 'after');
    await waitFor(() => c.of('event').length === 1);
    assert.equal(eventOf(c.of('event')[0]!).data, 'after');
    c.abort();
  });

  it('replays the retained events with recovered:false for a position of another epoch', async () => {
    await h.hub.publish('ep', 1);
    await h.hub.publish('ep', 2);
    const c = new SseClient(h.base, '/sse?channel=ep', { 'last-event-id': encodeCursor(new Map([['ep', { epoch: 'gone', offset: 7 }]])) });
    const r = await ready(c);
    assert.equal(r.recovered, false);
    assert.deepEqual(positions(r.cursor), { ep: 0 });
    await waitFor(() => c.of('event').length === 2);
    assert.deepEqual(c.of('event').map((m) => eventOf(m).offset), [1, 2]);
    c.abort();
  });

  it('sends the events that became ready in the same tick in one write', async () => {
    const c = new SseClient(h.base, '/sse?channel=tick');
    await ready(c);
    const res = h.sseResponses[h.sseResponses.length - 1]!;
    await waitFor(() => res.headersSent);
    const before = h.sseWrites.length;
    await Promise.all(range(1, 10).map((n) => h.hub.publish('tick', n)));
    await waitFor(() => c.of('event').length === 10);
    const writes = h.sseWrites.slice(before).filter((w) => w.includes('event: event'));
    assert.equal(writes.length, 1);
    assert.equal(writes[0]!.split('event: event').length - 1, 10);
    c.abort();
  });

  it('coalesceMs: events ready in different turns within the window leave in one write', async () => {
    const other = await startHarness({ sse: { coalesceMs: 300 }, spyWrites: true });
    try {
      const c = new SseClient(other.base, '/sse?channel=window');
      await ready(c);
      const before = other.sseWrites.length;
      for (const n of [1, 2, 3]) {
        await other.hub.publish('window', n);
        await new Promise((resolve) => setImmediate(resolve)); // the next event-loop turn
      }
      await waitFor(() => c.of('event').length === 3, 2000, 'three events');
      const writes = other.sseWrites.slice(before).filter((w) => w.includes('event: event'));
      assert.equal(writes.length, 1);
      assert.equal(writes[0]!.split('event: event').length - 1, 3);
      c.abort();
    } finally {
      await other.close();
    }
  });

  it('streams to an HTTP/1.0 peer unframed: the body is plain SSE and ends with the connection', async () => {
    const peer = rawPeer(h.port, 'utf8', 'GET /sse?channel=http10 HTTP/1.0\r\nHost: x\r\n\r\n');
    await waitFor(() => peer.raw.includes('event: ready'), 5000, 'ready');
    await h.hub.publish('http10', 1); // alone in its turn: the shared single-channel frame
    await Promise.all([h.hub.publish('http10', 2), h.hub.publish('http10', 3)]); // one write of two
    await waitFor(() => peer.raw.split('event: event').length - 1 === 3, 5000, 'three events');
    peer.socket.destroy();
    const raw = peer.raw;
    const head = raw.slice(0, raw.indexOf('\r\n\r\n'));
    assert.match(head, /^HTTP\/1\.1 200/);
    assert.doesNotMatch(head, /transfer-encoding/i);
    const body = raw.slice(head.length + 4);
    for (const line of body.split('\n')) assert.match(line, /^(|retry: \d+|id: \S+|event: \w+|data: .*|: heartbeat)$/, `not an SSE line: ${JSON.stringify(line)}`);
    const data = body.split('\n').filter((l) => l.startsWith('data: {"channel"')).map((l) => (JSON.parse(l.slice(6)) as HeraldEvent).data);
    assert.deepEqual(data, [1, 2, 3]);
  });

  it('a pipelined stream waits for the response before it, then gets every event in order, correctly chunked', async () => {
    // A poll that holds the socket until 'pipe-a' has an event, then a stream queued behind it.
    const peer = rawPeer(h.port, 'latin1', 'GET /poll?channel=pipe-a&timeout=10 HTTP/1.1\r\nHost: x\r\n\r\nGET /sse?channel=pipe-b HTTP/1.1\r\nHost: x\r\n\r\n');
    await waitFor(() => h.sse.size === 1 && h.sseResponses.at(-1)!.headersSent, 5000, 'the queued stream started');
    await h.hub.publish('pipe-b', 'ü'); // while the stream does not own the socket
    await Promise.all([h.hub.publish('pipe-b', '✓'), h.hub.publish('pipe-b', 'ß')]);
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(peer.raw, '', 'nothing of the stream goes out before the poll is answered');
    await h.hub.publish('pipe-a', 'go');
    await waitFor(() => peer.raw.includes('event: ready'), 5000, 'the stream after the poll');
    await h.hub.publish('pipe-b', '€'); // now straight to the socket: alone in its turn, then two in one
    await Promise.all([h.hub.publish('pipe-b', '✓✓'), h.hub.publish('pipe-b', 'end')]);
    await waitFor(() => peer.raw.split('event: event').length - 1 === 6, 5000, 'six events');
    peer.socket.destroy();
    const raw = peer.raw;
    const second = raw.indexOf('HTTP/1.1 200', 1);
    assert.ok(raw.startsWith('HTTP/1.1 200') && second > 0, raw);
    assert.match(raw.slice(0, second), /"go"/);
    const streamHead = raw.slice(second, raw.indexOf('\r\n\r\n', second));
    assert.match(streamHead, /transfer-encoding: chunked/i);
    // Decode the chunked body: every chunk's size must match its bytes exactly.
    let rest = raw.slice(second + streamHead.length + 4);
    let body = '';
    while (rest.length > 0) {
      const eol = rest.indexOf('\r\n');
      const size = Number.parseInt(rest.slice(0, eol), 16);
      assert.ok(Number.isInteger(size) && size > 0, `chunk size line: ${JSON.stringify(rest.slice(0, 20))}`);
      body += rest.slice(eol + 2, eol + 2 + size);
      assert.equal(rest.slice(eol + 2 + size, eol + 4 + size), '\r\n', 'chunk trailer');
      rest = rest.slice(eol + 4 + size);
    }
    const text = Buffer.from(body, 'latin1').toString('utf8');
    const data = text.split('\n').filter((l) => l.startsWith('data: {"channel"')).map((l) => (JSON.parse(l.slice(6)) as HeraldEvent).data);
    assert.deepEqual(data, ['ü', '✓', 'ß', '€', '✓✓', 'end']);
  });

  it('sends a heartbeat comment every heartbeatMs', async () => {
    const c = new SseClient(h.base, '/sse?channel=hb');
    await ready(c);
    await waitFor(() => c.comments.length >= 2, 2000, 'two heartbeats');
    assert.equal(c.comments[0], 'heartbeat');
    c.abort();
  });

  it('ends the stream on /api/disconnect (hub.disconnectClient) and forgets it', async () => {
    const before = h.hub.stats();
    const c = new SseClient(h.base, '/sse?channel=dc');
    await ready(c);
    await waitFor(() => h.hub.stats().connections === before.connections + 1);
    const [info] = await h.hub.presence('dc');
    assert.ok(info);
    assert.equal(h.hub.disconnectClient(info.client), true);
    await c.done;
    assert.deepEqual(JSON.parse(c.of('disconnect')[0]!.data), { code: 4002, reason: 'disconnected by the server', reconnect: true });
    await waitFor(() => h.hub.stats().connections === before.connections && h.hub.stats().subscriptions === before.subscriptions, 5000, 'unregistered');
    assert.equal((await h.hub.presence('dc')).length, 0);
  });

  it('unsubscribes a stream whose client went away', async () => {
    const before = h.hub.stats().subscriptions;
    const c = new SseClient(h.base, '/sse?channel=gone1&channel=gone2');
    await ready(c);
    assert.equal(h.hub.stats().subscriptions, before + 2);
    c.abort();
    await waitFor(() => h.hub.stats().subscriptions === before, 5000, 'cleanup');
    assert.deepEqual((await h.hub.channelList()).filter((i) => i.channel.startsWith('gone')), []);
  });

  it('refuses a foreign Origin with 403 and allows a listed one with CORS headers', async () => {
    const refused = await http(h.base, '/sse?channel=o', { headers: { origin: 'http://evil.example' } });
    assert.equal(refused.status, 403);
    assert.equal(JSON.parse(refused.body).error.code, 'forbidden');
    const c = new SseClient(h.base, '/sse?channel=o', { origin: 'http://allowed.example' });
    await ready(c);
    assert.equal(c.headers['access-control-allow-origin'], 'http://allowed.example');
    c.abort();
  });

  it('answers hostile or invalid requests with their documented errors and keeps serving', async () => {
    const cases: [string, Record<string, string>, number, string | undefined][] = [
      ['/sse', {}, 400, 'bad_request'],
      ['/sse?channel=', {}, 400, 'bad_request'],
      [`/sse?channel=${'x'.repeat(1025)}`, {}, 400, 'bad_request'],
      ['/sse?channel=a%00b', {}, 400, 'bad_request'],
      ['/sse?channel=a%7Fb', {}, 400, 'bad_request'],
      [`/sse?${range(1, 129).map((i) => `channel=c${i}`).join('&')}`, {}, 429, 'limit_exceeded'],
      ['/sse?channel=a&token=bad', {}, 401, 'unauthorized'],
      [`/sse?channel=a&x=${'y'.repeat(100_000)}`, {}, 431, undefined],
    ];
    for (const [path, headers, status, code] of cases) {
      const answer = await http(h.base, path, { headers });
      assert.equal(answer.status, status, path.slice(0, 60));
      if (code) assert.deepEqual(Object.keys(JSON.parse(answer.body).error), ['code', 'message']);
      if (code) assert.equal(JSON.parse(answer.body).error.code, code, path.slice(0, 60));
    }
    const post = await http(h.base, '/sse?channel=a', { method: 'POST' });
    assert.equal(post.status, 405);
    // 128 channels are fine, and the server still serves.
    const c = new SseClient(h.base, `/sse?${range(1, 128).map((i) => `channel=k${i}`).join('&')}`);
    assert.equal((await ready(c)).recovered, true);
    c.abort();
  });

  it('delivers 1,000 events exactly once and in order across forced reconnects', async () => {
    const seen: number[] = [];
    let lastId = '';
    let drops = 0;
    const connect = (): SseClient => {
      const c = new SseClient(h.base, '/sse?channel=big&channel=other', lastId ? { 'last-event-id': lastId } : {});
      c.onMessage = (m) => {
        if (m.event !== 'event') return;
        lastId = m.id!;
        seen.push((JSON.parse(m.data) as HeraldEvent).data as number);
        if (seen.length === 300 && drops === 0) {
          drops++;
          // Graceful: the server API disconnects the stream.
          void h.hub.presence('big').then((list) => list.forEach((i) => h.hub.disconnectClient(i.client)));
        } else if (seen.length === 700 && drops === 1) {
          drops++;
          // Abrupt: the server drops the response mid-stream.
          h.sseResponses[h.sseResponses.length - 1]!.destroy();
        }
      };
      return c;
    };
    let client = connect();
    await ready(client);
    const publishing = (async () => {
      for (let n = 1; n <= 1000; n++) {
        await h.hub.publish('big', n);
        if (n % 50 === 0) await new Promise((r) => setImmediate(r));
      }
    })();
    while (seen.length < 1000) {
      await Promise.race([client.done, waitFor(() => seen.length >= 1000, 15000, '1000 events')]);
      if (seen.length < 1000 && client.ended) client = connect();
    }
    await publishing;
    client.abort();
    assert.equal(drops, 2);
    assert.deepEqual(seen, range(1, 1000));
  });

  it('ends a slow consumer after its buffer fills; it resumes with Last-Event-ID without loss', async () => {
    const slow = await startHarness({ sse: { maxBufferedBytes: 64 * 1024, endGraceMs: 10_000 } });
    try {
      const c1 = new SseClient(slow.base, '/sse?channel=slow');
      await ready(c1);
      c1.response!.pause();
      const blob = 'z'.repeat(30_000);
      let n = 0;
      // One event per event-loop turn: the socket gets every chance to drain; only the paused reader stops it.
      while (slow.sse.size > 0 && n < 2000) {
        await slow.hub.publish('slow', { n: ++n, blob });
        await new Promise((r) => setImmediate(r));
      }
      assert.equal(slow.sse.size, 0, 'the paused stream was ended');
      const total = n;
      c1.response!.resume();
      await c1.done;
      const numbers = (c: SseClient): number[] => c.of('event').map((m) => ((JSON.parse(m.data) as HeraldEvent).data as { n: number }).n);
      const got = numbers(c1);
      assert.ok(got.length < total, `the stream was cut (${got.length} of ${total})`);
      // Resume like EventSource: reconnect with the last id until everything arrived. A backlog over
      // the limit comes in pieces, each ending the stream, each resumed without loss.
      let lastId = c1.lastEventId;
      let reconnects = 0;
      while (got.length < total && reconnects < 200) {
        const c = new SseClient(slow.base, '/sse?channel=slow', { 'last-event-id': lastId });
        assert.equal((await ready(c)).recovered, true);
        await waitFor(() => c.ended || got.length + c.of('event').length >= total, 10_000, 'the rest');
        got.push(...numbers(c));
        lastId = c.lastEventId;
        c.abort();
        reconnects++;
      }
      assert.deepEqual(got, range(1, total));
    } finally {
      await slow.close();
    }
  });

  it('close() ends every stream with a disconnect event', async () => {
    const other = await startHarness();
    const c = new SseClient(other.base, '/sse?channel=z');
    await ready(c);
    await other.sse.close();
    await c.done;
    assert.equal(JSON.parse(c.of('disconnect')[0]!.data).code, 1001);
    await other.close();
  });
});
