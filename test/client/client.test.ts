/** HeraldClient against the real server (startServer), over real sockets. */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import WebSocket from 'ws';
import { HeraldClient, HeraldClientError, type HeraldClientOptions, type HeraldEvent, type SubscribedInfo } from '../../src/client/index.js';
import { HeraldError } from '../../src/protocol/index.js';
import { startServer, type HeraldServer, type StartOptions } from '../../src/server/index.js';
import { TcpProxy } from './proxy.js';
import { next, waitFor } from './util.js';

const servers: HeraldServer[] = [];
const proxies: TcpProxy[] = [];
const clients: HeraldClient[] = [];

async function server(options: StartOptions = {}): Promise<HeraldServer> {
  const s = await startServer({ port: 0, host: '127.0.0.1', ...options });
  servers.push(s);
  return s;
}

async function proxyTo(s: HeraldServer): Promise<TcpProxy> {
  const p = await TcpProxy.start(s.port);
  proxies.push(p);
  return p;
}

function client(url: string, options: Partial<HeraldClientOptions> = {}): HeraldClient {
  const c = new HeraldClient({ url, WebSocket, reconnect: { minDelay: 5, maxDelay: 50 }, timeout: 5_000, ...options });
  clients.push(c);
  return c;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

after(async () => {
  for (const c of clients) c.close();
  await Promise.all(proxies.map((p) => p.close()));
  await Promise.all(servers.map((s) => s.close()));
});

describe('HeraldClient against the real server', () => {
  it('connects, subscribes, gets its publish acknowledged and the event delivered', async () => {
    const s = await server();
    const c = client(s.url);
    const states: string[] = [];
    c.on('state', (state) => states.push(state));
    await c.connect();
    assert.equal(c.state, 'connected');
    assert.match(c.clientId ?? '', /^\w+$/);
    const sub = c.subscribe('news');
    const subscribed = await next(sub, 'subscribed');
    assert.deepEqual({ ...subscribed, epoch: typeof subscribed.epoch }, { channel: 'news', epoch: 'string', offset: 0, recovered: true, resumed: false });
    const received = next(sub, 'event');
    const ack = await c.publish('news', { hello: 'world' });
    assert.equal(ack.channel, 'news');
    assert.equal(ack.offset, 1);
    assert.equal(ack.epoch, subscribed.epoch);
    const event = await received;
    assert.deepEqual(event, { channel: 'news', offset: 1, epoch: ack.epoch, id: ack.id, timestamp: ack.timestamp, data: { hello: 'world' }, from: { client: c.clientId } });
    assert.deepEqual(sub.position, { epoch: ack.epoch, offset: 1 });
    assert.deepEqual(states, ['connecting', 'connected']);
  });

  it('commands made before connect() wait, and a publish queued after a subscribe is seen by it', async () => {
    const s = await server();
    const c = client(s.url);
    const seen: unknown[] = [];
    c.subscribe('early', { onEvent: (e) => seen.push(e.data) });
    const acks = Promise.all([c.publish('early', 'a'), c.publish('early', 'b')]);
    await sleep(20);
    assert.equal(c.state, 'disconnected');
    await c.connect();
    assert.deepEqual((await acks).map((a) => a.offset), [1, 2]);
    await waitFor('both events', () => seen.length === 2);
    assert.deepEqual(seen, ['a', 'b']);
  });

  it('the async iterator yields events in offset order and ends on unsubscribe', async () => {
    const s = await server();
    const c = client(s.url);
    const sub = c.subscribe('iter');
    await c.connect();
    await next(sub, 'subscribed');
    for (let i = 1; i <= 20; i++) await s.hub.publish('iter', i);
    const got: number[] = [];
    for await (const event of sub) {
      got.push(event.data as number);
      if (got.length === 20) sub.unsubscribe();
    }
    assert.deepEqual(got, Array.from({ length: 20 }, (_, i) => i + 1));
    assert.equal(sub.state, 'unsubscribed');
    // The server dropped the subscription too: the channel's presence no longer lists this client.
    let clients = (await c.presence('iter')).clients;
    for (let i = 0; i < 50 && clients.length > 0; i++) clients = (await c.presence('iter')).clients;
    assert.deepEqual(clients, []);
  });

  it('history (last N, and after a position) and presence', async () => {
    const s = await server();
    const c = client(s.url);
    await c.connect();
    const acks = [];
    for (let i = 1; i <= 5; i++) acks.push(await c.publish('hist', i));
    const epoch = acks[0]!.epoch;
    const last2 = await c.history('hist', { limit: 2 });
    assert.equal(last2.epoch, epoch);
    assert.equal(last2.offset, 5);
    assert.deepEqual(last2.events.map((e) => e.data), [4, 5]);
    const after1 = await c.history('hist', { since: { epoch, offset: 1 }, limit: 3 });
    assert.deepEqual(after1.events.map((e) => e.offset), [2, 3, 4]);
    assert.deepEqual((await c.presence('hist')).clients, []);
    const other = client(s.url);
    const sub = other.subscribe('hist');
    await other.connect();
    await next(sub, 'subscribed');
    assert.deepEqual((await c.presence('hist')).clients, [{ client: other.clientId }]);
  });

  it('resumes after repeated drops (abrupt cuts and server disconnects) with zero loss and zero duplicates across 1,000 events', async () => {
    const s = await server();
    const proxy = await proxyTo(s);
    const c = client(proxy.url);
    const seen: HeraldEvent[] = [];
    const subscribed: SubscribedInfo[] = [];
    const sub = c.subscribe('stream', { onEvent: (e) => seen.push(e) });
    sub.on('subscribed', (info) => subscribed.push(info));
    let disconnects = 0;
    c.on('disconnected', (info) => {
      disconnects++;
      assert.equal(info.reconnect, true);
    });
    let cutOnConnect = false;
    c.on('connected', () => {
      if (cutOnConnect) {
        // Cut again while the resubscribe is on the wire.
        cutOnConnect = false;
        proxy.cutAll();
      }
    });
    await c.connect();
    await next(sub, 'subscribed');
    // Live: connected and the resubscribe answered (the outage is over).
    const live = (): Promise<void> => waitFor('the subscription live again', () => c.state === 'connected' && sub.state === 'subscribed', 10_000);
    let sinceDrop = 0;
    for (let n = 1; n <= 1_000; n++) {
      await s.hub.publish('stream', { n });
      sinceDrop++;
      if (n % 100 === 50) {
        // Every drop hits a live connection; events keep coming while the client is away.
        await live();
        const dropped = next(c, 'disconnected');
        if ((n / 100) % 2 < 1) assert.equal(s.hub.disconnectClient(c.clientId!), true);
        else assert.ok(proxy.cutAll() >= 1);
        if (n === 450) cutOnConnect = true;
        await dropped;
        sinceDrop = 0;
      }
      if (n % 10 === 0) await sleep(1);
      // Keep each outage well inside the default history (250), so every resume can succeed.
      if (sinceDrop >= 100) await live();
    }
    await waitFor('1,000 events', () => seen.length >= 1_000, 15_000);
    await sleep(50); // a late duplicate would land here
    assert.equal(seen.length, 1_000);
    seen.forEach((e, i) => {
      assert.equal(e.offset, i + 1);
      assert.deepEqual(e.data, { n: i + 1 });
    });
    assert.equal(disconnects, 11); // 10 drops, one of them twice (cut again during the resubscribe)
    assert.equal(subscribed.length, 11); // the first subscribe and one resume per drop (the one cut mid-subscribe never got its answer)
    assert.ok(subscribed.every((i) => i.recovered), 'every resume recovered');
    assert.ok(subscribed.slice(1).every((i) => i.resumed), 'every resubscribe sent a position');
    assert.deepEqual(sub.position, { epoch: seen[0]!.epoch, offset: 1_000 });
  });

  it('backs off exponentially while the server is unreachable, then resets after a successful connect', async () => {
    const s = await server();
    const proxy = await proxyTo(s);
    const c = client(proxy.url, { reconnect: { minDelay: 40, maxDelay: 320, factor: 2, jitter: 0 } });
    const delays: number[] = [];
    const closedAt: number[] = [];
    c.on('state', (state) => {
      if (state === 'disconnected') closedAt.push(Date.now());
      if (state === 'connecting' && closedAt.length > 0) delays.push(Date.now() - closedAt[closedAt.length - 1]!);
    });
    await c.connect();
    proxy.refuse = true;
    proxy.cutAll();
    await waitFor('6 refused attempts', () => proxy.accepted.length >= 7, 10_000);
    proxy.refuse = false;
    await waitFor('reconnected', () => c.state === 'connected', 5_000);
    const expected = [40, 80, 160, 320, 320, 320];
    expected.forEach((d, i) => assert.ok(delays[i]! >= d - 2 && delays[i]! < d + 250, `delay ${i}: ${delays[i]} ms, expected ~${d}`));
    // Connected again: the next drop starts from minDelay.
    delays.length = 0;
    const dropped = next(c, 'disconnected');
    proxy.cutAll();
    await dropped;
    await next(c, 'connected');
    assert.ok(delays[0]! >= 38 && delays[0]! < 290, `after a success the delay restarts at minDelay, got ${delays[0]}`);
  });

  it('surfaces recovered:false (event and onRecovered) when the position was evicted, then delivers the retained events', async () => {
    const s = await server({ namespaces: { '': { historySize: 10 } } });
    const proxy = await proxyTo(s);
    const c = client(proxy.url);
    const seen: number[] = [];
    const recoveries: SubscribedInfo[] = [];
    const sub = c.subscribe('small', { onEvent: (e) => seen.push(e.offset), onRecovered: (info) => recoveries.push(info) });
    await c.connect();
    await next(sub, 'subscribed');
    for (let i = 1; i <= 3; i++) await s.hub.publish('small', i);
    await waitFor('3 events', () => seen.length === 3);
    proxy.refuse = true;
    proxy.cutAll();
    for (let i = 4; i <= 28; i++) await s.hub.publish('small', i); // 4..18 are evicted meanwhile
    const resubscribed = next(sub, 'subscribed');
    proxy.refuse = false;
    const info = await resubscribed;
    assert.equal(info.recovered, false);
    assert.equal(info.resumed, true);
    assert.equal(info.offset, 28);
    assert.deepEqual(recoveries, [info]);
    await waitFor('retained events', () => seen.length === 13);
    assert.deepEqual(seen, [1, 2, 3, ...Array.from({ length: 10 }, (_, i) => 19 + i)]);
    await s.hub.publish('small', 29);
    await waitFor('live again', () => seen.at(-1) === 29);
  });

  it('a saved position resumes in a new client (`since`), recovered', async () => {
    const s = await server();
    const first = client(s.url);
    const sub = first.subscribe('saved');
    await first.connect();
    await next(sub, 'subscribed');
    await s.hub.publish('saved', 'one');
    await next(sub, 'event');
    const saved = sub.position!;
    first.close();
    await s.hub.publish('saved', 'two');
    await s.hub.publish('saved', 'three');
    const second = client(s.url);
    const seen: unknown[] = [];
    let recovered: boolean | undefined;
    second.subscribe('saved', { since: saved, onEvent: (e) => seen.push(e.data), onRecovered: (i) => (recovered = i.recovered) });
    await second.connect();
    await waitFor('missed events', () => seen.length === 2);
    assert.deepEqual(seen, ['two', 'three']);
    assert.equal(recovered, true);
  });

  it('a server restart (new epoch) is surfaced as recovered:false and the client carries on', async () => {
    const s1 = await server();
    const proxy = await proxyTo(s1);
    const c = client(proxy.url);
    const seen: HeraldEvent[] = [];
    const sub = c.subscribe('restart', { onEvent: (e) => seen.push(e) });
    await c.connect();
    await next(sub, 'subscribed');
    await s1.hub.publish('restart', 'before');
    await waitFor('first event', () => seen.length === 1);
    const disconnected = next(c, 'disconnected');
    const s2 = await server();
    proxy.targetPort = s2.port;
    await s1.close();
    assert.deepEqual(await disconnected, { code: 1001, reason: 'server shutting down', reconnect: true });
    const info = await next(sub, 'subscribed');
    assert.equal(info.recovered, false);
    assert.notEqual(info.epoch, seen[0]!.epoch);
    await s2.hub.publish('restart', 'after');
    await waitFor('event on the new server', () => seen.length === 2);
    assert.deepEqual(seen.map((e) => [e.data, e.offset]), [['before', 1], ['after', 1]]);
  });

  it('a server `disconnect` with reconnect:false leaves the client closed; its subscriptions end with the error', async () => {
    const s = await server();
    const c = client(s.url);
    const sub = c.subscribe('bye');
    await c.connect();
    await next(sub, 'subscribed');
    const it = sub[Symbol.asyncIterator]();
    const pending = it.next();
    // The hub's Session for this client: what the server API would call to end it for good.
    const sessions = (s.hub as unknown as { sessions: Map<string, { disconnect(code: number, reason: string, reconnect: boolean): void }> }).sessions;
    const disconnected = next(c, 'disconnected');
    sessions.get(c.clientId!)!.disconnect(4002, 'banned', false);
    assert.deepEqual(await disconnected, { code: 4002, reason: 'banned', reconnect: false });
    await assert.rejects(pending, (err: unknown) => err instanceof HeraldClientError && err.code === 'closed' && err.closeCode === 4002);
    assert.equal(c.state, 'closed');
    await sleep(100);
    assert.equal(c.state, 'closed');
    assert.equal(s.hub.stats().connections, 0);
    await assert.rejects(c.publish('bye', 1), { code: 'closed' });
  });

  it('a refused token closes the client with `unauthorized`; a token callback is asked again on every connect', async () => {
    const tokens: (string | undefined)[] = [];
    const s = await server({
      hooks: {
        authenticate: (token) => {
          tokens.push(token);
          if (token !== 'good-1' && token !== 'good-2') throw new HeraldError('unauthorized', 'bad token');
          return { user: 'alice' };
        },
      },
    });
    const refused = client(s.url, { token: 'bad' });
    const err = await refused.connect().then(() => assert.fail('connected'), (e: unknown) => e);
    assert.ok(err instanceof HeraldClientError);
    assert.equal(err.code, 'unauthorized');
    assert.equal(refused.state, 'closed');

    let n = 0;
    const c = client(s.url, { token: async () => `good-${++n}` });
    await c.connect();
    s.hub.disconnectClient(c.clientId!);
    await next(c, 'connected');
    assert.deepEqual(tokens, ['bad', 'good-1', 'good-2']);
    const ack = await c.publish('tok', 1);
    const h = await c.history('tok');
    assert.equal(h.events[0]!.id, ack.id);
    assert.equal(h.events[0]!.from?.user, 'alice');
  });

  it('publish rejections carry the server\'s code; an oversized frame is refused locally and the connection stays', async () => {
    const s = await server({
      hooks: { authorize: (action, _client, channel) => !(action === 'publish' && channel.startsWith('readonly:')) },
    });
    const c = client(s.url);
    await c.connect();
    const id = c.clientId;
    // Fits in one 64 KiB frame, but the event (envelope + data) is over the limit: the server says too_large.
    const serverErr = await c.publish('big', 'x'.repeat(65_400)).then(() => assert.fail('published'), (e: unknown) => e);
    assert.ok(serverErr instanceof HeraldClientError);
    assert.equal(serverErr.code, 'too_large');
    assert.match(serverErr.message, /65536/);
    // Over the frame limit: sending it would make the server close 1009, so the client refuses it.
    await assert.rejects(c.publish('big', 'x'.repeat(70_000)), (e: unknown) => e instanceof HeraldClientError && e.code === 'too_large' && /over 65536 bytes/.test(e.message));
    await assert.rejects(c.publish('readonly:x', 1), { name: 'HeraldClientError', code: 'forbidden' });
    await assert.rejects(c.publish('bad\u0000name', 1), { code: 'bad_request' });
    assert.equal(c.state, 'connected');
    assert.equal(c.clientId, id);
    assert.equal((await c.publish('big', 'fine')).offset, 1);
  });

  it('close() rejects queued commands with `closed` and finishes iterators; connect() works again after', async () => {
    const s = await server();
    const c = client(s.url);
    const sub = c.subscribe('closing');
    const queued = c.publish('closing', 1);
    const it = sub.events();
    const pending = it.next();
    c.close();
    await assert.rejects(queued, { code: 'closed' });
    assert.deepEqual(await pending, { value: undefined, done: true });
    assert.equal(c.subscription('closing'), undefined);
    await c.connect();
    assert.equal((await c.publish('closing', 2)).offset, 1);
  });
});
