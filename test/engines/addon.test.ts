import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { AddOn, AddOnContext, RestoreItem } from '../../src/core/addon.js';
import type { ChannelOptions, PublishRequest } from '../../src/core/engine.js';
import { Hub } from '../../src/core/hub.js';
import { MemoryEngine } from '../../src/engines/memory.js';
import { HeraldError, type HeraldEvent } from '../../src/protocol/index.js';
import { engineContract } from '../contract/engine.js';

const opts: ChannelOptions = { historySize: 100, historyTtlMs: 0, deleteAfterRead: false };
const req = (channel: string, data: unknown): PublishRequest => ({ channel, data, dataJson: JSON.stringify(data), options: opts });

/** Accepts each event on the next turn of the event loop, like an asynchronous store. */
const nextTurn: AddOn = { name: 'next-turn', onPublish: () => new Promise<void>((resolve) => setImmediate(resolve)) };
engineContract('memory + an asynchronous add-on', () => new MemoryEngine({ addons: [nextTurn] }));

/** An add-on whose every onPublish waits until the test settles it. */
function manual(): AddOn & { calls: string[]; settle: Map<string, { resolve(): void; reject(e: Error): void }> } {
  const calls: string[] = [];
  const settle = new Map<string, { resolve(): void; reject(e: Error): void }>();
  return {
    name: 'manual',
    calls,
    settle,
    onPublish(event) {
      const key = `${event.channel}:${event.offset}`;
      calls.push(key);
      return new Promise<void>((resolve, reject) => settle.set(key, { resolve, reject }));
    },
  };
}

async function started(engine: MemoryEngine, onAvailability?: (up: boolean) => void): Promise<{ engine: MemoryEngine; seen: HeraldEvent[] }> {
  const seen: HeraldEvent[] = [];
  await engine.start({ onEvent: (e) => void seen.push(e), ...(onAvailability ? { onAvailability } : {}) });
  return { engine, seen };
}

const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe('add-ons', () => {
  it('onPublish sees events in offset order, and a slow add-on delays commits without reordering them', async () => {
    const addon = manual();
    const { engine, seen } = await started(new MemoryEngine({ addons: [addon] }));
    await engine.subscribe('c');
    const acks: number[] = [];
    const pending = [1, 2, 3].map((i) => engine.publish(req('c', i)).then((r) => void acks.push(r.event.offset)));
    assert.deepEqual(addon.calls, ['c:1', 'c:2', 'c:3']);
    addon.settle.get('c:3')!.resolve();
    addon.settle.get('c:2')!.resolve();
    await turn();
    // Nothing is visible before the add-on accepted offset 1: not to subscribers, not to readers.
    assert.equal(seen.length, 0);
    assert.equal(acks.length, 0);
    assert.equal((await engine.history('c', {}, opts)).offset, 0);
    addon.settle.get('c:1')!.resolve();
    await Promise.all(pending);
    assert.deepEqual(seen.map((e) => e.offset), [1, 2, 3]);
    assert.deepEqual(acks, [1, 2, 3]);
    assert.deepEqual((await engine.history('c', {}, opts)).events.map((e) => e.data), [1, 2, 3]);
    await engine.close();
  });

  it('restore feeds history, offsets and epochs before anything is served', async () => {
    const event = (offset: number): HeraldEvent => ({ channel: 'old', offset, epoch: 'e-old', id: `0190c3a5-7d2e-7c3b-9a41-3f0b6c2d1e0${offset}`, timestamp: 1_700_000_000_000 + offset, data: { offset } });
    const restorer: AddOn = {
      name: 'restorer',
      async *restore(): AsyncIterable<RestoreItem> {
        yield { kind: 'epoch', epoch: 'e-default' };
        for (let o = 1; o <= 3; o++) yield { kind: 'event', event: event(o) };
        yield { kind: 'channel', channel: 'old', epoch: 'e-old', offset: 3 };
        yield { kind: 'channel', channel: 'counter', epoch: 'e-counter', offset: 41 };
      },
    };
    const { engine } = await started(new MemoryEngine({ addons: [restorer], channelOptions: () => opts }));
    const h = await engine.history('old', { since: { epoch: 'e-old', offset: 1 } }, opts);
    assert.deepEqual([h.recovered, h.epoch, h.offset, h.events], [true, 'e-old', 3, [event(2), event(3)]]);
    const next = await engine.publish(req('old', 4));
    assert.deepEqual([next.event.offset, next.event.epoch], [4, 'e-old']);
    const counter = await engine.publish(req('counter', 'x'));
    assert.deepEqual([counter.event.offset, counter.event.epoch], [42, 'e-counter']);
    const fresh = await engine.history('never-seen', { since: { epoch: 'e-default', offset: 0 } }, opts);
    assert.deepEqual([fresh.epoch, fresh.offset, fresh.recovered], ['e-default', 0, true]);
    await engine.close();
  });

  it('restore never leaves a hole: a jump in offsets drops the older events', async () => {
    const ev = (offset: number): HeraldEvent => ({ channel: 'gap', offset, epoch: 'e', id: 'id' + offset, timestamp: 1, data: offset });
    const restorer: AddOn = { name: 'gappy', restore: () => [ev(1), ev(2), ev(5), ev(6)].map((event) => ({ kind: 'event', event }) as const) };
    const { engine } = await started(new MemoryEngine({ addons: [restorer], channelOptions: () => opts }));
    const h = await engine.history('gap', { since: { epoch: 'e', offset: 2 } }, opts);
    assert.deepEqual([h.recovered, h.events.map((e) => e.offset)], [false, [5, 6]]);
    await engine.close();
  });

  it('a failing add-on fails the publish with unavailable, consumes no offset and stops the engine', async () => {
    const addon = manual();
    const availability: boolean[] = [];
    const { engine, seen } = await started(new MemoryEngine({ addons: [addon] }), (up) => availability.push(up));
    await engine.subscribe('c');
    const first = engine.publish(req('c', 1));
    addon.settle.get('c:1')!.resolve();
    assert.equal((await first).event.offset, 1);
    const second = engine.publish(req('c', 2));
    const third = engine.publish(req('c', 3)); // in flight behind the failing one
    const other = engine.publish(req('d', 1)); // in flight on another channel
    addon.settle.get('c:3')!.resolve();
    addon.settle.get('c:2')!.reject(new Error('disk full'));
    for (const p of [second, third, other]) {
      await assert.rejects(p, (err) => err instanceof HeraldError && err.code === 'unavailable' && (err.cause as Error).message === 'disk full');
    }
    assert.equal(engine.available(), false);
    assert.deepEqual(availability, [false]);
    assert.deepEqual(seen.map((e) => e.offset), [1]);
    assert.equal((await engine.history('c', {}, opts)).offset, 1);
    await assert.rejects(engine.publish(req('c', 4)), { code: 'unavailable' });
    assert.deepEqual(addon.calls, ['c:1', 'c:2', 'c:3', 'd:1']);
    await engine.close();
  });

  it('an add-on that throws synchronously fails the publish the same way', async () => {
    const thrower: AddOn = {
      name: 'thrower',
      onPublish() {
        throw new Error('boom');
      },
    };
    const { engine } = await started(new MemoryEngine({ addons: [thrower] }));
    await assert.rejects(engine.publish(req('c', 1)), { code: 'unavailable' });
    assert.equal((await engine.history('c', {}, opts)).offset, 0);
    assert.equal(engine.available(), false);
    await engine.close();
  });

  it('open, restore, publish, flush and close are called in order, and close drains what is in flight on shutdown', async () => {
    const calls: string[] = [];
    const held: (() => void)[] = [];
    let context: AddOnContext | undefined;
    const lifecycle: AddOn = {
      name: 'lifecycle',
      open(ctx) {
        context = ctx;
        calls.push('open');
      },
      restore() {
        calls.push('restore');
        return [];
      },
      onPublish(event) {
        calls.push(`publish:${event.offset}`);
        return new Promise<void>((resolve) => held.push(resolve));
      },
      flush() {
        calls.push('flush');
      },
      close() {
        calls.push('close');
        for (const release of held.splice(0)) release();
      },
    };
    const engine = new MemoryEngine({ addons: [lifecycle] });
    await assert.rejects(engine.publish(req('c', 0)), { code: 'unavailable' }); // not started yet
    const hub = new Hub({ engine });
    await hub.start();
    const published = hub.publish('c', 'last words');
    await turn();
    await engine.flush();
    await hub.close();
    assert.equal((await published).offset, 1);
    assert.deepEqual(calls, ['open', 'restore', 'publish:1', 'flush', 'close']);
    assert.equal(context!.retained('c', opts)!.events.length, 1);
  });
});
