/**
 * Redis key names and shard choice. Every key of one channel carries the channel in a hash tag,
 * `{…}`, so a Redis Cluster puts them in one slot and one Lua script may touch them all.
 */
import type { HeraldEvent } from '../../protocol/index.js';

export interface ChannelKeys {
  /** Hash: `e` = epoch, `o` = latest offset. */
  readonly meta: string;
  /** Stream of retained events, entry ID `<offset>-0`, fields `t` (timestamp) and `j` (event JSON). */
  readonly stream: string;
  /** Hash of presence entries: client id → ClientInfo JSON. */
  readonly presence: string;
  /** Sorted set of presence expiries: client id → expiry (ms, Redis clock). */
  readonly presenceExpiry: string;
  /** Pub/sub channel carrying the event JSON. */
  readonly pubsub: string;
}

/**
 * The channel as it appears inside `{…}`: `%`, `{` and `}` percent-encoded, so a `}` in a channel
 * name cannot end the hash tag early and two channels never share a key.
 */
export function tagOf(channel: string): string {
  return /[%{}]/.test(channel) ? channel.replace(/[%{}]/g, (c) => (c === '%' ? '%25' : c === '{' ? '%7B' : '%7D')) : channel;
}

export function channelKeys(prefix: string, channel: string): ChannelKeys {
  const base = `${prefix}:{${tagOf(channel)}}`;
  return { meta: base + ':m', stream: base + ':s', presence: base + ':p', presenceExpiry: base + ':px', pubsub: base };
}

/** Node registry (for the cluster-wide channel list): one slot for all of it. */
export function nodesKey(prefix: string): string {
  return `${prefix}:{nodes}`;
}

export function nodeKey(prefix: string, nodeId: string): string {
  return `${prefix}:{nodes}:${nodeId}`;
}

/**
 * Which of `count` Redis servers holds `channel`: FNV-1a over the UTF-16 code units, so it is
 * stable across processes and versions. Changing the list of servers moves channels (their
 * history starts a new epoch on the new server; clients are told `recovered: false`).
 */
export function shardOf(channel: string, count: number): number {
  if (count <= 1) return 0;
  let h = 0x811c9dc5;
  for (let i = 0; i < channel.length; i++) {
    h ^= channel.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0) % count;
}

/**
 * The event JSON around the two values only Redis knows (offset and epoch), so the publish script
 * splices them in and PUBLISHes the final JSON: `head + offset + ',"epoch":"' + epoch + tail`.
 * Same layout as `eventJson` in core/engine.ts (a test holds them equal). Epochs are [0-9a-z], so
 * they need no escaping.
 */
export function eventJsonParts(event: Omit<HeraldEvent, 'offset' | 'epoch'>, dataJson: string): { head: string; tail: string } {
  const head = '{"channel":' + JSON.stringify(event.channel) + ',"offset":';
  let tail = '","id":"' + event.id + '","timestamp":' + event.timestamp + ',"data":' + dataJson;
  if (event.from) tail += ',"from":' + JSON.stringify(event.from);
  return { head, tail: tail + '}' };
}

export function joinEventJson(head: string, offset: number, epoch: string, tail: string): string {
  return head + offset + ',"epoch":"' + epoch + tail;
}
