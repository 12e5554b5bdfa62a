/**
 * golongpoll v1.3 compatibility (SPEC §6): `GET …/events` and `POST …/publish`, answering exactly
 * like golongpoll's `LongpollManager.SubscriptionHandler` and `PublishHandler`, so its Go client
 * (`client.Client`) and browser client (`js-client/client.js`) work unchanged. A category is a
 * herald channel.
 *
 * Subscribe (`…/events`), checked in golongpoll's order; every answer is HTTP 200 JSON with
 * `Cache-Control: no-cache, no-store, must-revalidate`, `Pragma: no-cache`, `Expires: 0`:
 * - `timeout`  required, Go `strconv.Atoi` syntax, 1..maxTimeout, else
 *              {"error": "Invalid or missing 'timeout' arg.  Must be 1-110."}
 * - `category` required, 1..1024 bytes (and a valid herald channel), else
 *              {"error": "Invalid subscription category, must be 1-1024 characters long."}
 * - `since_time` optional, milliseconds (Go `ParseInt`), else {"error": "Invalid 'since_time' arg."}
 * - `last_id`  optional, needs `since_time` ({"error": "Must provide 'since_time' arg when providing 'last_id'."})
 *              and must be a UUID ({"error": "Param 'last_id' was not a valid UUID."}); empty = absent.
 * Answers: {"events":[{"timestamp","category","data","id"}…]} (oldest first) or, at the timeout,
 * {"timeout":"no events before timeout","timestamp":<ms>}.
 *
 * Which events: golongpoll returns buffered events with `timestamp > since_time`, plus those with
 * `timestamp == since_time` newer than `last_id`, else waits for the next live one. Here the
 * position is found in the channel's history and turned into an offset, then the poll subscribes
 * from that offset (missed events, then live with no gap). When `last_id` is in history the start
 * is the event right after it (so events sharing a millisecond are never skipped, even if the clock
 * stepped back); when it is not, golongpoll's timestamp rule applies.
 *
 * Publish (`…/publish`): POST `{"category","data"}` (decoded like Go's json.Decoder into a struct:
 * first JSON value, field names case-insensitive) → 200 {"success": true}; 405 {"error": "Invalid
 * HTTP Method. Only POST allowed."}; 400 {"error": "Invalid POST body json."}, {"error": "Invalid or
 * missing 'category' arg, must be 1-1024 characters long."}, {"error": "Invalid or missing 'data'
 * arg, must be non-nil."}. Herald's own refusals keep golongpoll's shape: {"error": "<message>"} with
 * the error's status (401, 403, 413, 503).
 *
 * Polls stay out of presence and join/leave (`internal` subscribers, as herald's long-poll relays);
 * each poll's right to subscribe is checked before its history look-up.
 *
 * Credentials (herald's, golongpoll has none): `Authorization: Bearer <token>` (the clients'
 * extra-headers option) or a `token` query parameter; without one the client is anonymous and the
 * namespace rules apply. A poll whose token expires before its timeout is answered with the timeout
 * answer at the expiry; the next poll with that token gets 401. Requests and waiting polls count
 * against their address's limits (transports/limits.ts): 429 over them.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { channelProblem, MAX_JSON_DEPTH, jsonDepthExceeds, toHeraldError, type HeraldEvent, type Position, type SubscribeResult } from '../../protocol/index.js';
import { defineEncoding, OutgoingEvent, silentLogger, type ClientContext, type Hub, type Logger, type Subscriber } from '../../core/index.js';
import { DEFAULT_MAX_BODY_BYTES, readBody } from '../http.js';
import { originAllowed } from '../origin.js';
import { cancelFlush, scheduleFlush, type Flushable } from '../http-stream/flush.js';
import { bearerToken, isOriginList, isPositiveInt, resolveOptions } from '../http-stream/request.js';
import { TransportLimits } from '../limits.js';

export interface GolongpollOptions {
  /** Origins allowed (SPEC §5); a refused Origin gets 403. Unset: same-origin browsers and non-browser clients. */
  allowedOrigins: readonly string[] | undefined;
  /** golongpoll's MaxLongpollTimeoutSeconds: the largest accepted `timeout`. Default 110. */
  maxTimeout: number;
  /** Largest publish body, in bytes. Default 65,536. */
  maxBodyBytes: number;
  /** Rate and connection limits per client address (transports/limits.ts); the server shares one instance. Default: a new one with the defaults. */
  limits: TransportLimits | undefined;
  logger: Logger;
}

export const GOLONGPOLL_DEFAULTS: Readonly<GolongpollOptions> = Object.freeze({
  allowedOrigins: undefined,
  maxTimeout: 110,
  maxBodyBytes: DEFAULT_MAX_BODY_BYTES,
  limits: undefined,
  logger: silentLogger,
});

/** golongpoll's event JSON (`{"timestamp","category","data","id"}`): once per publish. */
export const GOLONGPOLL_EVENT = defineEncoding((out) => {
  const e = out.event;
  return '{"timestamp":' + e.timestamp + ',"category":' + JSON.stringify(e.channel) + ',"data":' + JSON.stringify(e.data) + ',"id":"' + e.id + '"}';
});

const SUBSCRIBE_HEADERS = {
  'content-type': 'application/json',
  'cache-control': 'no-cache, no-store, must-revalidate',
  pragma: 'no-cache',
  expires: '0',
};

const PUBLISH_HEADERS = { 'content-type': 'application/json', 'x-content-type-options': 'nosniff' };

/** golongpoll's messages, byte for byte (note the two spaces in the timeout one). */
export const GOLONGPOLL_ERRORS = Object.freeze({
  timeout: (max: number) => `{"error": "Invalid or missing 'timeout' arg.  Must be 1-${max}."}`,
  category: '{"error": "Invalid subscription category, must be 1-1024 characters long."}',
  sinceTime: `{"error": "Invalid 'since_time' arg."}`,
  lastIdWithoutSince: `{"error": "Must provide 'since_time' arg when providing 'last_id'."}`,
  lastId: `{"error": "Param 'last_id' was not a valid UUID."}`,
  method: '{"error": "Invalid HTTP Method. Only POST allowed."}',
  body: '{"error": "Invalid POST body json."}',
  publishCategory: `{"error": "Invalid or missing 'category' arg, must be 1-1024 characters long."}`,
  publishData: `{"error": "Invalid or missing 'data' arg, must be non-nil."}`,
  success: '{"success": true}',
});

function send(res: ServerResponse, status: number, headers: Record<string, string>, body: string): void {
  if (res.headersSent) {
    res.end();
    return;
  }
  res.writeHead(status, { ...headers, 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

function sendHeraldError(res: ServerResponse, headers: Record<string, string>, err: unknown): void {
  const e = toHeraldError(err);
  send(res, e.status, headers, JSON.stringify({ error: e.message }));
}

/** Go's strconv.Atoi / ParseInt(s, 10, 64): optional sign, decimal digits, within int64. */
export function goParseInt(text: string): number | undefined {
  if (!/^[+-]?[0-9]+$/.test(text)) return undefined;
  const value = BigInt(text);
  if (value > 9223372036854775807n || value < -9223372036854775808n) return undefined;
  return Number(value);
}

/**
 * gofrs/uuid `FromString`: canonical (36), hash-like (32 hex), braced (`{…}`), or `urn:uuid:…`;
 * any case. Returns the canonical lower-case form, or undefined.
 */
export function goParseUuid(text: string): string | undefined {
  let t = text;
  if (t.length === 34 || t.length === 38) {
    if (t[0] !== '{' || t[t.length - 1] !== '}') return undefined;
    t = t.slice(1, -1);
  } else if (t.length === 41 || t.length === 45) {
    if (!t.startsWith('urn:uuid:')) return undefined;
    t = t.slice(9);
  }
  let hex: string;
  if (t.length === 36) {
    if (t[8] !== '-' || t[13] !== '-' || t[18] !== '-' || t[23] !== '-') return undefined;
    hex = t.slice(0, 8) + t.slice(9, 13) + t.slice(14, 18) + t.slice(19, 23) + t.slice(24);
  } else if (t.length === 32) hex = t;
  else return undefined;
  if (!/^[0-9a-fA-F]{32}$/.test(hex)) return undefined;
  hex = hex.toLowerCase();
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** End of the first JSON value in `text` starting at `i` (after whitespace), or -1: json.Decoder reads one value and ignores the rest. */
function firstValueEnd(text: string, start: number): number {
  let i = start;
  while (i < text.length && ' \t\r\n'.includes(text[i]!)) i++;
  if (i >= text.length) return -1;
  const c = text[i]!;
  if (c === '{' || c === '[') {
    let depth = 0;
    let inString = false;
    for (; i < text.length; i++) {
      const ch = text.charCodeAt(i);
      if (inString) {
        if (ch === 92) i++;
        else if (ch === 34) inString = false;
      } else if (ch === 34) inString = true;
      else if (ch === 123 || ch === 91) depth++;
      else if (ch === 125 || ch === 93) {
        if (--depth === 0) return i + 1;
      }
    }
    return -1;
  }
  if (c === '"') {
    for (i++; i < text.length; i++) {
      const ch = text.charCodeAt(i);
      if (ch === 92) i++;
      else if (ch === 34) return i + 1;
    }
    return -1;
  }
  // number, true, false, null: up to the next delimiter
  let j = i;
  while (j < text.length && !' \t\r\n{}[],"'.includes(text[j]!)) j++;
  return j;
}

export type PublishBody = { ok: true; category: string; data: unknown } | { ok: false; error: 'body' };

/**
 * Decodes a publish body the way golongpoll's `json.NewDecoder(r.Body).Decode(&PublishData)` does:
 * the first JSON value only; `null` gives empty fields; anything else than an object, or a
 * `category` that is not a string (or null), is a decode error; keys match case-insensitively,
 * the last one wins.
 */
export function decodePublishBody(text: string): PublishBody {
  const end = firstValueEnd(text, 0);
  if (end < 0) return { ok: false, error: 'body' };
  const first = text.slice(0, end);
  if (jsonDepthExceeds(first, MAX_JSON_DEPTH)) return { ok: false, error: 'body' };
  let value: unknown;
  try {
    value = JSON.parse(first);
  } catch {
    return { ok: false, error: 'body' };
  }
  if (value === null) return { ok: true, category: '', data: null };
  if (typeof value !== 'object' || Array.isArray(value)) return { ok: false, error: 'body' };
  let category = '';
  let data: unknown = null;
  let typeError = false;
  for (const [key, v] of Object.entries(value as Record<string, unknown>)) {
    const k = key.toLowerCase();
    if (k === 'category') {
      if (typeof v === 'string') category = v;
      else if (v !== null) typeError = true;
    } else if (k === 'data') data = v;
  }
  if (typeError) return { ok: false, error: 'body' };
  return { ok: true, category, data };
}

function categoryOk(category: string): boolean {
  const bytes = Buffer.byteLength(category);
  return bytes >= 1 && bytes <= 1024 && channelProblem(category) === null;
}

function tokenOf(req: IncomingMessage, url: URL): string | undefined {
  return bearerToken(req) ?? (url.searchParams.get('token') || undefined);
}

/** Where a poll starts, from golongpoll's since_time / last_id over the retained history. */
function findStart(events: readonly HeraldEvent[], sinceTime: number, lastId: string | undefined): number {
  if (lastId !== undefined) {
    for (let k = events.length - 1; k >= 0; k--) {
      if (events[k]!.id === lastId) return k + 1;
    }
  }
  // golongpoll's rule, newest first: take while newer than since_time, or at since_time and not last_id.
  let i = events.length;
  while (i > 0) {
    const e = events[i - 1]!;
    if (e.timestamp > sinceTime || (e.timestamp === sinceTime && lastId !== undefined && e.id !== lastId)) i--;
    else break;
  }
  return i;
}

const kPoll = Symbol('herald.golongpoll');
type TaggedResponse = ServerResponse & { [kPoll]?: GlpPoll };

function onResponseClose(this: TaggedResponse): void {
  this[kPoll]?.abandon();
}

function onPollTimeout(poll: GlpPoll): void {
  poll.timeout();
}

class GlpPoll implements Subscriber, Flushable {
  readonly client: ClientContext;
  /**
   * Out of presence and join/leave, as herald's own long-poll: a poll has no connection to be
   * present on, and one subscription per poll made presence flicker with every answer. Its right
   * to subscribe is checked here instead (`start`).
   */
  readonly internal = true;
  private state: 'starting' | 'waiting' | 'done' = 'starting';
  private readonly transport: GolongpollTransport;
  private readonly res: TaggedResponse;
  private queue: OutgoingEvent[] = [];
  private fromHistory = 0;
  private timer: NodeJS.Timeout | undefined;
  private readonly onReady: (result: SubscribeResult) => void;

  constructor(transport: GolongpollTransport, res: ServerResponse, client: ClientContext) {
    this.transport = transport;
    this.res = res as TaggedResponse;
    this.client = client;
    this.onReady = (result) => this.subscribed(result);
    this.res[kPoll] = this;
    this.res.on('close', onResponseClose);
  }

  /** A method, so TypeScript does not narrow the state across awaits. */
  private get done(): boolean {
    return this.state === 'done';
  }

  async start(category: string, sinceTime: number | undefined, lastId: string | undefined, timeoutSeconds: number): Promise<void> {
    const hub = this.transport.hub;
    try {
      await hub.authorize('subscribe', this.client, category);
      if (this.done) return;
      const since = sinceTime === undefined ? undefined : await this.position(category, sinceTime, lastId);
      if (this.done) return;
      await hub.subscribe(this, category, since, this.onReady);
    } catch (err) {
      if (this.done) return;
      this.finish();
      throw err;
    }
    if (this.done) {
      // The client left while we subscribed: a subscribe that completed after the cleanup must not linger.
      void hub.unsubscribeAll(this).catch(() => {});
      return;
    }
    this.state = 'waiting';
    if (this.queue.length > 0) scheduleFlush(this);
    else {
      // Not past the token's expiry: what it no longer allows must not be delivered.
      const expiresIn = this.client.expiresAt === undefined ? Infinity : this.client.expiresAt - Date.now();
      this.timer = setTimeout(onPollTimeout, Math.max(0, Math.min(timeoutSeconds * 1000, expiresIn)), this);
      this.timer.unref();
    }
  }

  /**
   * The offset to subscribe from. Reads history without side effects (a delete-after-read
   * namespace must not lose events to this look-up). A caught-up client (its last_id is the newest
   * event, or without last_id the newest event is not after since_time) costs a one-event read.
   */
  private async position(category: string, sinceTime: number, lastId: string | undefined): Promise<Position> {
    const hub = this.transport.hub;
    const ns = hub.namespaces.forChannel(category);
    const newest = await hub.engine.history(category, { limit: 1 }, ns.channel);
    const top = newest.events[0];
    if (!top || top.id === lastId || (lastId === undefined && top.timestamp <= sinceTime)) {
      return { epoch: newest.epoch, offset: newest.offset };
    }
    const h = await hub.engine.history(category, { limit: ns.historySize }, ns.channel);
    const i = findStart(h.events, sinceTime, lastId);
    const first = h.events[i];
    return first ? { epoch: first.epoch, offset: first.offset - 1 } : { epoch: h.epoch, offset: h.offset };
  }

  private subscribed(result: SubscribeResult): void {
    if (this.state !== 'starting') return;
    for (const event of result.events) this.queue.push(OutgoingEvent.of(event));
    this.fromHistory = result.events.length;
  }

  deliver(out: OutgoingEvent): void {
    if (this.state === 'done') return;
    this.queue.push(out);
    if (this.state === 'waiting') scheduleFlush(this);
  }

  flush(): void {
    if (this.state !== 'waiting' || this.queue.length === 0) return;
    let body = '{"events":[';
    for (let i = 0; i < this.queue.length; i++) body += (i === 0 ? '' : ',') + this.queue[i]!.encoded(GOLONGPOLL_EVENT);
    body += ']}';
    if (this.fromHistory > 0) this.transport.hub.countDelivered(this.fromHistory);
    this.finish();
    send(this.res, 200, SUBSCRIBE_HEADERS, body);
  }

  timeout(): void {
    if (this.state !== 'waiting') return;
    this.finish();
    send(this.res, 200, SUBSCRIBE_HEADERS, JSON.stringify({ timeout: 'no events before timeout', timestamp: Date.now() }));
  }

  abandon(): void {
    this.finish();
  }

  private finish(): void {
    if (this.state === 'done') return;
    this.state = 'done';
    this.queue = [];
    if (this.timer) clearTimeout(this.timer);
    cancelFlush(this);
    this.transport.forget(this);
    void this.transport.hub.unsubscribeAll(this).catch(() => {});
  }
}

export class GolongpollTransport {
  readonly hub: Hub;
  readonly options: Readonly<GolongpollOptions>;
  private readonly polls = new Set<GlpPoll>();
  private readonly limits: TransportLimits;

  constructor(hub: Hub, options?: Partial<GolongpollOptions>) {
    this.hub = hub;
    this.options = resolveOptions('golongpoll', GOLONGPOLL_DEFAULTS, options, {
      allowedOrigins: [isOriginList, 'an array of origin strings'],
      maxTimeout: [isPositiveInt, 'a positive integer (seconds)'],
      maxBodyBytes: [isPositiveInt, 'a positive integer (bytes)'],
      limits: [(v) => v === undefined || v instanceof TransportLimits, 'a TransportLimits'],
    });
    this.limits = this.options.limits ?? new TransportLimits();
  }

  /** Polls waiting for an answer. */
  get size(): number {
    return this.polls.size;
  }

  /** Serves `<prefix>/events` and `<prefix>/publish` (e.g. mounted at `/golongpoll/`). */
  handle(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    if (url.pathname.endsWith('/events')) return this.handleEvents(req, res, url);
    if (url.pathname.endsWith('/publish')) return this.handlePublish(req, res, url);
    send(res, 404, SUBSCRIBE_HEADERS, '{"error": "Not found."}');
    return Promise.resolve();
  }

  /** golongpoll's SubscriptionHandler. */
  async handleEvents(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    try {
      if (!this.cors(req, res, SUBSCRIBE_HEADERS)) return;
      const refused = this.limits.request(req, res) ?? this.limits.hold(req, res);
      if (refused) return sendHeraldError(res, SUBSCRIBE_HEADERS, refused);
      const q = url.searchParams;
      const timeoutText = q.get('timeout') ?? '';
      const timeout = goParseInt(timeoutText);
      if (timeout === undefined || timeout < 1 || timeout > this.options.maxTimeout) {
        return send(res, 200, SUBSCRIBE_HEADERS, GOLONGPOLL_ERRORS.timeout(this.options.maxTimeout));
      }
      const category = q.get('category') ?? '';
      if (!categoryOk(category)) return send(res, 200, SUBSCRIBE_HEADERS, GOLONGPOLL_ERRORS.category);
      const sinceText = q.get('since_time') ?? '';
      let sinceTime: number | undefined;
      if (sinceText !== '') {
        sinceTime = goParseInt(sinceText);
        if (sinceTime === undefined) return send(res, 200, SUBSCRIBE_HEADERS, GOLONGPOLL_ERRORS.sinceTime);
      }
      const lastIdText = q.get('last_id') ?? '';
      let lastId: string | undefined;
      if (lastIdText !== '') {
        if (sinceTime === undefined) return send(res, 200, SUBSCRIBE_HEADERS, GOLONGPOLL_ERRORS.lastIdWithoutSince);
        lastId = goParseUuid(lastIdText);
        if (lastId === undefined) return send(res, 200, SUBSCRIBE_HEADERS, GOLONGPOLL_ERRORS.lastId);
      }
      const client = await this.hub.authenticate(tokenOf(req, url), 'golongpoll');
      if (res.destroyed || res.writableEnded) return;
      const poll = new GlpPoll(this, res, client);
      this.polls.add(poll);
      await poll.start(category, sinceTime, lastId, timeout);
    } catch (err) {
      this.fail(res, SUBSCRIBE_HEADERS, err);
    }
  }

  /** golongpoll's PublishHandler. */
  async handlePublish(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    try {
      if (!this.cors(req, res, PUBLISH_HEADERS)) return;
      if (req.method !== 'POST') {
        req.resume();
        return send(res, 405, PUBLISH_HEADERS, GOLONGPOLL_ERRORS.method);
      }
      const refused = this.limits.request(req, res, true);
      if (refused) {
        req.resume();
        return sendHeraldError(res, PUBLISH_HEADERS, refused);
      }
      const body = await readBody(req, this.options.maxBodyBytes);
      const decoded = decodePublishBody(body.toString('utf8'));
      if (!decoded.ok) return send(res, 400, PUBLISH_HEADERS, GOLONGPOLL_ERRORS.body);
      if (!categoryOk(decoded.category)) return send(res, 400, PUBLISH_HEADERS, GOLONGPOLL_ERRORS.publishCategory);
      if (decoded.data === null || decoded.data === undefined) return send(res, 400, PUBLISH_HEADERS, GOLONGPOLL_ERRORS.publishData);
      const client = await this.hub.authenticate(tokenOf(req, url), 'golongpoll');
      await this.hub.publish(decoded.category, decoded.data, client);
      send(res, 200, PUBLISH_HEADERS, GOLONGPOLL_ERRORS.success);
    } catch (err) {
      this.fail(res, PUBLISH_HEADERS, err);
    }
  }

  /** Answers every pending poll with golongpoll's timeout answer (clients simply poll again). */
  async close(): Promise<void> {
    for (const poll of [...this.polls]) poll.timeout();
  }

  /** @internal */
  forget(poll: GlpPoll): void {
    this.polls.delete(poll);
  }

  /** Origin check and CORS headers; answers preflights. False when the request is answered. */
  private cors(req: IncomingMessage, res: ServerResponse, headers: Record<string, string>): boolean {
    if (!originAllowed(req, this.options.allowedOrigins)) {
      req.resume();
      send(res, 403, headers, '{"error": "Origin not allowed."}');
      return false;
    }
    const origin = req.headers.origin;
    if (origin) {
      res.setHeader('access-control-allow-origin', origin);
      res.setHeader('vary', 'Origin');
      res.setHeader('access-control-allow-credentials', 'true');
      if (req.method === 'OPTIONS') {
        res.writeHead(204, {
          'access-control-allow-methods': 'GET, POST, OPTIONS',
          'access-control-allow-headers': 'content-type, authorization',
          'access-control-max-age': '600',
        });
        res.end();
        return false;
      }
    }
    return true;
  }

  private fail(res: ServerResponse, headers: Record<string, string>, err: unknown): void {
    const e = toHeraldError(err);
    if (e.code === 'internal') this.options.logger.error({ err }, 'golongpoll: request failed');
    sendHeraldError(res, headers, e);
  }
}
