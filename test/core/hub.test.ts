import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Hub, type ClientContext, type Subscriber } from '../../src/core/hub.js';
import type { OutgoingEvent } from '../../src/core/outgoing.js';
import { MemoryEngine } from '../../src/engines/memory.js';
import { HeraldError, type HeraldEvent } from '../../src/protocol/index.js';

async function hub(options: Partial<ConstructorParameters<typeof Hub>[0]> = {}): Promise<Hub> {
  const h = new Hub({ engine: new MemoryEngine(), ...options });
  await h.start();
  return h;
}

function collector(id = 'c' + Math.random().toString(36).slice(2), over: Partial<ClientContext> = {}): Subscriber & { events: HeraldEvent[]; presence: string[] } {
  const events: HeraldEvent[] = [];
  const presence: string[] = [];
  return {
    client: { id, transport: 'test', ...over },
    events,
    presence,
    deliver(out: OutgoingEvent) {
      events.push(JSON.parse(out.json) as HeraldEvent);
    },
    onPresence(kind, channel, info) {
      presence.push(`${kind}:${channel}:${info.client}`);
    },
  };
}

const code = (c: string) => (err: unknown) => err instanceof HeraldError && err.code === c;

describe('hub', () => {
  it('delivers published events to subscribers, serialised once for all of them', async () => {
    const h = await hub();
    const subs = [collector(), collector(), collector()];
    for (const s of subs) await h.subscribe(s, 'news');
    const seen = new Set<OutgoingEvent>();
    const spy: Subscriber = { client: { id: 'spy', transport: 'test' }, deliver: (out) => void seen.add(out) };
    await h.subscribe(spy, 'news');
    const r = await h.publish('news', { hello: 'world' });
    assert.equal(r.offset, 1);
    for (const s of subs) assert.deepEqual(s.events.map((e) => e.data), [{ hello: 'world' }]);
    assert.equal(seen.size, 1);
    assert.deepEqual(h.stats().delivered, 4);
    await h.close();
  });

  it('subscribe with since returns the missed events, then live ones with no gap and no duplicate', async () => {
    const h = await hub();
    const first = await h.publish('feed', 1);
    await h.publish('feed', 2);
    await h.publish('feed', 3);
    const sub = collector();
    const order: string[] = [];
    const wrapped: Subscriber = { client: sub.client, deliver: (out) => order.push('live:' + out.event.offset) };
    // Publishes racing the subscribe must land exactly once, after the answer.
    const racing = [h.publish('feed', 4), h.publish('feed', 5)];
    const result = await h.subscribe(wrapped, 'feed', { epoch: first.epoch, offset: 1 }, (res) => {
      order.push('answer:' + res.events.map((e) => e.offset).join(','));
    });
    await Promise.all(racing);
    await h.publish('feed', 6);
    assert.equal(result.recovered, true);
    const answered = result.events.map((e) => e.offset);
    const live = order.filter((o) => o.startsWith('live:')).map((o) => Number(o.slice(5)));
    assert.equal(order[0]!.startsWith('answer:'), true);
    assert.deepEqual([...answered, ...live], [2, 3, 4, 5, 6]);
    assert.equal(result.offset, answered.length ? Math.max(result.offset, answered.at(-1)!) : result.offset);
    await h.close();
  });

  it('a position outside history gives recovered:false and the retained events', async () => {
    const h = await hub({ namespaces: { '': { historySize: 2 } } });
    const first = await h.publish('c', 1);
    for (let i = 2; i <= 5; i++) await h.publish('c', i);
    const r = await h.subscribe(collector(), 'c', { epoch: first.epoch, offset: 1 });
    assert.equal(r.recovered, false);
    assert.deepEqual(r.events.map((e) => e.offset), [4, 5]);
    const other = await h.subscribe(collector(), 'c', { epoch: 'gone', offset: 5 });
    assert.equal(other.recovered, false);
    const plain = await h.subscribe(collector(), 'c');
    assert.equal(plain.recovered, true);
    assert.deepEqual(plain.events, []);
    assert.equal(plain.offset, 5);
    await h.close();
  });

  it('history is capped at the namespace size and honours limit and since', async () => {
    const h = await hub({ namespaces: { '': { historySize: 5 }, big: { historySize: 50 } } });
    let epoch = '';
    for (let i = 1; i <= 8; i++) epoch = (await h.publish('c', i)).epoch;
    for (let i = 1; i <= 8; i++) await h.publish('big:c', i);
    assert.deepEqual((await h.history('c', {})).events.map((e) => e.data), [4, 5, 6, 7, 8]);
    assert.deepEqual((await h.history('c', { limit: 100 })).events.length, 5);
    assert.deepEqual((await h.history('c', { limit: 2 })).events.map((e) => e.data), [7, 8]);
    assert.deepEqual((await h.history('c', { since: { epoch, offset: 5 }, limit: 2 })).events.map((e) => e.data), [6, 7]);
    assert.equal((await h.history('big:c', {})).events.length, 8);
    await h.close();
  });

  it('delete-after-read removes an event once it was delivered or read', async () => {
    const h = await hub({ namespaces: { once: { deleteAfterRead: true } } });
    await h.publish('once:x', 'a');
    await h.publish('once:x', 'b');
    assert.deepEqual((await h.history('once:x', {})).events.map((e) => e.data), ['a', 'b']);
    assert.deepEqual((await h.history('once:x', {})).events, []);
    const sub = collector();
    await h.subscribe(sub, 'once:x');
    await h.publish('once:x', 'c');
    assert.deepEqual(sub.events.map((e) => e.data), ['c']);
    await new Promise((r) => setImmediate(r));
    assert.deepEqual((await h.history('once:x', {})).events, []);
    await h.close();
  });

  it('refuses a second subscribe to the same channel and a 129th channel', async () => {
    const h = await hub();
    const sub = collector();
    await h.subscribe(sub, 'a');
    await assert.rejects(h.subscribe(sub, 'a'), code('bad_request'));
    for (let i = 1; i < 128; i++) await h.subscribe(sub, 'ch' + i);
    assert.equal(h.channelsOf(sub).size, 128);
    await assert.rejects(h.subscribe(sub, 'one-too-many'), code('limit_exceeded'));
    await h.unsubscribeAll(sub);
    assert.equal(h.stats().subscriptions, 0);
    assert.equal(h.stats().channels, 0);
    await h.close();
  });

  it('validates channels and data, and refuses events over the size limit', async () => {
    const h = await hub({ limits: { maxEventBytes: 4096 } });
    await assert.rejects(h.publish('', 1), code('bad_request'));
    await assert.rejects(h.publish('a\u0001b', 1), code('bad_request'));
    await assert.rejects(h.publish('x'.repeat(1025), 1), code('bad_request'));
    await h.publish('y'.repeat(1024), 1);
    await assert.rejects(h.publish('c', undefined), code('bad_request'));
    await assert.rejects(h.publish('c', 'z'.repeat(5000)), code('too_large'));
    await h.publish('c', null);
    await h.close();
  });

  it('anonymous clients follow namespace rules, token permissions follow patterns', async () => {
    const h = await hub({ namespaces: { '': { anonymousPublish: false }, open: { anonymousPublish: true } } });
    const anon = collector('anon').client;
    await assert.rejects(h.publish('news', 1, anon), code('forbidden'));
    await h.publish('open:x', 1, anon);
    await h.publish('news', 1); // the server itself may always publish
    const alice: ClientContext = { id: 'a', user: 'alice', transport: 't', permissions: { subscribe: ['news', 'user:alice:*'], publish: ['user:alice:*'], presence: [] } };
    await h.subscribe({ client: alice, deliver() {} }, 'user:alice:inbox');
    await assert.rejects(h.subscribe({ client: alice, deliver() {} }, 'user:bob:inbox'), code('forbidden'));
    await h.publish('user:alice:x', 1, alice);
    await assert.rejects(h.publish('news', 1, alice), code('forbidden'));
    await assert.rejects(h.presence('news', alice), code('forbidden'));
    await assert.rejects(h.history('user:bob:inbox', {}, alice), code('forbidden'));
    await h.close();
  });

  it('hooks authenticate, authorize and transform or reject publishes', async () => {
    const h = await hub({
      hooks: {
        authenticate(token) {
          if (token !== 'good') throw new HeraldError('unauthorized', 'bad token');
          return { user: 'u1' };
        },
        authorize: (action, _client, channel) => !(action === 'subscribe' && channel === 'secret'),
        beforePublish(channel, data) {
          if (channel === 'reject') throw new HeraldError('forbidden', 'no');
          return { wrapped: data };
        },
      },
    });
    await assert.rejects(h.authenticate('bad', 'test'), code('unauthorized'));
    const client = await h.authenticate('good', 'test');
    assert.equal(client.user, 'u1');
    await assert.rejects(h.subscribe({ client, deliver() {} }, 'secret'), code('forbidden'));
    const sub = collector();
    await h.subscribe(sub, 'x');
    await h.publish('x', 1, client);
    assert.deepEqual(sub.events[0]!.data, { wrapped: 1 });
    assert.deepEqual(sub.events[0]!.from, { client: client.id, user: 'u1' });
    await assert.rejects(h.publish('reject', 1), code('forbidden'));
    await h.close();
  });

  it('tracks presence and announces join and leave where the namespace asks', async () => {
    const h = await hub({ namespaces: { room: { joinLeave: true }, quiet: { presence: false } } });
    const a = collector('a', { user: 'alice' });
    const b = collector('b');
    await h.subscribe(a, 'room:1');
    await h.subscribe(b, 'room:1');
    assert.deepEqual(a.presence, ['join:room:1:b']);
    const list = await h.presence('room:1');
    assert.deepEqual(list.sort((x, y) => x.client.localeCompare(y.client)), [{ client: 'a', user: 'alice' }, { client: 'b' }]);
    await h.unsubscribe(b, 'room:1');
    assert.deepEqual(a.presence, ['join:room:1:b', 'leave:room:1:b']);
    assert.deepEqual(await h.presence('room:1'), [{ client: 'a', user: 'alice' }]);
    await h.subscribe(a, 'quiet:1');
    assert.deepEqual(await h.presence('quiet:1'), []);
    await h.close();
  });

  it('disconnects sessions by id and on close, and reports stats and readiness', async () => {
    const h = new Hub({ engine: new MemoryEngine() });
    assert.equal(h.ready(), false);
    await h.start();
    assert.equal(h.ready(), true);
    const calls: string[] = [];
    const session = { client: { id: 's1', transport: 't' }, disconnect: (code: number, _r: string, reconnect: boolean) => calls.push(`${code}:${reconnect}`) };
    h.register(session);
    assert.equal(h.stats().connections, 1);
    assert.equal(h.disconnectClient('nope'), false);
    assert.equal(h.disconnectClient('s1'), true);
    await h.close();
    assert.deepEqual(calls, ['4002:true', '1001:true']);
    assert.equal(h.ready(), false);
    await assert.rejects(h.publish('x', 1), code('unavailable'));
  });

  it('a subscribe still in flight when the connection closes does not leave a dead subscriber', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const h = await hub({ hooks: { authorize: async () => { await gate; return true; } } });
    const sub = collector();
    const pending = h.subscribe(sub, 'x');
    await h.unsubscribeAll(sub); // the connection closed
    release();
    await assert.rejects(pending, code('bad_request'));
    assert.equal(h.stats().subscriptions, 0);
    assert.equal(h.stats().channels, 0);
    await h.publish('x', 1);
    assert.deepEqual(sub.events, []);
    await h.close();
  });

  it('no duplicate when the engine hands an event to fan-out after a read already returned it', async () => {
    // An engine whose live stream runs behind its reads, as Redis's pub/sub connection can.
    class LaggingEngine extends MemoryEngine {
      override async start(handler: Parameters<MemoryEngine['start']>[0]): Promise<void> {
        await super.start({ onEvent: (event, json) => setTimeout(() => handler.onEvent(event, json), 20) });
      }
    }
    const h = new Hub({ engine: new LaggingEngine() });
    await h.start();
    const early = collector();
    await h.subscribe(early, 'lag');
    const first = await h.publish('lag', 1);
    await h.publish('lag', 2); // its live copy is still on the way when the next subscribe reads
    const late = collector();
    const answer = await h.subscribe(late, 'lag', { epoch: first.epoch, offset: 1 });
    const fresh = collector();
    const plain = await h.subscribe(fresh, 'lag');
    await h.publish('lag', 3);
    // Lagged copies arrive in order: once `early` has event 3, every copy of 2 and 3 was fanned out.
    while (early.events.length < 3) await new Promise((r) => setTimeout(r, 5));
    assert.deepEqual(answer.events.map((e) => e.offset), [2]);
    assert.deepEqual(late.events.map((e) => e.offset), [3]);
    assert.equal(plain.offset, 2);
    assert.deepEqual(fresh.events.map((e) => e.offset), [3]);
    assert.deepEqual(early.events.map((e) => e.offset), [1, 2, 3]);
    await h.close();
  });

  it('lists channels with subscribers and their positions', async () => {
    const h = await hub();
    await h.subscribe(collector(), 'a');
    await h.subscribe(collector(), 'a');
    await h.publish('a', 1);
    const list = await h.channelList();
    assert.equal(list.length, 1);
    assert.equal(list[0]!.channel, 'a');
    assert.equal(list[0]!.subscribers, 2);
    assert.equal(list[0]!.offset, 1);
    await h.close();
  });
});
