/**
 * A tiny typed event emitter (no Node `events`, so it bundles for browsers).
 * A listener that throws does not disturb the client or the other listeners: its error is
 * re-thrown asynchronously, as an EventTarget reports listener errors.
 */
export type Listener<Args extends unknown[]> = (...args: Args) => void;

export class Emitter<Events extends { [K in keyof Events]: unknown[] }> {
  private listeners: { [K in keyof Events]?: Listener<Events[K]>[] } = {};

  /** Adds a listener; returns a function that removes it. */
  on<K extends keyof Events>(name: K, fn: Listener<Events[K]>): () => void {
    (this.listeners[name] ??= []).push(fn);
    return () => this.off(name, fn);
  }

  /** Adds a listener called at most once. */
  once<K extends keyof Events>(name: K, fn: Listener<Events[K]>): () => void {
    const off = this.on(name, (...args) => {
      off();
      fn(...args);
    });
    return off;
  }

  off<K extends keyof Events>(name: K, fn: Listener<Events[K]>): void {
    const list = this.listeners[name];
    if (!list) return;
    const i = list.indexOf(fn);
    if (i >= 0) list.splice(i, 1);
  }

  listenerCount<K extends keyof Events>(name: K): number {
    return this.listeners[name]?.length ?? 0;
  }

  protected emit<K extends keyof Events>(name: K, ...args: Events[K]): void {
    const list = this.listeners[name];
    if (!list || list.length === 0) return;
    // A copy: listeners may remove themselves while we iterate.
    for (const fn of list.length === 1 ? list : list.slice()) {
      try {
        fn(...args);
      } catch (err) {
        queueMicrotask(() => {
          throw err;
        });
      }
    }
  }

  protected removeAllListeners(): void {
    this.listeners = {};
  }
}
