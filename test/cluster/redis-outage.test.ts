/**
 * The cluster when Redis loses its data: restarted (killed, started again empty on the same port)
 * or flushed. While it is down every node refuses publishes with 503 `unavailable` and `/readyz`
 * says 503 (SPEC §5, §8 "Engines"); afterwards the nodes recover by themselves, and a resume from
 * a position of the lost history gets `recovered: false` and the new epoch (SPEC §1).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import WebSocket from 'ws';
import { HeraldClient, type HeraldClientError, type HeraldEvent, type SubscribedInfo } from '../../src/client/index.js';
import { TcpProxy } from '../client/proxy.js';
import { assertError, call } from '../server/helpers.js';
import { PRESENCE_TTL_S, REFRESH_MS, RawSubscriber, eventually, get, publish, redisBinary, sleep, startCluster, type HeraldNode, type TestCluster } from './helpers.js';

describe('the cluster when Redis loses its data', { skip: redisBinary.skip }, () => {
  let cluster: TestCluster;
  let A: HeraldNode, B: HeraldNode, C: HeraldNode;
  let all: HeraldNode[];
  const cleanup: (() => unknown)[] = [];
  before(async () => {
    if (!redisBinary.available) throw new Error(redisBinary.failure);
    cluster = await startCluster(['A', 'B', 'C']);
    ({ A, B, C } = cluster.nodes as Record<'A' | 'B' | 'C', HeraldNode>);
    all = [A, B, C];
  });
  after(async () => {
    for (const fn of cleanup.splice(0).reverse()) await fn();
    await cluster?.stop();
  });

  const presence = async (node: HeraldNode, channel: string): Promise<string[]> => {
    const a = await get(node, `/api/presence?channel=${channel}`);
    assert.equal(a.status, 200, a.text);
    return (a.json.clients as { client: string }[]).map((c) => c.client).sort();
  };

  it('Redis restarted empty: publishes fail with 503 unavailable and /readyz is 503 on every node meanwhile; then the nodes recover by themselves in a new epoch', async () => {
    const channel = 'outage';
    const pids = all.map((n) => n.child.proc.pid);
    // A subscriber that stays connected through the outage (B), one that will resume from its
    // position afterwards (A), and a HeraldClient whose connection is cut during the outage (C).
    const live = await RawSubscriber.on(B, channel);
    const resumer = await RawSubscriber.on(A, channel);
    const proxy = await TcpProxy.start(C.port);
    const c = new HeraldClient({ url: proxy.url, WebSocket, reconnect: { minDelay: 50, maxDelay: 300 }, timeout: 5000 });
    const got: HeraldEvent[] = [];
    const resumes: SubscribedInfo[] = [];
    const subErrors: HeraldClientError[] = [];
    const sub = c.subscribe(channel, { onEvent: (e) => got.push(e), onRecovered: (i) => resumes.push(i) });
    sub.on('error', (e) => subErrors.push(e));
    await c.connect();
    cleanup.push(() => live.close(), () => resumer.close(), () => c.close(), () => proxy.close());
    await eventually('subscribed', () => sub.state === 'subscribed');

    let old = { epoch: '', offset: 0 };
    for (let i = 1; i <= 5; i++) old = await publish(A, channel, i);
    await eventually('5 events everywhere', () => live.events.length === 5 && resumer.events.length === 5 && got.length === 5);
    resumer.close();
    for (const n of all) assert.equal((await get(n, '/readyz')).status, 200);

    await cluster.redis.kill();
    const down = await eventually('/readyz 503 on every node', async () => (await Promise.all(all.map((n) => get(n, '/readyz')))).every((a) => a.status === 503), 3000);
    assert.ok(down < 2000, `noticed after ${down} ms`);
    for (const n of all) {
      assertError(await get(n, '/readyz'), 503, 'unavailable');
      const started = Date.now();
      const answer = await call(n.url, 'POST', '/api/publish', { json: { channel, data: 'lost?' } });
      assertError(answer, 503, 'unavailable');
      assert.ok(Date.now() - started < 1000, `node ${n.name} answered in ${Date.now() - started} ms: not queued`);
    }
    // The HeraldClient's connection drops now: its resubscribe fails (unavailable) and is retried.
    proxy.cutAll();
    await eventually('a subscribe refused with unavailable', () => subErrors.some((e) => e.code === 'unavailable'), 5000);
    await sleep(300);

    await cluster.redis.start(); // same port, empty: nothing was saved
    const back = await eventually('/readyz 200 on every node', async () => (await Promise.all(all.map((n) => get(n, '/readyz')))).every((a) => a.status === 200), 10_000);
    assert.ok(back < 8000, `ready again after ${back} ms`);
    // Nobody restarted herald.
    assert.deepEqual(all.map((n) => [n.child.proc.pid, n.child.proc.exitCode, n.child.proc.signalCode]), pids.map((pid) => [pid, null, null]));

    const first = await publish(A, channel, 'after');
    assert.equal(first.offset, 1, 'history was lost: the channel starts again');
    assert.notEqual(first.epoch, old.epoch);
    for (const n of [B, C]) await publish(n, channel, `after on ${n.name}`);

    // The subscriber that stayed connected gets the new epoch from offset 1: its node subscribed again by itself.
    await eventually('the new events on the live subscriber', () => live.events.length === 8);
    assert.deepEqual(live.events.map((e) => [e.epoch, e.offset]), [...[1, 2, 3, 4, 5].map((o) => [old.epoch, o]), [first.epoch, 1], [first.epoch, 2], [first.epoch, 3]]);

    // A resume from the old position: recovered false, the new epoch and its retained events.
    await resumer.moveTo(A);
    const answer = resumer.answers.at(-1)!;
    assert.deepEqual({ epoch: answer.epoch, offset: answer.offset, recovered: answer.recovered }, { epoch: first.epoch, offset: 3, recovered: false });
    assert.deepEqual(answer.events.map((e) => e.data), ['after', 'after on B', 'after on C']);

    // The HeraldClient resumed by itself and was told its position was lost.
    await eventually('the HeraldClient resumed', () => resumes.length > 0 && got.length === 8, 10_000);
    assert.ok(resumes.every((i) => i.resumed && !i.recovered && i.epoch === first.epoch), JSON.stringify(resumes));
    assert.deepEqual(got.slice(5).map((e) => [e.epoch, e.offset]), [[first.epoch, 1], [first.epoch, 2], [first.epoch, 3]]);

    // Presence was rewritten by the nodes that own the entries (the restarted Redis had none).
    await eventually('presence back', async () => {
      const p = await presence(C, channel);
      return p.includes(live.clientId) && p.includes(resumer.clientId) && p.includes(c.clientId!);
    }, PRESENCE_TTL_S * 1000);
    live.close();
    resumer.close();
    c.close();
  });

  it('FLUSHALL: the next publish starts a new epoch, live subscribers follow it, and a resume from before gets recovered: false', async () => {
    const channel = 'flushed';
    const live = await RawSubscriber.on(B, channel);
    cleanup.push(() => live.close());
    let old = { epoch: '', offset: 0 };
    for (let i = 1; i <= 3; i++) old = await publish(A, channel, i);
    await eventually('3 events', () => live.events.length === 3);

    assert.equal(await cluster.redis.command('FLUSHALL'), '+OK');
    const first = await publish(C, channel, 'fresh');
    assert.equal(first.offset, 1);
    assert.notEqual(first.epoch, old.epoch);
    await eventually('the new epoch on the live subscriber', () => live.events.length === 4);
    assert.deepEqual([live.events[3]!.epoch, live.events[3]!.offset, live.events[3]!.data], [first.epoch, 1, 'fresh']);

    // Resuming from the old position, on any node, by any means: recovered false and the new epoch.
    const resumer = new RawSubscriber(channel, old);
    cleanup.push(() => resumer.close());
    await resumer.moveTo(A);
    assert.deepEqual(resumer.answers.map((a) => [a.epoch, a.offset, a.recovered, a.events.map((e) => e.data)]), [[first.epoch, 1, false, ['fresh']]]);

    const c = new HeraldClient({ url: C.url, WebSocket, reconnect: { minDelay: 5, maxDelay: 50 }, timeout: 5000 });
    cleanup.push(() => c.close());
    let info: SubscribedInfo | undefined;
    const got: HeraldEvent[] = [];
    c.subscribe(channel, { since: old, onEvent: (e) => got.push(e), onRecovered: (i) => (info = i) });
    await c.connect();
    await eventually('the HeraldClient subscribed', () => info !== undefined);
    assert.deepEqual({ ...info }, { channel, epoch: first.epoch, offset: 1, recovered: false, resumed: true });
    assert.deepEqual(got.map((e) => e.data), ['fresh']);

    const h = await get(B, `/api/history?channel=${channel}&since_epoch=${old.epoch}&since_offset=${old.offset}`);
    assert.deepEqual({ epoch: h.json.epoch, offset: h.json.offset, recovered: h.json.recovered, data: h.json.events.map((e: HeraldEvent) => e.data) }, { epoch: first.epoch, offset: 1, recovered: false, data: ['fresh'] });

    // The flush also emptied presence and the node registry: the nodes write them again at their next refresh.
    await eventually('presence and the channel list back', async () => {
      const p = await presence(A, channel);
      const listed = (await get(A, '/api/channels')).json.channels.find((x: { channel: string }) => x.channel === channel);
      return p.includes(live.clientId) && listed?.subscribers === 3;
    }, REFRESH_MS + 1500);
    for (const n of all) assert.equal((await get(n, '/readyz')).status, 200, 'a flush is not an outage');
  });
});
