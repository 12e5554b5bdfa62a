/**
 * The memory engine: one process, history in RAM. Everything is synchronous underneath,
 * so publish is trivially atomic per channel. A restart starts a new epoch (history lost).
 */
import { randomId, uuidv7, type ClientInfo, type HeraldEvent, type HistoryResult } from '../protocol/index.js';
import { eventJson, type ChannelOptions, type Engine, type EngineHandler, type HistoryQuery, type PublishRequest } from '../core/engine.js';
import { ChannelHistory } from './history.js';

export interface MemoryEngineOptions {
  /** Epoch for channels created by this engine. Default: random per engine instance. */
  epoch?: string;
  /** Clock, for tests of time-to-live. */
  now?: () => number;
}

export class MemoryEngine implements Engine {
  readonly name: string = 'memory';
  protected handler: EngineHandler | undefined;
  protected readonly channels = new Map<string, ChannelHistory>();
  private readonly subscribed = new Set<string>();
  private readonly presenceByChannel = new Map<string, Map<string, ClientInfo>>();
  protected readonly epoch: string;
  protected readonly now: () => number;

  constructor(options: MemoryEngineOptions = {}) {
    this.epoch = options.epoch ?? randomId(8);
    this.now = options.now ?? Date.now;
  }

  async start(handler: EngineHandler): Promise<void> {
    this.handler = handler;
  }

  async close(): Promise<void> {
    this.handler = undefined;
  }

  available(): boolean {
    return true;
  }

  protected channel(name: string): ChannelHistory {
    let ch = this.channels.get(name);
    if (!ch) {
      ch = new ChannelHistory(this.epoch);
      this.channels.set(name, ch);
    }
    return ch;
  }

  /** Builds, stores and fans out an event synchronously; subclasses (the journal) wrap it. */
  protected publishSync(req: PublishRequest): { event: HeraldEvent; json: string } {
    const ch = this.channel(req.channel);
    const timestamp = this.now();
    const event: HeraldEvent = { channel: req.channel, offset: ch.offset + 1, epoch: ch.epoch, id: uuidv7(timestamp), timestamp, data: req.data };
    if (req.from) event.from = req.from;
    const json = eventJson(event, req.dataJson);
    ch.expire(timestamp, req.options.historyTtlMs);
    ch.append(event, json, req.options);
    if (this.subscribed.has(req.channel)) this.handler?.onEvent(event, json);
    return { event, json };
  }

  async publish(req: PublishRequest): Promise<{ event: HeraldEvent; json: string }> {
    return this.publishSync(req);
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
}
