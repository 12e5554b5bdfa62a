/**
 * The hub: channels, subscriptions, fan-out, history and presence on top of an engine.
 * Transports hand it Subscribers; it knows nothing of sockets or HTTP.
 */
import {
  CLOSE_CODES,
  HeraldError,
  assertChannel,
  matchPattern,
  randomId,
  type ClientInfo,
  type HistoryResult,
  type Position,
  type PublishResult,
  type SubscribeResult,
} from '../protocol/index.js';
import type { Engine } from './engine.js';
import { HUB_LIMIT_DEFAULTS, Namespaces, type HubLimits, type NamespaceOptions, type ResolvedNamespace } from './options.js';
import { OutgoingEvent } from './outgoing.js';

/** Channel patterns a token grants (`*` matches any characters). */
export interface Permissions {
  subscribe: readonly string[];
  publish: readonly string[];
  presence: readonly string[];
}

/** Who is on the other end of a connection, SSE stream or poll. */
export interface ClientContext {
  readonly id: string;
  readonly user?: string;
  readonly transport: string;
  /** From the client's token; undefined for an anonymous client (namespace rules apply). */
  readonly permissions?: Permissions;
  /**
   * When the client's credentials expire (ms since the Unix epoch). A registered session is
   * disconnected then with close code 4003 "token expired" (reconnect: true), so the client gets a
   * new token and resumes from its position: nothing is lost.
   */
  readonly expiresAt?: number;
}

/** A receiver of a channel's events. Called synchronously during fan-out: must not throw or block. */
export interface Subscriber {
  readonly client: ClientContext;
  /**
   * One event. A subscriber that stands for several clients (the long-poll transport's relay)
   * returns how many it delivered to; nothing (undefined) counts as one.
   */
  deliver(out: OutgoingEvent): void | number;
  /**
   * A transport's own subscriber, standing for clients it authorizes itself (the long-poll
   * relay): the hub skips the permission check and keeps it out of presence and join/leave.
   */
  readonly internal?: boolean;
  /** Join/leave of another subscriber, for namespaces with `joinLeave`. */
  onPresence?(kind: 'join' | 'leave', channel: string, info: ClientInfo): void;
}

/** A live connection, so the server API can list, count and disconnect it. */
export interface Session {
  readonly client: ClientContext;
  /** End the connection; `reconnect` tells the client whether to come back. */
  disconnect(code: number, reason: string, reconnect: boolean): void;
}

export type Action = 'subscribe' | 'publish' | 'presence';

export interface AuthResult {
  user?: string;
  permissions?: Permissions;
  /** When these credentials expire (ms since the Unix epoch), e.g. a JWT's `exp` × 1000. */
  expiresAt?: number;
}

export interface HubHooks {
  /**
   * Checks a client's credentials (a token, possibly none). Throw HeraldError('unauthorized') to refuse.
   * Without this hook every client is anonymous.
   */
  authenticate?(token: string | undefined, transport: string): AuthResult | Promise<AuthResult>;
  /** A further check after the built-in permission rules. Return false to refuse with `forbidden`. */
  authorize?(action: Action, client: ClientContext | undefined, channel: string): boolean | Promise<boolean>;
  /** Transform a publish (return the new data) or reject it by throwing a HeraldError. */
  beforePublish?(channel: string, data: unknown, client: ClientContext | undefined): unknown | Promise<unknown>;
}

export interface HubOptions {
  engine: Engine;
  namespaces?: Record<string, Partial<NamespaceOptions>>;
  /** Applied under every namespace: e.g. anonymous access off when authentication is configured. */
  namespaceBase?: Partial<NamespaceOptions>;
  limits?: Partial<HubLimits>;
  hooks?: HubHooks;
}

export interface HubStats {
  connections: number;
  subscriptions: number;
  channels: number;
  published: number;
  delivered: number;
  uptime: number;
}

export interface ChannelInfo {
  channel: string;
  subscribers: number;
  epoch: string;
  offset: number;
}

interface ChannelState {
  readonly name: string;
  readonly ns: ResolvedNamespace;
  readonly live: Set<Subscriber>;
  /** Subscribers between "engine subscribed" and "answer sent": live events wait here. */
  readonly pending: Map<Subscriber, OutgoingEvent[]>;
  /** Resolves once the engine subscription is in place. */
  engineReady: Promise<void>;
  /**
   * Live subscribers that must not get events at or before this position (their answer had
   * them): an engine's live stream may run behind its reads (Redis: two connections).
   */
  readonly floors: Map<Subscriber, { epoch: string; offset: number }>;
}

export class Hub {
  readonly engine: Engine;
  readonly namespaces: Namespaces;
  readonly limits: Readonly<HubLimits>;
  private readonly hooks: HubHooks;
  private readonly channels = new Map<string, ChannelState>();
  private readonly subscriptionsOf = new Map<Subscriber, Set<string>>();
  private readonly sessions = new Map<string, Session>();
  /** Sessions whose credentials expire: one timer each, cleared when they end. */
  private readonly expiries = new Map<Session, NodeJS.Timeout>();
  /** Subscribers whose connection ended (unsubscribeAll): a subscribe still in flight for them must not land. */
  private readonly gone = new WeakSet<Subscriber>();
  private published = 0;
  private delivered = 0;
  private subscriptionCount = 0;
  private startedAt = Date.now();
  private state: 'new' | 'running' | 'closing' | 'closed' = 'new';

  constructor(options: HubOptions) {
    this.engine = options.engine;
    this.namespaces = new Namespaces(options.namespaces, options.namespaceBase);
    this.limits = Object.freeze({ ...HUB_LIMIT_DEFAULTS, ...options.limits });
    this.hooks = options.hooks ?? {};
  }

  async start(): Promise<void> {
    if (this.state !== 'new') return;
    this.engine.reportSubscribers?.(() => this.localSubscriberCounts());
    await this.engine.start({ onEvent: (event, json) => this.fanOut(OutgoingEvent.remember(new OutgoingEvent(event, json))) });
    this.startedAt = Date.now();
    this.state = 'running';
  }

  /** Ready to serve: started, not closing, and the engine can publish. */
  ready(): boolean {
    return this.state === 'running' && this.engine.available();
  }

  get running(): boolean {
    return this.state === 'running';
  }

  /** Disconnects every session with `code` (clients are told to reconnect) and closes the engine. */
  async close(code = 1001, reason = 'server shutting down'): Promise<void> {
    if (this.state === 'closing' || this.state === 'closed') return;
    this.state = 'closing';
    for (const session of [...this.sessions.values()]) {
      try {
        session.disconnect(code, reason, true);
      } catch {
        // A failing transport must not stop the others from being told.
      }
    }
    for (const timer of this.expiries.values()) clearTimeout(timer);
    this.expiries.clear();
    await this.engine.close();
    this.state = 'closed';
  }

  // ---- connections -------------------------------------------------------------------------

  /** Checks credentials and returns the client's context (a new client id). */
  async authenticate(token: string | undefined, transport: string): Promise<ClientContext> {
    return this.admit(token, transport);
  }

  /**
   * @internal `authenticate` without a promise when there is no `authenticate` hook: the
   * long-poll hot path (a busy client polls once per answer) skips the microtask hops.
   */
  admit(token: string | undefined, transport: string): ClientContext | Promise<ClientContext> {
    if (!this.hooks.authenticate) return clientContext({}, transport);
    return Promise.resolve(this.hooks.authenticate(token, transport)).then((auth) => clientContext(auth, transport));
  }

  /** Tracks a live session; one with `client.expiresAt` is disconnected (4003, reconnect) when it passes. */
  register(session: Session): void {
    this.sessions.set(session.client.id, session);
    if (session.client.expiresAt !== undefined) this.armExpiry(session);
  }

  unregister(session: Session): void {
    if (this.sessions.get(session.client.id) === session) this.sessions.delete(session.client.id);
    const timer = this.expiries.get(session);
    if (timer) {
      clearTimeout(timer);
      this.expiries.delete(session);
    }
  }

  private armExpiry(session: Session): void {
    // setTimeout holds at most 2^31-1 ms (~24.8 days): a longer token re-arms on the way.
    const delay = Math.min(session.client.expiresAt! - Date.now(), MAX_TIMER_MS);
    const timer = setTimeout(sessionExpiry, Math.max(0, delay), this, session);
    timer.unref();
    this.expiries.set(session, timer);
  }

  /** @internal the expiry timer of `session` fired */
  expire(session: Session): void {
    this.expiries.delete(session);
    if (this.sessions.get(session.client.id) !== session) return;
    if (session.client.expiresAt! > Date.now()) return this.armExpiry(session);
    try {
      session.disconnect(TOKEN_EXPIRED, 'token expired', true);
    } catch {
      // The transport's problem; the session ends with its connection anyway.
    }
  }

  /** Disconnects a client by id (SPEC §5 `/api/disconnect`). False when unknown. */
  disconnectClient(clientId: string, code = 4002, reason = 'disconnected by the server'): boolean {
    const session = this.sessions.get(clientId);
    if (!session) return false;
    session.disconnect(code, reason, true);
    return true;
  }

  // ---- permissions -------------------------------------------------------------------------

  /** Throws `forbidden` unless `client` may do `action` on `channel`. No client = the server itself. */
  async authorize(action: Action, client: ClientContext | undefined, channel: string): Promise<void> {
    return this.permit(action, client, channel);
  }

  /**
   * @internal `authorize` without a promise when the `authorize` hook (if any) answers
   * synchronously: returns undefined when allowed, a promise when the hook's answer is one,
   * throws `forbidden` when refused.
   */
  permit(action: Action, client: ClientContext | undefined, channel: string): void | Promise<void> {
    if (client) {
      let allowed: boolean;
      if (client.permissions) allowed = client.permissions[action].some((p) => matchPattern(p, channel));
      else {
        const ns = this.namespaces.forChannel(channel);
        allowed = action === 'publish' ? ns.anonymousPublish : ns.anonymousSubscribe;
      }
      if (!allowed) throw forbidden(action);
    }
    if (!this.hooks.authorize) return;
    const verdict = this.hooks.authorize(action, client, channel);
    if (isThenable(verdict)) {
      return Promise.resolve(verdict).then((ok) => {
        if (!ok) throw forbidden(action);
      });
    }
    if (!verdict) throw forbidden(action);
  }

  // ---- publish -----------------------------------------------------------------------------

  async publish(channel: string, data: unknown, client?: ClientContext): Promise<PublishResult> {
    assertChannel(channel);
    if (data === undefined) throw new HeraldError('bad_request', '"data" is required (null is allowed)');
    if (this.state !== 'running') throw new HeraldError('unavailable', 'server is not running');
    await this.authorize('publish', client, channel);
    if (this.hooks.beforePublish) data = await this.hooks.beforePublish(channel, data, client);
    let dataJson: string | undefined;
    try {
      dataJson = JSON.stringify(data);
    } catch {
      throw new HeraldError('bad_request', '"data" is not serialisable to JSON');
    }
    if (dataJson === undefined) throw new HeraldError('bad_request', '"data" is not serialisable to JSON');
    // Event envelope ≈ 200 bytes + channel + from; the limit is on the whole serialised event.
    const overhead = 200 + channel.length * 3 + (client ? client.id.length + (client.user?.length ?? 0) * 3 + 40 : 0);
    if (dataJson.length + overhead > this.limits.maxEventBytes && Buffer.byteLength(dataJson) + overhead > this.limits.maxEventBytes) {
      throw new HeraldError('too_large', `event is over ${this.limits.maxEventBytes} bytes`);
    }
    if (!this.engine.available()) throw new HeraldError('unavailable', 'engine is unavailable; the event was not published');
    const ns = this.namespaces.forChannel(channel);
    const req = { channel, data, dataJson, options: ns.channel } as Parameters<Engine['publish']>[0];
    if (client) req.from = client.user === undefined ? { client: client.id } : { client: client.id, user: client.user };
    const { event } = await this.engine.publish(req);
    this.published++;
    return { channel, epoch: event.epoch, offset: event.offset, id: event.id, timestamp: event.timestamp };
  }

  /** Fan-out of one event to this node's subscribers: the hot path. */
  private fanOut(out: OutgoingEvent): void {
    const state = this.channels.get(out.event.channel);
    if (!state) return;
    for (const buffer of state.pending.values()) buffer.push(out);
    let n = 0;
    const floors = state.floors.size > 0 ? state.floors : undefined;
    for (const sub of state.live) {
      if (floors) {
        const floor = floors.get(sub);
        if (floor) {
          if (out.event.epoch === floor.epoch && out.event.offset <= floor.offset) continue;
          floors.delete(sub);
        }
      }
      try {
        const count = sub.deliver(out);
        n += count === undefined ? 1 : count;
      } catch {
        // A subscriber's failure is its transport's business; the rest still get the event.
      }
    }
    this.delivered += n;
    if (n > 0 && state.ns.deleteAfterRead) void this.engine.markRead(state.name, [out.event.offset]).catch(() => {});
  }

  // ---- subscriptions -----------------------------------------------------------------------

  /**
   * Subscribes `sub` to `channel`. With `since`, the answer carries the events after it (or
   * `recovered: false` and the retained ones). Live events follow with no gap and no duplicate:
   * `onReady` is called with the answer synchronously before any of them is delivered, so a
   * transport writes the answer there.
   */
  async subscribe(sub: Subscriber, channel: string, since?: Position, onReady?: (result: SubscribeResult) => void): Promise<SubscribeResult> {
    assertChannel(channel);
    if (this.state !== 'running') throw new HeraldError('unavailable', 'server is not running');
    let mine = this.subscriptionsOf.get(sub);
    if (mine?.has(channel)) throw new HeraldError('bad_request', 'already subscribed to this channel');
    if (mine && mine.size >= this.limits.maxChannelsPerClient) {
      throw new HeraldError('limit_exceeded', `at most ${this.limits.maxChannelsPerClient} channels per connection`);
    }
    if (!sub.internal) await this.authorize('subscribe', sub.client, channel);
    if (this.gone.has(sub)) throw new HeraldError('bad_request', 'connection closed during subscribe');
    // Re-check after the await: another subscribe may have raced this one.
    mine = this.subscriptionsOf.get(sub);
    if (mine?.has(channel)) throw new HeraldError('bad_request', 'already subscribed to this channel');
    if (mine && mine.size >= this.limits.maxChannelsPerClient) {
      throw new HeraldError('limit_exceeded', `at most ${this.limits.maxChannelsPerClient} channels per connection`);
    }
    if (!mine) this.subscriptionsOf.set(sub, (mine = new Set()));
    mine.add(channel);
    this.subscriptionCount++;

    let state = this.channels.get(channel);
    if (!state) {
      const created: ChannelState = { name: channel, ns: this.namespaces.forChannel(channel), live: new Set(), pending: new Map(), engineReady: Promise.resolve(), floors: new Map() };
      created.engineReady = this.engine.subscribe(channel);
      this.channels.set(channel, (state = created));
    }
    state.pending.set(sub, []);
    let result: SubscribeResult;
    try {
      await state.engineReady;
      const query = since ? { since, limit: state.ns.historySize } : { limit: 0 };
      const h = await this.engine.history(channel, query, state.ns.channel);
      result = { channel, epoch: h.epoch, offset: h.offset, recovered: since ? h.recovered : true, events: h.events };
    } catch (err) {
      state.pending.delete(sub);
      this.forget(sub, channel);
      throw err;
    }
    if (!mine.has(channel) || !state.pending.has(sub) || this.gone.has(sub)) {
      // Unsubscribed (or disconnected) while we were reading.
      state.pending.delete(sub);
      this.forget(sub, channel);
      throw new HeraldError('bad_request', 'unsubscribed during subscribe');
    }
    // From here to the end: synchronous, so no event slips between the answer and the live stream.
    const waiting = state.pending.get(sub)!;
    state.pending.delete(sub);
    let last = result.offset;
    if (result.events.length > 0) last = Math.max(last, result.events[result.events.length - 1]!.offset);
    onReady?.(result);
    let floor = { epoch: result.epoch, offset: last };
    for (const out of waiting) {
      if (out.event.epoch !== result.epoch || out.event.offset > last) {
        const count = sub.deliver(out);
        this.delivered += count === undefined ? 1 : count;
        floor = { epoch: out.event.epoch, offset: out.event.offset };
      }
    }
    state.live.add(sub);
    state.floors.set(sub, floor);
    if (state.ns.deleteAfterRead && result.events.length > 0) {
      void this.engine.markRead(channel, result.events.map((e) => e.offset)).catch(() => {});
    }
    if (state.ns.presence && !sub.internal) {
      const info = clientInfo(sub.client);
      void this.engine.presenceAdd(channel, info).catch(() => {});
      if (state.ns.joinLeave) this.announce('join', state, sub, info);
    }
    return result;
  }

  /** Ends a subscription; false when there was none. */
  async unsubscribe(sub: Subscriber, channel: string): Promise<boolean> {
    const state = this.channels.get(channel);
    const wasLive = state?.live.delete(sub) ?? false;
    state?.floors.delete(sub);
    const wasPending = state?.pending.delete(sub) ?? false;
    if (!this.forget(sub, channel)) return false;
    if (state && wasLive && state.ns.presence && !sub.internal) {
      const info = clientInfo(sub.client);
      if (state.ns.joinLeave) this.announce('leave', state, sub, info);
      await this.engine.presenceRemove(channel, sub.client.id).catch(() => {});
    }
    return wasLive || wasPending;
  }

  /** Ends every subscription of `sub` because its connection closed: `sub` cannot subscribe again. */
  async unsubscribeAll(sub: Subscriber): Promise<void> {
    this.gone.add(sub);
    const mine = this.subscriptionsOf.get(sub);
    if (!mine) return;
    await Promise.all([...mine].map((channel) => this.unsubscribe(sub, channel)));
    this.subscriptionsOf.delete(sub);
  }

  /** Channels `sub` is subscribed to. */
  channelsOf(sub: Subscriber): ReadonlySet<string> {
    return this.subscriptionsOf.get(sub) ?? new Set();
  }

  private forget(sub: Subscriber, channel: string): boolean {
    const mine = this.subscriptionsOf.get(sub);
    if (!mine?.delete(channel)) return false;
    this.subscriptionCount--;
    if (mine.size === 0) this.subscriptionsOf.delete(sub);
    const state = this.channels.get(channel);
    if (state && state.live.size === 0 && state.pending.size === 0) {
      this.channels.delete(channel);
      void state.engineReady.then(() => {
        // Only if nobody subscribed again in the meantime.
        if (!this.channels.has(channel)) return this.engine.unsubscribe(channel);
      }).catch(() => {});
    }
    return true;
  }

  private announce(kind: 'join' | 'leave', state: ChannelState, who: Subscriber, info: ClientInfo): void {
    for (const sub of state.live) {
      if (sub !== who && sub.onPresence) {
        try {
          sub.onPresence(kind, state.name, info);
        } catch {
          // ignore: transport problem
        }
      }
    }
  }

  // ---- reads -------------------------------------------------------------------------------

  /** History (SPEC §2 `history`): needs the subscribe permission; `limit` defaults to and is capped at the history size. */
  async history(channel: string, query: { since?: Position; limit?: number }, client?: ClientContext): Promise<HistoryResult> {
    assertChannel(channel);
    await this.authorize('subscribe', client, channel);
    const ns = this.namespaces.forChannel(channel);
    const limit = Math.min(query.limit ?? ns.historySize, ns.historySize);
    const q = query.since ? { since: query.since, limit } : { limit };
    const result = await this.engine.history(channel, q, ns.channel);
    if (!query.since) result.recovered = true;
    if (ns.deleteAfterRead && result.events.length > 0) await this.engine.markRead(channel, result.events.map((e) => e.offset));
    return result;
  }

  async presence(channel: string, client?: ClientContext): Promise<ClientInfo[]> {
    assertChannel(channel);
    await this.authorize('presence', client, channel);
    return this.engine.presence(channel);
  }

  /** Subscribers per channel on this node. */
  *localSubscriberCounts(): Iterable<[string, number]> {
    for (const state of this.channels.values()) yield [state.name, state.live.size + state.pending.size];
  }

  /** Channels with a subscriber: cluster-wide when the engine spans nodes, else on this node. */
  async channelList(): Promise<ChannelInfo[]> {
    if (this.engine.clusterChannels) return this.engine.clusterChannels();
    const out: ChannelInfo[] = [];
    for (const state of this.channels.values()) {
      const h = await this.engine.history(state.name, { limit: 0 }, state.ns.channel);
      out.push({ channel: state.name, subscribers: state.live.size + state.pending.size, epoch: h.epoch, offset: h.offset });
    }
    return out;
  }

  stats(): HubStats {
    return {
      connections: this.sessions.size,
      subscriptions: this.subscriptionCount,
      channels: this.channels.size,
      published: this.published,
      delivered: this.delivered,
      uptime: Math.floor((Date.now() - this.startedAt) / 1000),
    };
  }

  /** Adds deliveries made outside fan-out (transports that read history on their own). */
  countDelivered(n: number): void {
    this.delivered += n;
  }
}

const MAX_TIMER_MS = 2_147_483_647;
const TOKEN_EXPIRED = CLOSE_CODES.tokenExpired.code;

function sessionExpiry(hub: Hub, session: Session): void {
  hub.expire(session);
}

export function clientInfo(client: ClientContext): ClientInfo {
  return client.user === undefined ? { client: client.id } : { client: client.id, user: client.user };
}

function clientContext(auth: AuthResult, transport: string): ClientContext {
  const client: { id: string; transport: string; user?: string; permissions?: Permissions; expiresAt?: number } = { id: randomId(16), transport };
  if (auth.user !== undefined) client.user = auth.user;
  if (auth.permissions) client.permissions = auth.permissions;
  if (auth.expiresAt !== undefined && Number.isFinite(auth.expiresAt)) client.expiresAt = auth.expiresAt;
  return client;
}

function forbidden(action: Action): HeraldError {
  return new HeraldError('forbidden', `not allowed to ${action} on this channel`);
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return typeof (value as PromiseLike<unknown> | null)?.then === 'function';
}
