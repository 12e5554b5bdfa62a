/**
 * One contract, every client transport: WebSocket, SSE and long-poll must give the app the same
 * behaviour (SPEC §1 guarantee). Connection drops are real: a TCP proxy cuts the sockets.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import WebSocket from 'ws';
import { HeraldClient, type HeraldEvent, type SubscribedInfo, type TransportName } from '../../src/client/index.js';
import { HeraldError } from '../../src/protocol/index.js';
import { startServer, type HeraldServer, type StartOptions } from '../../src/server/index.js';
import { TcpProxy } from './proxy.js';
import { next, waitFor } from './util.js';

const servers: HeraldServer[] = [];
const proxies: TcpProxy[] = [];
const clients: HeraldClient[] = [];

after(async () => {
  for (const c of clients) c.close();
  await Promise.all(proxies.map((p) => p.close()));
  await Promise.all(servers.map((s) => s.close()));
});

async function serve(options: StartOptions = {}): Promise<HeraldServer> {
  const s = await startServer({ port: 0, host: '127.0.0.1', ...options });
  servers.push(s);
  return s;
}

async function proxyTo(s: HeraldServer): Promise<TcpProxy> {
  const p = await TcpProxy.start(s.port);
  proxies.push(p);
  return p;
}

function client(url: string, transports: TransportName[]): HeraldClient {
  const c = new HeraldClient({ url, WebSocket, transports, reconnect: { minDelay: 5, maxDelay: 50 }, timeout: 5_000 });
  clients.push(c);
  return c;
}

for (const transport of ['websocket', 'sse', 'longpoll'] as const) {
  describe(`client transport contract: ${transport}`, () => {
    it('subscribes, gets its publish acknowledged and the event delivered', async () => {
      const s = await serve();
      const c = client(s.url, [transport]);
      const seen: HeraldEvent[] = [];
      const sub = c.subscribe('news', { onEvent: (e) => seen.push(e) });
      await c.connect();
      assert.equal(c.transportName, transport);
      const info = await next(sub, 'subscribed');
      assert.deepEqual({ ...info, epoch: typeof info.epoch }, { channel: 'news', epoch: 'string', offset: 0, recovered: true, resumed: false });
      const ack = await c.publish('news', { n: 1 });
      assert.equal(ack.offset, 1);
      await waitFor('the event', () => seen.length === 1);
      assert.deepEqual(seen[0]!.data, { n: 1 });
      assert.equal(seen[0]!.id, ack.id);
      // A second subscription on a live connection, then unsubscribing the first.
      const other = c.subscribe('other', { onEvent: (e) => seen.push(e) });
      await next(other, 'subscribed');
      sub.unsubscribe();
      await s.hub.publish('news', 'not seen');
      await s.hub.publish('other', 'seen');
      await waitFor('the event on the other channel', () => seen.length === 2);
      assert.deepEqual(seen.map((e) => e.data), [{ n: 1 }, 'seen']);
    });

    it('history and presence', async () => {
      const s = await serve();
      const c = client(s.url, [transport]);
      const sub = c.subscribe('h');
      await c.connect();
      await next(sub, 'subscribed');
      for (let i = 1; i <= 5; i++) await c.publish('h', i);
      const h = await c.history('h', { limit: 2 });
      assert.deepEqual(h.events.map((e) => e.data), [4, 5]);
      assert.equal(h.offset, 5);
      assert.equal(h.recovered, true);
      const since = await c.history('h', { since: { epoch: h.epoch, offset: 3 } });
      assert.deepEqual(since.events.map((e) => e.offset), [4, 5]);
      assert.equal(since.recovered, true);
      const otherEpoch = await c.history('h', { since: { epoch: 'gone', offset: 3 } });
      assert.equal(otherEpoch.recovered, false);
      assert.deepEqual(otherEpoch.events.map((e) => e.offset), [1, 2, 3, 4, 5]);
      const presence = await c.presence('h');
      // A poll has no connection to be present on: long-poll clients are not listed (docs/http-transports.md).
      assert.equal(presence.clients.length, transport === 'longpoll' ? 0 : 1);
    });

    it('resumes after the connection is cut, repeatedly, with no loss and no duplicate', async () => {
      const s = await serve();
      const proxy = await proxyTo(s);
      const c = client(proxy.url, [transport]);
      const seen: number[] = [];
      const infos: SubscribedInfo[] = [];
      const sub = c.subscribe('stream', { onEvent: (e) => seen.push(e.offset) });
      sub.on('subscribed', (i) => infos.push(i));
      await c.connect();
      await next(sub, 'subscribed');
      const live = (): Promise<void> => waitFor('live again', () => c.state === 'connected' && sub.state === 'subscribed', 10_000);
      for (let n = 1; n <= 300; n++) {
        await s.hub.publish('stream', n);
        if (n % 75 === 0) {
          await live();
          const dropped = next(c, 'disconnected', 10_000);
          proxy.cutAll();
          await dropped;
        }
        if (n % 10 === 0) await new Promise((r) => setTimeout(r, 1));
      }
      await waitFor('300 events', () => seen.length >= 300, 15_000);
      await live(); // the last cut came after the last event
      await new Promise((r) => setTimeout(r, 50));
      assert.deepEqual(seen, Array.from({ length: 300 }, (_, i) => i + 1));
      assert.equal(infos.length, 5);
      assert.ok(infos.every((i) => i.recovered));
    });

    it('surfaces recovered:false when its position was evicted, then delivers what is retained', async () => {
      const s = await serve({ namespaces: { small: { historySize: 10 } } });
      const proxy = await proxyTo(s);
      const c = client(proxy.url, [transport]);
      const seen: number[] = [];
      const sub = c.subscribe('small:x', { onEvent: (e) => seen.push(e.offset) });
      await c.connect();
      await next(sub, 'subscribed');
      await s.hub.publish('small:x', 1);
      await waitFor('first event', () => seen.length === 1);
      proxy.refuse = true;
      const dropped = next(c, 'disconnected', 10_000);
      proxy.cutAll();
      await dropped;
      for (let i = 2; i <= 30; i++) await s.hub.publish('small:x', i);
      const resubscribed = next(sub, 'subscribed', 10_000);
      proxy.refuse = false;
      const info = await resubscribed;
      assert.equal(info.recovered, false);
      assert.equal(info.resumed, true);
      await waitFor('retained events', () => seen.length === 11);
      assert.deepEqual(seen, [1, ...Array.from({ length: 10 }, (_, i) => 21 + i)]);
    });

    it('a refused subscription ends alone; the others go on', async () => {
      const s = await serve({ hooks: { authorize: (action, _client, channel) => !(action === 'subscribe' && channel.startsWith('secret:')) } });
      const c = client(s.url, [transport]);
      const seen: unknown[] = [];
      const open = c.subscribe('open', { onEvent: (e) => seen.push(e.data) });
      await c.connect();
      await next(open, 'subscribed');
      const secret = c.subscribe('secret:x');
      const error = await next(secret, 'error');
      assert.equal(error.code, 'forbidden');
      assert.equal(secret.state, 'unsubscribed');
      await s.hub.publish('open', 'still here');
      await waitFor('event on the open channel', () => seen.length === 1);
      assert.equal(c.state, 'connected');
    });
  });
}

describe('transport fallback', () => {
  it('WebSocket blocked on the way: the client falls back to the next transport and works', async () => {
    const s = await serve();
    const proxy = await proxyTo(s);
    proxy.blockWebSocket = true;
    const c = client(proxy.url, ['websocket', 'sse', 'longpoll']);
    const seen: unknown[] = [];
    const sub = c.subscribe('fb', { onEvent: (e) => seen.push(e.data) });
    await c.connect();
    assert.equal(c.transportName, 'sse');
    await next(sub, 'subscribed');
    await c.publish('fb', 'via sse');
    await waitFor('event', () => seen.length === 1);
    assert.deepEqual(seen, ['via sse']);
  });

  it('HTTP transports refuse a bad token for good', async () => {
    const s = await serve({
      hooks: {
        authenticate: (token) => {
          if (token !== 'ok') throw new HeraldError('unauthorized', 'bad token');
          return {};
        },
      },
    });
    for (const transport of ['sse', 'longpoll'] as const) {
      const c = new HeraldClient({ url: s.url, transports: [transport], token: 'nope', reconnect: { minDelay: 5, maxDelay: 50 } });
      clients.push(c);
      const sub = c.subscribe('x');
      const ended = next(sub, 'unsubscribed');
      await c.connect();
      await ended;
      assert.equal(c.state, 'closed', transport);
    }
  });
});
