/**
 * One scheduled flush per event-loop turn for every HTTP stream and poll of the process.
 * A transport marks an item dirty when it has something to write; all dirty items are flushed
 * together after the current I/O phase (setImmediate), so events that became ready in the same
 * turn leave in one write. Nothing here allocates a timer, promise or closure per delivery.
 */
export interface Flushable {
  /** Writes what the item has buffered. Must not throw (a throw is swallowed). */
  flush(): void;
}

let dirty = new Set<Flushable>();
let scheduled = false;

function runFlush(): void {
  scheduled = false;
  const items = dirty;
  dirty = new Set();
  for (const item of items) {
    try {
      item.flush();
    } catch {
      // One broken stream must not keep the others from being written.
    }
  }
}

/** Asks for `item.flush()` at the end of this event-loop turn (once, however often it is asked). */
export function scheduleFlush(item: Flushable): void {
  dirty.add(item);
  if (!scheduled) {
    scheduled = true;
    setImmediate(runFlush);
  }
}

/** Forgets a pending flush (the item was closed). */
export function cancelFlush(item: Flushable): void {
  dirty.delete(item);
}
