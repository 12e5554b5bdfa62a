/**
 * The engine contract: what the hub needs from storage and fan-out. Implementations: memory
 * (engines/memory.ts), memory + journal, Redis. Each must pass test/contract/engine.ts.
 *
 * Guarantees an engine gives:
 * 1. **Atomic publish per channel**: assigning the next offset, appending to history and handing
 *    the event to fan-out happen as one step. Two publishes on one channel never share an offset,
 *    and the fan-out order equals offset order.
 * 2. **Offsets**: per channel and epoch, +1 per publish; a channel that never had an event is at
 *    offset 0. The epoch changes only when the channel's stored history is lost.
 * 3. **Subscribe before read**: once `subscribe(channel)` has resolved, every event published
 *    afterwards reaches `EngineHandler.onEvent`. The hub relies on this to join history and live
 *    events with no gap: it subscribes first, then reads the position.
 * 4. **onEvent order**: per channel, in offset order, each event once, including this node's own
 *    publishes; only for channels this node is subscribed to (an engine may deliver more).
 *    onEvent may run *behind* reads: a history read can return an event whose onEvent comes later
 *    (Redis reads and listens on two connections). The hub drops such late copies per subscriber.
 * 5. **History reads** follow the recovery rules below (`HistoryQuery`).
 * 6. **Presence** entries are per (channel, client); an engine that spans nodes expires the entries
 *    of a node that stopped refreshing them.
 */
import type { ClientInfo, HeraldEvent, HistoryResult, Position } from '../protocol/index.js';

/** Per-channel storage options, resolved from the channel's namespace. */
export interface ChannelOptions {
  /** Events kept per channel (ring buffer). 0 keeps none. */
  historySize: number;
  /** Milliseconds an event is kept; 0 = for ever. */
  historyTtlMs: number;
  /** Remove an event from history once it has been read or delivered (golongpoll's option). */
  deleteAfterRead: boolean;
}

export interface PublishRequest {
  channel: string;
  data: unknown;
  /** `data` already serialised to JSON, once, by the hub. */
  dataJson: string;
  from?: ClientInfo;
  options: ChannelOptions;
}

export interface HistoryQuery {
  /**
   * With `since`: the events after that position, oldest first, at most `limit`. If the position
   * cannot be honoured (other epoch, evicted or expired events in between, or ahead of the latest
   * offset) the answer has `recovered: false` and the oldest retained events of the current epoch.
   * Without `since`: the newest `limit` events, oldest first, `recovered: true`.
   */
  since?: Position;
  /** Maximum events to return; 0 returns only the position. Defaults to all retained. */
  limit?: number;
}

export interface EngineHandler {
  /** An event to fan out on this node. `json` is the event's serialisation when the engine has it. */
  onEvent(event: HeraldEvent, json?: string): void;
  /** The engine lost or regained its backing service (Redis). The hub reports it in readiness. */
  onAvailability?(available: boolean): void;
}

export interface Engine {
  readonly name: string;
  start(handler: EngineHandler): Promise<void>;
  /** Flush what must be flushed and release resources. */
  close(): Promise<void>;
  /** Whether publishes can currently succeed. */
  available(): boolean;
  publish(req: PublishRequest): Promise<{ event: HeraldEvent; json: string }>;
  history(channel: string, query: HistoryQuery, options: ChannelOptions): Promise<HistoryResult>;
  /** Remove these offsets from history (deleteAfterRead). */
  markRead(channel: string, offsets: readonly number[]): Promise<void>;
  /** This node wants `onEvent` for `channel`. Reference counting is the hub's job: called once. */
  subscribe(channel: string): Promise<void>;
  unsubscribe(channel: string): Promise<void>;
  presenceAdd(channel: string, info: ClientInfo): Promise<void>;
  presenceRemove(channel: string, client: string): Promise<void>;
  presence(channel: string): Promise<ClientInfo[]>;
  /**
   * Optional, for engines spanning nodes: every channel with a subscriber on any node, with the
   * summed subscriber counts and positions. Without it the hub lists this node's channels.
   */
  clusterChannels?(): Promise<{ channel: string; subscribers: number; epoch: string; offset: number }[]>;
  /** Optional: where such an engine reads this node's subscriber count per channel (from the hub). */
  reportSubscribers?(counts: () => Iterable<readonly [string, number]>): void;
}

/** Builds an event's JSON from already-serialised data: the only serialisation of a publish. */
export function eventJson(event: HeraldEvent, dataJson: string): string {
  let json =
    '{"channel":' + JSON.stringify(event.channel) +
    ',"offset":' + event.offset +
    ',"epoch":' + JSON.stringify(event.epoch) +
    ',"id":"' + event.id +
    '","timestamp":' + event.timestamp +
    ',"data":' + dataJson;
  if (event.from) json += ',"from":' + JSON.stringify(event.from);
  return json + '}';
}
