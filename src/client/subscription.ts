/**
 * A subscription to one channel: resume position, dedup and gap detection, events to listeners,
 * an `onEvent` callback and async iterators. The client (re)subscribes it on every connection
 * with `since` = `position`, so an app sees each event once, in offset order.
 */
import type { ClientInfo, HeraldEvent, Position, SubscribeResult } from '../protocol/index.js';
import { Emitter } from './emitter.js';
import { HeraldClientError } from './errors.js';

/** Default capacity of each async iterator's queue. */
export const DEFAULT_BUFFER_SIZE = 1024;

export interface SubscribedInfo {
  channel: string;
  /** The channel's epoch and latest offset when the server answered. */
  epoch: string;
  offset: number;
  /**
   * False when a position was given (`since`, or the one reached before a reconnect) and the
   * server could not resume from it: events were lost (evicted, expired, or a new epoch). The
   * retained events of the current epoch follow; the app decides what to do about the hole.
   */
  recovered: boolean;
  /** Whether this subscribe asked to resume from a position. */
  resumed: boolean;
}

export interface SubscribeOptions {
  /** Resume after this position (e.g. one saved from `sub.position` in an earlier session). */
  since?: Position;
  /** Called for every event, before the `event` listeners. */
  onEvent?: (event: HeraldEvent) => void;
  /** Called after every subscribe that resumed from a position (see `SubscribedInfo.recovered`). */
  onRecovered?: (info: SubscribedInfo) => void;
  /** Capacity of each async iterator's queue (default 1024); see `Subscription.events()`. */
  bufferSize?: number;
}

export interface UnsubscribedInfo {
  channel: string;
  reason: string;
}

export interface SubscriptionEvents {
  event: [event: HeraldEvent];
  subscribed: [info: SubscribedInfo];
  /** A failure: with `unsubscribed` after it when the subscription is over. */
  error: [error: HeraldClientError];
  unsubscribed: [info: UnsubscribedInfo];
  join: [info: ClientInfo];
  leave: [info: ClientInfo];
}

export type SubscriptionState = 'subscribing' | 'subscribed' | 'unsubscribed';

/** What a Subscription needs from its client. */
export interface SubscriptionHost {
  unsubscribe(sub: Subscription): void;
}

export class Subscription extends Emitter<SubscriptionEvents> implements AsyncIterable<HeraldEvent> {
  readonly channel: string;
  private readonly host: SubscriptionHost;
  private readonly options: SubscribeOptions;
  private _state: SubscriptionState = 'subscribing';
  private _position: Position | undefined;
  private readonly queues = new Set<EventQueue>();

  /** @internal Created by `HeraldClient.subscribe()`. */
  constructor(host: SubscriptionHost, channel: string, options: SubscribeOptions = {}) {
    super();
    this.host = host;
    this.channel = channel;
    this.options = options;
    if (options.since) this._position = { epoch: options.since.epoch, offset: options.since.offset };
  }

  get state(): SubscriptionState {
    return this._state;
  }

  /**
   * How far this subscription has got: the last event seen, or the channel's position when the
   * server answered the subscribe (so a quiet channel still resumes without loss). Save it to
   * resume in a later session with `subscribe(channel, { since })`.
   */
  get position(): Position | undefined {
    return this._position && { epoch: this._position.epoch, offset: this._position.offset };
  }

  unsubscribe(): void {
    this.host.unsubscribe(this);
  }

  /**
   * An async iterator over the events from now on. Each iterator has its own bounded queue
   * (`bufferSize`, default `SubscribeOptions.bufferSize` or 1024). Overflow policy: nothing is
   * dropped silently. When the consumer is that far behind, the iterator stops taking events,
   * yields what it has queued, then throws a HeraldClientError `overflow` whose message names the
   * last position it yielded: catch up with `client.history(channel, { since })`, or iterate again.
   * The iterator ends (done) when the subscription is unsubscribed, and throws the error when the
   * subscription failed (e.g. `forbidden`, or the server closed the client for good).
   */
  events(options: { bufferSize?: number } = {}): AsyncIterableIterator<HeraldEvent> {
    const capacity = options.bufferSize ?? this.options.bufferSize ?? DEFAULT_BUFFER_SIZE;
    const queue = new EventQueue(this.channel, capacity, (q) => this.queues.delete(q));
    if (this._state === 'unsubscribed') queue.end();
    else this.queues.add(queue);
    return queue;
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<HeraldEvent> {
    return this.events();
  }

  // ---- driven by the client ------------------------------------------------------------------

  /** @internal A (re)subscribe is on its way: live events are dropped until its answer. */
  _subscribing(): void {
    if (this._state !== 'unsubscribed') this._state = 'subscribing';
  }

  /** @internal The server's subscribe answer, for a subscribe sent with `since`. */
  _subscribed(result: SubscribeResult, since: Position | undefined): void {
    if (this._state === 'unsubscribed') return;
    this._state = 'subscribed';
    const recovered = since ? result.recovered !== false : true;
    // Unrecovered: what the server sends is the current epoch's retained history, not a
    // continuation of what we saw, so nothing in it counts as a duplicate.
    if (!recovered) this._position = undefined;
    const info: SubscribedInfo = { channel: this.channel, epoch: result.epoch, offset: result.offset, recovered, resumed: since !== undefined };
    this.emit('subscribed', info);
    if (since) this.call(this.options.onRecovered, info);
    for (const event of Array.isArray(result.events) ? result.events : []) {
      if (this._state !== 'subscribed') return;
      if (!this.isDuplicate(event)) this.deliver(event);
    }
    const p = this._position;
    if (!p || p.epoch !== result.epoch || p.offset < result.offset) this._position = { epoch: result.epoch, offset: result.offset };
  }

  /**
   * @internal A live event. Returns 'gap' when it does not follow the position (the client then
   * resubscribes from the position); duplicates and events before the subscribe answer are dropped.
   */
  _live(event: HeraldEvent): 'ok' | 'gap' {
    if (this._state !== 'subscribed') return 'ok';
    const p = this._position;
    if (p) {
      if (event.epoch === p.epoch) {
        if (event.offset <= p.offset) return 'ok';
        if (event.offset > p.offset + 1) return 'gap';
      } else if (event.offset !== 1) return 'gap'; // a new epoch, joined in the middle
    }
    this.deliver(event);
    return 'ok';
  }

  /** @internal A failure that does not end the subscription (it is retried). */
  _error(error: HeraldClientError): void {
    this.emit('error', error);
  }

  /** @internal The subscription is over: `error` (if any), then `unsubscribed`; iterators finish. */
  _end(reason: string, error?: HeraldClientError): void {
    if (this._state === 'unsubscribed') return;
    this._state = 'unsubscribed';
    for (const q of this.queues) q.end(error);
    this.queues.clear();
    if (error) this.emit('error', error);
    this.emit('unsubscribed', { channel: this.channel, reason });
  }

  /** @internal */
  _presence(kind: 'join' | 'leave', info: ClientInfo): void {
    if (this._state === 'subscribed') this.emit(kind, info);
  }

  private isDuplicate(event: HeraldEvent): boolean {
    const p = this._position;
    return p !== undefined && event.epoch === p.epoch && event.offset <= p.offset;
  }

  private deliver(event: HeraldEvent): void {
    this._position = { epoch: event.epoch, offset: event.offset };
    this.call(this.options.onEvent, event);
    this.emit('event', event);
    for (const q of this.queues) q.push(event);
  }

  private call<T>(fn: ((arg: T) => void) | undefined, arg: T): void {
    if (!fn) return;
    try {
      fn(arg);
    } catch (err) {
      queueMicrotask(() => {
        throw err;
      });
    }
  }
}

/** One async iterator's bounded queue (see `Subscription.events()` for the overflow policy). */
class EventQueue implements AsyncIterableIterator<HeraldEvent> {
  private buffer: HeraldEvent[] = [];
  private head = 0;
  private waiter: { resolve: (r: IteratorResult<HeraldEvent>) => void; reject: (e: unknown) => void } | undefined;
  private ended = false;
  private failure: HeraldClientError | undefined;
  private readonly channel: string;
  private readonly capacity: number;
  private readonly detach: (q: EventQueue) => void;

  constructor(channel: string, capacity: number, detach: (q: EventQueue) => void) {
    this.channel = channel;
    this.capacity = Math.max(1, capacity);
    this.detach = detach;
  }

  push(event: HeraldEvent): void {
    if (this.ended) return;
    if (this.waiter) {
      const w = this.waiter;
      this.waiter = undefined;
      w.resolve({ value: event, done: false });
      return;
    }
    if (this.buffer.length - this.head >= this.capacity) {
      const last = this.buffer[this.buffer.length - 1]!;
      this.end(
        new HeraldClientError(
          'overflow',
          `async iterator on ${JSON.stringify(this.channel)} fell ${this.capacity} events behind; events after {epoch: ${JSON.stringify(last.epoch)}, offset: ${last.offset}} were not queued`,
        ),
      );
      return;
    }
    this.buffer.push(event);
  }

  end(error?: HeraldClientError): void {
    if (this.ended) return;
    this.ended = true;
    this.failure = error;
    this.detach(this);
    if (this.waiter) {
      const w = this.waiter;
      this.waiter = undefined;
      if (error) {
        this.failure = undefined;
        w.reject(error);
      } else w.resolve({ value: undefined, done: true });
    }
  }

  next(): Promise<IteratorResult<HeraldEvent>> {
    if (this.head < this.buffer.length) {
      const value = this.buffer[this.head]!;
      this.buffer[this.head++] = undefined as unknown as HeraldEvent;
      if (this.head > 64 && this.head * 2 >= this.buffer.length) {
        this.buffer = this.buffer.slice(this.head);
        this.head = 0;
      }
      return Promise.resolve({ value, done: false });
    }
    if (this.ended) {
      const error = this.failure;
      this.failure = undefined; // thrown once; then the iterator is simply done
      return error ? Promise.reject(error) : Promise.resolve({ value: undefined, done: true });
    }
    return new Promise((resolve, reject) => {
      this.waiter = { resolve, reject };
    });
  }

  return(): Promise<IteratorResult<HeraldEvent>> {
    this.buffer = [];
    this.head = 0;
    this.failure = undefined;
    this.end();
    return Promise.resolve({ value: undefined, done: true });
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<HeraldEvent> {
    return this;
  }
}
