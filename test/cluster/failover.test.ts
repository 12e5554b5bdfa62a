/**
 * A node crashes (SIGKILL) while events are being published: its clients reconnect to another
 * node and resume with every offset exactly once, in order (SPEC §1 "Guarantee"), and its
 * presence entries and channel counts vanish within the presence TTL (SPEC §8 "Engines").
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import WebSocket from 'ws';
import { HeraldClient, type HeraldEvent, type SubscribedInfo } from '../../src/client/index.js';
import { TcpProxy } from '../client/proxy.js';
import { PRESENCE_TTL_S, RawSubscriber, assertContiguous, eventually, get, publisher, redisBinary, startCluster, type HeraldNode, type TestCluster } from './helpers.js';

describe('a herald node killed with SIGKILL', { skip: redisBinary.skip }, () => {
  let cluster: TestCluster;
  let A: HeraldNode, B: HeraldNode;
  const cleanup: (() => unknown)[] = [];
  before(async () => {
    if (!redisBinary.available) throw new Error(redisBinary.failure);
    cluster = await startCluster(['A', 'B']);
    ({ A, B } = cluster.nodes as Record<'A' | 'B', HeraldNode>);
  });
  after(async () => {
    for (const fn of cleanup.splice(0).reverse()) await fn();
    await cluster?.stop();
  });

  it("its clients resume on node B with zero loss, and its presence entries and counts leave B's lists within the presence TTL", async () => {
    const channel = 'failover';
    const presence = async (): Promise<string[]> => {
      const a = await get(B, `/api/presence?channel=${channel}`);
      assert.equal(a.status, 200, a.text);
      return (a.json.clients as { client: string }[]).map((c) => c.client).sort();
    };
    const count = async (): Promise<number | undefined> => (await get(B, '/api/channels')).json.channels.find((c: { channel: string }) => c.channel === channel)?.subscribers;

    // On A: two raw WebSocket subscribers and a HeraldClient (through a proxy, so it can be sent to B).
    const raw = [await RawSubscriber.on(A, channel), await RawSubscriber.on(A, channel)];
    const proxy = await TcpProxy.start(A.port);
    const c = new HeraldClient({ url: proxy.url, WebSocket, reconnect: { minDelay: 20, maxDelay: 200 }, timeout: 5000 });
    const got: HeraldEvent[] = [];
    const resumes: SubscribedInfo[] = [];
    const sub = c.subscribe(channel, { onEvent: (e) => got.push(e), onRecovered: (i) => resumes.push(i) });
    await c.connect();
    // On B: a subscriber that stays where it is.
    const control = await RawSubscriber.on(B, channel);
    cleanup.push(() => proxy.close(), () => c.close(), () => [...raw, control].forEach((s) => s.close()));
    await eventually('subscribed', () => sub.state === 'subscribed');
    const onA = [raw[0]!.clientId, raw[1]!.clientId, c.clientId!].sort();
    await eventually("A's clients in B's presence list", async () => {
      const p = await presence();
      return p.length === 4 && onA.every((id) => p.includes(id));
    });
    await eventually('B counts the 4 subscribers of both nodes', async () => (await count()) === 4);

    // Publishes go to B continuously (and to A until it dies: those fail from then on).
    const pubB = publisher(() => B, channel, 'B');
    const pubA = publisher(() => A, channel, 'A');
    let killedAt = 0;
    try {
      await eventually('30 events on every subscriber of A', () => raw.every((s) => s.events.length >= 30) && got.length >= 30);
      proxy.targetPort = B.port;
      await cluster.crash(A);
      killedAt = Date.now();
      // The raw clients see their connection drop, then reconnect to B themselves.
      for (const s of raw) assert.equal(await s.closed, 1006);
      await Promise.all(raw.map((s) => s.moveTo(B)));
      await eventually('30 more events on every moved subscriber', () => raw.every((s) => s.events.length >= 60) && got.length >= 60);
    } finally {
      await pubA.stop();
      await pubB.stop();
    }
    assert.ok(pubA.failures > 0, 'publishes on A failed once it was dead');
    assert.equal(pubB.failures, 0);

    // Every subscriber, moved or not, has every offset once, in order; each acknowledged publish is there.
    const h = await get(B, `/api/history?channel=${channel}&limit=0`);
    const { epoch, offset: final } = h.json as { epoch: string; offset: number };
    await eventually('the last event everywhere', () => [...raw, control].every((s) => s.last?.offset === final) && got.at(-1)?.offset === final);
    for (const [who, events] of [['raw 1', raw[0]!.events], ['raw 2', raw[1]!.events], ['HeraldClient', got], ['control on B', control.events]] as const) {
      assertContiguous(events, epoch, 1, final, who);
      const byOffset = new Map(events.map((e) => [e.offset, e.data as { p: string; seq: number }]));
      for (const a of pubB.acked) assert.deepEqual(byOffset.get(a.offset), { p: 'B', seq: a.seq }, `${who}: B's publish at offset ${a.offset}`);
      for (const a of pubA.acked) assert.deepEqual(byOffset.get(a.offset), { p: 'A', seq: a.seq }, `${who}: A's publish at offset ${a.offset}`);
    }
    assert.deepEqual(resumes.map((i) => [i.resumed, i.recovered]), [[true, true]]);
    for (const s of raw) assert.deepEqual(s.answers.map((a) => a.recovered), [true, true]);

    // A's entries are not removed by anyone: they expire, within the TTL of their last refresh.
    const gone = await eventually("A's presence entries gone", async () => !(await presence()).some((id) => onA.includes(id)), PRESENCE_TTL_S * 1000 + 3000);
    const sinceKill = Date.now() - killedAt;
    assert.ok(sinceKill <= PRESENCE_TTL_S * 1000 + 1500, `A's entries vanished ${sinceKill} ms after the kill (waited ${gone} ms)`);
    const nowOnB = [raw[0]!.clientId, raw[1]!.clientId, c.clientId!, control.clientId].sort();
    assert.deepEqual(await presence(), nowOnB, 'the moved connections and the control subscriber, nothing else');
    // B's count: its own 4 subscribers (the 3 that moved and the control), A's stale count gone with A's registry entry.
    await eventually('B counts only its own subscribers', async () => (await count()) === 4, 500);
  });
});
