/**
 * The Redis engine when Redis goes away: killed and restarted (its data lost, so a new epoch),
 * hanging, flushed, or dropping only the pub/sub connections (events published meanwhile must
 * still reach every subscriber, in order, once). Each suite owns its redis-server.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Hub, type Subscriber } from '../../src/core/hub.js';
import type { OutgoingEvent } from '../../src/core/outgoing.js';
import { createRedisEngine, type RedisEngine } from '../../src/engines/redis/index.js';
import { HeraldError, type HeraldEvent } from '../../src/protocol/index.js';
import { redisBinary, startRedisServer, type RedisServer } from '../helpers/redis-server.js';

const opts = { historySize: 100, historyTtlMs: 0, deleteAfterRead: false };
const isCode = (code: string) => (err: unknown) => err instanceof HeraldError && err.code === code;

async function until(cond: () => boolean | Promise<boolean>, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}

function collector(id: string): Subscriber & { events: HeraldEvent[] } {
  const events: HeraldEvent[] = [];
  return { client: { id, transport: 'test' }, events, deliver: (out: OutgoingEvent) => void events.push(JSON.parse(out.json) as HeraldEvent) };
}

describe('redis engine outages', { skip: redisBinary.skip }, () => {
  let server: RedisServer;
  let engine: RedisEngine;
  let hub: Hub;
  const availability: boolean[] = [];
  before(async () => {
    server = await startRedisServer();
    engine = createRedisEngine({ url: server.url, prefix: 'outage', commandTimeout: 0.3 });
    hub = new Hub({ engine });
    // The hub's handler plus a spy on availability changes.
    const start = engine.start.bind(engine);
    engine.start = (handler) => start({ ...handler, onEvent: handler.onEvent, onAvailability: (up) => void availability.push(up) });
    await hub.start();
  });
  after(async () => {
    await hub?.close();
    await server?.stop();
  });

  it('Redis killed: publishes fail fast with unavailable; restarted: the engine recovers by itself in a new epoch', async () => {
    const sub = collector('s1');
    await hub.subscribe(sub, 'news');
    await hub.publish('news', 1);
    const second = await hub.publish('news', 2);
    await engine.presenceAdd('news', { client: 'p1' });
    await until(() => sub.events.length === 2);
    assert.equal(engine.available(), true);

    await server.kill();
    await until(() => !engine.available(), 1000);
    assert.deepEqual(availability.slice(-1), [false]);
    assert.equal(hub.ready(), false);
    const t0 = Date.now();
    await assert.rejects(hub.publish('news', 'lost?'), isCode('unavailable'));
    await assert.rejects(engine.publish({ channel: 'news', data: 3, dataJson: '3', options: opts }), isCode('unavailable'));
    await assert.rejects(engine.history('news', {}, opts), isCode('unavailable'));
    assert.ok(Date.now() - t0 < 100, `failing took ${Date.now() - t0} ms`);

    await server.start(); // same port, empty: nothing was saved
    await until(() => engine.available(), 5000);
    assert.deepEqual(availability.slice(-1), [true]);
    const after = await hub.publish('news', 'after');
    assert.notEqual(after.epoch, second.epoch);
    assert.equal(after.offset, 1);
    // The live subscriber gets it: the node subscribed again on its own.
    await until(() => sub.events.length === 3);
    assert.deepEqual(sub.events.map((e) => [e.data, e.offset]), [[1, 1], [2, 2], ['after', 1]]);
    // A client resuming from before the outage is told its position is gone.
    const resumed = await hub.subscribe(collector('s2'), 'news', { epoch: second.epoch, offset: second.offset });
    assert.equal(resumed.recovered, false);
    assert.deepEqual(resumed.events.map((e) => e.data), ['after']);
    // Presence this node owns is written again once Redis is back.
    await until(async () => (await engine.presence('news')).some((c) => c.client === 'p1'));
  });

  it('FLUSHALL: the next publish starts a new epoch and an old position is not recovered', async () => {
    const sub = collector('f1');
    await hub.subscribe(sub, 'flushed');
    const before = await hub.publish('flushed', 'a');
    assert.equal(await server.command('FLUSHALL'), '+OK');
    const next = await hub.publish('flushed', 'b');
    assert.notEqual(next.epoch, before.epoch);
    assert.equal(next.offset, 1);
    await until(() => sub.events.length === 2);
    assert.deepEqual(sub.events.map((e) => [e.epoch, e.offset]), [[before.epoch, 1], [next.epoch, 1]]);
    const h = await hub.history('flushed', { since: { epoch: before.epoch, offset: 1 } });
    assert.equal(h.recovered, false);
    assert.deepEqual(h.events.map((e) => e.data), ['b']);
  });

  it('a Redis that hangs: publishes fail with unavailable after the command timeout', async () => {
    server.pause();
    try {
      const t0 = Date.now();
      await assert.rejects(engine.publish({ channel: 'hang', data: 1, dataJson: '1', options: opts }), isCode('unavailable'));
      assert.ok(Date.now() - t0 < 1000, `took ${Date.now() - t0} ms`);
    } finally {
      server.resume();
    }
    await until(() => engine.available());
    // The timed-out publish may still have been applied once Redis woke up (it was sent): the
    // client was told "unavailable", never "published" — at least once, not lost.
    const r = await engine.publish({ channel: 'hang', data: 2, dataJson: '2', options: opts });
    assert.ok(r.event.offset === 1 || r.event.offset === 2);
  });
});

describe('redis engine: pub/sub connection dropped while Redis stays up', { skip: redisBinary.skip }, () => {
  let server: RedisServer;
  let a: RedisEngine;
  let b: RedisEngine;
  let hubA: Hub;
  let hubB: Hub;
  before(async () => {
    server = await startRedisServer();
    a = createRedisEngine({ url: server.url, prefix: 'drop' });
    b = createRedisEngine({ url: server.url, prefix: 'drop' });
    hubA = new Hub({ engine: a });
    hubB = new Hub({ engine: b });
    await Promise.all([hubA.start(), hubB.start()]);
  });
  after(async () => {
    await Promise.all([hubA?.close(), hubB?.close()]);
    await server?.stop();
  });

  it('events published while a node was not listening reach its subscribers, in order, once', async () => {
    const subs = [collector('d1'), collector('d2')];
    await hubB.subscribe(subs[0]!, 'busy');
    await hubB.subscribe(subs[1]!, 'idle');
    await hubA.publish('busy', 0);
    await hubA.publish('idle', 0);
    await until(() => subs.every((s) => s.events.length === 1));
    // Only node B is subscribed to anything, so only its pub/sub connection is dropped.
    assert.match(await server.command('CLIENT', 'KILL', 'TYPE', 'pubsub'), /^:1$/);
    for (let i = 1; i <= 20; i++) await hubA.publish('busy', i);
    await hubA.publish('idle', 1); // nothing follows it: only a catch-up can deliver it
    for (let i = 21; i <= 40; i++) await hubA.publish('busy', i);
    await until(() => subs[0]!.events.length === 41 && subs[1]!.events.length === 2);
    assert.deepEqual(subs[0]!.events.map((e) => e.data), Array.from({ length: 41 }, (_, i) => i));
    assert.deepEqual(subs[1]!.events.map((e) => e.data), [0, 1]);
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(subs[0]!.events.length, 41, 'no duplicates');
    assert.equal(b.available(), true);
  });
});
