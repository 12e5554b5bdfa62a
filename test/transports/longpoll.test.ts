import { after, afterEach, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { decodeCursor, encodeCursor, type HeraldEvent } from '../../src/protocol/index.js';
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
    await waitFor(() => h.poll.size === 1 && h.hub.stats().subscriptions === 2, 5000, 'poll subscribed');
    await h.hub.publish('w', 'new');
    const { status, headers, json } = await pending;
    assert.equal(status, 200);
    assert.equal(headers['content-type'], 'application/json; charset=utf-8');
    assert.equal(headers['cache-control'], 'no-store');
    assert.deepEqual(json.events.map((e) => e.data), ['new']);
    assert.equal(json.recovered, true);
    assert.deepEqual(offsets(json.cursor), { w: 2, w2: 0 });
    await waitFor(() => h.hub.stats().subscriptions === 0, 5000, 'unsubscribed');
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
    await waitFor(() => h.hub.stats().subscriptions === 1, 5000, 'poll subscribed');
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

  it('cleans up the subscriptions of a client that leaves mid-poll', async () => {
    const controller = new AbortController();
    const pending = http(h.base, '/poll?channel=leave&channel=leave2', { signal: controller.signal }).catch(() => undefined);
    await waitFor(() => h.hub.stats().subscriptions === 2, 5000, 'poll subscribed');
    controller.abort();
    await pending;
    await waitFor(() => h.hub.stats().subscriptions === 0 && h.poll.size === 0, 5000, 'cleanup');
  });

  it('close() answers pending polls at once', async () => {
    const other = await startHarness();
    const pending = getJson<PollAnswer>(other.base, '/poll?channel=x&timeout=100');
    await waitFor(() => other.poll.size === 1 && other.hub.stats().subscriptions === 1, 5000, 'poll waiting');
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
        await waitFor(() => h.poll.size === 0 && h.hub.stats().subscriptions === 0, 5000, 'aborted poll cleaned up');
        release();
        continue;
      }
      const answer = JSON.parse((await poll()).body) as PollAnswer;
      if (seen.length > 600 && !lost && answer.events.length > 0) {
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
