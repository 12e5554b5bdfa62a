import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { FlushScheduler, type Flushable } from './flush.js';

/** An item that records when it was flushed (Date.now()) and how often; `flushed` settles at the first flush. */
function recorder(): Flushable & { at: number[]; flushed: Promise<void> } {
  const at: number[] = [];
  let first: () => void = () => {};
  const flushed = new Promise<void>((resolve) => (first = resolve));
  return {
    at,
    flushed,
    flush: () => {
      at.push(Date.now());
      first();
    },
  };
}

const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe('FlushScheduler.scheduleAt', () => {
  it('flushes an item whose window has passed at the end of this turn, once', async () => {
    const s = new FlushScheduler(10_000);
    const item = recorder();
    s.scheduleAt(item, Date.now() - 20_000);
    s.scheduleAt(item, Date.now() - 20_000);
    assert.deepEqual(item.at, [], 'not synchronously');
    await nextTurn();
    assert.equal(item.at.length, 1);
    assert.equal(s.pendingAt, 0);
  });

  it('flushes no earlier than readyAt + delay; items due at the same millisecond go together', async () => {
    const s = new FlushScheduler(150);
    const readyAt = Date.now();
    const a = recorder();
    const b = recorder();
    s.scheduleAt(a, readyAt);
    s.scheduleAt(b, readyAt);
    assert.equal(s.pendingAt, 2);
    await nextTurn();
    assert.deepEqual([a.at.length, b.at.length], [0, 0], 'still in the window');
    // The scheduler's timers are unref'd: this ref'd one keeps the test alive and bounds the wait.
    let guard: NodeJS.Timeout | undefined;
    await Promise.race([a.flushed, new Promise((_, reject) => (guard = setTimeout(reject, 5_000, new Error('not flushed within 5 s'))))]);
    clearTimeout(guard);
    assert.ok(a.at[0]! >= readyAt + 150, `flushed ${a.at[0]! - readyAt} ms after readyAt`);
    assert.deepEqual(b.at, a.at, 'the same timer flushed both');
    assert.equal(s.pendingAt, 0);
  });

  it('a future readyAt counts as now; an earlier time wins over a later one; cancel forgets', async () => {
    const s = new FlushScheduler(60_000);
    const item = recorder();
    s.scheduleAt(item, Date.now() + 3_600_000);
    s.scheduleAt(item, Date.now() - 120_000); // now past its window: due at once
    await nextTurn();
    assert.equal(item.at.length, 1);

    const cancelled = recorder();
    s.scheduleAt(cancelled, Date.now());
    assert.equal(s.pendingAt, 1);
    s.cancel(cancelled);
    assert.equal(s.pendingAt, 0);
    s.scheduleAt(cancelled, Date.now() - 120_000);
    s.cancel(cancelled);
    await nextTurn();
    assert.deepEqual(cancelled.at, []);
  });

  it('a throwing item does not keep the others from being flushed', async () => {
    const s = new FlushScheduler(0);
    const after = recorder();
    s.scheduleAt({ flush: () => { throw new Error('broken'); } }, 0);
    s.scheduleAt(after, 0);
    await nextTurn();
    assert.equal(after.at.length, 1);
  });
});
