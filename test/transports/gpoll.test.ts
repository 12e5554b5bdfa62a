import { after, afterEach, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { HeraldError } from '../../src/protocol/index.js';
import { http, range, startHarness, waitFor, type Harness } from './helpers.js';

async function register(h: Harness, query = 'client-id=0'): Promise<string> {
  const answer = await http(h.base, `/gpoll?${query}`);
  assert.equal(answer.status, 200);
  assert.equal(answer.headers['content-type'], 'text/plain; charset=utf-8');
  const id = (JSON.parse(answer.body) as { 'client-id': string })['client-id'];
  assert.match(answer.body, /^\{"client-id":"\d+\$[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"\}$/);
  return id;
}

function poll(h: Harness, id: string, signal?: AbortSignal) {
  return http(h.base, `/gpoll?client-id=${encodeURIComponent(id)}`, { signal });
}

describe('gpoll', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness({
      gpoll: { bufferSize: 2000 },
      hub: {
        namespaces: { '': { historySize: 10 } },
        hooks: {
          authenticate(token) {
            if (token === 'bad') throw new HeraldError('unauthorized', 'invalid token');
            return {};
          },
        },
      },
    });
  });
  after(async () => {
    await h.close();
    assert.deepEqual(h.errors, []);
  });
  afterEach(() => waitFor(() => h.gpoll.waitingPolls === 0, 5000, 'no poll waiting'));

  it('registers with client-id=0 (or any id shorter than 10 characters) and answers {"client-id":"<n>$<uuid>"}', async () => {
    const ids = [await register(h), await register(h, ''), await register(h, 'client-id=short')];
    assert.equal(new Set(ids).size, 3);
    assert.ok(ids.every((id) => id.startsWith('0$')));
  });

  it('answers 404 with an empty body for an unknown or malformed id', async () => {
    const id = await register(h);
    const uuid = id.split('$')[1]!;
    for (const bad of ['0$00000000-0000-4000-8000-000000000000', 'nodollarsignhere', `1$${uuid}`, `0$${uuid}x`, `0$${uuid}\u0000`]) {
      const answer = await http(h.base, `/gpoll?client-id=${encodeURIComponent(bad)}`);
      assert.equal(answer.status, 404, bad);
      assert.equal(answer.body, '');
    }
  });

  it('answers the next broadcast message as a plain body, and buffers those sent between polls', async () => {
    const id = await register(h);
    const waiting = poll(h, id);
    await waitFor(() => h.gpoll.waitingPolls === 1, 5000, 'poll waiting');
    await h.hub.publish('broadcast', 'hello');
    const first = await waiting;
    assert.equal(first.status, 200);
    assert.equal(first.body, 'hello');
    assert.equal(first.headers['content-type'], 'text/plain; charset=utf-8');
    await h.hub.publish('elsewhere', 'not for gpoll');
    await h.hub.publish('broadcast', { a: 1 });
    await h.hub.publish('broadcast', 7);
    await h.hub.publish('broadcast', null);
    assert.deepEqual([(await poll(h, id)).body, (await poll(h, id)).body, (await poll(h, id)).body], ['{"a":1}', '7', 'null']);
  });

  it('holds one hub subscription for all its clients', async () => {
    const before = h.hub.stats().subscriptions;
    await register(h);
    await register(h);
    assert.equal(h.hub.stats().subscriptions, before);
    assert.equal((await h.hub.channelList()).find((c) => c.channel === 'broadcast')?.subscribers, 1);
  });

  it('drops a client whose buffer overflows (later polls 404) and keeps the others', async () => {
    const small = await startHarness({ gpoll: { bufferSize: 3 } });
    try {
      const lazy = await register(small);
      const keen = await register(small);
      for (const n of [1, 2, 3]) await small.hub.publish('broadcast', n);
      assert.equal((await poll(small, keen)).body, '1');
      await small.hub.publish('broadcast', 4); // lazy already holds 3: dropped
      assert.equal((await poll(small, lazy)).status, 404);
      assert.deepEqual([(await poll(small, keen)).body, (await poll(small, keen)).body, (await poll(small, keen)).body], ['2', '3', '4']);
    } finally {
      await small.close();
    }
  });

  it('drops a client that has not polled for idleTimeoutMs', async () => {
    const idle = await startHarness({ gpoll: { idleTimeoutMs: 100 } });
    try {
      const id = await register(idle);
      await waitFor(() => idle.gpoll.size === 0, 5000, 'idle client dropped');
      assert.equal((await poll(idle, id)).status, 404);
    } finally {
      await idle.close();
    }
  });

  it('refuses what herald refuses, with gpoll\'s empty bodies, and keeps serving', async () => {
    assert.equal((await http(h.base, '/gpoll?client-id=0&token=bad')).status, 401);
    assert.equal((await http(h.base, `/gpoll?client-id=0&x=${'y'.repeat(100_000)}`)).status, 431);
    assert.equal((await http(h.base, '/gpoll?client-id=0', { headers: { origin: 'http://evil.example' } })).status, 403);
    await register(h);
  });

  it('delivers 1,000 messages exactly once and in order across an aborted poll', async () => {
    const id = await register(h);
    const seen: number[] = [];
    let release: () => void = () => {};
    const gate = new Promise<void>((r) => (release = r));
    const publishing = (async () => {
      for (let n = 1; n <= 1000; n++) {
        if (n === 501) await gate;
        await h.hub.publish('broadcast', n);
        if (n % 25 === 0) await new Promise((r) => setImmediate(r));
      }
    })();
    let aborted = false;
    while (seen.length < 1000) {
      if (seen.length === 500 && !aborted) {
        aborted = true;
        const controller = new AbortController();
        const request = poll(h, id, controller.signal).catch(() => undefined);
        await waitFor(() => h.gpoll.waitingPolls === 1, 5000, 'poll waiting');
        controller.abort();
        await request;
        await waitFor(() => h.gpoll.waitingPolls === 0, 5000, 'aborted poll forgotten');
        release();
        continue;
      }
      const answer = await poll(h, id);
      assert.equal(answer.status, 200);
      seen.push(Number(answer.body));
    }
    await publishing;
    assert.deepEqual(seen, range(1, 1000));
  });

  it('close() answers waiting polls with 503 and forgets every client', async () => {
    const other = await startHarness();
    const id = await register(other);
    const waiting = poll(other, id);
    await waitFor(() => other.gpoll.waitingPolls === 1, 5000, 'poll waiting');
    await other.gpoll.close();
    assert.equal((await waiting).status, 503);
    assert.equal(other.gpoll.size, 0);
    await other.close();
  });
});
