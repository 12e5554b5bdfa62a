/**
 * The engine contract suite (see src/core/engine.ts). Every engine runs it:
 * `engineContract('memory', () => new MemoryEngine())`. Adding an engine means passing this.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { ChannelOptions, Engine, PublishRequest } from '../../src/core/engine.js';
import type { HeraldEvent } from '../../src/protocol/index.js';

export interface ContractContext {
  engine: Engine;
  /** Events handed to onEvent, in arrival order. */
  received: HeraldEvent[];
  receivedJson: (string | undefined)[];
}

const opts = (over: Partial<ChannelOptions> = {}): ChannelOptions => ({ historySize: 100, historyTtlMs: 0, deleteAfterRead: false, ...over });
let counter = 0;
const unique = (name: string): string => `${name}-${process.pid}-${++counter}-${Date.now()}`;

function req(channel: string, data: unknown, options = opts()): PublishRequest {
  return { channel, data, dataJson: JSON.stringify(data), options };
}

/** Waits until `cond` holds, checking on every turn of the event loop; fails after `ms`. */
async function until(cond: () => boolean, ms = 2000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setImmediate(r));
  }
}

export function engineContract(name: string, create: () => Engine | Promise<Engine>): void {
  describe(`engine contract: ${name}`, () => {
    const ctx = {} as ContractContext;
    before(async () => {
      ctx.engine = await create();
      ctx.received = [];
      ctx.receivedJson = [];
      await ctx.engine.start({
        onEvent(event, json) {
          ctx.received.push(event);
          ctx.receivedJson.push(json);
        },
      });
    });
    after(async () => {
      await ctx.engine.close();
    });

    it('a channel that never had an event is at offset 0', async () => {
      const h = await ctx.engine.history(unique('empty'), {}, opts());
      assert.equal(h.offset, 0);
      assert.equal(typeof h.epoch, 'string');
      assert.ok(h.epoch.length > 0);
      assert.deepEqual(h.events, []);
      assert.equal(h.recovered, true);
    });

    it('publish assigns offsets +1 from 1 with one epoch, a UUID v7 id and a timestamp', async () => {
      const ch = unique('offsets');
      const before = Date.now();
      const a = await ctx.engine.publish(req(ch, { n: 1 }));
      const b = await ctx.engine.publish(req(ch, null));
      assert.equal(a.event.offset, 1);
      assert.equal(b.event.offset, 2);
      assert.equal(a.event.epoch, b.event.epoch);
      assert.match(a.event.id, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
      assert.notEqual(a.event.id, b.event.id);
      assert.ok(a.event.timestamp >= before - 1000 && a.event.timestamp <= Date.now() + 1000);
      assert.deepEqual(JSON.parse(a.json), { channel: ch, offset: 1, epoch: a.event.epoch, id: a.event.id, timestamp: a.event.timestamp, data: { n: 1 } });
      assert.equal(JSON.parse(b.json).data, null);
    });

    it('keeps `from` on the event', async () => {
      const ch = unique('from');
      const r = await ctx.engine.publish({ ...req(ch, 1), from: { client: 'c1', user: 'alice' } });
      assert.deepEqual(JSON.parse(r.json).from, { client: 'c1', user: 'alice' });
      const h = await ctx.engine.history(ch, {}, opts());
      assert.deepEqual(h.events[0]!.from, { client: 'c1', user: 'alice' });
    });

    it('concurrent publishes on one channel never share an offset and fan out in offset order', async () => {
      const ch = unique('concurrent');
      await ctx.engine.subscribe(ch);
      const results = await Promise.all(Array.from({ length: 200 }, (_, i) => ctx.engine.publish(req(ch, i))));
      const offsets = results.map((r) => r.event.offset).sort((x, y) => x - y);
      assert.deepEqual(offsets, Array.from({ length: 200 }, (_, i) => i + 1));
      await until(() => ctx.received.filter((e) => e.channel === ch).length === 200);
      const seen = ctx.received.filter((e) => e.channel === ch).map((e) => e.offset);
      assert.deepEqual(seen, Array.from({ length: 200 }, (_, i) => i + 1));
      await ctx.engine.unsubscribe(ch);
    });

    it('onEvent only for subscribed channels, and stops after unsubscribe', async () => {
      const ch = unique('sub');
      await ctx.engine.publish(req(ch, 'before'));
      await ctx.engine.subscribe(ch);
      await ctx.engine.publish(req(ch, 'during'));
      await until(() => ctx.received.some((e) => e.channel === ch));
      await ctx.engine.unsubscribe(ch);
      await ctx.engine.publish(req(ch, 'after'));
      // A marker on another subscribed channel, published after, proves 'after' had its chance.
      const marker = unique('marker');
      await ctx.engine.subscribe(marker);
      await ctx.engine.publish(req(marker, 'm'));
      await until(() => ctx.received.some((e) => e.channel === marker));
      assert.deepEqual(ctx.received.filter((e) => e.channel === ch).map((e) => e.data), ['during']);
      await ctx.engine.unsubscribe(marker);
    });

    it('history without since returns the newest `limit`, oldest first', async () => {
      const ch = unique('hist');
      for (let i = 1; i <= 10; i++) await ctx.engine.publish(req(ch, i));
      const h = await ctx.engine.history(ch, { limit: 3 }, opts());
      assert.deepEqual(h.events.map((e) => e.offset), [8, 9, 10]);
      assert.equal(h.offset, 10);
      assert.equal(h.recovered, true);
      const all = await ctx.engine.history(ch, {}, opts());
      assert.deepEqual(all.events.map((e) => e.data), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
      const none = await ctx.engine.history(ch, { limit: 0 }, opts());
      assert.deepEqual(none.events, []);
      assert.equal(none.offset, 10);
    });

    it('history since a retained position returns the first `limit` events after it', async () => {
      const ch = unique('since');
      let epoch = '';
      for (let i = 1; i <= 10; i++) epoch = (await ctx.engine.publish(req(ch, i))).event.epoch;
      const h = await ctx.engine.history(ch, { since: { epoch, offset: 4 }, limit: 3 }, opts());
      assert.equal(h.recovered, true);
      assert.deepEqual(h.events.map((e) => e.offset), [5, 6, 7]);
      const tail = await ctx.engine.history(ch, { since: { epoch, offset: 10 } }, opts());
      assert.equal(tail.recovered, true);
      assert.deepEqual(tail.events, []);
    });

    it('a position outside history is not recovered and gets the retained events', async () => {
      const ch = unique('evicted');
      const small = opts({ historySize: 3 });
      let epoch = '';
      for (let i = 1; i <= 10; i++) epoch = (await ctx.engine.publish(req(ch, i, small))).event.epoch;
      const evicted = await ctx.engine.history(ch, { since: { epoch, offset: 2 } }, small);
      assert.equal(evicted.recovered, false);
      assert.deepEqual(evicted.events.map((e) => e.offset), [8, 9, 10]);
      const edge = await ctx.engine.history(ch, { since: { epoch, offset: 7 } }, small);
      assert.equal(edge.recovered, true);
      assert.deepEqual(edge.events.map((e) => e.offset), [8, 9, 10]);
      const otherEpoch = await ctx.engine.history(ch, { since: { epoch: 'not-' + epoch, offset: 9 } }, small);
      assert.equal(otherEpoch.recovered, false);
      assert.equal(otherEpoch.events.length, 3);
      const ahead = await ctx.engine.history(ch, { since: { epoch, offset: 11 } }, small);
      assert.equal(ahead.recovered, false);
    });

    it('history size 0 keeps nothing but offsets still count', async () => {
      const ch = unique('nohist');
      const none = opts({ historySize: 0 });
      await ctx.engine.publish(req(ch, 1, none));
      const r = await ctx.engine.publish(req(ch, 2, none));
      assert.equal(r.event.offset, 2);
      const h = await ctx.engine.history(ch, {}, none);
      assert.deepEqual(h.events, []);
      assert.equal(h.offset, 2);
      assert.equal((await ctx.engine.history(ch, { since: { epoch: r.event.epoch, offset: 1 } }, none)).recovered, false);
      assert.equal((await ctx.engine.history(ch, { since: { epoch: r.event.epoch, offset: 2 } }, none)).recovered, true);
    });

    it('markRead removes events from history (delete after read)', async () => {
      const ch = unique('read');
      const dar = opts({ deleteAfterRead: true });
      for (let i = 1; i <= 4; i++) await ctx.engine.publish(req(ch, i, dar));
      await ctx.engine.markRead(ch, [1, 3]);
      const h = await ctx.engine.history(ch, {}, dar);
      assert.deepEqual(h.events.map((e) => e.offset), [2, 4]);
    });

    it('presence add, list and remove', async () => {
      const ch = unique('presence');
      await ctx.engine.presenceAdd(ch, { client: 'a', user: 'alice' });
      await ctx.engine.presenceAdd(ch, { client: 'b' });
      const list = await ctx.engine.presence(ch);
      assert.deepEqual(list.sort((x, y) => x.client.localeCompare(y.client)), [{ client: 'a', user: 'alice' }, { client: 'b' }]);
      await ctx.engine.presenceRemove(ch, 'a');
      assert.deepEqual(await ctx.engine.presence(ch), [{ client: 'b' }]);
      await ctx.engine.presenceRemove(ch, 'b');
      assert.deepEqual(await ctx.engine.presence(ch), []);
    });
  });
}
