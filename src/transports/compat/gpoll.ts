/**
 * gpoll compatibility (SPEC §6): `/gpoll`, answering like corvuscrypto/gpoll's
 * `Broadcaster.HandleRequests`, so its clients work unchanged.
 *
 * - `?client-id=<shorter than 10 characters>` (gpoll's rule; clients send `0`) registers a client:
 *   200 `{"client-id":"<n>$<uuid>"}` (n names the group of up to 1,000 clients, as gpoll's routines).
 * - `?client-id=<n>$<uuid>` waits for the client's next message and answers it as the plain body:
 *   string data as is, any other data as its JSON. One message per answer, oldest first.
 * - An id without `$`, or one not (or no longer) registered: 404 with an empty body.
 *
 * Messages are the events of one configured channel (default `broadcast`). The transport holds a
 * single hub Subscriber for it and fans each event into every client's buffer, so messages sent
 * between two polls are not missed. Overflow policy (gpoll's): a client whose buffer already holds
 * `bufferSize` messages when another arrives is dropped (its later polls get 404). Herald adds an
 * idle limit: a client with no poll waiting and none for `idleTimeoutMs` is dropped too.
 *
 * Unlike gpoll, a poll whose client went away before its answer was sent does not consume the
 * message: it stays first in the buffer for the next poll.
 *
 * Credentials (herald's; gpoll has none): an optional `token` query parameter at registration;
 * the client must be allowed to subscribe to the channel (401/403, empty body, otherwise). A client
 * registered with an expiring token is dropped when it expires (one timer per such client), before
 * it is given anything more (its polls then get 404; a waiting one an empty 200 at the expiry). Requests and waiting polls count
 * against their address's limits (transports/limits.ts): 429 over them.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { channelProblem, randomId, toHeraldError } from '../../protocol/index.js';
import { defineEncoding, silentLogger, type ClientContext, type Hub, type Logger, type OutgoingEvent, type Subscriber } from '../../core/index.js';
import { originAllowed } from '../origin.js';
import { isOriginList, isPositiveInt, resolveOptions } from '../http-stream/request.js';
import { TransportLimits } from '../limits.js';

export interface GpollOptions {
  /** Origins allowed (SPEC §5); a refused Origin gets 403. Unset: same-origin browsers and non-browser clients. */
  allowedOrigins: readonly string[] | undefined;
  /** The channel whose events are broadcast. Default `broadcast`. */
  channel: string;
  /** Messages kept per client between polls (gpoll's ClientBufferSize). Default 100. */
  bufferSize: number;
  /** A client with no poll for this long is dropped. Default 60,000 ms. */
  idleTimeoutMs: number;
  /** Polls one client may have waiting at once; more get 429. Default 4. */
  maxWaitingPerClient: number;
  /** Registered clients at most; registrations beyond get 503. Default 100,000. */
  maxClients: number;
  /** Rate and connection limits per client address (transports/limits.ts); the server shares one instance. Default: a new one with the defaults. */
  limits: TransportLimits | undefined;
  logger: Logger;
}

export const GPOLL_DEFAULTS: Readonly<GpollOptions> = Object.freeze({
  allowedOrigins: undefined,
  channel: 'broadcast',
  bufferSize: 100,
  idleTimeoutMs: 60_000,
  maxWaitingPerClient: 4,
  maxClients: 100_000,
  limits: undefined,
  logger: silentLogger,
});

/** gpoll's message body: string data as is, anything else as JSON. Once per publish. */
export const GPOLL_MESSAGE = defineEncoding((out) => (typeof out.event.data === 'string' ? out.event.data : JSON.stringify(out.event.data)));

const TEXT_HEADERS = { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store' };

/** Clients per `n` in `<n>$<uuid>`, as gpoll's RoutineMaxClients. */
const GROUP_SIZE = 1000;

function sendText(res: ServerResponse, status: number, body: string): void {
  if (res.headersSent) {
    res.end();
    return;
  }
  res.writeHead(status, { ...TEXT_HEADERS, 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

function sendEmpty(res: ServerResponse, status: number): void {
  if (res.headersSent) {
    res.end();
    return;
  }
  res.writeHead(status, { 'content-length': 0, 'cache-control': 'no-store' });
  res.end();
}

/** Go's strconv.Atoi with the error ignored (gpoll does `tid, _ := strconv.Atoi(…)`). */
function atoiOrZero(text: string): number {
  return /^[+-]?[0-9]{1,15}$/.test(text) ? Number(text) : 0;
}

/** A bounded FIFO of message bodies. */
class MessageQueue {
  private items: (string | undefined)[];
  private head = 0;
  size = 0;

  constructor(capacity: number) {
    this.items = new Array<string | undefined>(capacity);
  }

  get full(): boolean {
    return this.size === this.items.length;
  }

  push(item: string): void {
    this.items[(this.head + this.size) % this.items.length] = item;
    this.size++;
  }

  shift(): string | undefined {
    if (this.size === 0) return undefined;
    const item = this.items[this.head];
    this.items[this.head] = undefined;
    this.head = (this.head + 1) % this.items.length;
    this.size--;
    return item;
  }

  /** Puts an item back in front (a poll that could not deliver it). Drops the newest when full. */
  unshift(item: string): void {
    if (this.full) this.size--;
    this.head = (this.head - 1 + this.items.length) % this.items.length;
    this.items[this.head] = item;
    this.size++;
  }
}

interface GpollClient {
  readonly id: string;
  readonly buffer: MessageQueue;
  /** Responses waiting for a message, oldest first. */
  readonly waiting: ServerResponse[];
  lastSeen: number;
  dropped: boolean;
  /** When the registering token expires (ms since the Unix epoch); Infinity without one. */
  expiresAt: number;
  /** Drops the client at `expiresAt` (none without an expiry, or one past setTimeout's range). */
  expiry: NodeJS.Timeout | undefined;
}

/** setTimeout's longest delay; a later expiry is caught by the checks on poll, delivery and sweep. */
const MAX_TIMER_MS = 2 ** 31 - 1;

function expireClient(transport: GpollTransport, client: GpollClient): void {
  transport.expire(client);
}

const kWait = Symbol('herald.gpollWait');
type TaggedResponse = ServerResponse & { [kWait]?: { transport: GpollTransport; client: GpollClient; message?: string } };

/** A waiting poll's response closed: forget it, and if its message never left, put the message back. */
function onWaitClose(this: TaggedResponse): void {
  const tag = this[kWait];
  if (!tag) return;
  this[kWait] = undefined;
  tag.transport.pollEnded(tag.client, this, tag.message !== undefined && !this.writableFinished ? tag.message : undefined);
}

function sweepIdle(transport: GpollTransport): void {
  transport.sweep();
}

export class GpollTransport implements Subscriber {
  readonly hub: Hub;
  readonly options: Readonly<GpollOptions>;
  /** The transport's one subscription: a server-side context allowed to read its channel only. */
  readonly client: ClientContext;
  private readonly clients = new Map<string, GpollClient>();
  private readonly limits: TransportLimits;
  private registered = 0;
  private subscribing: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private closing = false;

  constructor(hub: Hub, options?: Partial<GpollOptions>) {
    this.hub = hub;
    this.options = resolveOptions('gpoll', GPOLL_DEFAULTS, options, {
      allowedOrigins: [isOriginList, 'an array of origin strings'],
      channel: [(v) => channelProblem(v) === null, 'a valid channel name'],
      bufferSize: [isPositiveInt, 'a positive integer'],
      idleTimeoutMs: [isPositiveInt, 'a positive integer (milliseconds)'],
      maxWaitingPerClient: [isPositiveInt, 'a positive integer'],
      maxClients: [isPositiveInt, 'a positive integer'],
      limits: [(v) => v === undefined || v instanceof TransportLimits, 'a TransportLimits'],
    });
    this.limits = this.options.limits ?? new TransportLimits();
    const channel = this.options.channel;
    this.client = { id: `gpoll:${randomId(12)}`, transport: 'gpoll', permissions: { subscribe: [channel], publish: [], presence: [] } };
  }

  /** Registered clients. */
  get size(): number {
    return this.clients.size;
  }

  /** Polls waiting for a message, over all clients. */
  get waitingPolls(): number {
    let n = 0;
    for (const c of this.clients.values()) n += c.waiting.length;
    return n;
  }

  async handle(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    try {
      if (!originAllowed(req, this.options.allowedOrigins)) return sendEmpty(res, 403);
      const origin = req.headers.origin;
      if (origin) {
        res.setHeader('access-control-allow-origin', origin);
        res.setHeader('vary', 'Origin');
      }
      if (this.closing) return sendEmpty(res, 503);
      const refused = this.limits.request(req, res);
      if (refused) return sendEmpty(res, refused.status);
      const id = url.searchParams.get('client-id') ?? '';
      if (id.length < 10) return await this.register(res, url);
      const parts = id.split('$');
      if (parts.length < 2) return sendEmpty(res, 404);
      const client = this.clients.get(`${atoiOrZero(parts[0]!)}$${parts[1]!}`);
      if (!client || client.dropped) return sendEmpty(res, 404);
      if (client.expiresAt <= Date.now()) {
        this.drop(client, 'token expired');
        return sendEmpty(res, 404);
      }
      this.poll(client, res, req);
    } catch (err) {
      const e = toHeraldError(err);
      if (e.code === 'internal') this.options.logger.error({ err }, 'gpoll: request failed');
      sendEmpty(res, e.status);
    }
  }

  private async register(res: ServerResponse, url: URL): Promise<void> {
    const who = await this.hub.authenticate(url.searchParams.get('token') ?? undefined, 'gpoll');
    await this.hub.authorize('subscribe', who, this.options.channel);
    await this.subscribeOnce();
    if (this.clients.size >= this.options.maxClients) return sendEmpty(res, 503);
    const id = `${Math.floor(this.registered++ / GROUP_SIZE)}$${randomUUID()}`;
    const client: GpollClient = { id, buffer: new MessageQueue(this.options.bufferSize), waiting: [], lastSeen: Date.now(), dropped: false, expiresAt: who.expiresAt ?? Infinity, expiry: undefined };
    const expiresIn = client.expiresAt - Date.now();
    if (expiresIn <= MAX_TIMER_MS) {
      client.expiry = setTimeout(expireClient, Math.max(0, expiresIn), this, client);
      client.expiry.unref();
    }
    this.clients.set(id, client);
    this.ensureSweep();
    sendText(res, 200, JSON.stringify({ 'client-id': id }));
  }

  private subscribeOnce(): Promise<void> {
    this.subscribing ??= this.hub.subscribe(this, this.options.channel).then(
      () => undefined,
      (err: unknown) => {
        this.subscribing = undefined;
        throw err;
      },
    );
    return this.subscribing;
  }

  private poll(client: GpollClient, res: ServerResponse, req: IncomingMessage): void {
    client.lastSeen = Date.now();
    const message = client.buffer.shift();
    if (message !== undefined) {
      this.answer(client, res as TaggedResponse, message);
      return;
    }
    if (client.waiting.length >= this.options.maxWaitingPerClient) return sendEmpty(res, 429);
    const refused = this.limits.hold(req, res);
    if (refused) return sendEmpty(res, refused.status);
    const tagged = res as TaggedResponse;
    tagged[kWait] = { transport: this, client };
    tagged.on('close', onWaitClose);
    client.waiting.push(res);
  }

  private answer(client: GpollClient, res: TaggedResponse, message: string): void {
    const tag = res[kWait];
    if (tag) tag.message = message;
    else {
      res[kWait] = { transport: this, client, message };
      res.on('close', onWaitClose);
    }
    sendText(res, 200, message);
  }

  /** Subscriber: one event of the channel, fanned into every client. */
  deliver(out: OutgoingEvent): void {
    const message = out.encoded(GPOLL_MESSAGE);
    const now = Date.now();
    for (const client of this.clients.values()) {
      if (client.expiresAt <= now) {
        this.drop(client, 'token expired');
        continue;
      }
      const res = client.waiting.shift();
      if (res) this.answer(client, res as TaggedResponse, message);
      else if (client.buffer.full) this.drop(client, 'buffer overflow');
      else client.buffer.push(message);
    }
  }

  /** @internal a poll's response closed; `undelivered` is its message if it never left. */
  pollEnded(client: GpollClient, res: ServerResponse, undelivered: string | undefined): void {
    const i = client.waiting.indexOf(res);
    if (i >= 0) client.waiting.splice(i, 1);
    client.lastSeen = Date.now();
    if (undelivered !== undefined && !client.dropped) client.buffer.unshift(undelivered);
  }

  /** @internal The client's token expired. */
  expire(client: GpollClient): void {
    if (!client.dropped) this.drop(client, 'token expired');
  }

  private drop(client: GpollClient, why: string): void {
    client.dropped = true;
    if (client.expiry) clearTimeout(client.expiry);
    this.clients.delete(client.id);
    this.options.logger.debug({ client: client.id, why }, 'gpoll: client dropped');
    // gpoll closes the client's channel: a poll still waiting gets an empty 200.
    for (const res of client.waiting.splice(0)) sendText(res, 200, '');
    if (this.clients.size === 0) this.stopSweep();
  }

  /** @internal drops clients idle for longer than idleTimeoutMs */
  sweep(): void {
    const now = Date.now();
    const cutoff = now - this.options.idleTimeoutMs;
    for (const client of [...this.clients.values()]) {
      if (client.expiresAt <= now) this.drop(client, 'token expired');
      else if (client.waiting.length === 0 && client.lastSeen < cutoff) this.drop(client, 'idle');
    }
  }

  private ensureSweep(): void {
    if (this.timer) return;
    this.timer = setInterval(sweepIdle, Math.max(50, Math.min(5_000, Math.floor(this.options.idleTimeoutMs / 2))), this);
    this.timer.unref();
  }

  private stopSweep(): void {
    if (!this.timer) return;
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Answers waiting polls (503), forgets every client, and ends the subscription. */
  async close(): Promise<void> {
    this.closing = true;
    this.stopSweep();
    for (const client of this.clients.values()) {
      client.dropped = true;
      if (client.expiry) clearTimeout(client.expiry);
      for (const res of client.waiting.splice(0)) sendEmpty(res, 503);
    }
    this.clients.clear();
    if (this.subscribing) {
      this.subscribing = undefined;
      await this.hub.unsubscribeAll(this).catch(() => {});
    }
  }
}
