/**
 * A node's pub/sub connection may run behind its command connection: they are two sockets, and a
 * history read can come back before the PUBLISH of an event it contains. SPEC §2: "live events
 * follow the answer with no gap and no duplicate". Here node B reaches Redis through a proxy that
 * delays what Redis sends on B's subscriber connection, so the race that a loaded machine hits now
 * and then (test/cluster/failover.test.ts) happens every time.
 */
import assert from 'node:assert/strict';
import { createServer, connect, type AddressInfo, type Server, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { RawSubscriber, eventually, publish, redisBinary, sleep, startCluster, type HeraldNode, type TestCluster } from './helpers.js';

/** A TCP proxy to Redis that holds back, by `lagMs`, what Redis sends on connections that issued SUBSCRIBE. */
class LaggingProxy {
  lagMs = 0;
  private readonly sockets = new Set<Socket>();
  private constructor(
    private readonly server: Server,
    readonly url: string,
  ) {}

  static async start(redisPort: number): Promise<LaggingProxy> {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const proxy = new LaggingProxy(server, `redis://127.0.0.1:${(server.address() as AddressInfo).port}`);
    server.on('connection', (client) => proxy.accept(client, redisPort));
    return proxy;
  }

  private accept(client: Socket, redisPort: number): void {
    const upstream = connect(redisPort, '127.0.0.1');
    let subscriber = false;
    for (const s of [client, upstream]) {
      this.sockets.add(s);
      s.on('error', () => {});
      s.on('close', () => {
        this.sockets.delete(s);
        client.destroy();
        upstream.destroy();
      });
    }
    client.on('data', (chunk: Buffer) => {
      if (/subscribe/i.test(chunk.toString('latin1'))) subscriber = true;
      upstream.write(chunk);
    });
    // Equal delays fire in order, so the stream is delayed, not reordered.
    upstream.on('data', (chunk: Buffer) => (subscriber && this.lagMs > 0 ? setTimeout(() => client.write(chunk), this.lagMs) : client.write(chunk)));
  }

  close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

describe('a node whose pub/sub connection runs behind its command connection', { skip: redisBinary.skip }, () => {
  let cluster: TestCluster;
  let proxy: LaggingProxy;
  let A: HeraldNode, B: HeraldNode;
  const subs: RawSubscriber[] = [];
  before(async () => {
    if (!redisBinary.available) throw new Error(redisBinary.failure);
    cluster = await startCluster(['A']);
    A = cluster.nodes.A!;
    proxy = await LaggingProxy.start(cluster.redis.port);
    B = await cluster.startNode('B', proxy.url);
  });
  after(async () => {
    for (const s of subs) s.close();
    await cluster?.stop();
    await proxy?.close();
  });

  it('sends no live event at or before the offset of its subscribe answer (no duplicate of the answer\'s events)', async () => {
    const channel = 'late';
    // B is already subscribed to the channel in Redis (first subscriber), so new subscribers join its live stream.
    const first = await RawSubscriber.on(B, channel);
    subs.push(first);
    for (let i = 1; i <= 3; i++) await publish(A, channel, i);
    await eventually('3 events on B', () => first.events.length === 3);
    const position = first.last!;

    proxy.lagMs = 300;
    const fourth = await publish(A, channel, 4);
    // Subscribed on B before B's pub/sub connection has passed event 4 on: B's history read has it.
    const resumed = new RawSubscriber(channel, position);
    const fresh = new RawSubscriber(channel);
    subs.push(resumed, fresh);
    await Promise.all([resumed.moveTo(B), fresh.moveTo(B)]);
    assert.deepEqual(resumed.answers.map((a) => [a.offset, a.events.map((e) => e.offset)]), [[4, [4]]], 'the resume answer carries event 4');
    assert.deepEqual(fresh.answers.map((a) => a.offset), [4], 'the plain subscribe answer is at offset 4');
    await eventually('event 4 live on the first subscriber', () => first.events.length === 4, 3000);
    await sleep(100);

    assert.equal(first.events[3]!.offset, fourth.offset);
    // Resumed from 3: event 4 once, in the answer, not again as a live push. Plain subscribe answered
    // at offset 4: no live push at or before it.
    assert.deepEqual({ resumed: resumed.events.map((e) => e.offset), fresh: fresh.events.map((e) => e.offset) }, { resumed: [4], fresh: [] });
  });
});
