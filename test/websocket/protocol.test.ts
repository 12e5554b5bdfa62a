// The WebSocket protocol (SPEC §2) over real sockets: every op's result and every error answer.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { HeraldError } from '../../src/protocol/index.js';
import { TestClient, startHarness, type Harness, type Msg } from './helpers.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

describe('WebSocket results', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness({ hub: { namespaces: { room: { joinLeave: true } } } });
  });
  after(() => h.stop());

  test('connect answers {client, version: 1, ping}', async () => {
    const c = await TestClient.open(h.url);
    const answer = await c.request('connect');
    assert.deepEqual(Object.keys(answer).sort(), ['id', 'result']);
    assert.equal(answer.id, 1);
    assert.equal(typeof answer.result.client, 'string');
    assert.ok(answer.result.client.length > 0);
    assert.deepEqual({ ...answer.result, client: 'x' }, { client: 'x', version: 1, ping: 25 });
    c.close();
  });

  test('subscribe answers {channel, epoch, offset, recovered, events}; live events follow as event pushes', async () => {
    const sub = await TestClient.connect(h.url);
    const pub = await TestClient.connect(h.url);
    await pub.request('publish', { channel: 'live', data: 'before' });
    const answer = await sub.request('subscribe', { channel: 'live' });
    const epoch = answer.result.epoch as string;
    assert.deepEqual(answer.result, { channel: 'live', epoch, offset: 1, recovered: true, events: [] });
    const published = await pub.request('publish', { channel: 'live', data: { n: 2 } });
    const push = await sub.next((m) => m.push === 'event');
    assert.deepEqual(Object.keys(push).sort(), ['event', 'push']);
    assert.deepEqual(push.event, {
      channel: 'live',
      offset: 2,
      epoch,
      id: published.result.id,
      timestamp: published.result.timestamp,
      data: { n: 2 },
      from: { client: pub.clientId },
    });
    sub.close();
    pub.close();
  });

  test('subscribe with since returns the missed events (recovered: true); an unknown epoch gives recovered: false and the retained events', async () => {
    const c = await TestClient.connect(h.url);
    const first = await c.request('publish', { channel: 'since', data: 1 });
    await c.request('publish', { channel: 'since', data: 2 });
    await c.request('publish', { channel: 'since', data: 3 });
    const epoch = first.result.epoch as string;
    const resumed = await c.request('subscribe', { channel: 'since', since: { epoch, offset: 1 } });
    assert.equal(resumed.result.recovered, true);
    assert.equal(resumed.result.offset, 3);
    assert.deepEqual(
      resumed.result.events.map((e: Msg) => [e.offset, e.data]),
      [
        [2, 2],
        [3, 3],
      ],
    );
    const other = await TestClient.connect(h.url);
    const lost = await other.request('subscribe', { channel: 'since', since: { epoch: 'other-epoch', offset: 2 } });
    assert.equal(lost.result.recovered, false);
    assert.deepEqual(
      lost.result.events.map((e: Msg) => e.offset),
      [1, 2, 3],
    );
    c.close();
    other.close();
  });

  test('publish answers {channel, epoch, offset, id, timestamp}', async () => {
    const c = await TestClient.connect(h.url);
    const before = Date.now();
    const answer = await c.request('publish', { channel: 'pub', data: null });
    const r = answer.result;
    assert.deepEqual(Object.keys(r).sort(), ['channel', 'epoch', 'id', 'offset', 'timestamp']);
    assert.equal(r.channel, 'pub');
    assert.equal(r.offset, 1);
    assert.equal(typeof r.epoch, 'string');
    assert.match(r.id, UUID);
    assert.ok(r.timestamp >= before && r.timestamp <= Date.now());
    assert.equal((await c.request('publish', { channel: 'pub', data: 'again' })).result.offset, 2);
    c.close();
  });

  test('history answers {epoch, offset, recovered, events}: the last `limit`, or the first `limit` after `since`', async () => {
    const c = await TestClient.connect(h.url);
    let epoch = '';
    for (let i = 1; i <= 5; i++) epoch = (await c.request('publish', { channel: 'hist', data: i })).result.epoch;
    const last = await c.request('history', { channel: 'hist', limit: 2 });
    assert.deepEqual(Object.keys(last.result).sort(), ['epoch', 'events', 'offset', 'recovered']);
    assert.equal(last.result.recovered, true);
    assert.equal(last.result.epoch, epoch);
    assert.equal(last.result.offset, 5);
    assert.deepEqual(
      last.result.events.map((e: Msg) => e.data),
      [4, 5],
    );
    const after1 = await c.request('history', { channel: 'hist', limit: 2, since: { epoch, offset: 1 } });
    assert.deepEqual(
      after1.result.events.map((e: Msg) => e.offset),
      [2, 3],
    );
    const stale = await c.request('history', { channel: 'hist', since: { epoch: 'other', offset: 1 } });
    assert.equal(stale.result.recovered, false);
    const all = await c.request('history', { channel: 'hist' });
    assert.equal(all.result.events.length, 5);
    c.close();
  });

  test('presence answers {clients} with the subscribed clients', async () => {
    const a = await TestClient.connect(h.url);
    const b = await TestClient.connect(h.url);
    await a.request('subscribe', { channel: 'who' });
    await b.request('subscribe', { channel: 'who' });
    const answer = await a.request('presence', { channel: 'who' });
    assert.deepEqual(
      answer.result.clients.map((c: Msg) => c.client).sort(),
      [a.clientId, b.clientId].sort(),
    );
    assert.deepEqual(Object.keys(answer.result), ['clients']);
    a.close();
    b.close();
  });

  test('unsubscribe answers {} (also when not subscribed) and stops the events', async () => {
    const c = await TestClient.connect(h.url);
    assert.deepEqual((await c.request('unsubscribe', { channel: 'never' })).result, {});
    await c.request('subscribe', { channel: 'unsub' });
    assert.deepEqual((await c.request('unsubscribe', { channel: 'unsub' })).result, {});
    await c.request('publish', { channel: 'unsub', data: 'after' });
    await c.request('ping'); // answers are ordered after any push of the publish
    assert.deepEqual(c.events('unsub'), []);
    c.close();
  });

  test('ping answers {}', async () => {
    const c = await TestClient.connect(h.url);
    assert.deepEqual(await c.request('ping'), { id: 2, result: {} });
    c.close();
  });

  test('join and leave pushes reach the other subscribers of a joinLeave namespace', async () => {
    const a = await TestClient.connect(h.url);
    await a.request('subscribe', { channel: 'room:1' });
    const b = await TestClient.connect(h.url);
    await b.request('subscribe', { channel: 'room:1' });
    assert.deepEqual(await a.next((m) => m.push === 'join'), { push: 'join', channel: 'room:1', client: b.clientId });
    b.close();
    assert.deepEqual(await a.next((m) => m.push === 'leave'), { push: 'leave', channel: 'room:1', client: b.clientId });
    a.close();
  });

  test('commands pipelined behind connect wait for it and are then answered', async () => {
    const c = await TestClient.open(h.url);
    c.send({ id: 1, op: 'connect' });
    c.send({ id: 2, op: 'subscribe', channel: 'piped' });
    c.send({ id: 3, op: 'ping' });
    const connected = await c.next((m) => m.id === 1);
    assert.equal(connected.result.version, 1);
    assert.equal((await c.next((m) => m.id === 2)).result.channel, 'piped');
    assert.deepEqual((await c.next((m) => m.id === 3)).result, {});
    assert.equal(c.messages[0]!.id, 1, 'connect is answered first');
    await h.hub.publish('piped', 'x');
    assert.equal((await c.next((m) => m.push === 'event')).event.data, 'x');
    c.close();
  });
});

describe('WebSocket error answers', () => {
  let h: Harness;
  let watcher: TestClient;
  let releaseGate: () => void = () => {};
  const gate = new Promise<void>((resolve) => (releaseGate = resolve));
  before(async () => {
    h = await startHarness({
      hub: {
        namespaces: { ro: { anonymousPublish: false } },
        limits: { maxEventBytes: 1024 },
        hooks: {
          authenticate(token) {
            if (token === 'bad') throw new HeraldError('unauthorized', 'token refused');
            if (token === 'flaky') throw new HeraldError('unavailable', 'key server unreachable');
            return token ? { user: token } : {};
          },
          async authorize(_action, _client, channel) {
            if (channel === 'gated') await gate;
            return channel !== 'denied';
          },
          beforePublish(channel, data) {
            if (channel === 'boom') throw new Error('secret internal detail');
            return data;
          },
        },
      },
    });
    // A bystander that must keep receiving while other clients misbehave.
    watcher = await TestClient.connect(h.url);
    await watcher.request('subscribe', { channel: 'news' });
  });
  after(() => h.stop());

  /** Publishes on "news" and checks the watcher gets it. */
  async function watcherStillReceives(tag: string): Promise<void> {
    await h.hub.publish('news', tag);
    const got = await watcher.next((m) => m.push === 'event' && m.event.data === tag);
    assert.equal(got.event.channel, 'news');
  }

  test('frames that are not JSON, not an object, or lack an integer id get bad_request without id; the connection stays', async () => {
    const c = await TestClient.connect(h.url);
    const bad = ['{nope', '[1,2]', '"text"', '42', 'null', '{"op":"ping"}', '{"id":"1","op":"ping"}', '{"id":1.5,"op":"ping"}'];
    for (const frame of bad) {
      c.send(frame);
      const answer = await c.next((m) => m.error !== undefined);
      assert.deepEqual(Object.keys(answer), ['error'], `frame ${frame}`);
      assert.equal(answer.error.code, 'bad_request', `frame ${frame}`);
      assert.equal(typeof answer.error.message, 'string');
    }
    c.ws.send(Buffer.from('{"id":9,"op":"ping"}'), { binary: true });
    const binary = await c.next((m) => m.error !== undefined);
    assert.deepEqual(Object.keys(binary), ['error']);
    assert.equal(binary.error.code, 'bad_request');
    assert.ok(c.isOpen);
    assert.deepEqual((await c.request('ping')).result, {});
    await watcherStillReceives('after-malformed');
    c.close();
  });

  test('an unknown op, a bad channel, a second subscribe or a second connect get bad_request with the id', async () => {
    const c = await TestClient.connect(h.url);
    const cases: [string, Msg][] = [
      ['nope', {}],
      ['subscribe', { channel: '' }],
      ['subscribe', { channel: 'a\u0001b' }],
      ['publish', { channel: 'x' }], // no data
      ['connect', {}],
    ];
    for (const [op, fields] of cases) {
      const answer = await c.request(op, fields);
      assert.equal(answer.error?.code, 'bad_request', `${op} ${JSON.stringify(fields)}`);
      assert.deepEqual(Object.keys(answer).sort(), ['error', 'id']);
    }
    await c.request('subscribe', { channel: 'twice' });
    const again = await c.request('subscribe', { channel: 'twice' });
    assert.equal(again.error.code, 'bad_request');
    assert.ok(c.isOpen);
    await watcherStillReceives('after-bad-ops');
    c.close();
  });

  test('an id equal to one still awaiting its answer gets bad_request with that id; the first still gets its answer', async () => {
    const c = await TestClient.connect(h.url);
    c.send({ id: 50, op: 'subscribe', channel: 'gated' }); // held by the authorize hook
    c.send({ id: 50, op: 'ping' });
    const refused = await c.next((m) => m.id === 50);
    assert.equal(refused.error.code, 'bad_request');
    await watcherStillReceives('while-gated');
    releaseGate();
    const answer = await c.next((m) => m.id === 50);
    assert.equal(answer.result.channel, 'gated');
    // Answered: the id is free again.
    c.send({ id: 50, op: 'ping' });
    assert.deepEqual(await c.next((m) => m.id === 50), { id: 50, result: {} });
    c.close();
  });

  test('forbidden: publishing where anonymous clients may not, or where the authorize hook refuses', async () => {
    const c = await TestClient.connect(h.url);
    const ro = await c.request('publish', { channel: 'ro:feed', data: 1 });
    assert.equal(ro.error.code, 'forbidden');
    assert.equal(typeof ro.error.message, 'string');
    assert.equal((await c.request('subscribe', { channel: 'ro:feed' })).result.channel, 'ro:feed', 'subscribing stays allowed');
    assert.equal((await c.request('subscribe', { channel: 'denied' })).error.code, 'forbidden');
    assert.equal((await c.request('history', { channel: 'denied' })).error.code, 'forbidden');
    assert.equal((await c.request('presence', { channel: 'denied' })).error.code, 'forbidden');
    c.close();
  });

  test('limit_exceeded on the 129th subscription; the connection and the other subscriptions stay', async () => {
    const c = await TestClient.connect(h.url);
    const ids: number[] = [];
    for (let i = 0; i < 128; i++) ids.push(c.fire('subscribe', { channel: `many:${i}` }));
    for (const id of ids) assert.ok((await c.next((m) => m.id === id)).result, `subscription ${id}`);
    const over = await c.request('subscribe', { channel: 'many:128' });
    assert.equal(over.error.code, 'limit_exceeded');
    await h.hub.publish('many:5', 'still subscribed');
    assert.equal((await c.next((m) => m.push === 'event')).event.channel, 'many:5');
    await watcherStillReceives('after-limit');
    c.close();
  });

  test('too_large for a publish over the hub event size limit', async () => {
    const c = await TestClient.connect(h.url);
    const answer = await c.request('publish', { channel: 'big', data: 'x'.repeat(2000) });
    assert.equal(answer.error.code, 'too_large');
    assert.ok(c.isOpen);
    c.close();
  });

  test('an unexpected failure answers internal with a generic message and no stack', async () => {
    const c = await TestClient.connect(h.url);
    const answer = await c.request('publish', { channel: 'boom', data: 1 });
    assert.deepEqual(answer, { id: 2, error: { code: 'internal', message: 'Internal error.' } });
    assert.ok(h.logs.some(([level, msg]) => level === 'error' && msg.includes('command failed')));
    c.close();
  });

  test('a refused token is answered unauthorized, then the connection is closed 4001', async () => {
    const c = await TestClient.open(h.url);
    const answer = await c.request('connect', { token: 'bad' });
    assert.deepEqual(answer, { id: 1, error: { code: 'unauthorized', message: 'token refused' } });
    const { code } = await c.waitClosed();
    assert.equal(code, 4001);
    const good = await TestClient.open(h.url);
    assert.equal((await good.request('connect', { token: 'alice' })).result.version, 1);
    good.close();
  });

  test('a connect that fails for another reason (key server unreachable) is answered and may be retried on the same connection', async () => {
    const c = await TestClient.open(h.url);
    assert.deepEqual(await c.request('connect', { token: 'flaky' }), { id: 1, error: { code: 'unavailable', message: 'key server unreachable' } });
    assert.ok(c.isOpen);
    const retry = await c.request('connect', { token: 'alice' });
    assert.equal(retry.result.version, 1);
    assert.deepEqual((await c.request('ping')).result, {});
    c.close();
  });
});
