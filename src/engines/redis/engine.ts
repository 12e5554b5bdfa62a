/**
 * The Redis engine: several herald nodes as one. Offsets, epochs, history and presence live in
 * Redis; each publish is one Lua script (offset, history append and PUBLISH together), so it is
 * atomic per channel whichever node runs it. Each node SUBSCRIBEs to a channel's pub/sub only
 * while it has local subscribers. docs/scaling.md explains the design; the comments here say why.
 */
import { Cluster, Redis, type RedisOptions } from 'ioredis';
import { HeraldError, randomId, uuidv7, type ClientInfo, type HeraldEvent, type HistoryResult } from '../../protocol/index.js';
import type { ChannelOptions, Engine, EngineHandler, HistoryQuery, PublishRequest } from '../../core/engine.js';
import { channelKeys, eventJsonParts, joinEventJson, nodeKey, nodesKey, shardOf, type ChannelKeys } from './keys.js';
import { resolveRedisOptions, type RedisEngineOptions, type ResolvedRedisOptions } from './options.js';
import { HISTORY, NODE_LIST, NODE_REFRESH, PRESENCE_ADD, PRESENCE_LIST, PRESENCE_REMOVE, PUBLISH, run, type Client } from './scripts.js';

/** A channel with subscribers on this node, as seen on the wire: the cluster-wide list. */
export interface ClusterChannel {
  channel: string;
  /** Subscribers over all live nodes. */
  subscribers: number;
  epoch: string;
  offset: number;
}

interface Shard {
  readonly index: number;
  readonly cmd: Client;
  /** The pub/sub connection; replaced when a cluster node is abandoned for another. */
  sub: Redis;
  /** URLs the subscriber connection may use (cluster: any node; otherwise the shard's server). */
  readonly subUrls: readonly string[];
  subUrl: number;
  /** Connected and every local channel subscribed again. */
  subReady: boolean;
  /** The resubscription after the subscriber connection's last 'ready'. */
  subSync: Promise<void>;
}

/** Events held back while a channel catches up from the stream. */
interface Held {
  event: HeraldEvent;
  json: string;
}

/** One channel this node is subscribed to. */
interface ChannelSub {
  readonly channel: string;
  readonly shard: Shard;
  readonly keys: ChannelKeys;
  /** Position of the last event handed to onEvent (or the channel's position when subscribed). */
  last: { epoch: string; offset: number } | undefined;
  /** Set while catching up: live events wait here, then go through in order. */
  hold: Held[] | undefined;
  reading: boolean;
  /** Catch up once more after the read in flight (the connection dropped meanwhile). */
  again: boolean;
  retry: ReturnType<typeof setTimeout> | undefined;
}

const RESYNC_RETRY_MS = 500;
/** In cluster mode, failed reconnects to one node before the subscriber moves to the next. */
const CLUSTER_SUB_ATTEMPTS = 3;
const noop = (): void => {};

/** Connection errors and "try again" replies are `unavailable`; anything else is a bug: `internal`. */
function toHeraldError(err: unknown): HeraldError {
  if (err instanceof HeraldError) return err;
  const e = err as { name?: unknown; message?: unknown } | undefined;
  const message = typeof e?.message === 'string' ? e.message : '';
  if (e?.name === 'ReplyError' && !/^(LOADING|BUSY|CLUSTERDOWN|TRYAGAIN|MASTERDOWN|READONLY|OOM|NOREPLICAS|MOVED|ASK)\b/.test(message)) {
    return new HeraldError('internal', 'redis rejected a command', { cause: err });
  }
  return new HeraldError('unavailable', 'redis is unavailable; the operation was not done', { cause: err });
}

function retryDelay(attempt: number): number {
  // 100 ms, 200 ms, 400 ms … capped at 2 s, with jitter so nodes do not reconnect in lockstep.
  return Math.min(100 * 2 ** Math.min(attempt - 1, 5), 2000) * (0.75 + Math.random() / 2);
}

export class RedisEngine implements Engine {
  readonly name = 'redis';
  /** This node's id in the node registry. */
  readonly nodeId = randomId(12);
  readonly options: ResolvedRedisOptions;
  private handler: EngineHandler | undefined;
  private shards: Shard[] = [];
  private readonly subs = new Map<string, ChannelSub>();
  /** Presence entries this node owns and refreshes: channel → client → info JSON. */
  private readonly ownPresence = new Map<string, Map<string, string>>();
  private subscriberCounts: (() => Iterable<readonly [string, number]>) | undefined;
  private refreshTimer: ReturnType<typeof setInterval> | undefined;
  private state: 'new' | 'running' | 'closed' = 'new';
  private up = false;

  constructor(options: RedisEngineOptions) {
    this.options = resolveRedisOptions(options);
  }

  // ---- lifecycle ----------------------------------------------------------------------------

  async start(handler: EngineHandler): Promise<void> {
    if (this.state !== 'new') return;
    this.handler = handler;
    this.state = 'running';
    const o = this.options;
    const base = this.clientOptions();
    if (o.cluster) {
      const cmd = new Cluster([...o.urls], { enableOfflineQueue: false, enableReadyCheck: true, redisOptions: base, clusterRetryStrategy: retryDelay, lazyConnect: true });
      this.shards = [this.shard(0, cmd, o.urls)];
    } else {
      this.shards = o.urls.map((url, i) => this.shard(i, new Redis(url, base), [url]));
    }
    // The first attempt of each connection; a Redis that is down does not stop the node from
    // starting: it reports unavailable and keeps reconnecting.
    await Promise.all(this.shards.flatMap((s) => [s.cmd.connect().catch(noop), s.sub.connect().catch(noop)]));
    await new Promise((r) => setImmediate(r)); // let the 'ready' listeners run
    await Promise.all(this.shards.map((s) => s.subSync));
    this.refreshTimer = setInterval(() => this.refresh(), Math.max(50, Math.floor(o.presenceTtlMs / 3)));
    this.refreshTimer.unref();
    this.refresh();
    this.updateAvailability();
  }

  /** Removes this node's presence entries and registry entry, then closes the connections. */
  async close(): Promise<void> {
    if (this.state === 'closed') return;
    const wasRunning = this.state === 'running';
    this.state = 'closed';
    clearInterval(this.refreshTimer);
    for (const st of this.subs.values()) clearTimeout(st.retry);
    this.subs.clear();
    if (wasRunning) {
      const cleanup: Promise<unknown>[] = [];
      for (const [channel, clients] of this.ownPresence) {
        const shard = this.shards[shardOf(channel, this.shards.length)]!;
        if (!ready(shard.cmd)) continue;
        const ids = [...clients.keys()];
        for (let i = 0; i < ids.length; i += 1000) cleanup.push(run(shard.cmd, PRESENCE_REMOVE, presenceKeys(this.keys(channel)), ids.slice(i, i + 1000)));
      }
      const registry = this.shards[0]!;
      if (ready(registry.cmd)) {
        cleanup.push(registry.cmd.zrem(nodesKey(this.options.prefix), this.nodeId), registry.cmd.del(nodeKey(this.options.prefix, this.nodeId)));
      }
      await Promise.allSettled(cleanup);
    }
    this.ownPresence.clear();
    this.handler = undefined;
    await Promise.allSettled(this.shards.flatMap((s) => [quit(s.cmd), quit(s.sub)]));
    this.updateAvailability();
  }

  available(): boolean {
    return this.up;
  }

  /**
   * Where the subscriber counts of the cluster-wide channel list come from (the hub's per-channel
   * counts). Without it, each node counts 1 per channel it is subscribed to.
   */
  reportSubscribers(counts: () => Iterable<readonly [string, number]>): void {
    this.subscriberCounts = counts;
  }

  // ---- publish and history ------------------------------------------------------------------

  async publish(req: PublishRequest): Promise<{ event: HeraldEvent; json: string }> {
    const shard = this.shardFor(req.channel);
    if (!ready(shard.cmd)) throw new HeraldError('unavailable', 'redis is unavailable; the event was not published');
    const keys = this.keys(req.channel);
    const timestamp = Date.now();
    // offset and epoch are placeholders until Redis assigns them; the field order is the wire order.
    const event: HeraldEvent = { channel: req.channel, offset: 0, epoch: '', id: uuidv7(timestamp), timestamp, data: req.data };
    if (req.from) event.from = req.from;
    const { head, tail } = eventJsonParts(event, req.dataJson);
    const o = req.options;
    let reply: unknown;
    try {
      reply = await run(shard.cmd, PUBLISH, [keys.meta, keys.stream], [keys.pubsub, randomId(8), o.historySize, o.historyTtlMs, this.options.metaTtlMs, timestamp, head, tail]);
    } catch (err) {
      throw toHeraldError(err);
    }
    const [offset, epoch] = reply as [number, string];
    event.offset = offset;
    event.epoch = epoch;
    return { event, json: joinEventJson(head, offset, epoch, tail) };
  }

  async history(channel: string, query: HistoryQuery, options: ChannelOptions): Promise<HistoryResult> {
    const r = await this.read(channel, query, options.historyTtlMs);
    const events = new Array<HeraldEvent>(r.json.length);
    for (let i = 0; i < r.json.length; i++) events[i] = JSON.parse(r.json[i]!) as HeraldEvent;
    return { epoch: r.epoch, offset: r.offset, recovered: r.recovered, events };
  }

  private async read(channel: string, query: HistoryQuery, ttlMs: number): Promise<{ epoch: string; offset: number; recovered: boolean; json: string[] }> {
    const shard = this.shardFor(channel);
    if (!ready(shard.cmd)) throw new HeraldError('unavailable', 'redis is unavailable');
    const keys = this.keys(channel);
    const limit = query.limit === undefined ? -1 : Math.max(0, Math.floor(query.limit));
    const s = query.since;
    let reply: unknown;
    try {
      reply = await run(shard.cmd, HISTORY, [keys.meta, keys.stream], [randomId(8), this.options.metaTtlMs, Date.now(), ttlMs, s ? 'since' : 'newest', s ? s.epoch : '', s ? s.offset : 0, limit]);
    } catch (err) {
      throw toHeraldError(err);
    }
    const r = reply as [string, number, number, ...string[]];
    return { epoch: r[0], offset: r[1], recovered: r[2] === 1, json: r.slice(3) as string[] };
  }

  async markRead(channel: string, offsets: readonly number[]): Promise<void> {
    if (offsets.length === 0) return;
    const shard = this.shardFor(channel);
    try {
      await shard.cmd.xdel(this.keys(channel).stream, ...offsets.map((o) => o + '-0'));
    } catch (err) {
      throw toHeraldError(err);
    }
  }

  // ---- subscriptions and fan-out ------------------------------------------------------------

  /**
   * Resolves once Redis confirmed the SUBSCRIBE and this node read the channel's position, so
   * every later publish reaches onEvent and the hub's own read (after this) is at or past it.
   */
  async subscribe(channel: string): Promise<void> {
    if (this.subs.has(channel)) return;
    const shard = this.shardFor(channel);
    const st: ChannelSub = { channel, shard, keys: this.keys(channel), last: undefined, hold: [], reading: true, again: false, retry: undefined };
    this.subs.set(channel, st);
    try {
      await shard.sub.subscribe(st.keys.pubsub);
      const r = await this.read(channel, { limit: 0 }, 0);
      if (this.subs.get(channel) !== st) return;
      st.last = { epoch: r.epoch, offset: r.offset };
    } catch (err) {
      if (this.subs.get(channel) === st) {
        this.subs.delete(channel);
        shard.sub.unsubscribe(st.keys.pubsub).catch(noop);
      }
      throw toHeraldError(err);
    }
    this.release(st);
    const registry = this.shards[0]!;
    if (ready(registry.cmd)) registry.cmd.hset(nodeKey(this.options.prefix, this.nodeId), channel, 1).catch(noop);
  }

  async unsubscribe(channel: string): Promise<void> {
    const st = this.subs.get(channel);
    if (!st) return;
    this.subs.delete(channel);
    clearTimeout(st.retry);
    const registry = this.shards[0]!;
    if (ready(registry.cmd)) registry.cmd.hdel(nodeKey(this.options.prefix, this.nodeId), channel).catch(noop);
    // A connection that is down has no subscription to drop; it is not renewed on reconnect.
    if (st.shard.sub.status === 'ready') await st.shard.sub.unsubscribe(st.keys.pubsub).catch(noop);
  }

  /** A pub/sub message: the hot path. Parsed once; the JSON string goes through as is. */
  private onMessage(json: string): void {
    let event: HeraldEvent;
    try {
      event = JSON.parse(json) as HeraldEvent;
    } catch {
      return;
    }
    const st = this.subs.get(event.channel);
    if (!st) return;
    if (st.hold) {
      st.hold.push({ event, json });
      return;
    }
    const last = st.last!;
    if (event.epoch === last.epoch) {
      if (event.offset <= last.offset) return;
      if (event.offset !== last.offset + 1) {
        // Missed events (our pub/sub connection dropped): they are in the stream.
        st.hold = [{ event, json }];
        this.resync(st);
        return;
      }
    } else if (event.offset !== 1) {
      // A new epoch joined in the middle: its first events are in the stream.
      st.hold = [{ event, json }];
      this.resync(st);
      return;
    }
    last.epoch = event.epoch;
    last.offset = event.offset;
    this.emit(event, json);
  }

  private emit(event: HeraldEvent, json: string): void {
    try {
      this.handler?.onEvent(event, json);
    } catch (err) {
      // The hub's fan-out does not throw; if a handler does, the channel's order must survive it.
      this.options.logger.error({ err, channel: event.channel }, 'onEvent handler threw');
    }
  }

  /** Hands an event on unless it is at or before the last one delivered (catch-up and held events). */
  private accept(st: ChannelSub, event: HeraldEvent, json: string): void {
    const last = st.last;
    if (last && last.epoch === event.epoch && event.offset <= last.offset) return;
    if (last) {
      last.epoch = event.epoch;
      last.offset = event.offset;
    } else st.last = { epoch: event.epoch, offset: event.offset };
    this.emit(event, json);
  }

  /**
   * Catches a channel up from the stream: reads every retained event after the last one delivered
   * (or, after an epoch change, every retained event of the new epoch), hands on the missing ones,
   * then the live events that arrived meanwhile, in order. Zero loss as long as the missed events
   * are still retained; past that, subscribers see the gap in the offsets (clients resubscribe).
   */
  private resync(st: ChannelSub): void {
    if (this.subs.get(st.channel) !== st) return;
    st.hold ??= [];
    if (st.reading) {
      st.again = true;
      return;
    }
    st.reading = true;
    st.again = false; // this read covers everything published until now
    clearTimeout(st.retry);
    st.retry = undefined;
    const query = st.last ? { since: { epoch: st.last.epoch, offset: st.last.offset } } : { limit: 0 };
    this.read(st.channel, query, 0).then(
      (r) => {
        if (this.subs.get(st.channel) !== st) return;
        for (const json of r.json) this.accept(st, JSON.parse(json) as HeraldEvent, json);
        const last = st.last;
        if (!last || last.epoch !== r.epoch) st.last = { epoch: r.epoch, offset: r.offset };
        else if (r.offset > last.offset) last.offset = r.offset;
        this.release(st);
      },
      () => {
        st.reading = false;
        if (this.subs.get(st.channel) !== st || this.state !== 'running') return;
        st.retry = setTimeout(() => this.resync(st), RESYNC_RETRY_MS);
        st.retry.unref();
      },
    );
  }

  /** Ends a catch-up: held events go through (duplicates dropped), then another round if asked. */
  private release(st: ChannelSub): void {
    const held = st.hold;
    st.hold = undefined;
    st.reading = false;
    if (held) for (const h of held) this.accept(st, h.event, h.json);
    if (st.again) {
      st.again = false;
      this.resync(st);
    }
  }

  // ---- presence -----------------------------------------------------------------------------

  async presenceAdd(channel: string, info: ClientInfo): Promise<void> {
    const shard = this.shardFor(channel);
    const json = JSON.stringify(info);
    let mine = this.ownPresence.get(channel);
    if (!mine) this.ownPresence.set(channel, (mine = new Map()));
    mine.set(info.client, json);
    try {
      await run(shard.cmd, PRESENCE_ADD, presenceKeys(this.keys(channel)), [this.options.presenceTtlMs, info.client, json]);
    } catch (err) {
      // Kept locally: the next refresh writes it once Redis is back.
      throw toHeraldError(err);
    }
  }

  async presenceRemove(channel: string, client: string): Promise<void> {
    const mine = this.ownPresence.get(channel);
    if (mine) {
      mine.delete(client);
      if (mine.size === 0) this.ownPresence.delete(channel);
    }
    try {
      await run(this.shardFor(channel).cmd, PRESENCE_REMOVE, presenceKeys(this.keys(channel)), [client]);
    } catch (err) {
      throw toHeraldError(err);
    }
  }

  async presence(channel: string): Promise<ClientInfo[]> {
    let reply: unknown;
    try {
      reply = await run(this.shardFor(channel).cmd, PRESENCE_LIST, presenceKeys(this.keys(channel)), []);
    } catch (err) {
      throw toHeraldError(err);
    }
    return (reply as string[]).map((j) => JSON.parse(j) as ClientInfo);
  }

  /**
   * Every channel with a subscriber on any live node (SPEC §5 `/api/channels` with Redis), with
   * the summed subscriber counts and the channel's position.
   */
  async clusterChannels(): Promise<ClusterChannel[]> {
    const registry = this.shards[0]!;
    if (this.state !== 'running' || !ready(registry.cmd)) throw new HeraldError('unavailable', 'redis is unavailable');
    try {
      const prefix = this.options.prefix;
      const ids = ((await run(registry.cmd, NODE_LIST, [nodesKey(prefix)], [])) as string[]).filter((id) => id !== this.nodeId);
      const tables = await Promise.all(ids.map((id) => registry.cmd.hgetall(nodeKey(prefix, id))));
      // This node's own counts are taken live; the other nodes' are as of their last refresh.
      const counts = new Map<string, number>(this.localCounts());
      for (const table of tables) {
        for (const [channel, n] of Object.entries(table)) counts.set(channel, (counts.get(channel) ?? 0) + Number(n));
      }
      const names = [...counts.keys()].sort();
      const positions = await Promise.all(names.map((c) => this.read(c, { limit: 0 }, 0)));
      return names.map((channel, i) => ({ channel, subscribers: counts.get(channel)!, epoch: positions[i]!.epoch, offset: positions[i]!.offset }));
    } catch (err) {
      throw toHeraldError(err);
    }
  }

  private *localCounts(): Iterable<[string, number]> {
    if (this.subscriberCounts) {
      for (const [channel, n] of this.subscriberCounts()) if (n > 0) yield [channel, n];
    } else {
      for (const channel of this.subs.keys()) yield [channel, 1];
    }
  }

  /** Every presenceTtl/3: renews this node's presence entries and its registry entry. */
  private refresh(): void {
    if (this.state !== 'running') return;
    const ttl = this.options.presenceTtlMs;
    for (const [channel, clients] of this.ownPresence) {
      const shard = this.shardFor(channel);
      if (!ready(shard.cmd)) continue;
      const keys = presenceKeys(this.keys(channel));
      let args: (string | number)[] = [ttl];
      for (const [client, json] of clients) {
        args.push(client, json);
        if (args.length > 1000) {
          run(shard.cmd, PRESENCE_ADD, keys, args).catch(noop);
          args = [ttl];
        }
      }
      if (args.length > 1) run(shard.cmd, PRESENCE_ADD, keys, args).catch(noop);
    }
    const registry = this.shards[0]!;
    if (!ready(registry.cmd)) return;
    const args: (string | number)[] = [ttl, this.nodeId];
    for (const [channel, n] of this.localCounts()) args.push(channel, n);
    run(registry.cmd, NODE_REFRESH, [nodesKey(this.options.prefix), nodeKey(this.options.prefix, this.nodeId)], args).catch(noop);
  }

  // ---- connections --------------------------------------------------------------------------

  private clientOptions(): RedisOptions {
    return {
      ...this.options.redisOptions,
      lazyConnect: true,
      // Fail fast while disconnected: a publish is refused, never queued and never lost.
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      autoResendUnfulfilledCommands: false,
      // Resubscribing is done here, so the catch-up read comes after Redis confirmed it.
      autoResubscribe: false,
      commandTimeout: this.options.commandTimeoutMs,
      connectTimeout: Math.max(this.options.commandTimeoutMs, 1000),
      retryStrategy: retryDelay,
    };
  }

  private shard(index: number, cmd: Client, subUrls: readonly string[]): Shard {
    const shard: Shard = { index, cmd, sub: undefined as unknown as Redis, subUrls, subUrl: 0, subReady: false, subSync: Promise.resolve() };
    cmd.on('ready', () => {
      this.updateAvailability();
      // Presence is back at once after a Redis restart, not at the next refresh.
      this.refresh();
    });
    const cmdDown = (): void => this.updateAvailability();
    cmd.on('close', cmdDown);
    cmd.on('end', cmdDown);
    cmd.on('error', (err: Error) => this.options.logger.debug({ err: err.message, shard: index }, 'redis command connection error'));
    this.makeSub(shard);
    return shard;
  }

  /**
   * The subscriber connection. On a single server it reconnects to it for ever; in a cluster it
   * moves to the next node after a few failures (PUBLISH reaches every node of a cluster).
   */
  private makeSub(shard: Shard): void {
    const url = shard.subUrls[shard.subUrl % shard.subUrls.length]!;
    const cluster = this.options.cluster;
    const sub = new Redis(url, { ...this.clientOptions(), retryStrategy: (n) => (cluster && n > CLUSTER_SUB_ATTEMPTS ? null : retryDelay(n)) });
    sub.on('message', (_name: string, json: string) => this.onMessage(json));
    sub.on('ready', () => {
      shard.subSync = this.onSubReady(shard, sub);
    });
    sub.on('close', () => this.onSubDown(shard, sub));
    sub.on('end', () => {
      this.onSubDown(shard, sub);
      if (this.state === 'running' && shard.sub === sub) {
        shard.subUrl++;
        this.makeSub(shard);
        shard.sub.connect().catch(noop);
      }
    });
    sub.on('error', (err: Error) => this.options.logger.debug({ err: err.message, shard: shard.index }, 'redis subscriber connection error'));
    shard.sub = sub;
  }

  private onSubDown(shard: Shard, sub: Redis): void {
    if (shard.sub !== sub) return;
    shard.subReady = false;
    // Live events now may follow a gap: hold them until the catch-up after reconnecting.
    for (const st of this.subs.values()) if (st.shard === shard) st.hold ??= [];
    this.updateAvailability();
  }

  private async onSubReady(shard: Shard, sub: Redis): Promise<void> {
    if (shard.sub !== sub || this.state !== 'running') return;
    const mine: ChannelSub[] = [];
    for (const st of this.subs.values()) if (st.shard === shard) mine.push(st);
    try {
      for (let i = 0; i < mine.length; i += 1000) await sub.subscribe(...mine.slice(i, i + 1000).map((st) => st.keys.pubsub));
    } catch {
      // Dropped again: the next 'ready' retries. Still connected (a timeout): reconnect to retry.
      if (shard.sub === sub && sub.status === 'ready') sub.disconnect(true);
      return;
    }
    if (shard.sub !== sub) return;
    shard.subReady = true;
    this.updateAvailability();
    for (const st of mine) this.resync(st);
  }

  private updateAvailability(): void {
    const up = this.state === 'running' && this.shards.length > 0 && this.shards.every((s) => ready(s.cmd) && s.subReady);
    if (up === this.up) return;
    this.up = up;
    if (this.state === 'running') {
      if (up) this.options.logger.info({ engine: 'redis' }, 'redis reachable');
      else this.options.logger.warn({ engine: 'redis' }, 'redis unreachable: publishes fail with unavailable until it is back');
    }
    this.handler?.onAvailability?.(up);
  }

  /** The shard of `channel`; `unavailable` before start and after close. */
  private shardFor(channel: string): Shard {
    if (this.state !== 'running') throw new HeraldError('unavailable', 'the redis engine is not running');
    return this.shards[shardOf(channel, this.shards.length)]!;
  }

  private keys(channel: string): ChannelKeys {
    return channelKeys(this.options.prefix, channel);
  }
}

/** Commands can be sent now (ioredis sets the status before it emits the event). */
function ready(client: Client): boolean {
  return client.status === 'ready';
}

function presenceKeys(keys: ChannelKeys): [string, string] {
  return [keys.presence, keys.presenceExpiry];
}

async function quit(client: Client): Promise<void> {
  if (client.status === 'ready') {
    try {
      await client.quit();
      return;
    } catch {
      // fall through
    }
  }
  client.disconnect();
}

/** `createRedisEngine({ url: 'redis://127.0.0.1:6379' })`. */
export function createRedisEngine(options: RedisEngineOptions): RedisEngine {
  return new RedisEngine(options);
}
