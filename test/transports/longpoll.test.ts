import { after, afterEach, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { decodeCursor, encodeCursor, type HeraldEvent } from '../../src/protocol/index.js';
import { MemoryEngine } from '../../src/engines/memory.js';
import { LongPollTransport } from '../../src/transports/longpoll.js';
import { getJson, http, range, startHarness, waitFor, type Harness } from './helpers.js';

interface PollAnswer {
  events: HeraldEvent[];
  cursor: string;
  recovered: boolean;
}

function offsets(cursor: string): Record<string, number> {
  const c = decodeCursor(cursor);
  assert.ok(c, `not a cursor: ${cursor}`);
  return Object.fromEntries([...c].map(([ch, p]) => [ch, p.offset]));
}

describe('long-poll', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness({ hub: { namespaces: { '': { historySize: 2000 } } } });
  });
  after(async () => {
    await h.close();
    assert.deepEqual(h.errors, []);
  });
  afterEach(() => waitFor(() => h.poll.size === 0, 5000, 'polls finished'));

  it('without a cursor waits for the next event and answers it with a cursor and recovered:true', async () => {
    await h.hub.publish('w', 'old');
    const pending = getJson<PollAnswer>(h.base, '/poll?channel=w&channel=w2&timeout=10');
    await waitFor(() => h.poll.waitingOn('w') === 1 && h.poll.waitingOn('w2') === 1, 5000, 'poll waiting');
    await h.hub.publish('w', 'new');
    const { status, headers, json } = await pending;
    assert.equal(status, 200);
    assert.equal(headers['content-type'], 'application/json; charset=utf-8');
    assert.equal(headers['cache-control'], 'no-store');
    assert.deepEqual(json.events.map((e) => e.data), ['new']);
    assert.equal(json.recovered, true);
    assert.deepEqual(offsets(json.cursor), { w: 2, w2: 0 });
    await waitFor(() => h.poll.size === 0 && h.poll.waitingOn('w') === 0 && h.poll.waitingOn('w2') === 0, 5000, 'poll gone from its relays');
  });

  it('answers empty events at the timeout, with a cursor that continues without a gap', async () => {
    await h.hub.publish('t', 1);
    const started = Date.now();
    const first = await getJson<PollAnswer>(h.base, '/poll?channel=t&timeout=1');
    assert.ok(Date.now() - started >= 950, `answered after ${Date.now() - started} ms`);
    assert.deepEqual(first.json.events, []);
    assert.equal(first.json.recovered, true);
    assert.deepEqual(offsets(first.json.cursor), { t: 1 });
    await h.hub.publish('t', 2);
    const next = await getJson<PollAnswer>(h.base, `/poll?channel=t&timeout=1&cursor=${first.json.cursor}`);
    assert.deepEqual(next.json.events.map((e) => e.data), [2]);
  });

  it('answers at once with the missed events, batched, in order per channel', async () => {
    const epoch = (await h.hub.history('b1', { limit: 0 })).epoch;
    const cursor = encodeCursor(new Map([['b1', { epoch, offset: 0 }], ['b2', { epoch, offset: 0 }]]));
    for (let i = 1; i <= 3; i++) {
      await h.hub.publish('b1', i);
      await h.hub.publish('b2', i);
    }
    const { json } = await getJson<PollAnswer>(h.base, `/poll?channel=b1&channel=b2&cursor=${cursor}`);
    assert.equal(json.events.length, 6);
    assert.deepEqual(json.events.filter((e) => e.channel === 'b1').map((e) => e.offset), [1, 2, 3]);
    assert.deepEqual(json.events.filter((e) => e.channel === 'b2').map((e) => e.offset), [1, 2, 3]);
    assert.equal(json.recovered, true);
    assert.deepEqual(offsets(json.cursor), { b1: 3, b2: 3 });
  });

  it('batches the events published in the same tick while it waits into one answer', async () => {
    const pending = getJson<PollAnswer>(h.base, '/poll?channel=tick');
    await waitFor(() => h.poll.waitingOn('tick') === 1, 5000, 'poll waiting');
    await Promise.all(range(1, 5).map((n) => h.hub.publish('tick', n)));
    const { json } = await pending;
    assert.deepEqual(json.events.map((e) => e.data), [1, 2, 3, 4, 5]);
  });

  it('answers at most 1,000 events; the cursor picks up the rest', async () => {
    const epoch = (await h.hub.history('cap', { limit: 0 })).epoch;
    for (let i = 1; i <= 1200; i++) await h.hub.publish('cap', i);
    const first = await getJson<PollAnswer>(h.base, `/poll?channel=cap&cursor=${encodeCursor(new Map([['cap', { epoch, offset: 0 }]]))}`);
    assert.equal(first.json.events.length, 1000);
    assert.deepEqual(offsets(first.json.cursor), { cap: 1000 });
    const second = await getJson<PollAnswer>(h.base, `/poll?channel=cap&cursor=${first.json.cursor}`);
    assert.deepEqual(second.json.events.map((e) => e.data), range(1001, 1200));
  });

  it('says recovered:false for a position outside history or a channel missing from the cursor', async () => {
    await h.hub.publish('r1', 'a');
    await h.hub.publish('r2', 'b');
    const foreign = encodeCursor(new Map([['r1', { epoch: 'other', offset: 5 }]]));
    const { json } = await getJson<PollAnswer>(h.base, `/poll?channel=r1&channel=r2&cursor=${foreign}&timeout=1`);
    assert.equal(json.recovered, false);
    assert.deepEqual(json.events.map((e) => e.data), ['a']); // r1's retained event; r2 from now
    assert.deepEqual(offsets(json.cursor), { r1: 1, r2: 1 });
  });

  it('refuses bad parameters with 400 bad_request, too many channels with 429, and keeps serving', async () => {
    const cases: [string, number, string | undefined][] = [
      ['/poll', 400, 'bad_request'],
      ['/poll?channel=a&timeout=0', 400, 'bad_request'],
      ['/poll?channel=a&timeout=111', 400, 'bad_request'],
      ['/poll?channel=a&timeout=1.5', 400, 'bad_request'],
      ['/poll?channel=a&timeout=-1', 400, 'bad_request'],
      ['/poll?channel=a&timeout=abc', 400, 'bad_request'],
      ['/poll?channel=a&timeout=', 400, 'bad_request'],
      ['/poll?channel=a&timeout=1e1', 400, 'bad_request'],
      ['/poll?channel=a&cursor=garbage', 400, 'bad_request'],
      [`/poll?channel=a&cursor=${Buffer.from('[1,[["a","e",-1]]]').toString('base64url')}`, 400, 'bad_request'],
      [`/poll?channel=a&cursor=${Buffer.from('{"x":1}').toString('base64url')}`, 400, 'bad_request'],
      [`/poll?channel=${'x'.repeat(1025)}`, 400, 'bad_request'],
      ['/poll?channel=a%01', 400, 'bad_request'],
      [`/poll?${range(1, 129).map((i) => `channel=c${i}`).join('&')}`, 429, 'limit_exceeded'],
      [`/poll?channel=a&junk=${'j'.repeat(100_000)}`, 431, undefined],
    ];
    for (const [path, status, code] of cases) {
      const answer = await http(h.base, path);
      assert.equal(answer.status, status, path.slice(0, 80));
      if (code) assert.equal(JSON.parse(answer.body).error.code, code, path.slice(0, 80));
    }
    assert.equal((await http(h.base, '/poll?channel=a', { method: 'DELETE' })).status, 405);
    // The largest timeout is accepted (answered at once here, thanks to a missed event).
    await h.hub.publish('ok', 1);
    const epoch = (await h.hub.history('ok', { limit: 0 })).epoch;
    const ok = await getJson<PollAnswer>(h.base, `/poll?channel=ok&timeout=110&cursor=${encodeCursor(new Map([['ok', { epoch, offset: 0 }]]))}`);
    assert.deepEqual(ok.json.events.map((e) => e.data), [1]);
  });

  it('forgets a client that leaves mid-poll', async () => {
    const controller = new AbortController();
    const pending = http(h.base, '/poll?channel=leave&channel=leave2', { signal: controller.signal }).catch(() => undefined);
    await waitFor(() => h.poll.waitingOn('leave') === 1 && h.poll.waitingOn('leave2') === 1, 5000, 'poll waiting');
    controller.abort();
    await pending;
    await waitFor(() => h.poll.size === 0 && h.poll.waitingOn('leave') === 0 && h.poll.waitingOn('leave2') === 0, 5000, 'cleanup');
  });

  it('close() answers pending polls at once', async () => {
    const other = await startHarness();
    const pending = getJson<PollAnswer>(other.base, '/poll?channel=x&timeout=100');
    await waitFor(() => other.poll.waitingOn('x') === 1, 5000, 'poll waiting');
    await other.poll.close();
    const { status, json } = await pending;
    assert.equal(status, 200);
    assert.deepEqual(json.events, []);
    assert.equal((await http(other.base, '/poll?channel=x')).status, 503);
    await other.close();
  });

  it('delivers 1,000 events exactly once and in order across aborted and lost polls', async () => {
    const seen: number[] = [];
    const epoch = (await h.hub.history('stream', { limit: 0 })).epoch;
    let cursor = encodeCursor(new Map([['stream', { epoch, offset: 0 }]]));
    let release: () => void = () => {};
    const gate = new Promise<void>((r) => (release = r));
    const publishing = (async () => {
      for (let n = 1; n <= 1000; n++) {
        if (n === 401) await gate;
        await h.hub.publish('stream', n);
        if (n % 25 === 0) await new Promise((r) => setImmediate(r));
      }
    })();
    const poll = (signal?: AbortSignal) => http(h.base, `/poll?channel=stream&channel=quiet&timeout=5&cursor=${cursor}`, { signal });
    let aborted = false;
    let lost = false;
    while (seen.length < 1000) {
      if (seen.length === 400 && !aborted) {
        // Publishing is held: this poll waits server-side; the client gives up on it.
        aborted = true;
        const controller = new AbortController();
        const request = poll(controller.signal).catch(() => undefined);
        await waitFor(() => h.poll.size === 1, 5000, 'poll waiting');
        controller.abort();
        await request;
        await waitFor(() => h.poll.size === 0 && h.poll.waitingOn('stream') === 0, 5000, 'aborted poll cleaned up');
        release();
        continue;
      }
      const answer = JSON.parse((await poll()).body) as PollAnswer;
      if (aborted && !lost && answer.events.length > 0) {
        // The answer is lost on the way: the client keeps its old cursor and gets the same events again.
        lost = true;
        continue;
      }
      for (const e of answer.events) if (e.channel === 'stream') seen.push(e.data as number);
      cursor = answer.cursor;
    }
    await publishing;
    assert.ok(aborted && lost);
    assert.deepEqual(seen, range(1, 1000));
  });
});

describe('long-poll relays (one hub subscription per channel, shared by its waiting polls)', () => {
  it('50 waiting polls share one hub subscription, stay out of presence, and all get the event', async () => {
    const h = await startHarness();
    try {
      const polls = range(1, 50).map(() => getJson<PollAnswer>(h.base, '/poll?channel=shared&timeout=10'));
      await waitFor(() => h.poll.waitingOn('shared') === 50, 5000, '50 polls waiting');
      assert.equal(h.hub.stats().subscriptions, 1);
      assert.equal(h.poll.relayCount, 1);
      assert.deepEqual(await h.hub.presence('shared'), []);
      await h.hub.publish('shared', 'hello');
      for (const { json } of await Promise.all(polls)) {
        assert.deepEqual(json.events.map((e) => [e.offset, e.data]), [[1, 'hello']]);
        assert.deepEqual(offsets(json.cursor), { shared: 1 });
      }
      assert.equal(h.hub.stats().delivered, 50);
    } finally {
      await h.close();
    }
  });

  it('one-channel answers that end with the same event carry the same cursor, whatever each poll started from', async () => {
    const h = await startHarness();
    try {
      const epoch = (await h.hub.history('same-end', { limit: 0 })).epoch;
      for (const n of range(1, 5)) await h.hub.publish('same-end', n);
      const answers = await Promise.all([0, 2, 4].map((from) => getJson<PollAnswer>(h.base, `/poll?channel=same-end&timeout=5&cursor=${encodeCursor(new Map([['same-end', { epoch, offset: from }]]))}`)));
      assert.deepEqual(answers.map((a) => a.json.events.map((e) => e.data)), [[1, 2, 3, 4, 5], [3, 4, 5], [5]]);
      const expected = encodeCursor(new Map([['same-end', { epoch, offset: 5 }]]));
      for (const a of answers) assert.equal(a.json.cursor, expected);
      // Two channels: both positions, the quiet one where it was.
      const two = await getJson<PollAnswer>(h.base, `/poll?channel=same-end&channel=quiet-one&timeout=5&cursor=${encodeCursor(new Map([['same-end', { epoch, offset: 4 }]]))}`);
      assert.deepEqual(two.json.events.map((e) => e.data), [5]);
      assert.deepEqual(offsets(two.json.cursor), { 'same-end': 5, 'quiet-one': 0 });
    } finally {
      await h.close();
    }
  });

  it('request cursors are decoded once and kept in a bounded cache; a flood of distinct ones neither grows it nor mixes them up', async () => {
    const h = await startHarness();
    try {
      const epoch = (await h.hub.history('flood', { limit: 0 })).epoch;
      for (const n of range(1, 3)) await h.hub.publish('flood', n);
      const at = (offset: number, extra: string) => encodeCursor(new Map([['flood', { epoch, offset }], [extra, { epoch: 'e', offset: 0 }]]));
      // 300 distinct cursors (another channel name each), asked with channel=flood only.
      for (let i = 0; i < 300; i += 30) {
        const batch = await Promise.all(range(i, i + 29).map((k) => getJson<PollAnswer>(h.base, `/poll?channel=flood&timeout=5&cursor=${at(k % 3, `other-${k}`)}`)));
        batch.forEach((a, j) => assert.deepEqual(a.json.events.map((e) => e.data), [1, 2, 3].slice((i + j) % 3), `poll ${i + j}`));
        assert.ok(h.poll.cachedCursors <= 256, `cache holds ${h.poll.cachedCursors}`);
      }
      assert.ok(h.poll.cachedCursors > 0, 'cursors are cached');
      // A very long cursor is decoded but not kept.
      const before = h.poll.cachedCursors;
      const long = at(1, 'x'.repeat(600));
      const answer = await getJson<PollAnswer>(h.base, `/poll?channel=flood&timeout=5&cursor=${long}`);
      assert.deepEqual(answer.json.events.map((e) => e.data), [2, 3]);
      assert.equal(h.poll.cachedCursors, before, 'the long one is not cached');
    } finally {
      await h.close();
    }
  });

  it('drops a relay nobody waited on for relayIdleMs; the next poll resumes from its cursor without a gap', async () => {
    const h = await startHarness({ poll: { relayIdleMs: 100 } });
    try {
      const waiting = getJson<PollAnswer>(h.base, '/poll?channel=idle&timeout=10');
      await waitFor(() => h.poll.waitingOn('idle') === 1, 5000, 'poll waiting');
      await h.hub.publish('idle', 1);
      const first = (await waiting).json;
      assert.deepEqual(first.events.map((e) => e.data), [1]);
      await waitFor(() => h.poll.relayCount === 0 && h.hub.stats().subscriptions === 0, 5000, 'relay dropped');
      await h.hub.publish('idle', 2);
      await h.hub.publish('idle', 3);
      const next = (await getJson<PollAnswer>(h.base, `/poll?channel=idle&timeout=10&cursor=${first.cursor}`)).json;
      assert.deepEqual(next.events.map((e) => e.data), [2, 3]);
      assert.equal(next.recovered, true);
    } finally {
      await h.close();
    }
  });

  it("checks every poll's own subscribe permission, although the relay subscribes as the server", async () => {
    const h = await startHarness({
      hub: {
        hooks: {
          authenticate: (token) => ({ user: token ?? 'anonymous' }),
          authorize: (action, client, channel) => !(channel === 'room' && client?.user === 'mallory'),
        },
      },
    });
    try {
      const alice = getJson<PollAnswer>(h.base, '/poll?channel=room&timeout=10&token=alice');
      await waitFor(() => h.poll.waitingOn('room') === 1, 5000, "alice's poll waiting");
      const mallory = await http(h.base, '/poll?channel=room&timeout=10&token=mallory');
      assert.equal(mallory.status, 403);
      assert.equal(JSON.parse(mallory.body).error.code, 'forbidden');
      assert.equal(h.poll.waitingOn('room'), 1);
      await h.hub.publish('room', 'for alice');
      assert.deepEqual((await alice).json.events.map((e) => e.data), ['for alice']);
    } finally {
      await h.close();
    }
  });

  it('a cursor ahead of the channel is answered from history (recovered:false), not left waiting', async () => {
    const h = await startHarness();
    try {
      await h.hub.publish('ahead', 'only');
      const epoch = (await h.hub.history('ahead', { limit: 0 })).epoch;
      // A relay exists and sits at offset 1; the cursor claims offset 50.
      const warm = getJson<PollAnswer>(h.base, '/poll?channel=ahead&timeout=10');
      await waitFor(() => h.poll.waitingOn('ahead') === 1, 5000, 'relay live');
      const { json } = await getJson<PollAnswer>(h.base, `/poll?channel=ahead&timeout=10&cursor=${encodeCursor(new Map([['ahead', { epoch, offset: 50 }]]))}`);
      assert.equal(json.recovered, false);
      assert.deepEqual(json.events.map((e) => e.data), ['only']);
      assert.deepEqual(offsets(json.cursor), { ahead: 1 });
      await h.hub.publish('ahead', 'next');
      assert.deepEqual((await warm).json.events.map((e) => e.data), ['next']);
    } finally {
      await h.close();
    }
  });

  it('coalesceMs: a poll waits that long after its first event, so events of later turns share the answer', async () => {
    const h = await startHarness({ poll: { coalesceMs: 300 } });
    try {
      const pending = getJson<PollAnswer>(h.base, '/poll?channel=window&timeout=10');
      await waitFor(() => h.poll.waitingOn('window') === 1, 5000, 'poll waiting');
      for (const n of [1, 2, 3]) {
        await h.hub.publish('window', n);
        await new Promise((resolve) => setImmediate(resolve)); // the next event-loop turn
      }
      assert.equal(h.poll.waitingOn('window'), 1, 'still waiting after three turns');
      assert.deepEqual((await pending).json.events.map((e) => e.data), [1, 2, 3]);
      assert.throws(() => new LongPollTransport(h.hub, { coalesceMs: 1001 }), /coalesceMs/);
    } finally {
      await h.close();
    }
  });

  it('coalesceMs counts from when the oldest event was published: a poll that comes back behind, past the window, is answered at once', async () => {
    // Events stamped 10 s ago: older than any window.
    const h = await startHarness({ engine: new MemoryEngine({ now: () => Date.now() - 10_000 }), poll: { coalesceMs: 1000 } });
    try {
      const { epoch } = await h.hub.history('late', { limit: 0 });
      const cursor = encodeCursor(new Map([['late', { epoch, offset: 0 }]]));
      await h.hub.publish('late', 'missed-1');
      await h.hub.publish('late', 'missed-2');
      const asked = Date.now();
      const { json } = await getJson<PollAnswer>(h.base, `/poll?channel=late&timeout=10&cursor=${cursor}`);
      const waited = Date.now() - asked;
      assert.deepEqual(json.events.map((e) => e.data), ['missed-1', 'missed-2']);
      assert.ok(waited < 1000, `a behind poll waited ${waited} ms: its events were already older than the window`);
      assert.equal(h.poll.flusher.pendingAt, 0);
    } finally {
      await h.close();
    }
  });

  it('paceMs: a client answered a moment ago is answered when its last event is paceMs old, with what was published meanwhile', async () => {
    const h = await startHarness({ poll: { paceMs: 1000, paceLoadPercent: 0 } });
    try {
      // A poll from now: its client has no event yet, nothing to pace.
      const first = getJson<PollAnswer>(h.base, '/poll?channel=paced&timeout=10');
      await waitFor(() => h.poll.waitingOn('paced') === 1, 5000, 'poll waiting');
      const published = await h.hub.publish('paced', 1);
      const one = (await first).json;
      assert.deepEqual(one.events.map((e) => e.data), [1]);
      // It comes back behind (2 is out): held, where it would have been answered at once.
      await h.hub.publish('paced', 2);
      const second = getJson<PollAnswer>(h.base, `/poll?channel=paced&timeout=10&cursor=${one.cursor}`);
      await waitFor(() => h.poll.waitingOn('paced') === 1, 5000, 'poll waiting');
      assert.equal(h.poll.flusher.pendingAt, 1, 'held until the client\'s last event is paceMs old');
      await h.hub.publish('paced', 3);
      await new Promise((resolve) => setImmediate(resolve));
      assert.equal(h.poll.waitingOn('paced'), 1, 'still held after the turn');
      const two = (await second).json;
      const answeredAfter = Date.now() - published.timestamp;
      assert.deepEqual(two.events.map((e) => e.data), [2, 3]);
      assert.deepEqual(offsets(two.cursor), { paced: 3 });
      assert.ok(answeredAfter >= 990, `answered ${answeredAfter} ms after the client's last event, paceMs is 1000`);
      assert.throws(() => new LongPollTransport(h.hub, { paceMs: 1001 }), /paceMs/);
      assert.throws(() => new LongPollTransport(h.hub, { paceMs: -1 }), /paceMs/);
      assert.throws(() => new LongPollTransport(h.hub, { paceLoadPercent: 101 }), /paceLoadPercent/);
    } finally {
      await h.close();
    }
  });

  it("paceMs: the first event after a quiet spell leaves at once, and a publisher's clock ahead of ours never holds a poll longer than paceMs", async () => {
    for (const [name, skew] of [['quiet', -10_000], ['ahead', 3_600_000]] as const) {
      const h = await startHarness({ engine: new MemoryEngine({ now: () => Date.now() + skew }), poll: { paceMs: 200, paceLoadPercent: 0 } });
      try {
        const first = getJson<PollAnswer>(h.base, `/poll?channel=${name}&timeout=10`);
        await waitFor(() => h.poll.waitingOn(name) === 1, 5000, 'poll waiting');
        await h.hub.publish(name, 1);
        const { cursor } = (await first).json;
        const next = getJson<PollAnswer>(h.base, `/poll?channel=${name}&timeout=10&cursor=${cursor}`);
        await waitFor(() => h.poll.waitingOn(name) === 1, 5000, 'poll waiting');
        const asked = Date.now();
        await h.hub.publish(name, 2);
        await new Promise((resolve) => setImmediate(resolve));
        if (name === 'quiet') {
          // The client's last event is 10 s old: answered at the end of the turn.
          assert.equal(h.poll.waitingOn(name), 0, 'answered at the end of the turn');
        } else {
          assert.equal(h.poll.waitingOn(name), 1, 'held: its last event counts as published now');
        }
        assert.deepEqual((await next).json.events.map((e) => e.data), [2]);
        const waited = Date.now() - asked;
        assert.ok(waited < 5000, `${name}: held ${waited} ms, paceMs is 200`);
      } finally {
        await h.close();
      }
    }
  });

  it("a poll a little behind is answered from the relay's recent events, without a history read; further behind, or on a TTL channel, history decides", async () => {
    let reads = 0;
    class CountingEngine extends MemoryEngine {
      override async history(...args: Parameters<MemoryEngine['history']>) {
        if (args[1].since) reads++;
        return super.history(...args);
      }
    }
    const h = await startHarness({ engine: new CountingEngine(), hub: { namespaces: { '': { historySize: 4 }, ttl: { historySize: 4, historyTtl: 60 } } } });
    try {
      for (const channel of ['recent', 'ttl:recent']) {
        const warm = getJson<PollAnswer>(h.base, `/poll?channel=${channel}&timeout=10`);
        await waitFor(() => h.poll.waitingOn(channel) === 1, 5000, 'relay live');
        for (let i = 1; i <= 6; i++) await h.hub.publish(channel, i);
        assert.equal((await warm).json.events[0]!.offset, 1);
      }
      const at = async (channel: string, offset: number): Promise<string> => {
        const { epoch } = await h.hub.history(channel, { limit: 0 });
        return encodeCursor(new Map([[channel, { epoch, offset }]]));
      };
      const near = (await getJson<PollAnswer>(h.base, `/poll?channel=recent&timeout=10&cursor=${await at('recent', 3)}`)).json;
      assert.deepEqual(near.events.map((e) => e.offset), [4, 5, 6]);
      assert.equal(near.recovered, true);
      assert.deepEqual(offsets(near.cursor), { recent: 6 });
      assert.equal(reads, 0, 'answered from the relay');

      // Five behind, the relay (like history) keeps four: history says what was lost.
      const far = (await getJson<PollAnswer>(h.base, `/poll?channel=recent&timeout=10&cursor=${await at('recent', 1)}`)).json;
      assert.deepEqual(far.events.map((e) => e.offset), [3, 4, 5, 6]);
      assert.equal(far.recovered, false);
      assert.equal(reads, 1);

      // Events of a TTL channel may have expired from history: the relay never stands in for it.
      const ttl = (await getJson<PollAnswer>(h.base, `/poll?channel=ttl:recent&timeout=10&cursor=${await at('ttl:recent', 5)}`)).json;
      assert.deepEqual(ttl.events.map((e) => e.offset), [6]);
      assert.equal(reads, 2);
    } finally {
      await h.close();
    }
  });

  for (const when of ['before', 'after'] as const) {
    it(`merges live events published while a poll reads history (read ${when} the publishes): every offset once, in order`, async () => {
      let release: () => void = () => {};
      let gated = false;
      const entered = { value: false };
      class GatedEngine extends MemoryEngine {
        override async history(...args: Parameters<MemoryEngine['history']>) {
          if (!gated || !args[1].since) return super.history(...args);
          entered.value = true;
          const gate = new Promise<void>((r) => (release = r));
          if (when === 'after') {
            await gate;
            return super.history(...args);
          }
          const result = await super.history(...args);
          await gate;
          return result;
        }
      }
      const h = await startHarness({ engine: new GatedEngine() });
      try {
        for (let i = 1; i <= 3; i++) await h.hub.publish('merge', i);
        const epoch = (await h.hub.history('merge', { limit: 0 })).epoch;
        const warm = getJson<PollAnswer>(h.base, '/poll?channel=merge&timeout=10');
        await waitFor(() => h.poll.waitingOn('merge') === 1, 5000, 'relay live');
        gated = true;
        const behind = getJson<PollAnswer>(h.base, `/poll?channel=merge&timeout=10&cursor=${encodeCursor(new Map([['merge', { epoch, offset: 1 }]]))}`);
        await waitFor(() => entered.value, 5000, 'history read started');
        for (let i = 4; i <= 6; i++) await h.hub.publish('merge', i);
        release();
        const { json } = await behind;
        assert.deepEqual(json.events.map((e) => e.offset), [2, 3, 4, 5, 6]);
        assert.deepEqual(offsets(json.cursor), { merge: 6 });
        assert.equal(json.recovered, true);
        // The waiting poll gets the same live events, batched (published in one turn).
        assert.deepEqual((await warm).json.events.map((e) => e.offset), [4, 5, 6]);
      } finally {
        await h.close();
      }
    });
  }
});
