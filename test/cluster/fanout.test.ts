/**
 * Three `herald serve --redis` processes on one redis-server act as one server (issue #6, SPEC §1
 * "Guarantee", §5 `/api/channels`): a publish on one node reaches subscribers on the others in
 * order, a client that moves between nodes resumes without loss, and the channel list is
 * cluster-wide.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import WebSocket from 'ws';
import { HeraldClient, type HeraldEvent, type SubscribedInfo } from '../../src/client/index.js';
import { TcpProxy } from '../client/proxy.js';
import { SseClient } from '../transports/helpers.js';
import { REFRESH_MS, RawSubscriber, assertContiguous, eventually, get, publish, publisher, redisBinary, startCluster, type HeraldNode, type TestCluster } from './helpers.js';

describe('several herald nodes on one Redis', { skip: redisBinary.skip }, () => {
  let cluster: TestCluster;
  let A: HeraldNode, B: HeraldNode, C: HeraldNode;
  const cleanup: (() => unknown)[] = [];
  before(async () => {
    if (!redisBinary.available) throw new Error(redisBinary.failure);
    cluster = await startCluster(['A', 'B', 'C']);
    ({ A, B, C } = cluster.nodes as Record<'A' | 'B' | 'C', HeraldNode>);
  });
  after(async () => {
    for (const fn of cleanup.splice(0).reverse()) await fn();
    await cluster?.stop();
  });

  const client = (url: string): HeraldClient => {
    const c = new HeraldClient({ url, WebSocket, reconnect: { minDelay: 5, maxDelay: 50 }, timeout: 5000 });
    cleanup.push(() => c.close());
    return c;
  };

  it('a publish on node A reaches WebSocket subscribers on B and C, and an SSE subscriber on C, in offset order', async () => {
    const channel = 'fanout';
    const onB = await RawSubscriber.on(B, channel);
    const onC = await RawSubscriber.on(C, channel);
    cleanup.push(() => onB.close(), () => onC.close());
    const sse = new SseClient(C.url, `/sse?channel=${channel}`);
    cleanup.push(() => sse.abort());
    await eventually('the SSE ready message', () => sse.of('ready').length === 1);

    // Four publishers at once on node A: the order is the one Redis assigned, not the test's.
    const N = 120;
    const acked: { offset: number; epoch: string; seq: number }[] = [];
    let seq = 0;
    await Promise.all(
      [0, 1, 2, 3].map(async () => {
        while (seq < N) {
          const s = ++seq;
          acked.push({ ...(await publish(A, channel, { s })), seq: s });
        }
      }),
    );
    acked.sort((a, b) => a.offset - b.offset);
    const epoch = acked[0]!.epoch;
    assert.deepEqual(acked.map((a) => a.offset), Array.from({ length: N }, (_, i) => i + 1), 'offsets 1..N, +1 per publish');

    const sseEvents = (): HeraldEvent[] => sse.of('event').map((m) => JSON.parse(m.data) as HeraldEvent);
    await eventually('every event on B, C and the SSE stream', () => onB.events.length >= N && onC.events.length >= N && sseEvents().length >= N);
    for (const [who, events] of [['ws on B', onB.events], ['ws on C', onC.events], ['sse on C', sseEvents()]] as const) {
      assertContiguous(events, epoch, 1, N, who);
      // Each offset carries the data its publish was acknowledged with.
      assert.deepEqual(events.map((e) => (e.data as { s: number }).s), acked.map((a) => a.seq), `${who}: data by offset`);
    }
    // The same event (id, timestamp…) everywhere, not a copy rebuilt per node.
    assert.deepEqual(onC.events, onB.events);
    assert.deepEqual(sseEvents(), onB.events);
    onB.close();
    onC.close();
    sse.abort();
  });

  it('a raw WebSocket client moved from A to B, then to C, mid-stream resumes with `since` and loses nothing', async () => {
    const channel = 'move-raw';
    const sub = await RawSubscriber.on(A, channel);
    cleanup.push(() => sub.close());
    const pub = publisher(() => C, channel, 'C');
    try {
      await eventually('30 events on A', () => sub.events.length >= 30);
      await sub.moveTo(B); // the connection to A is cut while events keep coming
      await eventually('30 more events on B', () => sub.events.length >= 60);
      await sub.moveTo(C);
      await eventually('30 more events on C', () => sub.events.length >= 90);
    } finally {
      await pub.stop();
    }
    const last = pub.acked.at(-1)!;
    assert.equal(pub.failures, 0);
    await eventually('the last event', () => sub.last?.offset === last.offset);
    assertContiguous(sub.events, last.epoch, 1, last.offset, 'moved subscriber');
    assert.deepEqual(sub.answers.map((a) => a.recovered), [true, true, true]);
    // The resumed answers did carry missed events: the move happened mid-stream.
    assert.ok(sub.answers.slice(1).every((a) => a.epoch === last.epoch));
    sub.close();
  });

  it('a HeraldClient behind a proxy that switches from node A to node B resumes by itself with no loss', async () => {
    const channel = 'move-client';
    const proxy = await TcpProxy.start(A.port);
    cleanup.push(() => proxy.close());
    const c = client(proxy.url);
    const got: HeraldEvent[] = [];
    const resumes: SubscribedInfo[] = [];
    const sub = c.subscribe(channel, { onEvent: (e) => got.push(e), onRecovered: (info) => resumes.push(info) });
    await c.connect();
    const firstClient = c.clientId;
    await eventually('subscribed on A', () => sub.state === 'subscribed');
    const pub = publisher(() => C, channel, 'C');
    try {
      await eventually('30 events through A', () => got.length >= 30);
      proxy.targetPort = B.port;
      assert.equal(proxy.cutAll(), 1);
      await eventually('30 more events through B', () => got.length >= 60);
    } finally {
      await pub.stop();
    }
    const last = pub.acked.at(-1)!;
    await eventually('the last event', () => got.at(-1)?.offset === last.offset);
    assertContiguous(got, last.epoch, 1, last.offset, 'HeraldClient');
    assert.equal(resumes.length, 1);
    assert.deepEqual({ recovered: resumes[0]!.recovered, resumed: resumes[0]!.resumed, epoch: resumes[0]!.epoch }, { recovered: true, resumed: true, epoch: last.epoch });
    assert.notEqual(c.clientId, firstClient);
    // The new connection is on node B, as the presence list shows from any node.
    const present = async (): Promise<string[]> => (await get(A, `/api/presence?channel=${channel}`)).json.clients.map((x: { client: string }) => x.client);
    await eventually('only the resumed connection in presence', async () => JSON.stringify(await present()) === JSON.stringify([c.clientId]));
    c.close();
  });

  it('a new HeraldClient on node B, given the position an old one reached on node A, continues exactly where it stopped', async () => {
    const channel = 'move-saved';
    const first = client(A.url);
    const got: HeraldEvent[] = [];
    const sub1 = first.subscribe(channel, { onEvent: (e) => got.push(e) });
    await first.connect();
    await eventually('subscribed', () => sub1.state === 'subscribed');
    const pub = publisher(() => C, channel, 'C');
    let info: SubscribedInfo | undefined;
    try {
      await eventually('30 events on A', () => got.length >= 30);
      first.close();
      const saved = sub1.position!;
      assert.equal(saved.offset, got.at(-1)!.offset);
      const second = client(B.url);
      second.subscribe(channel, { since: saved, onEvent: (e) => got.push(e), onRecovered: (i) => (info = i) });
      await second.connect();
      await eventually('30 more events on B', () => got.length >= 60);
    } finally {
      await pub.stop();
    }
    const last = pub.acked.at(-1)!;
    await eventually('the last event', () => got.at(-1)?.offset === last.offset);
    assertContiguous(got, last.epoch, 1, last.offset, 'saved position');
    assert.equal(info?.recovered, true);
  });

  it('/api/channels is cluster-wide: a channel subscribed only on node C is listed by A with its subscriber count within the refresh delay', async () => {
    const channel = 'only-on-c';
    const entry = async (node: HeraldNode): Promise<{ channel: string; subscribers: number; epoch: string; offset: number } | undefined> => {
      const a = await get(node, '/api/channels');
      assert.equal(a.status, 200, a.text);
      return (a.json.channels as { channel: string; subscribers: number; epoch: string; offset: number }[]).find((c) => c.channel === channel);
    };
    assert.equal(await entry(A), undefined);
    const subs = await Promise.all([0, 1, 2].map(() => RawSubscriber.on(C, channel)));
    cleanup.push(() => subs.forEach((s) => s.close()));
    const listed = await eventually('A lists 3 subscribers', async () => (await entry(A))?.subscribers === 3, 5000);
    // Other nodes' counts are at most presenceTtl / 3 old (docs/scaling.md), plus polling slack.
    assert.ok(listed <= REFRESH_MS + 750, `listed after ${listed} ms`);
    // The position is the channel's, read live.
    const p1 = await publish(B, channel, 1);
    const p2 = await publish(B, channel, 2);
    assert.deepEqual(await entry(A), { channel, subscribers: 3, epoch: p1.epoch, offset: p2.offset });
    assert.deepEqual(await entry(B), { channel, subscribers: 3, epoch: p1.epoch, offset: 2 });

    // Subscribers on several nodes add up (A's own count is live).
    const onA = await RawSubscriber.on(A, channel);
    assert.equal((await entry(A))?.subscribers, 4);
    await eventually('B lists 4', async () => (await entry(B))?.subscribers === 4, REFRESH_MS + 1000);

    // Fewer on C: seen after the next refresh; none anywhere: gone from every list.
    subs[0]!.close();
    await eventually('A lists 3 again', async () => (await entry(A))?.subscribers === 3, REFRESH_MS + 1000);
    subs[1]!.close();
    subs[2]!.close();
    onA.close();
    await eventually('gone from the lists of A, B and C', async () => (await entry(A)) === undefined && (await entry(B)) === undefined && (await entry(C)) === undefined, REFRESH_MS + 1000);
  });
});
