/**
 * One delivery path: every HTTP transport is fed by the hub's single fan-out, and each wire format
 * is encoded once per publish, however many streams and polls receive the event.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Encoding, OutgoingEvent } from '../../src/core/index.js';
import { SSE_EVENT } from '../../src/transports/sse.js';
import { GOLONGPOLL_EVENT } from '../../src/transports/compat/golongpoll.js';
import { GPOLL_MESSAGE } from '../../src/transports/compat/gpoll.js';
import { SseClient, http, startHarness, waitFor } from './helpers.js';

function count<T>(encoding: Encoding<T>): { calls: number; restore(): void } {
  const mutable = encoding as { encode: (out: OutgoingEvent) => T };
  const original = mutable.encode;
  const counter = {
    calls: 0,
    restore() {
      mutable.encode = original;
    },
  };
  mutable.encode = (out) => {
    counter.calls++;
    return original(out);
  };
  return counter;
}

describe('HTTP transports share one fan-out', () => {
  it('encodes an event once per wire format for all SSE streams, polls and gpoll clients', async () => {
    const h = await startHarness({ gpoll: { channel: 'news' } });
    const counters = [count(SSE_EVENT), count(GOLONGPOLL_EVENT), count(GPOLL_MESSAGE)];
    try {
      const streams = [1, 2, 3].map(() => new SseClient(h.base, '/sse?channel=news'));
      await waitFor(() => streams.every((s) => s.of('ready').length === 1), 5000, 'streams ready');
      const gpollIds = await Promise.all([1, 2].map(async () => (JSON.parse((await http(h.base, '/gpoll?client-id=0')).body) as Record<string, string>)['client-id']!));
      const polls = [
        http(h.base, '/poll?channel=news'),
        http(h.base, '/poll?channel=news'),
        http(h.base, '/golongpoll/events?timeout=5&category=news'),
        http(h.base, '/golongpoll/events?timeout=5&category=news'),
        ...gpollIds.map((id) => http(h.base, `/gpoll?client-id=${encodeURIComponent(id)}`)),
      ];
      await waitFor(() => h.poll.waitingOn('news') === 2 && h.golongpoll.size === 2 && h.gpoll.waitingPolls === 2 && h.hub.stats().subscriptions === 7, 5000, 'everyone subscribed');
      const published = await h.hub.publish('news', { headline: 'one path' });
      const answers = await Promise.all(polls);
      await waitFor(() => streams.every((s) => s.of('event').length === 1), 5000, 'streams got it');
      for (const s of streams) assert.equal(JSON.parse(s.of('event')[0]!.data).id, published.id);
      assert.equal(JSON.parse(answers[0]!.body).events[0].id, published.id);
      assert.equal(JSON.parse(answers[2]!.body).events[0].id, published.id);
      assert.equal(answers[4]!.body, '{"headline":"one path"}');
      assert.deepEqual(counters.map((c) => c.calls), [1, 1, 1]);
      assert.equal(h.hub.stats().delivered, 8);
      streams.forEach((s) => s.abort());
    } finally {
      counters.forEach((c) => c.restore());
      await h.close();
    }
  });
});
