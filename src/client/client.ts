/**
 * HeraldClient: one logical connection to a herald server, kept up across drops.
 *
 * - Commands (`publish`, `history`, `presence`) made before the connection is up wait in a queue
 *   and are sent once connected and the subscriptions are answered (so a subscription made before
 *   a publish sees it); each one's `timeout` counts from the call.
 * - On every (re)connect each subscription is sent again with `since` = its position, so the app
 *   sees every event once, in order; `recovered: false` is surfaced when that was impossible.
 * - A command already sent when the connection drops is rejected with `disconnected`. Publishes
 *   are never retried by the client: the event may or may not have been published, and only the
 *   app knows whether sending it twice is harmless. A publish still queued (never sent) is sent
 *   after the reconnect as usual.
 * - Reconnects use exponential backoff with jitter. The server's `disconnect` push with
 *   `reconnect: false`, or a close code that says so (protocol/errors.ts `shouldReconnect`),
 *   closes the client for good (`state` = 'closed').
 */
import { channelProblem, type HistoryResult, type Position, type PublishResult } from '../protocol/index.js';
import { backoffDelay, resolveReconnect, type ReconnectOptions } from './backoff.js';
import { Emitter } from './emitter.js';
import { HeraldClientError } from './errors.js';
import { Subscription, type SubscribeOptions, type SubscriptionHost } from './subscription.js';
import type { CloseInfo, Done, Op, Ops, PresenceResult, Transport, TransportContext, TransportHandlers, TransportName, WebSocketConstructor } from './transport.js';
import { LongPollTransport } from './longpoll.js';
import { SseTransport } from './sse.js';
import { WebSocketTransport } from './websocket.js';

export type ClientState = 'disconnected' | 'connecting' | 'connected' | 'closed';

export interface HeraldClientOptions {
  /**
   * The server: `http(s)://host:port` or `ws(s)://host:port` (a path prefix is kept; `/ws` is
   * appended for the WebSocket). Default in a browser: the page's origin.
   */
  url?: string;
  /** A token (JWT), or a function that returns one: called before every (re)connect, so it can refresh. */
  token?: string | (() => string | Promise<string>);
  /** The WebSocket constructor. Default: the global one (browsers). Node 20 has none: pass `ws`'s. */
  WebSocket?: WebSocketConstructor;
  /**
   * Transports to try, in order; a transport that fails before it ever worked gives way to the
   * next. Default `['websocket']`. `'sse'` and `'longpoll'` publish and read history over `/api/*`.
   */
  transports?: TransportName[];
  /** Backoff between reconnects, or `false` to never reconnect automatically. */
  reconnect?: Partial<ReconnectOptions> | false;
  /** ms to wait for a command's answer (and for a connection to open). Default 10,000. */
  timeout?: number;
  /** Largest command frame the client sends, in bytes (the server's limit). Default 65,536. */
  maxMessageBytes?: number;
}

export interface ConnectedInfo {
  /** The server's id for this connection (WebSocket only). */
  client: string | undefined;
  transport: TransportName;
}

export interface DisconnectedInfo {
  code: number;
  reason: string;
  reconnect: boolean;
}

export interface ClientEvents {
  state: [state: ClientState, previous: ClientState];
  connected: [info: ConnectedInfo];
  /** An open connection ended; `reconnect` says whether the client will come back. */
  disconnected: [info: DisconnectedInfo];
  /** Failures that are not a command's answer: a failed connection attempt, a bad frame. */
  error: [error: HeraldClientError];
}

export interface HistoryOptions {
  limit?: number;
  since?: Position;
}

interface Queued {
  op: Op;
  args: Ops[Op]['args'];
  deadline: number;
  timer: ReturnType<typeof setTimeout>;
  done: Done<unknown>;
}

const IMPLEMENTED: readonly TransportName[] = ['websocket', 'sse', 'longpoll'];

/** Codes after which a failed subscribe is tried again (after a backoff) instead of ending it. */
const TRANSIENT = new Set(['unavailable', 'internal', 'rate_limited']);

export class HeraldClient extends Emitter<ClientEvents> implements SubscriptionHost {
  readonly url: string;
  private readonly token: HeraldClientOptions['token'];
  private readonly reconnectOptions: Readonly<ReconnectOptions> | false;
  private readonly timeout: number;
  private readonly transports: readonly TransportName[];
  private readonly WebSocketCtor: WebSocketConstructor | undefined;
  private readonly maxMessageBytes: number;

  private _state: ClientState = 'disconnected';
  private transport: Transport | undefined;
  private transportIndex = 0;
  /** Bumped for every connection attempt and on close: callbacks of older ones are ignored. */
  private generation = 0;
  private attempt = 0;
  private reconnectTimer: ReturnType<typeof setTimeout> | undefined;
  private readonly retryTimers = new Set<ReturnType<typeof setTimeout>>();
  /** Transient subscribe failures in a row, per subscription (their retry backs off too). */
  private readonly subscribeAttempts = new WeakMap<Subscription, number>();
  private _clientId: string | undefined;
  private readonly subs = new Map<string, Subscription>();
  /**
   * Channels with an `unsubscribe` on the wire, and what waits for its answer: the server runs
   * commands concurrently, so a new subscribe to the channel is sent only after it.
   */
  private readonly unsubscribing = new Map<string, (() => void)[]>();
  private outbox: Queued[] = [];
  /** True from connect until the subscribes sent with it are answered: commands wait in the outbox meanwhile. */
  private holding = false;
  private waiters: { resolve: () => void; reject: (e: HeraldClientError) => void }[] = [];

  constructor(options: HeraldClientOptions = {}) {
    super();
    const url = options.url ?? (globalThis as { location?: { origin?: string } }).location?.origin;
    if (!url) throw new TypeError('HeraldClient: `url` is required outside a browser');
    this.url = url;
    this.token = options.token;
    this.reconnectOptions = options.reconnect === false ? false : resolveReconnect(options.reconnect);
    this.timeout = options.timeout ?? 10_000;
    if (!(this.timeout > 0)) throw new TypeError('HeraldClient: `timeout` must be > 0');
    this.maxMessageBytes = options.maxMessageBytes ?? 65_536;
    this.WebSocketCtor = options.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
    const wanted = options.transports ?? ['websocket'];
    for (const t of wanted) if (!IMPLEMENTED.includes(t)) throw new TypeError(`HeraldClient: transport ${JSON.stringify(t)} is not available (have: ${IMPLEMENTED.join(', ')})`);
    if (wanted.length === 0) throw new TypeError('HeraldClient: `transports` must not be empty');
    this.transports = [...wanted];
  }

  get state(): ClientState {
    return this._state;
  }

  /** The server's id for the current connection (undefined while not connected). */
  get clientId(): string | undefined {
    return this._clientId;
  }

  /** The transport in use (or being tried). */
  get transportName(): TransportName {
    return this.transports[this.transportIndex]!;
  }

  /**
   * Starts connecting (immediately, even during a backoff wait). Resolves once connected; rejects
   * only if the client is closed before that (by `close()`, or by the server with reconnect: false).
   */
  connect(): Promise<void> {
    if (this._state === 'connected') return Promise.resolve();
    const ready = new Promise<void>((resolve, reject) => this.waiters.push({ resolve, reject }));
    if (this._state !== 'connecting') this.dial();
    return ready;
  }

  /** Closes the connection for good: pending commands are rejected with `closed`, subscriptions end. */
  close(): void {
    if (this._state === 'closed') return;
    this.shutdown('client closed', new HeraldClientError('closed', 'the client was closed'), false);
  }

  /** Subscribes to `channel` (sent when connected). Throws `bad_request` for a bad name or a second subscription to it. */
  subscribe(channel: string, options: SubscribeOptions = {}): Subscription {
    const problem = channelProblem(channel);
    if (problem) throw new HeraldClientError('bad_request', problem);
    if (this.subs.has(channel)) throw new HeraldClientError('bad_request', `already subscribed to ${JSON.stringify(channel)}`);
    const sub = new Subscription(this, channel, options);
    this.subs.set(channel, sub);
    if (this._state === 'connected') this.sendSubscribe(sub);
    return sub;
  }

  /** The live subscription to `channel`, if any. */
  subscription(channel: string): Subscription | undefined {
    return this.subs.get(channel);
  }

  /** @internal Called by `Subscription.unsubscribe()`. */
  unsubscribe(sub: Subscription): void {
    if (this.subs.get(sub.channel) !== sub) return;
    this.subs.delete(sub.channel);
    const t = this.transport;
    if (this._state === 'connected' && t) {
      const channel = sub.channel;
      const waiting: (() => void)[] = [];
      this.unsubscribing.set(channel, waiting);
      t.request('unsubscribe', { channel }, this.timeout, () => {
        if (this.unsubscribing.get(channel) === waiting) this.unsubscribing.delete(channel);
        for (const fn of waiting) fn();
      });
    }
    sub._end('unsubscribed by the client');
  }

  /** Publishes `data` (any JSON value, null allowed). Rejects with a HeraldClientError (the server's code). */
  publish(channel: string, data: unknown): Promise<PublishResult> {
    if (data === undefined) return Promise.reject(new HeraldClientError('bad_request', '"data" is required (null is allowed)'));
    return this.call('publish', { channel, data });
  }

  /**
   * Without `since`: the last `limit` events; with it, the first `limit` after it (`recovered`
   * false when that position is no longer in history). Always in offset order.
   */
  history(channel: string, options: HistoryOptions = {}): Promise<HistoryResult> {
    const args: Ops['history']['args'] = { channel };
    if (options.limit !== undefined) args.limit = options.limit;
    if (options.since) args.since = options.since;
    return this.call('history', args);
  }

  presence(channel: string): Promise<PresenceResult> {
    return this.call('presence', { channel });
  }

  // ---- commands ------------------------------------------------------------------------------

  private call<K extends Op>(op: K, args: Ops[K]['args']): Promise<Ops[K]['result']> {
    return new Promise((resolve, reject) => {
      const problem = 'channel' in args ? channelProblem((args as { channel: unknown }).channel) : null;
      if (problem) return reject(new HeraldClientError('bad_request', problem));
      if (this._state === 'closed') return reject(new HeraldClientError('closed', 'the client is closed'));
      const done: Done<Ops[K]['result']> = (out) => (out.ok ? resolve(out.result) : reject(out.error));
      if (this._state === 'connected' && this.transport && !this.holding) {
        this.transport.request(op, args, this.timeout, done);
        return;
      }
      const item: Queued = {
        op,
        args,
        deadline: Date.now() + this.timeout,
        done: done as Done<unknown>,
        timer: setTimeout(() => {
          this.outbox = this.outbox.filter((q) => q !== item);
          done({ ok: false, error: new HeraldClientError('timeout', `${op} was not sent: not connected within ${this.timeout} ms`) });
        }, this.timeout),
      };
      this.outbox.push(item);
    });
  }

  private flushOutbox(t: Transport): void {
    const items = this.outbox;
    this.outbox = [];
    const now = Date.now();
    for (const q of items) {
      clearTimeout(q.timer);
      t.request(q.op, q.args, Math.max(1, q.deadline - now), q.done);
    }
  }

  // ---- subscriptions -------------------------------------------------------------------------

  /** Sends `sub`'s subscribe with `since` = its position; `settled` runs once it is answered (either way). */
  private sendSubscribe(sub: Subscription, settled?: () => void): void {
    const t = this.transport;
    if (!t) return;
    const gen = this.generation;
    sub._subscribing();
    const waiting = this.unsubscribing.get(sub.channel);
    if (waiting) {
      waiting.push(() => {
        if (gen === this.generation && this.subs.get(sub.channel) === sub) this.sendSubscribe(sub, settled);
      });
      return;
    }
    const since = sub.position;
    t.request('subscribe', since ? { channel: sub.channel, since } : { channel: sub.channel }, this.timeout, (out) => {
      if (gen === this.generation && this.subs.get(sub.channel) === sub) {
        if (out.ok) {
          this.subscribeAttempts.delete(sub);
          sub._subscribed(out.result, since);
        } else this.subscribeFailed(sub, out.error);
      }
      settled?.();
    });
  }

  /** A live event skipped offsets: unsubscribe, then subscribe again from the position. */
  private resubscribe(sub: Subscription): void {
    const t = this.transport;
    if (!t) return;
    const gen = this.generation;
    sub._subscribing();
    t.request('unsubscribe', { channel: sub.channel }, this.timeout, (out) => {
      if (gen !== this.generation || this.subs.get(sub.channel) !== sub) return;
      if (!out.ok && out.error.code === 'timeout') this.drop('unsubscribe timeout');
      else if (out.ok || out.error.code !== 'disconnected') this.sendSubscribe(sub);
    });
  }

  private subscribeFailed(sub: Subscription, error: HeraldClientError): void {
    switch (error.code) {
      case 'disconnected':
      case 'closed':
        return; // sent again on the next connection
      case 'timeout':
        // The server may yet subscribe us; only a new connection gives a clean state.
        sub._error(error);
        this.drop('subscribe timeout');
        return;
    }
    if (TRANSIENT.has(error.code) && this.reconnectOptions) {
      sub._error(error);
      const attempt = this.subscribeAttempts.get(sub) ?? 0;
      this.subscribeAttempts.set(sub, attempt + 1);
      const gen = this.generation;
      const timer = setTimeout(() => {
        this.retryTimers.delete(timer);
        if (gen === this.generation && this.subs.get(sub.channel) === sub) this.sendSubscribe(sub);
      }, backoffDelay(attempt, this.reconnectOptions));
      this.retryTimers.add(timer);
      return;
    }
    this.subs.delete(sub.channel);
    sub._end(`subscribe refused: ${error.code}`, error);
  }

  // ---- connection ----------------------------------------------------------------------------

  private setState(state: ClientState): void {
    const previous = this._state;
    if (previous === state) return;
    this._state = state;
    this.emit('state', state, previous);
  }

  private dial(): void {
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = undefined;
    const gen = ++this.generation;
    this.setState('connecting');
    if (gen !== this.generation) return; // a state listener closed us
    const token = this.token;
    if (typeof token !== 'function') {
      this.open(gen, token);
      return;
    }
    // The callback gets `timeout` ms, like a connection: a hung token service must not wedge us.
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timedOut = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no token within ${this.timeout} ms`)), this.timeout);
    });
    Promise.race([Promise.resolve().then(token), timedOut])
      .finally(() => clearTimeout(timer))
      .then(
        (value) => {
          if (gen === this.generation) this.open(gen, value);
        },
        (cause: unknown) => {
          if (gen !== this.generation) return;
          const error = new HeraldClientError('unauthorized', `the token callback failed: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
          this.closed(gen, { code: 1006, reason: error.message, reconnect: true, error }, false);
        },
      );
  }

  private open(gen: number, token: string | undefined): void {
    let opened = false;
    const live = (): boolean => gen === this.generation;
    const handlers: TransportHandlers = {
      onOpen: (info) => {
        if (!live()) return;
        opened = true;
        this.opened(info.client);
      },
      onEvent: (event) => {
        if (!live()) return;
        const sub = this.subs.get(event.channel);
        if (sub && sub._live(event) === 'gap') this.resubscribe(sub);
      },
      onPresence: (kind, channel, info) => {
        if (live()) this.subs.get(channel)?._presence(kind, info);
      },
      onUnsubscribed: (channel, reason) => {
        if (!live()) return;
        const sub = this.subs.get(channel);
        if (!sub) return;
        this.subs.delete(channel);
        sub._end(reason || 'unsubscribed by the server');
      },
      onError: (error) => {
        if (live()) this.emit('error', error);
      },
      onClose: (info) => {
        if (live()) this.closed(gen, info, opened);
      },
    };
    const ctx: TransportContext = { url: this.url, handlers, timeout: this.timeout, maxMessageBytes: this.maxMessageBytes, WebSocket: this.WebSocketCtor };
    this.transport = createTransport(this.transportName, ctx);
    this.transport.open(token);
  }

  private opened(client: string | undefined): void {
    const t = this.transport!;
    this.attempt = 0;
    this._clientId = client;
    const gen = this.generation;
    // Subscriptions first, and queued commands only once they are answered: the server runs
    // commands concurrently, and a publish queued after a subscribe must be seen by it.
    const subs = [...this.subs.values()];
    let left = subs.length;
    this.holding = left > 0;
    const release = (): void => {
      if (--left > 0 || gen !== this.generation) return;
      this.holding = false;
      this.flushOutbox(t);
    };
    for (const sub of subs) this.sendSubscribe(sub, release);
    if (!this.holding) this.flushOutbox(t);
    if (gen !== this.generation) return;
    this.setState('connected');
    if (gen !== this.generation) return;
    this.emit('connected', { client, transport: t.name });
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w.resolve();
  }

  /** Ends the current connection from our side (a wedged command) and reconnects. */
  private drop(reason: string): void {
    const t = this.transport;
    if (!t) return;
    t.close(new HeraldClientError('disconnected', `connection dropped by the client: ${reason}`));
    this.closed(this.generation, { code: 1006, reason, reconnect: true }, true);
  }

  private closed(gen: number, info: CloseInfo, wasOpen: boolean): void {
    if (gen !== this.generation) return;
    this.transport = undefined;
    this._clientId = undefined;
    this.holding = false;
    this.unsubscribing.clear();
    for (const sub of this.subs.values()) sub._subscribing();
    // A transport this page cannot run at all (no WebSocket, or its constructor throws) gives way to
    // the next one even though it would not come back by itself; with nothing else to try, the client closes.
    const fallback = !wasOpen && info.unusable === true && this.transports.length > 1;
    const reconnect = (info.reconnect || fallback) && this.reconnectOptions !== false;
    if (wasOpen) this.emit('disconnected', { code: info.code, reason: info.reason, reconnect });
    else this.emit('error', info.error ?? new HeraldClientError('unavailable', `connection failed: ${info.reason || info.code}`, { closeCode: info.code }));
    if (gen !== this.generation) return; // a listener called close() or connect()
    if (!reconnect || !this.reconnectOptions) {
      const error = info.error ?? new HeraldClientError('closed', `closed by the server (${info.code}${info.reason ? ` ${info.reason}` : ''})`, { closeCode: info.code });
      this.shutdown(info.reason || 'connection closed', error, true);
      return;
    }
    // A transport that never opened (or never worked) gives way to the next one in the list.
    if (!wasOpen || info.unusable) this.transportIndex = (this.transportIndex + 1) % this.transports.length;
    this.setState('disconnected');
    if (gen !== this.generation) return;
    const delay = backoffDelay(this.attempt++, this.reconnectOptions);
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      if (gen === this.generation) this.dial();
    }, delay);
  }

  private shutdown(reason: string, error: HeraldClientError, failSubscriptions: boolean): void {
    this.generation++;
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = undefined;
    for (const timer of this.retryTimers) clearTimeout(timer);
    this.retryTimers.clear();
    const t = this.transport;
    this.transport = undefined;
    this._clientId = undefined;
    t?.close();
    this.unsubscribing.clear();
    const outbox = this.outbox;
    this.outbox = [];
    for (const q of outbox) {
      clearTimeout(q.timer);
      q.done({ ok: false, error });
    }
    const subs = [...this.subs.values()];
    this.subs.clear();
    for (const sub of subs) sub._end(reason, failSubscriptions ? error : undefined);
    const waiters = this.waiters;
    this.waiters = [];
    this.setState('closed');
    for (const w of waiters) w.reject(error);
  }
}

function createTransport(name: TransportName, ctx: TransportContext): Transport {
  switch (name) {
    case 'websocket':
      return new WebSocketTransport(ctx);
    case 'sse':
      return new SseTransport(ctx);
    case 'longpoll':
      return new LongPollTransport(ctx);
  }
}
