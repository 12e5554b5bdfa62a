import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MemoryEngine } from '../../src/engines/memory.js';
import { engineContract } from '../contract/engine.js';

engineContract('memory', () => new MemoryEngine());

describe('memory engine time-to-live', () => {
  it('expires events older than historyTtl and then no longer recovers positions before them', async () => {
    let now = 1_000_000;
    const engine = new MemoryEngine({ now: () => now });
    await engine.start({ onEvent() {} });
    const options = { historySize: 100, historyTtlMs: 1000, deleteAfterRead: false };
    const first = await engine.publish({ channel: 'ttl', data: 1, dataJson: '1', options });
    now += 600;
    await engine.publish({ channel: 'ttl', data: 2, dataJson: '2', options });
    now += 600; // event 1 is 1200 ms old, event 2 is 600 ms old
    const h = await engine.history('ttl', {}, options);
    assert.deepEqual(h.events.map((e) => e.data), [2]);
    const r = await engine.history('ttl', { since: { epoch: first.event.epoch, offset: 0 } }, options);
    assert.equal(r.recovered, false);
    assert.deepEqual(r.events.map((e) => e.offset), [2]);
    now += 1000;
    assert.deepEqual((await engine.history('ttl', {}, options)).events, []);
    assert.equal((await engine.history('ttl', {}, options)).offset, 2);
    await engine.close();
  });

  it('a new engine instance is a new epoch (memory history is lost on restart)', async () => {
    const a = new MemoryEngine();
    const b = new MemoryEngine();
    const ha = await a.history('x', {}, { historySize: 1, historyTtlMs: 0, deleteAfterRead: false });
    const hb = await b.history('x', {}, { historySize: 1, historyTtlMs: 0, deleteAfterRead: false });
    assert.notEqual(ha.epoch, hb.epoch);
  });
});
