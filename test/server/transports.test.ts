/**
 * One 1,000-event stream, published through the HTTP API of a real server, reaches a subscriber on
 * every transport (WebSocket, SSE, long-poll, golongpoll, gpoll) with zero loss, duplicates or
 * reordering, each one forced to reconnect mid-stream.
 */
import assert from 'node:assert/strict';
import { request, type ClientRequest } from 'node:http';
import { after, before, describe, it } from 'node:test';
import WebSocket from 'ws';
import { startServer, type HeraldServer } from '../../src/server/index.js';
import { encodeCursor } from '../../src/protocol/index.js';

const TOTAL = 1000;
const BATCH = 50;
// gpoll serves the `broadcast` channel (SPEC §6), so the stream goes there.
const CHANNEL = 'broadcast';

interface Consumer {
  name: string;
  /** Data values (1..TOTAL) in arrival order. */
  seen: number[];
  reconnects: number;
  stop(): void;
}

let server: HeraldServer;
let epoch = '';

before(async () => {
  server = await startServer({ host: '127.0.0.1', port: 0, namespaces: { '': { historySize: 2000 } } });
  const h = await fetch(`${server.url}/api/history?channel=${CHANNEL}&limit=0`).then((r) => r.json() as Promise<{ epoch: string }>);
  epoch = h.epoch;
});
after(async () => {
  await server.close();
});

/** Forced reconnect once a consumer has seen this many events. */
const dropAt = (name: string): number => 200 + name.length * 37;

function websocketConsumer(): Consumer {
  const c: Consumer = { name: 'websocket', seen: [], reconnects: 0, stop: () => ws.terminate() };
  let last = 0;
  let ws: WebSocket;
  const open = (): void => {
    ws = new WebSocket(`${server.url.replace('http', 'ws')}/ws`);
    ws.on('open', () => {
      ws.send(JSON.stringify({ id: 1, op: 'connect' }));
      ws.send(JSON.stringify({ id: 2, op: 'subscribe', channel: CHANNEL, since: { epoch, offset: last } }));
    });
    ws.on('message', (raw) => {
      const msg = JSON.parse(raw.toString()) as { id?: number; result?: { events?: { offset: number; data: number }[] }; push?: string; event?: { offset: number; data: number } };
      const events = msg.id === 2 ? msg.result?.events ?? [] : msg.push === 'event' && msg.event ? [msg.event] : [];
      for (const e of events) {
        c.seen.push(e.data);
        last = e.offset;
        if (c.seen.length === dropAt(c.name) && c.reconnects === 0) {
          c.reconnects++;
          ws.terminate();
          open();
          return;
        }
      }
    });
    ws.on('error', () => {});
  };
  open();
  return c;
}

/** Reads an SSE stream; reconnects with Last-Event-ID like EventSource does. */
function sseConsumer(): Consumer {
  const c: Consumer = { name: 'sse', seen: [], reconnects: 0, stop: () => req.destroy() };
  let lastId = encodeCursor(new Map([[CHANNEL, { epoch, offset: 0 }]]));
  let req: ClientRequest;
  const open = (): void => {
    req = request(`${server.url}/sse?channel=${CHANNEL}`, { headers: { 'last-event-id': lastId } }, (res) => {
      let buf = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        buf += chunk;
        let end: number;
        while ((end = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, end);
          buf = buf.slice(end + 2);
          let id: string | undefined;
          let type = 'message';
          let data = '';
          for (const line of block.split('\n')) {
            if (line.startsWith('id: ')) id = line.slice(4);
            else if (line.startsWith('event: ')) type = line.slice(7);
            else if (line.startsWith('data: ')) data += line.slice(6);
          }
          if (id !== undefined) lastId = id;
          if (type !== 'event') continue;
          c.seen.push((JSON.parse(data) as { data: number }).data);
          if (c.seen.length === dropAt(c.name) && c.reconnects === 0) {
            c.reconnects++;
            req.destroy();
            open();
            return;
          }
        }
      });
      res.on('error', () => {});
    });
    req.on('error', () => {});
    req.end();
  };
  open();
  return c;
}

async function getJson(path: string, signal: AbortSignal): Promise<{ status: number; body: unknown; text: string }> {
  const res = await fetch(`${server.url}${path}`, { signal });
  const text = await res.text();
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    body = undefined;
  }
  return { status: res.status, body, text };
}

/** A loop of polls; one poll is aborted mid-flight (the forced reconnect) and retried with the same cursor. */
interface PollConsumer extends Consumer {
  /** Aborts the poll in flight; resolves once the loop has stopped. `resume()` starts it again. */
  pause(): Promise<void>;
  resume(): void;
}

function pollLoop(name: string, first: () => string, next: (answer: { status: number; body: unknown; text: string }) => { path: string; data: number[] }, dropSelf = true): PollConsumer {
  const stopper = new AbortController();
  let current: AbortController | undefined;
  let paused: (() => void) | undefined;
  let resumed: (() => void) | undefined;
  const c: PollConsumer = {
    name,
    seen: [],
    reconnects: 0,
    stop: () => stopper.abort(),
    pause: () =>
      new Promise<void>((resolve) => {
        paused = resolve;
        current?.abort();
      }),
    resume: () => resumed?.(),
  };
  void (async () => {
    let path = first();
    while (!stopper.signal.aborted) {
      if (paused) {
        const wait = new Promise<void>((r) => (resumed = r));
        paused();
        paused = undefined;
        await wait;
      }
      const attempt = (current = new AbortController());
      const onStop = (): void => attempt.abort();
      stopper.signal.addEventListener('abort', onStop);
      if (dropSelf && c.seen.length >= dropAt(name) && c.reconnects === 0) {
        c.reconnects++;
        setImmediate(() => attempt.abort()); // abort this poll while it waits
      }
      try {
        const answer = await getJson(path, attempt.signal);
        const step = next(answer);
        c.seen.push(...step.data);
        path = step.path;
      } catch {
        // aborted: poll again with the same position
      } finally {
        stopper.signal.removeEventListener('abort', onStop);
      }
    }
  })();
  return c;
}

function longPollConsumer(): Consumer {
  let cursor = encodeCursor(new Map([[CHANNEL, { epoch, offset: 0 }]]));
  return pollLoop('long-poll', () => `/poll?channel=${CHANNEL}&timeout=5&cursor=${cursor}`, (a) => {
    const body = a.body as { events: { data: number }[]; cursor: string };
    assert.equal(a.status, 200, a.text);
    cursor = body.cursor;
    return { path: `/poll?channel=${CHANNEL}&timeout=5&cursor=${cursor}`, data: body.events.map((e) => e.data) };
  });
}

function golongpollConsumer(start: number): Consumer {
  let since = `since_time=${start}`;
  return pollLoop('golongpoll', () => `/golongpoll/events?category=${CHANNEL}&timeout=5&${since}`, (a) => {
    assert.equal(a.status, 200, a.text);
    const body = a.body as { events?: { timestamp: number; id: string; data: number }[]; timestamp?: number };
    const events = body.events ?? [];
    const last = events.at(-1);
    if (last) since = `since_time=${last.timestamp}&last_id=${last.id}`;
    return { path: `/golongpoll/events?category=${CHANNEL}&timeout=5&${since}`, data: events.map((e) => e.data) };
  });
}

async function gpollConsumer(): Promise<PollConsumer> {
  const reg = await fetch(`${server.url}/gpoll?client-id=0`).then((r) => r.json() as Promise<{ 'client-id': string }>);
  const id = encodeURIComponent(reg['client-id']);
  return pollLoop('gpoll', () => `/gpoll?client-id=${id}`, (a) => {
    assert.equal(a.status, 200, a.text);
    return { path: `/gpoll?client-id=${id}`, data: [Number(a.text)] };
  }, false);
}

async function until(cond: () => boolean, what: () => string, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out: ${what()}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

const pollWaiting = (n: number): Promise<void> =>
  until(() => server.transports.gpoll.waitingPolls === n, () => `gpoll waiting polls ${server.transports.gpoll.waitingPolls}`);

describe('every transport through the real server', () => {
  it('delivers the same 1,000-event stream with zero loss, duplicates or reordering across a forced reconnect', async () => {
    // A subscriber is in place on each transport before the first publish.
    await new Promise((r) => setTimeout(r, 1));
    const gpoll = await gpollConsumer();
    const consumers = [websocketConsumer(), sseConsumer(), longPollConsumer(), golongpollConsumer(Date.now() - 1), gpoll];
    await until(() => server.hub.stats().subscriptions >= 3, () => `subscriptions ${server.hub.stats().subscriptions}`);
    try {
      // Batches keep gpoll's bounded per-client buffer (100) from overflowing: it delivers one message per poll.
      for (let sent = 0; sent < TOTAL; ) {
        const batch = Array.from({ length: BATCH }, (_, i) => sent + i + 1);
        for (const n of batch) {
          const res = await fetch(`${server.url}/api/publish`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ channel: CHANNEL, data: n }) });
          assert.equal(res.status, 200);
          await res.arrayBuffer();
        }
        sent += BATCH;
        await until(() => consumers.every((c) => c.seen.length >= sent - BATCH), () => consumers.map((c) => `${c.name}=${c.seen.length}`).join(' '));
        if (sent === TOTAL / 2) {
          // gpoll has no cursor: a message already on the wire when a client drops is gone (as in
          // gpoll itself). Its forced reconnect drops a poll that is waiting, once the server saw it go.
          await until(() => gpoll.seen.length === sent, () => `gpoll=${gpoll.seen.length}`);
          await pollWaiting(1);
          await gpoll.pause();
          gpoll.reconnects++;
          await pollWaiting(0);
          gpoll.resume();
        }
      }
      await until(() => consumers.every((c) => c.seen.length >= TOTAL), () => consumers.map((c) => `${c.name}=${c.seen.length}`).join(' '));
    } finally {
      for (const c of consumers) c.stop();
    }
    const expected = Array.from({ length: TOTAL }, (_, i) => i + 1);
    for (const c of consumers) {
      assert.equal(c.reconnects, 1, `${c.name} was forced to reconnect`);
      assert.deepEqual(c.seen, expected, `${c.name} saw every event once, in order`);
    }
  });
});
