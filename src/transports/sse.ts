/**
 * Server-Sent Events (SPEC §3): `GET /sse?channel=a&channel=b[&token=…][&since=<cursor>]`.
 *
 * Wire format, per stream:
 *   retry: 3000
 *
 *   id: <cursor>
 *   event: ready
 *   data: {"cursor":"<cursor>","recovered":true}
 *
 *   id: <cursor>            ← one per event: the position of every channel after this event
 *   event: event
 *   data: <event JSON>
 *
 *   : heartbeat             ← every `heartbeatMs`
 *
 * Resume: `Last-Event-ID` (sent by EventSource on reconnect) or `since=<cursor>` (the header wins,
 * it is the newer of the two). The `ready` cursor is the position *before* the missed events that
 * follow it, so a stream dropped right after `ready` loses nothing.
 *
 * Per-event cost: the `event: event\ndata: …\n\n` part is encoded once per publish (shared by every
 * stream, `SSE_EVENT`); only the `id:` line is per stream, built by `CursorBuilder`, which re-encodes
 * only the changed channel's piece of the cursor (see http-stream/cursor.ts). Events that become
 * ready in the same event-loop turn leave in one socket write (one shared scheduled flush for every
 * stream; written straight to the socket as one framed chunk, see http-stream/body.ts). A stream whose unsent data exceeds `maxBufferedBytes` when more is to be written is
 * ended after what is already queued (its socket destroyed `endGraceMs` later if still open); every
 * event it received carries a correct id, so the client resumes with Last-Event-ID without loss or
 * duplicate. The same holds for a resume whose backlog (missed events) exceeds `maxBufferedBytes`:
 * it gets at least that much, then the end, and picks up the rest on its next reconnect.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { decodeCursor, HeraldError, toHeraldError, type Cursor, type Position, type SubscribeResult } from '../protocol/index.js';
import { defineEncoding, OutgoingEvent, silentLogger, type ClientContext, type Hub, type Logger, type Session, type Subscriber } from '../core/index.js';
import { sendError } from './http.js';
import { CursorBuilder, startPosition } from './http-stream/cursor.js';
import { chunkBytes, writeBody, writeBodyShared } from './http-stream/body.js';
import { FlushScheduler, type Flushable } from './http-stream/flush.js';
import { admitStreamRequest, isWindowMs, isOriginList, isPositiveInt, resolveOptions } from './http-stream/request.js';
import { TransportLimits } from './limits.js';

export interface SseOptions {
  /** Origins allowed for CORS (SPEC §5 `--allowed-origins`). Unset: same-origin browsers and non-browser clients. */
  allowedOrigins: readonly string[] | undefined;
  /** Milliseconds between heartbeat comments. Default 15,000. */
  heartbeatMs: number;
  /** The `retry:` sent first, in milliseconds. Default 3,000. */
  retryMs: number;
  /** Channels one stream may hold. Default: the hub's `limits.maxChannelsPerClient` (128). */
  maxChannels: number | undefined;
  /** Unsent bytes after which a slow stream is ended (the client resumes). Default 1 MiB. */
  maxBufferedBytes: number;
  /** Milliseconds an ended slow stream may take to drain before its socket is destroyed. Default 5,000. */
  endGraceMs: number;
  /**
   * Write coalescing: milliseconds a stream holds its first ready event so that those that follow
   * leave in the same write. 0 (default) = the events of one event-loop turn. At most 1,000.
   */
  coalesceMs: number;
  /** Rate and connection limits per client address (transports/limits.ts); the server shares one instance. Default: a new one with the defaults. */
  limits: TransportLimits | undefined;
  logger: Logger;
}

export const SSE_DEFAULTS: Readonly<SseOptions> = Object.freeze({
  allowedOrigins: undefined,
  heartbeatMs: 15_000,
  retryMs: 3_000,
  maxChannels: undefined,
  maxBufferedBytes: 1024 * 1024,
  endGraceMs: 5_000,
  coalesceMs: 0,
  limits: undefined,
  logger: silentLogger,
});

/** The shared part of an event on the SSE wire: encoded once per publish, written to every stream. */
export const SSE_EVENT = defineEncoding((out) => 'event: event\ndata: ' + out.json + '\n\n');

/**
 * An event with its `id:` line for a stream of its channel alone (the common case): the cursor
 * then holds just that event's position, the same for every such stream, so the whole frame is
 * built once per publish — and its bytes too — instead of a cursor encode per stream.
 */
const SSE_SINGLE = defineEncoding((out) => 'id: ' + new CursorBuilder([[out.event.channel, out.event]]).toString() + '\n' + out.encoded(SSE_EVENT));
const SSE_SINGLE_BYTES = defineEncoding((out) => Buffer.from(out.encoded(SSE_SINGLE), 'utf8'));
/** The same frame as one HTTP/1.1 chunk, for the socket of a chunked response (http-stream/body.ts). */
const SSE_SINGLE_CHUNK = defineEncoding((out) => chunkBytes(out.encoded(SSE_SINGLE_BYTES)));

const HEARTBEAT = ': heartbeat\n\n';

// No explicit `connection: keep-alive`: node decides it from the request. Forcing it on a request
// that said `Connection: close` left the socket open after the stream ended, and the next request
// a client sent on it got node's bare 400.
const SSE_HEADERS = {
  'content-type': 'text/event-stream; charset=utf-8',
  'cache-control': 'no-cache, no-transform',
  'x-accel-buffering': 'no',
};

const kStream = Symbol('herald.sseStream');
type TaggedResponse = ServerResponse & { [kStream]?: SseStream };

function onResponseClose(this: TaggedResponse): void {
  this[kStream]?.closed();
}

function onResponseError(this: TaggedResponse): void {
  // A write after the peer went away: 'close' follows and cleans up.
}

function destroyResponse(res: ServerResponse): void {
  if (!res.destroyed) res.destroy();
}

function heartbeatAll(transport: SseTransport): void {
  transport.heartbeat();
}

type State = 'starting' | 'live' | 'closed';

class SseStream implements Subscriber, Session, Flushable {
  readonly client: ClientContext;
  private state: State = 'starting';
  private readonly transport: SseTransport;
  private readonly res: TaggedResponse;
  private readonly channels: string[];
  /** Positions from the request's cursor; undefined when none was given or it was unparsable. */
  private readonly cursorIn: Cursor | undefined;
  private readonly cursorGiven: boolean;
  private recovered = true;
  private readonly starts = new Map<string, Position>();
  /** Missed and live events that arrived before `ready` was written, in arrival order. */
  private queue: OutgoingEvent[] = [];
  private queuedBytes = 0;
  private overflowed = false;
  private missed = 0;
  private builder: CursorBuilder | undefined;
  /** Whether the stream has one channel: its live events use the shared `SSE_SINGLE` frames. */
  private readonly single: boolean;
  private pending = '';
  /** The only event pending (single-channel streams): written as its shared bytes. */
  private pendingOne: OutgoingEvent | undefined;
  private readonly onReady: (result: SubscribeResult) => void;

  constructor(transport: SseTransport, res: ServerResponse, client: ClientContext, channels: string[], cursorIn: Cursor | undefined, cursorGiven: boolean) {
    this.transport = transport;
    this.res = res as TaggedResponse;
    this.client = client;
    this.channels = channels;
    this.single = channels.length === 1;
    this.cursorIn = cursorIn;
    this.cursorGiven = cursorGiven;
    this.onReady = (result) => this.subscribed(result);
    this.res[kStream] = this;
    this.res.on('close', onResponseClose);
    this.res.on('error', onResponseError);
  }

  async start(): Promise<void> {
    const hub = this.transport.hub;
    const settled = await Promise.allSettled(this.channels.map((channel) => hub.subscribe(this, channel, this.cursorIn?.get(channel), this.onReady)));
    if (this.state === 'closed') {
      // The client left while we subscribed: a subscribe that completed after the cleanup must not linger.
      void hub.unsubscribeAll(this).catch(() => {});
      return;
    }
    const failed = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
    if (failed) {
      this.close();
      sendError(this.res, failed.reason);
      return;
    }
    this.goLive();
  }

  /** `onReady` of each channel's subscribe: synchronous, before any live event of that channel. */
  private subscribed(result: SubscribeResult): void {
    if (this.state !== 'starting') return;
    const since = this.cursorIn?.get(result.channel);
    if (this.cursorGiven && !(since && result.recovered)) this.recovered = false;
    this.starts.set(result.channel, startPosition(result, since));
    for (const event of result.events) {
      if (this.overflowed) break;
      this.enqueue(OutgoingEvent.of(event));
      this.missed++;
    }
  }

  private enqueue(out: OutgoingEvent): void {
    this.queue.push(out);
    this.queuedBytes += out.json.length;
    if (this.queuedBytes > this.transport.options.maxBufferedBytes) this.overflowed = true;
  }

  private goLive(): void {
    const builder = new CursorBuilder(this.channels.map((channel) => [channel, this.starts.get(channel)!] as const));
    this.builder = builder;
    const ready = builder.toString();
    let out = 'retry: ' + this.transport.options.retryMs + '\n\nid: ' + ready + '\nevent: ready\ndata: {"cursor":"' + ready + '","recovered":' + this.recovered + '}\n\n';
    for (const event of this.queue) {
      builder.advance(event.event);
      out += 'id: ' + builder.toString() + '\n' + event.encoded(SSE_EVENT);
    }
    this.queue = [];
    this.state = 'live';
    this.transport.hub.register(this);
    if (this.missed > 0) this.transport.hub.countDelivered(this.missed);
    this.res.writeHead(200, SSE_HEADERS);
    this.res.write(out);
    if (this.overflowed) this.endSlow();
  }

  deliver(out: OutgoingEvent): void {
    if (this.state === 'live') {
      if (this.single) {
        // The builder is not needed again: every later id comes from the event itself.
        if (this.pending === '' && this.pendingOne === undefined) this.pendingOne = out;
        else {
          if (this.pendingOne) this.pending = this.pendingOne.encoded(SSE_SINGLE);
          this.pendingOne = undefined;
          this.pending += out.encoded(SSE_SINGLE);
        }
      } else {
        const builder = this.builder!;
        builder.advance(out.event);
        this.pending += 'id: ' + builder.toString() + '\n' + out.encoded(SSE_EVENT);
      }
      if (this.pending.length > this.transport.options.maxBufferedBytes) this.flush();
      else this.transport.flusher.schedule(this);
    } else if (this.state === 'starting' && !this.overflowed) {
      this.enqueue(out);
    }
  }

  flush(): void {
    if (this.state !== 'live') return;
    const one = this.pendingOne;
    if (one === undefined && this.pending === '') return;
    if (this.isSlow()) return;
    if (one !== undefined) {
      this.pendingOne = undefined;
      writeBodyShared(this.res, one.encoded(SSE_SINGLE_BYTES), one.encoded(SSE_SINGLE_CHUNK));
      return;
    }
    const chunk = this.pending;
    this.pending = '';
    writeBody(this.res, chunk);
  }

  heartbeat(): void {
    if (this.state !== 'live' || this.isSlow()) return;
    writeBody(this.res, HEARTBEAT);
  }

  /**
   * Slow consumer: what was written before is still unsent beyond the limit. Checked before a
   * write, so one large burst to a fast reader passes; what accumulates is bounded by about twice
   * the limit (the unsent data plus at most one flush's worth of pending events).
   */
  private isSlow(): boolean {
    if (this.res.writableLength <= this.transport.options.maxBufferedBytes) return false;
    this.endSlow();
    return true;
  }

  /**
   * Stop feeding the stream, end it after what is already written, destroy the socket if it has not
   * drained in time. Every event written carries a correct id: the client resumes from the last one
   * it got. (Events still pending are dropped here; the resume fetches them from history.)
   */
  private endSlow(): void {
    this.transport.options.logger.warn({ client: this.client.id, buffered: this.res.writableLength }, 'sse: slow consumer or backlog over the limit, ending stream');
    this.close();
    this.res.end();
    setTimeout(destroyResponse, this.transport.options.endGraceMs, this.res).unref();
  }

  /** Session: `/api/disconnect` or shutdown. Pending events go out first, then a `disconnect` event, then the end. */
  disconnect(code: number, reason: string, reconnect: boolean): void {
    if (this.state === 'closed') return;
    if (this.state === 'starting') {
      this.close();
      sendError(this.res, new HeraldError('unavailable', reason));
      return;
    }
    const tail = (this.pendingOne ? this.pendingOne.encoded(SSE_SINGLE) : this.pending) + 'event: disconnect\ndata: ' + JSON.stringify({ code, reason, reconnect }) + '\n\n';
    this.pending = '';
    this.close();
    this.res.end(tail);
    setTimeout(destroyResponse, this.transport.options.endGraceMs, this.res).unref();
  }

  /** The response closed (client went away, or we ended it). */
  closed(): void {
    this.close();
  }

  private close(): void {
    if (this.state === 'closed') return;
    const wasLive = this.state === 'live';
    this.state = 'closed';
    this.pending = '';
    this.pendingOne = undefined;
    this.queue = [];
    this.transport.flusher.cancel(this);
    this.transport.forget(this);
    if (wasLive) this.transport.hub.unregister(this);
    void this.transport.hub.unsubscribeAll(this).catch(() => {});
  }
}

export class SseTransport {
  readonly hub: Hub;
  readonly options: Readonly<SseOptions>;
  private readonly maxChannels: number;
  private readonly limits: TransportLimits;
  private readonly streams = new Set<SseStream>();
  /** @internal When ready events are written (coalesceMs). */
  readonly flusher: FlushScheduler;
  private timer: NodeJS.Timeout | undefined;
  private closing = false;

  constructor(hub: Hub, options?: Partial<SseOptions>) {
    this.hub = hub;
    this.options = resolveOptions('sse', SSE_DEFAULTS, options, {
      allowedOrigins: [isOriginList, 'an array of origin strings'],
      heartbeatMs: [isPositiveInt, 'a positive integer (milliseconds)'],
      retryMs: [isPositiveInt, 'a positive integer (milliseconds)'],
      maxChannels: [(v) => v === undefined || isPositiveInt(v), 'a positive integer'],
      maxBufferedBytes: [isPositiveInt, 'a positive integer (bytes)'],
      endGraceMs: [isPositiveInt, 'a positive integer (milliseconds)'],
      coalesceMs: [isWindowMs, 'an integer from 0 to 1000 (milliseconds)'],
      limits: [(v) => v === undefined || v instanceof TransportLimits, 'a TransportLimits'],
    });
    this.maxChannels = this.options.maxChannels ?? hub.limits.maxChannelsPerClient;
    this.limits = this.options.limits ?? new TransportLimits();
    this.flusher = new FlushScheduler(this.options.coalesceMs);
  }

  /** Open streams (starting or live). */
  get size(): number {
    return this.streams.size;
  }

  async handle(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    try {
      const channels = admitStreamRequest(req, res, url, { allowedOrigins: this.options.allowedOrigins, closing: this.closing, limits: this.limits, maxChannels: this.maxChannels });
      if (!channels) return;
      const header = req.headers['last-event-id'];
      const text = (typeof header === 'string' && header !== '' ? header : undefined) ?? (url.searchParams.get('since') || undefined);
      // An unparsable cursor streams from now with recovered:false: a 400 would make EventSource give up for good.
      const cursor = text === undefined ? undefined : decodeCursor(text);
      const token = url.searchParams.get('token') ?? undefined;
      const client = await this.hub.authenticate(token, 'sse');
      if (res.destroyed || res.writableEnded) return;
      const stream = new SseStream(this, res, client, channels, cursor, text !== undefined);
      this.streams.add(stream);
      this.ensureHeartbeat();
      await stream.start();
    } catch (err) {
      const e = toHeraldError(err);
      if (e.code === 'internal') this.options.logger.error({ err }, 'sse: request failed');
      sendError(res, e);
    }
  }

  /** Ends every stream (clients reconnect elsewhere) and stops the heartbeat. */
  async close(): Promise<void> {
    this.closing = true;
    for (const stream of [...this.streams]) stream.disconnect(1001, 'server shutting down', true);
    this.stopHeartbeat();
  }

  /** @internal */
  forget(stream: SseStream): void {
    this.streams.delete(stream);
    if (this.streams.size === 0) this.stopHeartbeat();
  }

  /** @internal one timer for every stream of this transport */
  heartbeat(): void {
    for (const stream of this.streams) stream.heartbeat();
  }

  private ensureHeartbeat(): void {
    if (this.timer) return;
    this.timer = setInterval(heartbeatAll, this.options.heartbeatMs, this);
    this.timer.unref();
  }

  private stopHeartbeat(): void {
    if (!this.timer) return;
    clearInterval(this.timer);
    this.timer = undefined;
  }
}
