/**
 * Long-poll (SPEC §4): `GET /poll?channel=a&channel=b[&timeout=30][&cursor=…][&token=…]`.
 *
 * Stateless for the client: the cursor carries every channel's position, so any node can answer.
 * A poll answers `200 {"events":[…],"cursor":"…","recovered":bool}` at the end of the event-loop
 * turn in which its first event became available (what piles up in that turn goes in the same
 * answer, at most `maxEvents`), or with empty `events` at the timeout. Events past `maxEvents`
 * are not lost: the answer's cursor stops at the last event it carries, and the next poll reads
 * the rest from history. No cursor means "from now"; the answer's cursor (also at a timeout) holds
 * the positions the poll started from, so the next poll continues without a gap. On a busy server
 * a client answered a moment ago waits out the pace first (`paceMs`, http-stream/pacer.ts).
 *
 * How a poll waits — the hot path, since a busy client polls once per answer: polls do not
 * subscribe to the hub one by one. Each channel that has polls has one **relay**, a single
 * internal hub subscriber that knows the channel's latest position and the set of polls waiting
 * on it (golongpoll keeps one subscriber list per category the same way). A poll whose cursor is
 * at the relay's position, or that has no cursor, just joins that set: no hub subscription, no
 * history read, no presence entry. A poll that is behind reads what it missed from history (no
 * re-serialisation: `OutgoingEvent.of`) while live events for that channel are held, and the two
 * are merged by offset: no gap, no duplicate. A relay nobody waited on for `relayIdleMs` is
 * unsubscribed. Polls are not hub sessions and not in presence: a poll has no connection to be
 * present on. A poll whose token expires while it waits is answered at the expiry; the next poll
 * with that token is refused (401).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { decodeCursor, encodeCursor, HeraldError, toHeraldError, type Cursor, type HistoryResult, type Position } from '../protocol/index.js';
import { defineEncoding, OutgoingEvent, silentLogger, type ClientContext, type Hub, type Logger, type Subscriber } from '../core/index.js';
import { sendError } from './http.js';
import { FlushScheduler, type Flushable } from './http-stream/flush.js';
import { LoadPacer } from './http-stream/pacer.js';
import { admitStreamRequest, isWindowMs, isOriginList, isPositiveInt, parseStrictInt, resolveOptions } from './http-stream/request.js';
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
  /** Milliseconds a channel's relay stays subscribed with no poll waiting on it. Default 30,000. */
  relayIdleMs: number;
  /**
   * Write coalescing: an answer leaves this many milliseconds after its oldest event was published
   * (at once when that has passed), so the events that follow within the window go in the same
   * answer. 0 (default) = the events of one event-loop turn. At most 1,000.
   */
  coalesceMs: number;
  /**
   * Answer pacing under load (http-stream/pacer.ts): a poll whose client got its last event (the
   * one its cursor points at) less than the current pace ago is answered when that event is that
   * old, with everything published meanwhile. The pace is 0 while the event loop is mostly idle
   * and grows up to `paceMs` while it is busier than `paceLoadPercent`. The first event after a
   * quiet spell always leaves at once. 0 = never pace. Default 250. At most 1,000.
   */
  paceMs: number;
  /** Event-loop utilisation (percent) over which pacing grows; 0 = pace at `paceMs` always. Default 50. */
  paceLoadPercent: number;
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
  relayIdleMs: 30_000,
  coalesceMs: 0,
  paceMs: 250,
  paceLoadPercent: 50,
  limits: undefined,
  logger: silentLogger,
});

const JSON_TYPE = 'application/json; charset=utf-8';

/**
 * The cursor of a one-channel answer that ends with this event: the same for every poll answered
 * with it, so it is encoded once per publish, not once per answer.
 */
const CURSOR_AFTER = defineEncoding((out) => encodeCursor(new Map([[out.event.channel, out.event]])));

/** Decoded request cursors kept (most polls of a channel come back with the same few cursors). */
const CURSOR_CACHE_MAX = 256;
/** Longer cursors (many channels) are decoded every time: the cache stays small. */
const CURSOR_CACHE_TEXT_MAX = 512;

/** A checked `GET /poll`, before its client is known. */
interface PollRequest {
  res: ServerResponse;
  channels: string[];
  timeout: number;
  cursor: Cursor | undefined;
}

const kPoll = Symbol('herald.longPoll');
type TaggedResponse = ServerResponse & { [kPoll]?: Poll };

function onResponseClose(this: TaggedResponse): void {
  this[kPoll]?.abandon();
}

function onPollTimeout(poll: Poll): void {
  poll.answer();
}

function sweepRelays(transport: LongPollTransport): void {
  transport.sweep();
}

const STARTING = 0;
const LIVE = 1;
const CLOSED = 2;

/** Most recent events a relay keeps for polls that come back a little behind. */
const RELAY_RECENT_MAX = 1024;

/** The one hub subscription of a channel that polls wait on. */
class Relay implements Subscriber {
  readonly client: ClientContext;
  readonly internal = true;
  readonly channel: string;
  state = STARTING;
  /** The channel's position: the subscribe answer's, then the last live event's. */
  epoch = '';
  offset = 0;
  /** When the event at `offset` was published (0 until a live event came). */
  publishedLast = 0;
  readonly waiting = new Set<Poll>();
  /** When `waiting` last became empty (ms). */
  idleSince = Date.now();
  ready: Promise<void> = Promise.resolve();
  /**
   * The last live events, contiguous offsets ending at `offset` (a ring of `recent.length`
   * slots; none on channels whose history expires or is deleted on read: those read history).
   * A poll whose cursor falls inside is answered from here: no history read, no promise.
   */
  private readonly recent: OutgoingEvent[];
  private recentCount = 0;
  private recentEnd = 0;

  constructor(channel: string, id: string, keep: number) {
    this.channel = channel;
    this.client = Object.freeze({ id, transport: 'poll' });
    this.recent = new Array<OutgoingEvent>(keep);
  }

  deliver(out: OutgoingEvent): number {
    const event = out.event;
    const keep = this.recent.length;
    if (keep > 0) {
      // A jump (another epoch, a gap) starts the run of recent events afresh.
      if (event.epoch !== this.epoch || event.offset !== this.offset + 1) this.recentCount = 0;
      this.recent[this.recentEnd] = out;
      this.recentEnd = (this.recentEnd + 1) % keep;
      if (this.recentCount < keep) this.recentCount++;
    }
    this.epoch = event.epoch;
    this.offset = event.offset;
    this.publishedLast = event.timestamp;
    let n = 0;
    for (const poll of this.waiting) if (poll.offer(out)) n++;
    return n;
  }

  /**
   * The recent events after `since`, oldest first, at most `max`; undefined when `since` is not
   * inside what the relay holds (history must decide).
   */
  since(since: Position, max: number): OutgoingEvent[] | undefined {
    if (since.epoch !== this.epoch || since.offset >= this.offset) return undefined;
    const missed = this.offset - since.offset;
    if (missed > this.recentCount) return undefined;
    const keep = this.recent.length;
    const n = Math.min(missed, max);
    const out = new Array<OutgoingEvent>(n);
    let at = (this.recentEnd - missed + keep) % keep;
    for (let i = 0; i < n; i++) {
      out[i] = this.recent[at]!;
      at = at + 1 === keep ? 0 : at + 1;
    }
    return out;
  }

  /**
   * When the event at `at` was published, if the relay still knows (0 if not): a poll's cursor
   * points at the last event its client got, so this is about when that client was last answered.
   */
  publishedAt(at: Position): number {
    if (at.epoch !== this.epoch) return 0;
    const back = this.offset - at.offset;
    if (back === 0) return this.publishedLast;
    if (back < 0 || back >= this.recentCount) return 0;
    const keep = this.recent.length;
    return this.recent[(this.recentEnd - 1 - back + keep) % keep]!.event.timestamp;
  }

  leave(poll: Poll): void {
    if (this.waiting.delete(poll) && this.waiting.size === 0) this.idleSince = Date.now();
  }
}

class Poll implements Flushable {
  readonly client: ClientContext;
  private state: 'starting' | 'waiting' | 'done' = 'starting';
  private readonly transport: LongPollTransport;
  private readonly res: TaggedResponse;
  private readonly channels: string[];
  private readonly cursorIn: Cursor | undefined;
  private relays: Relay[] = [];
  private recovered = true;
  /** When the newest event the client already has was published, as far as the relays know (0: not known). */
  private lastSeenAt = 0;
  /** Per channel, the last position the client will have (an event object serves as its own position). */
  private readonly positions = new Map<string, Position>();
  /** Channels whose history read is in flight, with the live events held meanwhile. */
  private reading: Map<string, OutgoingEvent[]> | undefined;
  private queue: OutgoingEvent[] = [];
  /** How many queued events did not come through fan-out (counted as deliveries when answered). */
  private uncounted = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(transport: LongPollTransport, res: ServerResponse, client: ClientContext, channels: string[], cursorIn: Cursor | undefined) {
    this.transport = transport;
    this.res = res as TaggedResponse;
    this.client = client;
    this.channels = channels;
    this.cursorIn = cursorIn;
    this.res[kPoll] = this;
    this.res.on('close', onResponseClose);
  }

  /** Joins the relays (waiting for any still subscribing), then waits for events. */
  start(timeoutSeconds: number): void | Promise<void> {
    const transport = this.transport;
    const relays = this.channels.map((channel) => transport.relay(channel));
    for (const relay of relays) if (relay.state === STARTING) return this.startWhenReady(relays, timeoutSeconds);
    return this.join(relays, timeoutSeconds);
  }

  private async startWhenReady(relays: Relay[], timeoutSeconds: number): Promise<void> {
    try {
      for (const relay of relays) if (relay.state === STARTING) await relay.ready;
    } catch (err) {
      this.fail(err);
      return;
    }
    return this.join(relays, timeoutSeconds);
  }

  private join(relays: Relay[], timeoutSeconds: number): void | Promise<void> {
    if (this.state !== 'starting') return;
    // From here to joining the relays: synchronous, so no live event slips between the check and the join.
    let reads: string[] | undefined;
    const max = this.transport.options.maxEvents;
    for (const relay of relays) {
      if (relay.state !== LIVE) {
        this.fail(new HeraldError('unavailable', 'server shutting down'));
        return;
      }
      const channel = relay.channel;
      const since = this.cursorIn?.get(channel);
      if (!since) {
        if (this.cursorIn) this.recovered = false;
        this.positions.set(channel, { epoch: relay.epoch, offset: relay.offset });
        continue;
      }
      this.positions.set(channel, since);
      const seenAt = relay.publishedAt(since);
      if (seenAt > this.lastSeenAt) this.lastSeenAt = seenAt;
      if (since.epoch === relay.epoch && since.offset === relay.offset) continue;
      // A little behind: the relay still has what was missed.
      const recent = relay.since(since, max - this.queue.length);
      if (recent) {
        for (const out of recent) if (this.accept(out)) this.uncounted++;
        continue;
      }
      // Anywhere else (further behind, ahead, another epoch): history decides.
      (this.reading ??= new Map()).set(channel, []);
      (reads ??= []).push(channel);
    }
    this.relays = relays;
    for (const relay of relays) relay.waiting.add(this);
    this.state = 'waiting';
    let waitMs = timeoutSeconds * 1000;
    if (this.client.expiresAt !== undefined) waitMs = Math.max(0, Math.min(waitMs, this.client.expiresAt - Date.now()));
    this.timer = setTimeout(onPollTimeout, waitMs, this);
    this.timer.unref();
    if (reads) return this.catchUp(reads);
    if (this.queue.length > 0) this.scheduleAnswer();
  }

  /** Reads the channels it is behind on from history and merges the live events held meanwhile. */
  private async catchUp(reads: string[]): Promise<void> {
    const hub = this.transport.hub;
    const max = this.transport.options.maxEvents;
    const settled = await Promise.allSettled(reads.map((channel) => hub.history(channel, { since: this.positions.get(channel)!, limit: max }, this.client)));
    if (this.state !== 'waiting') return;
    for (let i = 0; i < reads.length; i++) {
      const s = settled[i]!;
      if (s.status === 'rejected') {
        this.fail(s.reason);
        return;
      }
      this.merge(reads[i]!, s.value);
    }
    this.reading = undefined;
    if (this.queue.length > 0) this.scheduleAnswer();
  }

  private merge(channel: string, h: HistoryResult): void {
    const held = this.reading!.get(channel)!;
    this.reading!.delete(channel);
    const max = this.transport.options.maxEvents;
    if (!h.recovered) {
      this.recovered = false;
      // Outside history: start from what is retained, or from the channel's latest position.
      const first = h.events[0];
      this.positions.set(channel, first ? { epoch: first.epoch, offset: first.offset - 1 } : { epoch: h.epoch, offset: h.offset });
    }
    for (const event of h.events) {
      if (this.queue.length >= max) return;
      if (!this.accept(OutgoingEvent.of(event))) continue;
      this.uncounted++;
    }
    // Held live events the history answer already had are skipped by `accept`.
    for (const out of held) {
      if (this.queue.length >= max) return;
      this.accept(out);
    }
  }

  /** Queues `out` unless the client has it; advances the channel's position. */
  private accept(out: OutgoingEvent): boolean {
    const event = out.event;
    const at = this.positions.get(event.channel)!;
    if (event.epoch === at.epoch && event.offset <= at.offset) return false;
    this.positions.set(event.channel, event);
    this.queue.push(out);
    return true;
  }

  /** A live event from a relay; true when it will be in the answer. */
  offer(out: OutgoingEvent): boolean {
    if (this.state !== 'waiting') return false;
    const held = this.reading?.get(out.event.channel);
    if (held) {
      held.push(out);
      return true;
    }
    if (this.queue.length >= this.transport.options.maxEvents || !this.accept(out)) return false;
    if (this.reading === undefined && (this.queue.length === 1 || this.queue.length >= this.transport.options.maxEvents)) this.scheduleAnswer();
    return true;
  }

  /**
   * The answer leaves `coalesceMs` after its oldest event was published (at the end of this turn
   * when that has passed or the window is 0): so an event never waits more than the window, and a
   * poll that comes back behind after a slow round trip is answered at once. Pacing holds it
   * until the client's last event is as old as the current pace (a clock ahead of ours counts as
   * now, so the hold is never longer than the pace).
   */
  private scheduleAnswer(): void {
    const transport = this.transport;
    // A full answer waits for nothing.
    if (this.queue.length >= transport.options.maxEvents) {
      transport.flusher.scheduleAt(this, 0);
      return;
    }
    const pace = transport.pacer.paceMs;
    const notBefore = pace > 0 && this.lastSeenAt > 0 ? Math.min(this.lastSeenAt, Date.now()) + pace : 0;
    transport.flusher.scheduleAt(this, this.queue[0]!.event.timestamp, notBefore);
  }

  flush(): void {
    this.answer();
  }

  /** Answers with what has been collected (possibly nothing: timeout, expiry, shutdown). */
  answer(): void {
    if (this.state !== 'waiting') return;
    // Channels still being read answer with the position they asked from: nothing is skipped.
    const queue = this.queue;
    let body = '{"events":[';
    for (let i = 0; i < queue.length; i++) body += (i === 0 ? '' : ',') + queue[i]!.json;
    const last = queue.length > 0 ? queue[queue.length - 1]! : undefined;
    const cursor = last !== undefined && this.channels.length === 1 && this.positions.get(last.event.channel) === last.event ? last.encoded(CURSOR_AFTER) : encodeCursor(this.positions);
    body += '],"cursor":"' + cursor + '","recovered":' + this.recovered + '}';
    if (this.uncounted > 0) this.transport.hub.countDelivered(this.uncounted);
    this.finish();
    this.res.writeHead(200, ['content-type', JSON_TYPE, 'cache-control', 'no-store', 'content-length', String(Buffer.byteLength(body))]);
    this.res.end(body);
  }

  /** Shutdown answers the poll now. */
  disconnect(): void {
    if (this.state === 'waiting') this.answer();
    else if (this.state === 'starting') this.fail(new HeraldError('unavailable', 'server shutting down'));
  }

  /** The client went away before the answer. */
  abandon(): void {
    this.finish();
  }

  private fail(err: unknown): void {
    if (this.state === 'done') return;
    this.finish();
    sendError(this.res, err);
  }

  private finish(): void {
    if (this.state === 'done') return;
    this.state = 'done';
    this.queue = [];
    this.reading = undefined;
    if (this.timer) clearTimeout(this.timer);
    this.transport.flusher.cancel(this);
    for (const relay of this.relays) relay.leave(this);
    this.transport.forget(this);
  }
}

export class LongPollTransport {
  readonly hub: Hub;
  readonly options: Readonly<LongPollOptions>;
  private readonly maxChannels: number;
  private readonly limits: TransportLimits;
  private readonly polls = new Set<Poll>();
  private readonly relays = new Map<string, Relay>();
  private readonly cursors = new Map<string, Cursor>();
  /** @internal When ready answers are written (coalesceMs). */
  readonly flusher: FlushScheduler;
  /** @internal How long a recently answered client waits for its next answer (paceMs). */
  readonly pacer: LoadPacer;
  private sweeper: NodeJS.Timeout | undefined;
  private relayIds = 0;
  private closing = false;

  constructor(hub: Hub, options?: Partial<LongPollOptions>) {
    this.hub = hub;
    this.options = resolveOptions('longPoll', LONG_POLL_DEFAULTS, options, {
      allowedOrigins: [isOriginList, 'an array of origin strings'],
      defaultTimeout: [isPositiveInt, 'a positive integer (seconds)'],
      maxTimeout: [isPositiveInt, 'a positive integer (seconds)'],
      maxEvents: [isPositiveInt, 'a positive integer'],
      maxChannels: [(v) => v === undefined || isPositiveInt(v), 'a positive integer'],
      relayIdleMs: [isPositiveInt, 'a positive integer (milliseconds)'],
      coalesceMs: [isWindowMs, 'an integer from 0 to 1000 (milliseconds)'],
      paceMs: [isWindowMs, 'an integer from 0 to 1000 (milliseconds)'],
      paceLoadPercent: [(v) => typeof v === 'number' && Number.isFinite(v) && v >= 0 && v <= 100, 'a number from 0 to 100 (percent)'],
      limits: [(v) => v === undefined || v instanceof TransportLimits, 'a TransportLimits'],
    });
    this.limits = this.options.limits ?? new TransportLimits();
    if (this.options.defaultTimeout > this.options.maxTimeout) throw new TypeError('longPoll: option "defaultTimeout" must not exceed "maxTimeout"');
    this.maxChannels = this.options.maxChannels ?? hub.limits.maxChannelsPerClient;
    this.flusher = new FlushScheduler(this.options.coalesceMs);
    this.pacer = new LoadPacer(this.options.paceMs, this.options.paceLoadPercent);
  }

  /** Milliseconds a client answered a moment ago now waits for its next answer (0 = none). */
  get paceMs(): number {
    return this.pacer.paceMs;
  }

  /** Polls not yet answered. */
  get size(): number {
    return this.polls.size;
  }

  /** Channels with a relay (a hub subscription polls wait on). */
  get relayCount(): number {
    return this.relays.size;
  }

  /** @internal Request cursors decoded and kept (bounded). */
  get cachedCursors(): number {
    return this.cursors.size;
  }

  /** Polls waiting on `channel`'s relay. */
  waitingOn(channel: string): number {
    return this.relays.get(channel)?.waiting.size ?? 0;
  }

  /**
   * Serves `GET /poll`. Synchronous from the request to the wait when the hub's hooks answer
   * synchronously (no `authenticate` hook, a synchronous `authorize`): the common case costs no
   * promise; otherwise the same steps run asynchronously.
   */
  handle(req: IncomingMessage, res: ServerResponse, url: URL): void | Promise<void> {
    let request: PollRequest;
    try {
      const channels = admitStreamRequest(req, res, url, { allowedOrigins: this.options.allowedOrigins, closing: this.closing, limits: this.limits, maxChannels: this.maxChannels });
      if (!channels) return;
      const timeout = this.parseTimeout(url.searchParams.get('timeout'));
      const cursorText = url.searchParams.get('cursor');
      let cursor: Cursor | undefined;
      if (cursorText !== null && cursorText !== '') {
        cursor = this.cursorOf(cursorText);
        if (!cursor) throw new HeraldError('bad_request', '"cursor" is not a valid cursor');
      }
      request = { res, channels, timeout, cursor };
      const client = this.hub.admit(url.searchParams.get('token') ?? undefined, 'poll');
      if (client instanceof Promise) return this.admitLater(request, client);
      // The relays subscribe as the server: each poll's own right to subscribe is checked here.
      for (let i = 0; i < channels.length; i++) {
        const pending = this.hub.permit('subscribe', client, channels[i]!);
        if (pending) return this.admitLater(request, client, pending, i + 1);
      }
      return this.begin(request, client);
    } catch (err) {
      this.refuse(res, err);
    }
  }

  /** `handle` when a hook answers with a promise. */
  private async admitLater(request: PollRequest, client: ClientContext | Promise<ClientContext>, pending?: Promise<void>, next = 0): Promise<void> {
    try {
      const who = await client;
      if (pending) await pending;
      for (let i = next; i < request.channels.length; i++) await this.hub.permit('subscribe', who, request.channels[i]!);
      await this.begin(request, who);
    } catch (err) {
      this.refuse(request.res, err);
    }
  }

  private begin(request: PollRequest, client: ClientContext): void | Promise<void> {
    const res = request.res;
    if (res.destroyed || res.writableEnded) return;
    const poll = new Poll(this, res, client, request.channels, request.cursor);
    this.polls.add(poll);
    const started = poll.start(request.timeout);
    if (started) return started.catch((err: unknown) => this.refuse(res, err));
  }

  private refuse(res: ServerResponse, err: unknown): void {
    const e = toHeraldError(err);
    if (e.code === 'internal') this.options.logger.error({ err }, 'poll: request failed');
    if (!res.headersSent && !res.writableEnded) sendError(res, e);
  }

  /**
   * `decodeCursor` with a small cache: a poll's cursor is the previous answer's, and the polls of
   * one channel answered with the same event come back with the same one. The maps are shared,
   * read-only (a poll keeps its own positions).
   */
  private cursorOf(text: string): Cursor | undefined {
    const cached = this.cursors.get(text);
    if (cached !== undefined) return cached;
    const cursor = decodeCursor(text);
    if (cursor === undefined || text.length > CURSOR_CACHE_TEXT_MAX) return cursor;
    if (this.cursors.size >= CURSOR_CACHE_MAX) this.cursors.clear();
    this.cursors.set(text, cursor);
    return cursor;
  }

  private parseTimeout(text: string | null): number {
    if (text === null) return this.options.defaultTimeout;
    const value = parseStrictInt(text);
    if (value === undefined || value < 1 || value > this.options.maxTimeout) {
      throw new HeraldError('bad_request', `"timeout" must be an integer from 1 to ${this.options.maxTimeout} (seconds)`);
    }
    return value;
  }

  /** Answers every pending poll now (with what it has), refuses new ones and drops the relays. */
  async close(): Promise<void> {
    this.closing = true;
    for (const poll of [...this.polls]) poll.disconnect();
    for (const relay of [...this.relays.values()]) this.dropRelay(relay);
    if (this.sweeper) clearInterval(this.sweeper);
    this.sweeper = undefined;
    this.pacer.stop();
  }

  /** @internal The relay of `channel`, subscribing one if there is none. */
  relay(channel: string): Relay {
    const existing = this.relays.get(channel);
    if (existing) return existing;
    const ns = this.hub.namespaces.forChannel(channel).channel;
    // Recent events stand in for history only where history keeps them as long: no TTL, no delete-on-read.
    const keep = ns.historyTtlMs > 0 || ns.deleteAfterRead ? 0 : Math.min(ns.historySize, RELAY_RECENT_MAX);
    const relay = new Relay(channel, `poll-relay-${++this.relayIds}`, keep);
    this.relays.set(channel, relay);
    relay.ready = this.hub.subscribe(relay, channel, undefined, (result) => {
      if (relay.state !== STARTING) return;
      relay.epoch = result.epoch;
      relay.offset = result.offset;
      relay.state = LIVE;
    }).then(() => {
      if (relay.state === CLOSED) void this.hub.unsubscribeAll(relay).catch(() => {});
    }, (err: unknown) => {
      this.dropRelay(relay);
      throw err;
    });
    // Waited on by the polls that asked for it; never left unhandled when they are gone.
    relay.ready.catch(() => {});
    if (!this.sweeper) {
      this.sweeper = setInterval(sweepRelays, Math.max(100, Math.floor(this.options.relayIdleMs / 2)), this);
      this.sweeper.unref();
      // The pace is read while there are polls to pace; it stops with the sweeper.
      this.pacer.start();
    }
    return relay;
  }

  /** @internal Drops relays nobody waited on for `relayIdleMs`. */
  sweep(now = Date.now()): void {
    for (const relay of this.relays.values()) {
      if (relay.state === LIVE && relay.waiting.size === 0 && now - relay.idleSince >= this.options.relayIdleMs) this.dropRelay(relay);
    }
    if (this.relays.size === 0 && this.sweeper) {
      clearInterval(this.sweeper);
      this.sweeper = undefined;
      // No polls to pace: stop reading the event loop (the pace starts again from 0).
      this.pacer.stop();
    }
  }

  private dropRelay(relay: Relay): void {
    if (this.relays.get(relay.channel) === relay) this.relays.delete(relay.channel);
    const wasLive = relay.state === LIVE;
    relay.state = CLOSED;
    // A relay still subscribing is unsubscribed when its subscribe settles (above).
    if (wasLive) void this.hub.unsubscribeAll(relay).catch(() => {});
  }

  /** @internal */
  forget(poll: Poll): void {
    this.polls.delete(poll);
  }
}
