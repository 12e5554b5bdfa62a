/**
 * The memory engine: one process, history in RAM. Without add-ons everything is synchronous, so
 * publish is trivially atomic per channel, and a restart starts a new epoch (history lost).
 *
 * With add-ons (core/addon.ts; the journal is one) a publish is assigned its offset at once but
 * committed — appended to history, fanned out, acknowledged — only once every add-on has
 * accepted it, in offset order per channel. History reads and `offset` only ever show committed
 * events, so a subscriber never sees an event an add-on could still lose.
 */
import { HeraldError, randomId, uuidv7, type ClientInfo, type HeraldEvent, type HistoryResult } from '../protocol/index.js';
import { eventJson, type ChannelOptions, type Engine, type EngineHandler, type HistoryQuery, type PublishRequest } from '../core/engine.js';
import type { AddOn, AddOnContext, RestoreItem, RetainedChannel } from '../core/addon.js';
import { silentLogger, type Logger } from '../core/logger.js';
import { NAMESPACE_DEFAULTS } from '../core/options.js';
import { ChannelHistory } from './history.js';

export interface MemoryEngineOptions {
  /** Epoch for channels created by this engine. Default: random per engine instance (an add-on may restore it). */
  epoch?: string;
  /** Clock, for tests of time-to-live. */
  now?: () => number;
  /** Persistence, replication or audit add-ons (core/addon.ts), called in this order. */
  addons?: readonly AddOn[];
  /** A channel's options when the engine needs them outside a publish (restore). Default: the default namespace's. */
  channelOptions?: (channel: string) => ChannelOptions;
  /** For add-ons and add-on failures. */
  logger?: Logger;
  /** The engine's name (readiness, logs). Default `memory`. */
  name?: string;
}

type Published = { event: HeraldEvent; json: string };

/** A publish whose offset is assigned, waiting for the add-ons. */
interface InFlight {
  readonly event: HeraldEvent;
  readonly json: string;
  readonly options: ChannelOptions;
  ready: boolean;
  resolve(value: Published): void;
  reject(error: unknown): void;
}

const DEFAULT_CHANNEL_OPTIONS: ChannelOptions = Object.freeze({
  historySize: NAMESPACE_DEFAULTS.historySize,
  historyTtlMs: NAMESPACE_DEFAULTS.historyTtl * 1000,
  deleteAfterRead: NAMESPACE_DEFAULTS.deleteAfterRead,
});

export class MemoryEngine implements Engine {
  readonly name: string;
  protected handler: EngineHandler | undefined;
  protected readonly channels = new Map<string, ChannelHistory>();
  private readonly subscribed = new Set<string>();
  private readonly presenceByChannel = new Map<string, Map<string, ClientInfo>>();
  protected epoch: string;
  protected readonly now: () => number;
  private readonly addons: readonly AddOn[];
  private readonly publishers: readonly AddOn[];
  private readonly channelOptions: (channel: string) => ChannelOptions;
  private readonly logger: Logger;
  /** Per channel, publishes assigned but not committed, in offset order. Only with add-ons. */
  private readonly inFlight = new Map<string, InFlight[]>();
  private state: 'new' | 'running' | 'closed' = 'new';
  private failure: unknown;
  private closing: Promise<void> | undefined;

  constructor(options: MemoryEngineOptions = {}) {
    this.name = options.name ?? 'memory';
    this.epoch = options.epoch ?? randomId(8);
    this.now = options.now ?? Date.now;
    this.addons = [...(options.addons ?? [])];
    this.publishers = this.addons.filter((a) => typeof a.onPublish === 'function');
    this.channelOptions = options.channelOptions ?? (() => DEFAULT_CHANNEL_OPTIONS);
    this.logger = options.logger ?? silentLogger;
  }

  async start(handler: EngineHandler): Promise<void> {
    this.handler = handler;
    if (this.addons.length > 0) {
      const ctx = this.addOnContext();
      for (const addon of this.addons) await addon.open?.(ctx);
      for (const addon of this.addons) {
        if (!addon.restore) continue;
        const items = addon.restore();
        if (Symbol.iterator in items) for (const item of items) this.restoreItem(item, addon.name);
        else for await (const item of items) this.restoreItem(item, addon.name);
      }
    }
    this.state = 'running';
  }

  async close(): Promise<void> {
    if (this.addons.length === 0) {
      this.handler = undefined;
      return;
    }
    this.closing ??= this.closeAddOns();
    return this.closing;
  }

  /** Asks every add-on to flush (the journal: write and fsync everything accepted so far). */
  async flush(): Promise<void> {
    for (const addon of this.addons) await addon.flush?.();
  }

  available(): boolean {
    return this.failure === undefined;
  }

  protected channel(name: string): ChannelHistory {
    let ch = this.channels.get(name);
    if (!ch) {
      ch = new ChannelHistory(this.epoch);
      this.channels.set(name, ch);
    }
    return ch;
  }

  /** Builds, stores and fans out an event synchronously (the path without add-ons). */
  protected publishSync(req: PublishRequest): Published {
    const ch = this.channel(req.channel);
    const event = this.buildEvent(req, ch.offset + 1, ch.epoch);
    const json = eventJson(event, req.dataJson);
    this.commit(ch, event, json, req.options);
    return { event, json };
  }

  async publish(req: PublishRequest): Promise<Published> {
    if (this.addons.length === 0) return this.publishSync(req);
    return this.publishThroughAddOns(req);
  }

  async history(channel: string, query: HistoryQuery, options: ChannelOptions): Promise<HistoryResult> {
    const ch = this.channels.get(channel);
    if (!ch) {
      const recovered = !query.since || (query.since.epoch === this.epoch && query.since.offset === 0);
      return { epoch: this.epoch, offset: 0, recovered, events: [] };
    }
    const { result } = ch.read(query, options, this.now());
    return result;
  }

  async markRead(channel: string, offsets: readonly number[]): Promise<void> {
    this.channels.get(channel)?.markRead(offsets);
  }

  async subscribe(channel: string): Promise<void> {
    this.subscribed.add(channel);
  }

  async unsubscribe(channel: string): Promise<void> {
    this.subscribed.delete(channel);
  }

  async presenceAdd(channel: string, info: ClientInfo): Promise<void> {
    let map = this.presenceByChannel.get(channel);
    if (!map) this.presenceByChannel.set(channel, (map = new Map()));
    map.set(info.client, info);
  }

  async presenceRemove(channel: string, client: string): Promise<void> {
    const map = this.presenceByChannel.get(channel);
    if (!map) return;
    map.delete(client);
    if (map.size === 0) this.presenceByChannel.delete(channel);
  }

  async presence(channel: string): Promise<ClientInfo[]> {
    return [...(this.presenceByChannel.get(channel)?.values() ?? [])];
  }

  // ---- add-ons -----------------------------------------------------------------------------

  private buildEvent(req: PublishRequest, offset: number, epoch: string): HeraldEvent {
    const timestamp = this.now();
    const event: HeraldEvent = { channel: req.channel, offset, epoch, id: uuidv7(timestamp), timestamp, data: req.data };
    if (req.from) event.from = req.from;
    return event;
  }

  /** Appends to history and fans out: the one step that makes an event visible. */
  private commit(ch: ChannelHistory, event: HeraldEvent, json: string, options: ChannelOptions): void {
    ch.expire(event.timestamp, options.historyTtlMs);
    ch.append(event, json, options);
    if (this.subscribed.has(event.channel)) this.handler?.onEvent(event, json);
  }

  private publishThroughAddOns(req: PublishRequest): Promise<Published> {
    if (this.failure !== undefined) return Promise.reject(failedError(this.failure));
    if (this.state !== 'running') {
      return Promise.reject(new HeraldError('unavailable', this.state === 'new' ? 'the engine is not started' : 'the engine is closed'));
    }
    // Offset assignment and the onPublish calls happen synchronously, so both follow publish order.
    const ch = this.channel(req.channel);
    let queue = this.inFlight.get(req.channel);
    const previous = queue ? queue[queue.length - 1]!.event.offset : ch.offset;
    const event = this.buildEvent(req, previous + 1, ch.epoch);
    const json = eventJson(event, req.dataJson);
    let wait: PromiseLike<unknown> | undefined;
    let waits: PromiseLike<unknown>[] | undefined;
    for (const addon of this.publishers) {
      let r: void | Promise<void>;
      try {
        r = addon.onPublish!(event, json, req.options);
      } catch (err) {
        this.fail(err, addon.name);
        return Promise.reject(failedError(err));
      }
      if (r && typeof r.then === 'function') {
        if (!wait) wait = r;
        else (waits ??= [wait]).push(r);
      }
    }
    if (!wait && !queue) {
      this.commit(ch, event, json, req.options);
      return Promise.resolve({ event, json });
    }
    return new Promise<Published>((resolve, reject) => {
      const entry: InFlight = { event, json, options: req.options, ready: !wait, resolve, reject };
      if (!queue) this.inFlight.set(req.channel, (queue = []));
      queue.push(entry);
      if (!wait) return; // accepted at once but behind earlier publishes: committed with them
      (waits ? Promise.all(waits) : wait).then(
        () => {
          entry.ready = true;
          this.drain(req.channel);
        },
        (err: unknown) => this.fail(err, 'onPublish'),
      );
    });
  }

  /** Commits the ready publishes at the head of a channel's queue, in offset order. */
  private drain(channel: string): void {
    const queue = this.inFlight.get(channel);
    if (!queue) return;
    const ch = this.channel(channel);
    let i = 0;
    while (i < queue.length && queue[i]!.ready) {
      const entry = queue[i++]!;
      this.commit(ch, entry.event, entry.json, entry.options);
      entry.resolve({ event: entry.event, json: entry.json });
    }
    if (i === queue.length) this.inFlight.delete(channel);
    else if (i > 0) queue.splice(0, i);
  }

  /** Fail-stop: refuse everything in flight and everything after (see core/addon.ts). */
  private fail(error: unknown, source: string): void {
    if (this.failure !== undefined) return;
    this.failure = error ?? new Error('add-on failed');
    this.logger.error({ err: error, addon: source, engine: this.name }, 'engine: an add-on failed; publishes are refused until restart');
    this.rejectInFlight(failedError(this.failure));
    this.handler?.onAvailability?.(false);
  }

  private rejectInFlight(error: HeraldError): void {
    const queues = [...this.inFlight.values()];
    this.inFlight.clear();
    for (const queue of queues) for (const entry of queue) entry.reject(error);
  }

  private async closeAddOns(): Promise<void> {
    this.state = 'closed';
    for (const addon of this.addons) {
      try {
        await addon.close?.();
      } catch (err) {
        this.logger.error({ err, addon: addon.name }, 'engine: add-on failed to close');
      }
    }
    // An add-on that never answered: its publishes were not acknowledged and never will be.
    this.rejectInFlight(new HeraldError('unavailable', 'the engine closed before the event was stored'));
    this.handler = undefined;
  }

  private addOnContext(): AddOnContext {
    return {
      logger: this.logger,
      now: this.now,
      channelOptions: this.channelOptions,
      retained: (channel: string, options: ChannelOptions): RetainedChannel | undefined => {
        const ch = this.channels.get(channel);
        if (!ch) return undefined;
        const { result, json } = ch.read({}, options, this.now());
        return { epoch: result.epoch, offset: result.offset, events: result.events, json };
      },
      fail: (error: unknown) => this.fail(error, 'background'),
    };
  }

  private restoreItem(item: RestoreItem, source: string): void {
    if (item.kind === 'epoch') {
      if (typeof item.epoch !== 'string' || item.epoch.length === 0) throw new Error(`add-on ${source}: restored epoch must be a non-empty string`);
      this.epoch = item.epoch;
      return;
    }
    if (item.kind === 'event') {
      const e = item.event;
      if (!e || typeof e.channel !== 'string' || typeof e.epoch !== 'string' || !Number.isSafeInteger(e.offset) || e.offset < 1) {
        throw new Error(`add-on ${source}: restored event needs a channel, an epoch and an offset ≥ 1`);
      }
      let ch = this.channels.get(e.channel);
      if (!ch || ch.epoch !== e.epoch) {
        ch = new ChannelHistory(e.epoch, e.offset - 1);
        this.channels.set(e.channel, ch);
      } else if (e.offset <= ch.offset) return;
      else if (e.offset > ch.offset + 1) ch.clear();
      ch.append(e, item.json ?? JSON.stringify(e), this.channelOptions(e.channel));
      return;
    }
    if (item.kind === 'channel') {
      if (typeof item.channel !== 'string' || typeof item.epoch !== 'string' || !Number.isSafeInteger(item.offset) || item.offset < 0) {
        throw new Error(`add-on ${source}: restored channel needs a channel, an epoch and an offset ≥ 0`);
      }
      const ch = this.channels.get(item.channel);
      if (!ch || ch.epoch !== item.epoch) this.channels.set(item.channel, new ChannelHistory(item.epoch, item.offset));
      else if (item.offset > ch.offset) {
        ch.clear();
        ch.offset = item.offset;
      }
      return;
    }
    throw new Error(`add-on ${source}: unknown restore item ${JSON.stringify((item as { kind?: unknown }).kind)}`);
  }
}

function failedError(cause: unknown): HeraldError {
  return new HeraldError('unavailable', 'the engine could not store events and refuses publishes until restart', { cause });
}
