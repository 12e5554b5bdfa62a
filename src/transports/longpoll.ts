/**
 * Long-poll (SPEC §4): `GET /poll?channel=a&channel=b[&timeout=30][&cursor=…][&token=…]`.
 *
 * Stateless on the server: the cursor carries every channel's position, so any node can answer.
 * A poll subscribes a temporary Subscriber to each channel with `since` = the cursor's position
 * for it (the hub hands back the missed events, then live ones with no gap), collects, and answers
 * `200 {"events":[…],"cursor":"…","recovered":bool}` at the end of the event-loop turn in which
 * the first event became available (so what piles up in that turn goes in the same answer, at most
 * `maxEvents`), or with empty `events` at the timeout. Then it unsubscribes. Events past
 * `maxEvents` are not lost: the answer's cursor stops at the last event it carries, and the next
 * poll reads the rest from history.
 *
 * No cursor means "from now": the poll waits for new events; its answer's cursor (also at a
 * timeout) holds the positions it started from, so the next poll continues without a gap.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { decodeCursor, encodeCursor, HeraldError, toHeraldError, type Cursor, type Position, type SubscribeResult } from '../protocol/index.js';
import { OutgoingEvent, silentLogger, type ClientContext, type Hub, type Logger, type Session, type Subscriber } from '../core/index.js';
import { sendError } from './http.js';
import { startPosition } from './http-stream/cursor.js';
import { cancelFlush, scheduleFlush, type Flushable } from './http-stream/flush.js';
import { admitStreamRequest, isOriginList, isPositiveInt, parseStrictInt, resolveOptions } from './http-stream/request.js';
import { TransportLimits } from './limits.js';

export interface LongPollOptions {
  /** Origins allowed for CORS (SPEC §5). */
  allowedOrigins: readonly string[] | undefined;
  /** Seconds a poll waits when the request has no `timeout`. Default 30. */
  defaultTimeout: number;
  /** Largest accepted `timeout`, in seconds. Default 110. */
  maxTimeout: number;
  /** Events in one answer. Default 1,000. */
  maxEvents: number;
  /** Channels one poll may hold. Default: the hub's `limits.maxChannelsPerClient` (128). */
  maxChannels: number | undefined;
  /** Rate and connection limits per client address (transports/limits.ts); the server shares one instance. Default: a new one with the defaults. */
  limits: TransportLimits | undefined;
  logger: Logger;
}

export const LONG_POLL_DEFAULTS: Readonly<LongPollOptions> = Object.freeze({
  allowedOrigins: undefined,
  defaultTimeout: 30,
  maxTimeout: 110,
  maxEvents: 1000,
  maxChannels: undefined,
  limits: undefined,
  logger: silentLogger,
});

const JSON_HEADERS = { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' };

const kPoll = Symbol('herald.longPoll');
type TaggedResponse = ServerResponse & { [kPoll]?: Poll };

function onResponseClose(this: TaggedResponse): void {
  this[kPoll]?.abandon();
}

function onPollTimeout(poll: Poll): void {
  poll.answer();
}

class Poll implements Subscriber, Session, Flushable {
  readonly client: ClientContext;
  private state: 'starting' | 'waiting' | 'done' = 'starting';
  private readonly transport: LongPollTransport;
  private readonly res: TaggedResponse;
  private readonly channels: string[];
  private readonly cursorIn: Cursor | undefined;
  private recovered = true;
  private readonly starts = new Map<string, Position>();
  private queue: OutgoingEvent[] = [];
  /** How many queued events came from history (counted as deliveries when answered). */
  private fromHistory = 0;
  private timer: NodeJS.Timeout | undefined;
  private readonly onReady: (result: SubscribeResult) => void;

  constructor(transport: LongPollTransport, res: ServerResponse, client: ClientContext, channels: string[], cursorIn: Cursor | undefined) {
    this.transport = transport;
    this.res = res as TaggedResponse;
    this.client = client;
    this.channels = channels;
    this.cursorIn = cursorIn;
    this.onReady = (result) => this.subscribed(result);
    this.res[kPoll] = this;
    this.res.on('close', onResponseClose);
  }

  async start(timeoutSeconds: number): Promise<void> {
    const hub = this.transport.hub;
    const settled = await Promise.allSettled(this.channels.map((channel) => hub.subscribe(this, channel, this.cursorIn?.get(channel), this.onReady)));
    if (this.state === 'done') {
      void hub.unsubscribeAll(this).catch(() => {});
      return;
    }
    const failed = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
    if (failed) {
      this.finish();
      sendError(this.res, failed.reason);
      return;
    }
    this.state = 'waiting';
    hub.register(this);
    if (this.queue.length > 0) scheduleFlush(this);
    else {
      this.timer = setTimeout(onPollTimeout, timeoutSeconds * 1000, this);
      this.timer.unref();
    }
  }

  private subscribed(result: SubscribeResult): void {
    if (this.state !== 'starting') return;
    const since = this.cursorIn?.get(result.channel);
    if (this.cursorIn && !(since && result.recovered)) this.recovered = false;
    this.starts.set(result.channel, startPosition(result, since));
    const max = this.transport.options.maxEvents;
    for (const event of result.events) {
      if (this.queue.length >= max) break;
      this.queue.push(new OutgoingEvent(event));
      this.fromHistory++;
    }
  }

  deliver(out: OutgoingEvent): void {
    if (this.state === 'done' || this.queue.length >= this.transport.options.maxEvents) return;
    this.queue.push(out);
    if (this.state === 'waiting') scheduleFlush(this);
  }

  flush(): void {
    this.answer();
  }

  /** Answers with what has been collected (possibly nothing: timeout, shutdown, disconnect). */
  answer(): void {
    if (this.state !== 'waiting') return;
    const positions: Cursor = new Map();
    for (const channel of this.channels) positions.set(channel, this.starts.get(channel)!);
    let body = '{"events":[';
    for (let i = 0; i < this.queue.length; i++) {
      const out = this.queue[i]!;
      positions.set(out.event.channel, { epoch: out.event.epoch, offset: out.event.offset });
      body += (i === 0 ? '' : ',') + out.json;
    }
    body += '],"cursor":"' + encodeCursor(positions) + '","recovered":' + this.recovered + '}';
    if (this.fromHistory > 0) this.transport.hub.countDelivered(this.fromHistory);
    this.finish();
    this.res.writeHead(200, { ...JSON_HEADERS, 'content-length': Buffer.byteLength(body) });
    this.res.end(body);
  }

  /** Session: `/api/disconnect` or shutdown answers the poll now. */
  disconnect(): void {
    if (this.state === 'waiting') this.answer();
    else if (this.state === 'starting') {
      this.finish();
      sendError(this.res, new HeraldError('unavailable', 'server shutting down'));
    }
  }

  /** The client went away before the answer. */
  abandon(): void {
    this.finish();
  }

  private finish(): void {
    if (this.state === 'done') return;
    const wasWaiting = this.state === 'waiting';
    this.state = 'done';
    this.queue = [];
    if (this.timer) clearTimeout(this.timer);
    cancelFlush(this);
    this.transport.forget(this);
    if (wasWaiting) this.transport.hub.unregister(this);
    void this.transport.hub.unsubscribeAll(this).catch(() => {});
  }
}

export class LongPollTransport {
  readonly hub: Hub;
  readonly options: Readonly<LongPollOptions>;
  private readonly maxChannels: number;
  private readonly limits: TransportLimits;
  private readonly polls = new Set<Poll>();
  private closing = false;

  constructor(hub: Hub, options?: Partial<LongPollOptions>) {
    this.hub = hub;
    this.options = resolveOptions('longPoll', LONG_POLL_DEFAULTS, options, {
      allowedOrigins: [isOriginList, 'an array of origin strings'],
      defaultTimeout: [isPositiveInt, 'a positive integer (seconds)'],
      maxTimeout: [isPositiveInt, 'a positive integer (seconds)'],
      maxEvents: [isPositiveInt, 'a positive integer'],
      maxChannels: [(v) => v === undefined || isPositiveInt(v), 'a positive integer'],
      limits: [(v) => v === undefined || v instanceof TransportLimits, 'a TransportLimits'],
    });
    this.limits = this.options.limits ?? new TransportLimits();
    if (this.options.defaultTimeout > this.options.maxTimeout) throw new TypeError('longPoll: option "defaultTimeout" must not exceed "maxTimeout"');
    this.maxChannels = this.options.maxChannels ?? hub.limits.maxChannelsPerClient;
  }

  /** Polls waiting for an answer. */
  get size(): number {
    return this.polls.size;
  }

  async handle(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    try {
      const channels = admitStreamRequest(req, res, url, { allowedOrigins: this.options.allowedOrigins, closing: this.closing, limits: this.limits, maxChannels: this.maxChannels });
      if (!channels) return;
      const timeout = this.parseTimeout(url.searchParams.get('timeout'));
      const cursorText = url.searchParams.get('cursor');
      let cursor: Cursor | undefined;
      if (cursorText !== null && cursorText !== '') {
        cursor = decodeCursor(cursorText);
        if (!cursor) throw new HeraldError('bad_request', '"cursor" is not a valid cursor');
      }
      const client = await this.hub.authenticate(url.searchParams.get('token') ?? undefined, 'poll');
      if (res.destroyed || res.writableEnded) return;
      const poll = new Poll(this, res, client, channels, cursor);
      this.polls.add(poll);
      await poll.start(timeout);
    } catch (err) {
      const e = toHeraldError(err);
      if (e.code === 'internal') this.options.logger.error({ err }, 'poll: request failed');
      sendError(res, e);
    }
  }

  private parseTimeout(text: string | null): number {
    if (text === null) return this.options.defaultTimeout;
    const value = parseStrictInt(text);
    if (value === undefined || value < 1 || value > this.options.maxTimeout) {
      throw new HeraldError('bad_request', `"timeout" must be an integer from 1 to ${this.options.maxTimeout} (seconds)`);
    }
    return value;
  }

  /** Answers every pending poll now (with what it has) and refuses new ones. */
  async close(): Promise<void> {
    this.closing = true;
    for (const poll of [...this.polls]) poll.disconnect();
  }

  /** @internal */
  forget(poll: Poll): void {
    this.polls.delete(poll);
  }
}
