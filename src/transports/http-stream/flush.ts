/**
 * Write coalescing for the HTTP streams and polls: a transport marks an item dirty when it has
 * something to write, and every dirty item is flushed together — at the end of the current
 * event-loop turn (setImmediate, after the I/O phase) by default, or `delayMs` after the first
 * item became dirty. So the events that became ready in that window leave in one write per stream
 * or poll. One timer per window for all items; nothing here allocates a timer, promise or closure
 * per delivery.
 */
export interface Flushable {
  /** Writes what the item has buffered. Must not throw (a throw is swallowed). */
  flush(): void;
}

function run(scheduler: FlushScheduler): void {
  scheduler.flushAll();
}

export class FlushScheduler {
  /** Milliseconds from the first dirty item to the flush; 0 = the end of the event-loop turn. */
  readonly delayMs: number;
  private dirty = new Set<Flushable>();
  private scheduled = false;

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

  /** Forgets a pending flush (the item was closed or flushed on its own). */
  cancel(item: Flushable): void {
    this.dirty.delete(item);
  }

  /** @internal Flushes every dirty item now. */
  flushAll(): void {
    this.scheduled = false;
    const items = this.dirty;
    this.dirty = new Set();
    for (const item of items) {
      try {
        item.flush();
      } catch {
        // One broken stream must not keep the others from being written.
      }
    }
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
