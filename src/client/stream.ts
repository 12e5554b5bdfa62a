/**
 * What the SSE and long-poll transports share (SPEC §3, §4). Both hold one stream (or poll loop)
 * for the whole channel set, resumed by a cursor (protocol/cursor.ts) that carries every channel's
 * position; publish, history and presence go over the HTTP API (`/api/*`).
 *
 * Subscribing or unsubscribing restarts the stream with the new channel set (changes made in one
 * turn are batched into one restart). Per channel, the server starts a stream at a position
 * (`ready` cursor for SSE, derived from the answer for long-poll): the `since` that was asked when
 * it could be honoured, otherwise where the retained events begin. So a channel is recovered
 * exactly when its start equals its `since`, though the wire's `recovered` flag is per stream.
 *
 * Limits: `/api/*` needs the API key when the server has keys (SPEC §5), so with keys set these
 * transports can stream but not publish unless the app's token is a key. The app's token goes in
 * the `token` query parameter of streams and polls, and as `Authorization: Bearer` to `/api/*`.
 */
import { CLOSE_CODES, type HeraldEvent, type Position } from '../protocol/index.js';
import { HeraldClientError } from './errors.js';
import { fetchJson, retryable } from './http.js';
import { endpointUrl, type CloseInfo, type Done, type Op, type Ops, type Transport, type TransportContext, type TransportName } from './transport.js';

interface PendingSubscribe {
  since: Position | undefined;
  done: Done<Ops['subscribe']['result']>;
  timer: ReturnType<typeof setTimeout>;
}

/** A close that the client should not take as "the server went away for good". */
const ABNORMAL = 1006;
const TOKEN_EXPIRED = CLOSE_CODES.tokenExpired.code;

export abstract class StreamTransport implements Transport {
  abstract readonly name: TransportName;
  protected readonly ctx: TransportContext;
  protected token: string | undefined;
  protected finished = false;
  /** The stream's channels and the position each has reached (undefined: from now). */
  protected readonly positions = new Map<string, Position | undefined>();
  /** Subscribes waiting for a stream that includes their channel to start. */
  protected readonly waiting = new Map<string, PendingSubscribe>();
  /** A stream or poll was answered once: a transport that never was gives way to the next one. */
  protected worked = false;
  private restartQueued = false;
  /** Cancels HTTP API calls when the app closes the client. */
  private readonly api = new AbortController();

  constructor(ctx: TransportContext) {
    this.ctx = ctx;
  }

  /** Opens once the server answers `/healthz` (never guarded), so `connected` means reachable. */
  open(token: string | undefined): void {
    this.token = token;
    fetchJson(endpointUrl(this.ctx.url, '/healthz', 'http'), { timeoutMs: this.ctx.timeout, signal: this.api.signal }).then(
      () => {
        if (!this.finished) this.ctx.handlers.onOpen({});
      },
      (error: HeraldClientError) => this.finish({ code: ABNORMAL, reason: error.message, reconnect: true, unusable: true }),
    );
  }

  request<K extends Op>(op: K, args: Ops[K]['args'], timeoutMs: number, done: Done<Ops[K]['result']>): void {
    if (this.finished) return done({ ok: false, error: new HeraldClientError('closed', 'not connected') });
    const channel = (args as { channel?: string }).channel ?? '';
    switch (op) {
      case 'subscribe': {
        const since = (args as Ops['subscribe']['args']).since;
        const pending: PendingSubscribe = {
          since,
          done: done as Done<Ops['subscribe']['result']>,
          timer: setTimeout(() => {
            if (this.waiting.get(channel) !== pending) return;
            this.waiting.delete(channel);
            pending.done({ ok: false, error: new HeraldClientError('timeout', `the ${this.name} stream did not start within ${timeoutMs} ms`) });
          }, timeoutMs),
        };
        this.waiting.set(channel, pending);
        this.positions.set(channel, since);
        this.queueRestart();
        return;
      }
      case 'unsubscribe': {
        this.positions.delete(channel);
        this.fail(channel, new HeraldClientError('closed', 'unsubscribed'));
        this.queueRestart();
        return (done as Done<Ops['unsubscribe']['result']>)({ ok: true, result: {} });
      }
      case 'ping':
        return (done as Done<Ops['ping']['result']>)({ ok: true, result: {} });
      case 'publish': {
        const a = args as Ops['publish']['args'];
        return this.call('/api/publish', '', { method: 'POST', body: { channel: a.channel, data: a.data } }, timeoutMs, done);
      }
      case 'history': {
        const a = args as Ops['history']['args'];
        const q = new URLSearchParams({ channel: a.channel });
        if (a.limit !== undefined) q.set('limit', String(a.limit));
        if (a.since) {
          q.set('since_epoch', a.since.epoch);
          q.set('since_offset', String(a.since.offset));
        }
        return this.call('/api/history', q.toString(), {}, timeoutMs, done);
      }
      case 'presence':
        return this.call('/api/presence', new URLSearchParams({ channel }).toString(), {}, timeoutMs, done);
    }
  }

  close(error?: HeraldClientError): void {
    this.api.abort();
    this.finish(undefined, error ?? new HeraldClientError('closed', 'the client was closed'));
  }

  /** (Re)starts the stream for the current channel set; none when it is empty. */
  protected abstract restart(): void;
  /** Stops the current stream; nothing it does afterwards counts. */
  protected abstract stop(): void;

  /** The subscribes the stream about to start answers. */
  protected included(): Map<string, PendingSubscribe> {
    return new Map(this.waiting);
  }

  /** A stream started at `starts` (every channel's start position): answers the subscribes it included. */
  protected started(included: Map<string, PendingSubscribe>, starts: Map<string, Position>): void {
    this.worked = true;
    for (const [channel, start] of starts) if (this.positions.has(channel)) this.positions.set(channel, start);
    for (const [channel, p] of included) {
      if (this.waiting.get(channel) !== p) continue; // unsubscribed, or subscribed again, meanwhile
      this.waiting.delete(channel);
      clearTimeout(p.timer);
      const start = starts.get(channel);
      if (!start) {
        p.done({ ok: false, error: new HeraldClientError('internal', `the ${this.name} stream did not include ${JSON.stringify(channel)}`) });
        continue;
      }
      const recovered = p.since ? p.since.epoch === start.epoch && p.since.offset === start.offset : true;
      p.done({ ok: true, result: { channel, epoch: start.epoch, offset: start.offset, recovered, events: [] } });
    }
  }

  protected event(event: HeraldEvent): void {
    if (!this.positions.has(event.channel)) return; // dropped from the set since
    this.positions.set(event.channel, { epoch: event.epoch, offset: event.offset });
    this.ctx.handlers.onEvent(event);
  }

  /** The current cursor: every channel with a position (the others start from now). */
  protected cursor(): Map<string, Position> {
    const cursor = new Map<string, Position>();
    for (const [channel, p] of this.positions) if (p) cursor.set(channel, p);
    return cursor;
  }

  /**
   * A stream request failed. A refusal (forbidden, limit_exceeded, …) of a request that added
   * channels refuses those subscribes and goes on with the rest; otherwise the transport ends.
   */
  protected failed(included: Map<string, PendingSubscribe>, error: HeraldClientError): void {
    if (this.finished) return;
    const code = error.code;
    const refusal = !retryable(code) && code !== 'unauthorized' && code !== 'not_found' && code !== 'closed';
    const added = [...included].filter(([channel, p]) => this.waiting.get(channel) === p);
    if (refusal && added.length > 0) {
      for (const [channel] of added) {
        this.positions.delete(channel);
        this.fail(channel, error);
      }
      this.queueRestart();
      return;
    }
    const unusable = !this.worked || code === 'not_found';
    // A token the server took before and refuses now has expired: reconnect, which asks the app's
    // token callback for a new one (4003, as the WebSocket and SSE servers say it). A token refused
    // on a fresh transport ends the client.
    if (code === 'unauthorized' && this.worked) {
      this.finish({ code: TOKEN_EXPIRED, reason: error.message, reconnect: true, error, unusable: false });
      return;
    }
    this.finish({ code: code === 'unauthorized' ? 4001 : ABNORMAL, reason: error.message, reconnect: code !== 'unauthorized' && !refusal, error, unusable });
  }

  /** Ends the transport once: stops the stream, fails waiting subscribes, reports `info` (none after close()). */
  protected finish(info: CloseInfo | undefined, pendingError?: HeraldClientError): void {
    if (this.finished) return;
    this.finished = true;
    this.stop();
    const error = pendingError ?? new HeraldClientError('disconnected', `the ${this.name} stream ended${info ? `: ${info.reason}` : ''}`);
    for (const channel of [...this.waiting.keys()]) this.fail(channel, error);
    if (info) this.ctx.handlers.onClose(info);
  }

  private fail(channel: string, error: HeraldClientError): void {
    const p = this.waiting.get(channel);
    if (!p) return;
    this.waiting.delete(channel);
    clearTimeout(p.timer);
    p.done({ ok: false, error });
  }

  private queueRestart(): void {
    if (this.restartQueued) return;
    this.restartQueued = true;
    queueMicrotask(() => {
      this.restartQueued = false;
      if (!this.finished) this.restart();
    });
  }

  private call<T>(path: string, query: string, o: { method?: 'POST'; body?: unknown }, timeoutMs: number, done: Done<T>): void {
    fetchJson(endpointUrl(this.ctx.url, path, 'http') + (query ? `?${query}` : ''), { ...o, token: this.token, timeoutMs, signal: this.api.signal }).then(
      (result) => done({ ok: true, result: result as T }),
      (error: HeraldClientError) => done({ ok: false, error }),
    );
  }
}
