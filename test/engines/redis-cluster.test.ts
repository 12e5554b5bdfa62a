/**
 * The Redis engine on a Redis Cluster (three masters started by the test): each channel's keys
 * share a hash tag, so the publish and history scripts run on one slot; PUBLISH reaches the
 * subscriber whichever node it is connected to.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Hub, type Subscriber } from '../../src/core/hub.js';
import type { OutgoingEvent } from '../../src/core/outgoing.js';
import { createRedisEngine } from '../../src/engines/redis/index.js';
import type { HeraldEvent } from '../../src/protocol/index.js';
import { engineContract } from '../contract/engine.js';
import { redisBinary, startRedisCluster } from '../helpers/redis-server.js';

describe('redis engine on Redis Cluster', { skip: redisBinary.skip }, () => {
  let cluster: Awaited<ReturnType<typeof startRedisCluster>>;
  before(async () => {
    cluster = await startRedisCluster(3);
  });
  after(async () => {
    await cluster?.stop();
  });

  engineContract('redis cluster', () => createRedisEngine({ urls: cluster.urls, cluster: true, prefix: `c${process.pid}` }));

  it('two nodes: events of channels on every slot reach the other node in order', async () => {
    const prefix = `c2${process.pid}`;
    // Node B's subscriber connection is on another cluster node than the one it lists first.
    const hubA = new Hub({ engine: createRedisEngine({ urls: cluster.urls, cluster: true, prefix }) });
    const hubB = new Hub({ engine: createRedisEngine({ urls: [...cluster.urls].reverse(), cluster: true, prefix }) });
    await Promise.all([hubA.start(), hubB.start()]);
    try {
      const channels = Array.from({ length: 12 }, (_, i) => `room-${i}`);
      const subs = new Map<string, HeraldEvent[]>();
      for (const ch of channels) {
        const events: HeraldEvent[] = [];
        subs.set(ch, events);
        const sub: Subscriber = { client: { id: ch, transport: 'test' }, deliver: (out: OutgoingEvent) => void events.push(out.event) };
        await hubB.subscribe(sub, ch);
      }
      for (let i = 1; i <= 5; i++) for (const ch of channels) await hubA.publish(ch, i);
      const end = Date.now() + 3000;
      while ([...subs.values()].some((e) => e.length < 5) && Date.now() < end) await new Promise((r) => setTimeout(r, 10));
      for (const [ch, events] of subs) assert.deepEqual(events.map((e) => e.offset), [1, 2, 3, 4, 5], ch);
    } finally {
      await Promise.all([hubA.close(), hubB.close()]);
    }
  });
});
