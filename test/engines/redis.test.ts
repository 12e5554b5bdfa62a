/**
 * The Redis engine against a real redis-server: the engine contract, two nodes on one Redis
 * (two engines, a hub on each), presence across nodes and after a node crash, sharding over two
 * servers. Outages are in redis-outage.test.ts (they kill their own server).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { eventJson } from '../../src/core/engine.js';
import { Hub, type ClientContext, type Subscriber } from '../../src/core/hub.js';
import type { OutgoingEvent } from '../../src/core/outgoing.js';
import { createRedisEngine, type RedisEngine } from '../../src/engines/redis/index.js';
import { channelKeys, eventJsonParts, joinEventJson, shardOf, tagOf } from '../../src/engines/redis/keys.js';
import { HeraldError, type HeraldEvent } from '../../src/protocol/index.js';
import { engineContract } from '../contract/engine.js';
import { redisBinary, startRedisServer, type RedisServer } from '../helpers/redis-server.js';

const opts = { historySize: 100, historyTtlMs: 0, deleteAfterRead: false };
const prefix = (): string => `t${process.pid}x${Math.random().toString(36).slice(2, 8)}`;
let n = 0;
const unique = (name: string): string => `${name}-${++n}-${Date.now()}`;

async function until(cond: () => boolean | Promise<boolean>, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 5));
  }
}

function collector(id: string): Subscriber & { events: HeraldEvent[] } {
  const events: HeraldEvent[] = [];
  const client: ClientContext = { id, transport: 'test' };
  return {
    client,
    events,
    deliver(out: OutgoingEvent) {
      events.push(JSON.parse(out.json) as HeraldEvent);
    },
  };
}

describe('redis keys and event JSON', () => {
  it('builds the same event JSON as eventJson, with and without `from`', () => {
    const base = { channel: 'a"b\u00e9', id: '0190c3a5-7d2e-7c3b-9a41-3f0b6c2d1e00', timestamp: 1763812345678, data: { x: [1, 'two'] } };
    for (const from of [undefined, { client: 'c1', user: 'al"ice' }]) {
      const event: HeraldEvent = { ...base, offset: 42, epoch: 'k3j2x9', ...(from ? { from } : {}) };
      const { head, tail } = eventJsonParts(event, JSON.stringify(event.data));
      assert.equal(joinEventJson(head, 42, 'k3j2x9', tail), eventJson(event, JSON.stringify(event.data)));
    }
  });

  it('puts every key of a channel in one hash tag, even when the name has braces', () => {
    for (const channel of ['news', 'chat:lobby', 'a{b}c', '}{', '100%{']) {
      const k = channelKeys('herald', channel);
      const tags = [k.meta, k.stream, k.presence, k.presenceExpiry].map((key) => key.slice(key.indexOf('{') + 1, key.indexOf('}')));
      assert.ok(tags.every((t) => t === tagOf(channel)), channel);
      assert.ok(!/[{}]/.test(tagOf(channel)));
    }
    assert.notEqual(tagOf('a{'), tagOf('a%7B'));
  });

  it('spreads channels over shards stably', () => {
    const counts = [0, 0, 0];
    for (let i = 0; i < 3000; i++) counts[shardOf('ch' + i, 3)]!++;
    assert.ok(counts.every((c) => c > 800), String(counts));
    assert.equal(shardOf('news', 3), shardOf('news', 3));
    assert.equal(shardOf('news', 1), 0);
  });

  it('validates options, naming the key', () => {
    assert.throws(() => createRedisEngine({}), /"url" is required/);
    assert.throws(() => createRedisEngine({ url: 'http://x' }), /"url" must be redis:\/\//);
    assert.throws(() => createRedisEngine({ url: 'redis://x', prefix: 'a{b' }), /"prefix"/);
    assert.throws(() => createRedisEngine({ url: 'redis://x', presenceTtl: 0 }), /"presenceTtl"/);
  });
});

describe('redis engine', { skip: redisBinary.skip }, () => {
  let server: RedisServer;
  before(async () => {
    server = await startRedisServer();
  });
  after(async () => {
    await server?.stop();
  });

  engineContract('redis', () => createRedisEngine({ url: server.url, prefix: prefix() }));

  describe('time-to-live and delete-after-read', () => {
    let engine: RedisEngine;
    before(async () => {
      engine = createRedisEngine({ url: server.url, prefix: prefix() });
      await engine.start({ onEvent() {} });
    });
    after(() => engine.close());

    it('expires events older than historyTtl; a position before them is not recovered', async () => {
      const ch = unique('ttl');
      const ttl = { ...opts, historyTtlMs: 300 };
      const first = await engine.publish({ channel: ch, data: 1, dataJson: '1', options: ttl });
      await new Promise((r) => setTimeout(r, 200));
      await engine.publish({ channel: ch, data: 2, dataJson: '2', options: ttl });
      await new Promise((r) => setTimeout(r, 150)); // event 1 is ~350 ms old, event 2 ~150 ms
      const h = await engine.history(ch, {}, ttl);
      assert.deepEqual(h.events.map((e) => e.data), [2]);
      const r = await engine.history(ch, { since: { epoch: first.event.epoch, offset: 0 } }, ttl);
      assert.equal(r.recovered, false);
      assert.deepEqual(r.events.map((e) => e.offset), [2]);
      await new Promise((r) => setTimeout(r, 300));
      const gone = await engine.history(ch, {}, ttl);
      assert.deepEqual(gone.events, []);
      assert.equal(gone.offset, 2);
      assert.equal(gone.epoch, first.event.epoch);
    });

    it('delete-after-read at the front moves the recoverable range', async () => {
      const ch = unique('dar');
      const dar = { ...opts, deleteAfterRead: true };
      let epoch = '';
      for (let i = 1; i <= 4; i++) epoch = (await engine.publish({ channel: ch, data: i, dataJson: String(i), options: dar })).event.epoch;
      await engine.markRead(ch, [1, 2]);
      assert.equal((await engine.history(ch, { since: { epoch, offset: 0 } }, dar)).recovered, false);
      const h = await engine.history(ch, { since: { epoch, offset: 2 } }, dar);
      assert.equal(h.recovered, true);
      assert.deepEqual(h.events.map((e) => e.offset), [3, 4]);
    });

    it('a channel read before its first publish keeps its epoch, so {epoch, 0} resumes', async () => {
      const ch = unique('early');
      const empty = await engine.history(ch, { limit: 0 }, opts);
      const p = await engine.publish({ channel: ch, data: 'x', dataJson: '"x"', options: opts });
      assert.equal(p.event.epoch, empty.epoch);
      const r = await engine.history(ch, { since: { epoch: empty.epoch, offset: 0 } }, opts);
      assert.equal(r.recovered, true);
      assert.deepEqual(r.events.map((e) => e.data), ['x']);
    });
  });

  describe('two nodes on one Redis', () => {
    let a: RedisEngine;
    let b: RedisEngine;
    let hubA: Hub;
    let hubB: Hub;
    before(async () => {
      const p = prefix();
      a = createRedisEngine({ url: server.url, prefix: p });
      b = createRedisEngine({ url: server.url, prefix: p });
      hubA = new Hub({ engine: a });
      hubB = new Hub({ engine: b });
      await Promise.all([hubA.start(), hubB.start()]);
    });
    after(async () => {
      await Promise.all([hubA.close(), hubB.close()]);
    });

    it('a publish on node A reaches subscribers on node B, in order, with the same JSON', async () => {
      const ch = unique('fan');
      const subs = [collector('b1'), collector('b2')];
      for (const s of subs) await hubB.subscribe(s, ch);
      const results = [];
      for (let i = 1; i <= 50; i++) results.push(await hubA.publish(ch, { i }));
      await until(() => subs.every((s) => s.events.length === 50));
      for (const s of subs) {
        assert.deepEqual(s.events.map((e) => e.offset), Array.from({ length: 50 }, (_, i) => i + 1));
        assert.deepEqual(s.events.map((e) => (e.data as { i: number }).i), Array.from({ length: 50 }, (_, i) => i + 1));
        assert.equal(s.events[0]!.id, results[0]!.id);
      }
    });

    it('concurrent publishes on both nodes share one offset sequence, seen in the same order everywhere', async () => {
      const ch = unique('both');
      const onA = collector('a1');
      const onB = collector('b1');
      await hubA.subscribe(onA, ch);
      await hubB.subscribe(onB, ch);
      await Promise.all(Array.from({ length: 100 }, (_, i) => (i % 2 ? hubA : hubB).publish(ch, i)));
      await until(() => onA.events.length === 100 && onB.events.length === 100);
      const offsets = Array.from({ length: 100 }, (_, i) => i + 1);
      assert.deepEqual(onA.events.map((e) => e.offset), offsets);
      assert.deepEqual(onB.events.map((e) => e.offset), offsets);
      assert.deepEqual(onA.events.map((e) => e.id), onB.events.map((e) => e.id));
    });

    it('a subscriber that resumes on node B with a position from node A gets exactly the missed events', async () => {
      const ch = unique('resume');
      const first = collector('mover');
      await hubA.subscribe(first, ch);
      for (let i = 1; i <= 5; i++) await hubA.publish(ch, i);
      await until(() => first.events.length === 5);
      await hubA.unsubscribe(first, ch);
      const position = { epoch: first.events[4]!.epoch, offset: first.events[4]!.offset };
      for (let i = 6; i <= 9; i++) await hubA.publish(ch, i);
      const moved = collector('mover');
      const answer = await hubB.subscribe(moved, ch, position);
      assert.equal(answer.recovered, true);
      assert.deepEqual(answer.events.map((e) => e.data), [6, 7, 8, 9]);
      await hubA.publish(ch, 10);
      await until(() => moved.events.length === 1);
      assert.deepEqual(moved.events.map((e) => e.offset), [10]);
    });

    it('history and channel positions are the same on both nodes', async () => {
      const ch = unique('hist');
      for (let i = 1; i <= 3; i++) await hubA.publish(ch, i);
      const ha = await hubA.history(ch, {});
      const hb = await hubB.history(ch, {});
      assert.deepEqual(hb, ha);
      assert.equal(hb.offset, 3);
    });

    it('presence is cluster-wide', async () => {
      const ch = unique('presence');
      const x = collector('x');
      const y = collector('y');
      await hubA.subscribe(x, ch);
      await hubB.subscribe(y, ch);
      await until(async () => (await hubA.presence(ch)).length === 2);
      assert.deepEqual((await hubB.presence(ch)).map((c) => c.client).sort(), ['x', 'y']);
      await hubB.unsubscribe(y, ch);
      assert.deepEqual((await hubA.presence(ch)).map((c) => c.client), ['x']);
    });

    it('lists the channels with subscribers on any node', async () => {
      const ch1 = unique('list');
      const ch2 = unique('list');
      await hubA.subscribe(collector('l1'), ch1);
      await hubB.subscribe(collector('l2'), ch1);
      await hubB.subscribe(collector('l3'), ch2);
      await hubA.publish(ch2, 'x');
      // Let node B's registry entry catch up with its subscriptions.
      await until(async () => (await a.clusterChannels()).some((c) => c.channel === ch2));
      const list = new Map((await a.clusterChannels()).map((c) => [c.channel, [c.subscribers, c.offset]]));
      assert.deepEqual([list.get(ch1), list.get(ch2)], [[2, 0], [1, 1]]);
    });

    it('publishes fail with `unavailable` after the engine is closed', async () => {
      const c = createRedisEngine({ url: server.url, prefix: prefix() });
      await c.start({ onEvent() {} });
      assert.equal(c.available(), true);
      await c.close();
      assert.equal(c.available(), false);
      await assert.rejects(c.publish({ channel: 'x', data: 1, dataJson: '1', options: opts }), (e) => e instanceof HeraldError && e.code === 'unavailable');
    });
  });

  describe('a crashed node', () => {
    it("loses its clients' presence within presenceTtl, while a live node's stay", async () => {
      const p = prefix();
      const ch = unique('crash');
      const live = createRedisEngine({ url: server.url, prefix: p, presenceTtl: 1 });
      await live.start({ onEvent() {} });
      await live.presenceAdd(ch, { client: 'stays' });
      // The other node is a separate process, killed with SIGKILL after it added its client.
      const engineUrl = new URL('../../src/engines/redis/index.ts', import.meta.url).href;
      const code = `
        const { createRedisEngine } = await import(${JSON.stringify(engineUrl)});
        const e = createRedisEngine({ url: ${JSON.stringify(server.url)}, prefix: ${JSON.stringify(p)}, presenceTtl: 1 });
        await e.start({ onEvent() {} });
        await e.presenceAdd(${JSON.stringify(ch)}, { client: 'crashes', user: 'bob' });
        console.log('added');
        setInterval(() => {}, 1000);`;
      const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], { stdio: ['ignore', 'pipe', 'inherit'], cwd: fileURLToPath(new URL('../..', import.meta.url)) });
      try {
        await new Promise<void>((resolve, reject) => {
          child.stdout!.on('data', (c: Buffer) => c.toString().includes('added') && resolve());
          child.once('exit', (code) => reject(new Error(`node process exited with ${code}`)));
        });
        assert.deepEqual((await live.presence(ch)).map((c) => c.client).sort(), ['crashes', 'stays']);
        // Longer than the TTL: the child has refreshed at least once (every TTL/3).
        await new Promise((r) => setTimeout(r, 1200));
        assert.deepEqual((await live.presence(ch)).map((c) => c.client).sort(), ['crashes', 'stays']);
        const killedAt = Date.now();
        child.kill('SIGKILL');
        await until(async () => (await live.presence(ch)).length === 1, 3000);
        assert.ok(Date.now() - killedAt <= 1300, `gone after ${Date.now() - killedAt} ms`);
        assert.deepEqual(await live.presence(ch), [{ client: 'stays' }]);
      } finally {
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
        await live.close();
      }
    });
  });

  describe('sharding over two servers', () => {
    let second: RedisServer;
    before(async () => {
      second = await startRedisServer();
    });
    after(async () => {
      await second?.stop();
    });

    engineContract('redis, two shards', () => createRedisEngine({ urls: [server.url, second.url], prefix: prefix() }));

    it('puts each channel on one server, the one the hash names', async () => {
      const p = prefix();
      const engine = createRedisEngine({ urls: [server.url, second.url], prefix: p });
      await engine.start({ onEvent() {} });
      try {
        const channels = Array.from({ length: 20 }, (_, i) => `shard-${i}`);
        for (const ch of channels) await engine.publish({ channel: ch, data: 1, dataJson: '1', options: opts });
        for (const ch of channels) {
          const meta = channelKeys(p, ch).meta;
          const [on0, on1] = await Promise.all([server.command('EXISTS', meta), second.command('EXISTS', meta)]);
          assert.deepEqual([on0, on1], shardOf(ch, 2) === 0 ? [':1', ':0'] : [':0', ':1'], ch);
        }
      } finally {
        await engine.close();
      }
    });
  });
});
