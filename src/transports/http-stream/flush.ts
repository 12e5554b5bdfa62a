/**
 * Write coalescing for the HTTP streams and polls: a transport marks an item dirty when it has
 * something to write, and every dirty item is flushed together — at the end of the current
 * event-loop turn (setImmediate, after the I/O phase) by default, or `delayMs` after the first
 * item became dirty. So the events that became ready in that window leave in one write per stream
 * or poll. One timer per window for all items; nothing here allocates a timer, promise or closure
 * per delivery.
 *
 * `scheduleAt` is for items that know when their oldest pending write became ready (a long-poll
 * answer whose events waited in history while the client was away): the item is flushed at
 * `readyAt + delayMs`, or at the end of this turn if that has passed. So no event waits more than
 * the window, and one that already waited longer leaves now. Items due at the same millisecond
 * share one timer (every poll waiting on one event is due at the same time). Its `notBefore`
 * holds an item until a given time whatever the window (long-poll pacing: a client answered a
 * moment ago waits out its interval, and what piles up meanwhile goes in the same answer).
 */
export interface Flushable {
  /** Writes what the item has buffered. Must not throw (a throw is swallowed). */
  flush(): void;
}

function run(scheduler: FlushScheduler): void {
  scheduler.flushAll();
}

function runDueNow(scheduler: FlushScheduler): void {
  scheduler.flushDueNow();
}

function runBucket(scheduler: FlushScheduler, due: number): void {
  scheduler.flushBucket(due);
}

export class FlushScheduler {
  /** Milliseconds from the first dirty item to the flush; 0 = the end of the event-loop turn. */
  readonly delayMs: number;
  private dirty = new Set<Flushable>();
  private scheduled = false;
  /** `scheduleAt` items by the millisecond they are due (Date.now() time), one timer each. */
  private readonly buckets = new Map<number, Set<Flushable>>();
  private readonly dueAt = new Map<Flushable, number>();
  /** `scheduleAt` items already due: flushed at the end of this turn. */
  private dueNow = new Set<Flushable>();
  private dueNowScheduled = false;

  constructor(delayMs = 0) {
    if (!Number.isFinite(delayMs) || delayMs < 0) throw new TypeError('flush delay must be a non-negative number of milliseconds');
    this.delayMs = delayMs;
  }

  /** Asks for `item.flush()` at the end of the window (once, however often it is asked). */
  schedule(item: Flushable): void {
    this.dirty.add(item);
    if (this.scheduled) return;
    this.scheduled = true;
    if (this.delayMs > 0) setTimeout(run, this.delayMs, this).unref();
    else setImmediate(run, this);
  }

  /**
   * Asks for `item.flush()` `delayMs` after `readyAt` (a Date.now() time; a future one counts as
   * now) but not before `notBefore`, at the end of this turn if that is past. An item already due
   * earlier keeps its time.
   */
  scheduleAt(item: Flushable, readyAt: number, notBefore = 0): void {
    const now = Date.now();
    const due = Math.max(Math.min(readyAt, now) + this.delayMs, notBefore);
    if (due <= now) {
      this.unbucket(item);
      this.dueNow.add(item);
      if (!this.dueNowScheduled) {
        this.dueNowScheduled = true;
        setImmediate(runDueNow, this);
      }
      return;
    }
    if (this.dueNow.has(item)) return;
    const current = this.dueAt.get(item);
    if (current !== undefined) {
      if (current <= due) return;
      this.unbucket(item);
    }
    this.dueAt.set(item, due);
    let bucket = this.buckets.get(due);
    if (!bucket) {
      bucket = new Set();
      this.buckets.set(due, bucket);
      setTimeout(runBucket, due - now, this, due).unref();
    }
    bucket.add(item);
  }

  /** Forgets a pending flush (the item was closed or flushed on its own). */
  cancel(item: Flushable): void {
    this.dirty.delete(item);
    this.dueNow.delete(item);
    if (this.dueAt.size > 0) this.unbucket(item);
  }

  /** Items waiting for a `scheduleAt` time. */
  get pendingAt(): number {
    return this.dueAt.size;
  }

  private unbucket(item: Flushable): void {
    const due = this.dueAt.get(item);
    if (due === undefined) return;
    this.dueAt.delete(item);
    const bucket = this.buckets.get(due);
    // An emptied bucket stays until its timer fires: that flushes nothing and removes it.
    bucket?.delete(item);
  }

  /** @internal Flushes the items due at `due`. */
  flushBucket(due: number): void {
    const items = this.buckets.get(due);
    this.buckets.delete(due);
    if (!items) return;
    for (const item of items) {
      this.dueAt.delete(item);
      flushOne(item);
    }
  }

  /** @internal Flushes every dirty item now. */
  flushAll(): void {
    this.scheduled = false;
    const items = this.dirty;
    this.dirty = new Set();
    for (const item of items) flushOne(item);
  }

  /** @internal Flushes the `scheduleAt` items already due. */
  flushDueNow(): void {
    this.dueNowScheduled = false;
    const items = this.dueNow;
    this.dueNow = new Set();
    for (const item of items) flushOne(item);
  }
}

function flushOne(item: Flushable): void {
  try {
    item.flush();
  } catch {
    // One broken stream must not keep the others from being written.
  }
}

/** The end-of-turn scheduler, for transports without a delay of their own. */
export const endOfTurn = new FlushScheduler(0);

/** Asks for `item.flush()` at the end of this event-loop turn. */
export function scheduleFlush(item: Flushable): void {
  endOfTurn.schedule(item);
}

/** Forgets a pending end-of-turn flush. */
export function cancelFlush(item: Flushable): void {
  endOfTurn.cancel(item);
}
