/**
 * A channel's in-memory history: a ring buffer with a size cap, a time-to-live and
 * delete-after-read tombstones. Shared by the memory engine and the journal.
 */
import type { HeraldEvent, HistoryResult } from '../protocol/index.js';
import type { ChannelOptions, HistoryQuery } from '../core/engine.js';

interface Entry {
  event: HeraldEvent;
  json: string;
  /** Deleted after read: still counts as retained for recovery, never returned again. */
  read: boolean;
}

export class ChannelHistory {
  epoch: string;
  /** Offset of the latest event (0 = none yet). */
  offset: number;
  private ring: (Entry | undefined)[] = [];
  private head = 0; // index of the oldest entry
  private count = 0;

  constructor(epoch: string, offset = 0) {
    this.epoch = epoch;
    this.offset = offset;
  }

  /** Offset of the oldest retained entry, or offset + 1 when nothing is retained. */
  get firstOffset(): number {
    return this.count === 0 ? this.offset + 1 : this.ring[this.head]!.event.offset;
  }

  get size(): number {
    return this.count;
  }

  append(event: HeraldEvent, json: string, options: ChannelOptions): void {
    this.offset = event.offset;
    if (options.historySize <= 0) {
      this.clear();
      return;
    }
    if (this.ring.length !== options.historySize) this.resize(options.historySize);
    const cap = this.ring.length;
    if (this.count === cap) {
      this.ring[this.head] = undefined;
      this.head = (this.head + 1) % cap;
      this.count--;
    }
    this.ring[(this.head + this.count) % cap] = { event, json, read: false };
    this.count++;
  }

  /** Drops entries older than the time-to-live. */
  expire(now: number, ttlMs: number): void {
    if (ttlMs <= 0) return;
    const cutoff = now - ttlMs;
    const cap = this.ring.length;
    while (this.count > 0 && this.ring[this.head]!.event.timestamp <= cutoff) {
      this.ring[this.head] = undefined;
      this.head = (this.head + 1) % cap;
      this.count--;
    }
  }

  markRead(offsets: readonly number[]): void {
    if (this.count === 0) return;
    const first = this.firstOffset;
    const cap = this.ring.length;
    for (const o of offsets) {
      const i = o - first;
      if (i >= 0 && i < this.count) this.ring[(this.head + i) % cap]!.read = true;
    }
    // Read entries at the front are gone for good.
    while (this.count > 0 && this.ring[this.head]!.read) {
      this.ring[this.head] = undefined;
      this.head = (this.head + 1) % cap;
      this.count--;
    }
  }

  /** Reads per the HistoryQuery rules. Returns entries so callers can reuse the serialisation. */
  read(query: HistoryQuery, options: ChannelOptions, now: number): { result: HistoryResult; json: string[] } {
    this.expire(now, options.historyTtlMs);
    const limit = query.limit === undefined ? Infinity : Math.max(0, query.limit);
    let recovered = true;
    let from: number; // first offset wanted
    let newest = false;
    if (query.since) {
      const s = query.since;
      if (s.epoch !== this.epoch || s.offset > this.offset || s.offset + 1 < this.firstOffset) {
        recovered = false;
        from = this.firstOffset;
      } else from = s.offset + 1;
    } else {
      newest = true;
      from = this.firstOffset;
    }
    const events: HeraldEvent[] = [];
    const json: string[] = [];
    if (limit > 0 && this.count > 0) {
      const cap = this.ring.length;
      const first = this.firstOffset;
      const picked: Entry[] = [];
      if (newest) {
        for (let i = this.count - 1; i >= 0 && picked.length < limit; i--) {
          const e = this.ring[(this.head + i) % cap]!;
          if (!e.read) picked.push(e);
        }
        picked.reverse();
      } else {
        for (let i = Math.max(0, from - first); i < this.count && picked.length < limit; i++) {
          const e = this.ring[(this.head + i) % cap]!;
          if (!e.read) picked.push(e);
        }
      }
      for (const e of picked) {
        events.push(e.event);
        json.push(e.json);
      }
    }
    return { result: { epoch: this.epoch, offset: this.offset, recovered, events }, json };
  }

  clear(): void {
    this.ring = [];
    this.head = 0;
    this.count = 0;
  }

  private resize(size: number): void {
    const entries: Entry[] = [];
    const cap = this.ring.length;
    for (let i = 0; i < this.count; i++) entries.push(this.ring[(this.head + i) % cap]!);
    const keep = entries.slice(Math.max(0, entries.length - size));
    this.ring = new Array<Entry | undefined>(size);
    for (let i = 0; i < keep.length; i++) this.ring[i] = keep[i];
    this.head = 0;
    this.count = keep.length;
  }
}
