/**
 * Replay: rebuilds every channel's position and retained events from the segments, oldest
 * segment first. `ReplayState` is the pure part (records in, channels out); `recoverJournal`
 * reads the files and repairs a torn tail.
 *
 * Rules (docs/journal.md "Crash rules"):
 * - Events are merged by offset, not by file position: compaction re-appends a channel's older
 *   events after newer ones, and a crash between copying and deleting leaves both (deduplicated;
 *   the later copy wins).
 * - An event of another epoch than its channel's starts a new generation. A position record of
 *   another epoch relabels the channel (the events it keeps move to that epoch); so does an open
 *   record with `relabel`, for every channel known so far.
 * - At the end a channel keeps only the newest run of consecutive offsets that ends at its
 *   position: history never has a hole, and positions before it get `recovered: false`.
 * - A bad record stops the replay of its segment. In the last segment, when no valid record
 *   follows, it is a torn tail: the file is truncated there (warning). Anywhere else it is damage:
 *   the rest of the segment is skipped (error) and the caller must treat the journal as lossy.
 */
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { eventJson, type ChannelOptions } from '../../core/engine.js';
import type { Logger } from '../../core/logger.js';
import type { HeraldEvent } from '../../protocol/index.js';
import { decodeRecord, findNextRecord, RecordType } from './record.js';
import { segmentId, segmentName, type FsyncPolicy } from './writer.js';

/** The payload of an open record: who wrote the segment. */
export interface OpenInfo {
  v: 1;
  /** Random id of the process run. */
  run: string;
  /** Epoch of channels with no position (the engine's default). */
  epoch: string;
  fsync: FsyncPolicy;
  /** Kernel boot id: a process crash on the same boot loses nothing that was written. */
  boot?: string;
  /** Every channel known before this record moved to this epoch (an unclean, lossy start). */
  relabel?: string;
  at: number;
}

export interface ReplayedEvent {
  event: HeraldEvent;
  json: string;
  /** Segment holding the record (the latest copy). */
  seg: number;
  bytes: number;
}

export interface ReplayedChannel {
  readonly channel: string;
  epoch: string;
  offset: number;
  /** Sorted by offset, from index `head`. */
  events: ReplayedEvent[];
  head: number;
  readonly historySize: number;
}

export class ReplayState {
  readonly channels = new Map<string, ReplayedChannel>();
  lastOpen: OpenInfo | undefined;
  /** Type of the last valid record (clean shutdown: RecordType.close). */
  lastType = 0;
  records = 0;

  constructor(private readonly options: (channel: string) => ChannelOptions) {}

  /** Applies one record; throws on a payload that is not what its type says (the caller decides). */
  apply(seg: number, type: number, payload: Buffer, bytes: number): void {
    this.records++;
    this.lastType = type;
    switch (type) {
      case RecordType.event: {
        const json = payload.toString('utf8');
        const event = JSON.parse(json) as HeraldEvent;
        if (typeof event.channel !== 'string' || typeof event.epoch !== 'string' || !Number.isSafeInteger(event.offset) || event.offset < 1) {
          throw new Error('event record without channel, epoch or offset');
        }
        this.event({ event, json, seg, bytes });
        return;
      }
      case RecordType.position: {
        const p = JSON.parse(payload.toString('utf8')) as { channel?: unknown; epoch?: unknown; offset?: unknown };
        if (typeof p.channel !== 'string' || typeof p.epoch !== 'string' || !Number.isSafeInteger(p.offset) || (p.offset as number) < 0) {
          throw new Error('position record without channel, epoch or offset');
        }
        this.position(p.channel, p.epoch, p.offset as number);
        return;
      }
      case RecordType.open: {
        const info = JSON.parse(payload.toString('utf8')) as OpenInfo;
        if (typeof info.epoch !== 'string') throw new Error('open record without epoch');
        this.lastOpen = info;
        if (typeof info.relabel === 'string') for (const c of this.channels.values()) c.epoch = info.relabel;
        return;
      }
      default:
      // close, and types from a later version: nothing to rebuild.
    }
  }

  /** The channels as they must be served. With `relabel`, every channel moves to that epoch. */
  finish(now: number, relabel?: string): ReplayedChannel[] {
    const out: ReplayedChannel[] = [];
    for (const c of this.channels.values()) {
      if (relabel !== undefined) c.epoch = relabel;
      let events = c.events.slice(c.head);
      const newest = events[events.length - 1];
      if (newest && newest.event.offset > c.offset) c.offset = newest.event.offset;
      if (!newest || newest.event.offset !== c.offset) events = [];
      else {
        let i = events.length - 1;
        while (i > 0 && events[i - 1]!.event.offset === events[i]!.event.offset - 1) i--;
        if (i > 0) events = events.slice(i);
      }
      const ttl = this.options(c.channel).historyTtlMs;
      if (ttl > 0) {
        let i = 0;
        while (i < events.length && events[i]!.event.timestamp <= now - ttl) i++;
        if (i > 0) events = events.slice(i);
      }
      for (const e of events) {
        if (e.event.epoch !== c.epoch) {
          e.event = { ...e.event, epoch: c.epoch };
          e.json = eventJson(e.event, JSON.stringify(e.event.data));
        }
      }
      c.events = events;
      c.head = 0;
      out.push(c);
    }
    return out;
  }

  private channel(name: string, epoch: string): ReplayedChannel {
    let c = this.channels.get(name);
    if (!c) {
      c = { channel: name, epoch, offset: 0, events: [], head: 0, historySize: Math.max(0, this.options(name).historySize) };
      this.channels.set(name, c);
    }
    return c;
  }

  private event(e: ReplayedEvent): void {
    const c = this.channel(e.event.channel, e.event.epoch);
    if (c.epoch !== e.event.epoch) {
      c.epoch = e.event.epoch;
      c.events = [];
      c.head = 0;
      c.offset = 0;
    }
    const offset = e.event.offset;
    if (offset > c.offset) c.offset = offset;
    const list = c.events;
    if (list.length === c.head || list[list.length - 1]!.event.offset < offset) list.push(e);
    else {
      let lo = c.head;
      let hi = list.length;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if (list[mid]!.event.offset < offset) lo = mid + 1;
        else hi = mid;
      }
      if (list[lo]?.event.offset === offset) list[lo] = e;
      else list.splice(lo, 0, e);
    }
    if (list.length - c.head > c.historySize) {
      c.head = list.length - c.historySize;
      if (c.head > 1024 && c.head > list.length / 2) {
        c.events = list.slice(c.head);
        c.head = 0;
      }
    }
  }

  private position(name: string, epoch: string, offset: number): void {
    const c = this.channel(name, epoch);
    if (c.epoch !== epoch) {
      // An epoch change: the retained events up to `offset` carry over; anything later cannot exist.
      c.epoch = epoch;
      while (c.events.length > c.head && c.events[c.events.length - 1]!.event.offset > offset) c.events.pop();
      c.offset = offset;
    } else if (offset > c.offset) c.offset = offset;
  }
}

export interface Recovery {
  /** Segment id → size in bytes (after repair), oldest first. */
  segments: Map<number, number>;
  /** Segments where valid records were skipped (damage, not a torn tail): acknowledged events may be missing. */
  damaged: Set<number>;
}

/** Lists the segment ids in `dir`, oldest first. */
export async function listSegments(dir: string): Promise<number[]> {
  const ids: number[] = [];
  for (const name of await fs.readdir(dir)) {
    const id = segmentId(name);
    if (id !== undefined) ids.push(id);
  }
  return ids.sort((a, b) => a - b);
}

/** Replays every segment of `dir` into `state`, truncating a torn tail of the last one. */
export async function recoverJournal(dir: string, ids: readonly number[], state: ReplayState, logger: Logger): Promise<Recovery> {
  const segments = new Map<number, number>();
  const damaged = new Set<number>();
  for (let n = 0; n < ids.length; n++) {
    const id = ids[n]!;
    const path = join(dir, segmentName(id));
    const buf = await fs.readFile(path);
    let pos = 0;
    let failure: string | undefined;
    while (pos < buf.length) {
      const r = decodeRecord(buf, pos);
      if (!r.ok) {
        failure = r.reason;
        break;
      }
      try {
        state.apply(id, r.type, r.payload, r.end - pos);
      } catch (err) {
        // Checksummed yet unreadable: a bug, not a torn write. Keep going; the rest is good.
        damaged.add(id);
        logger.error({ err, segment: path, at: pos }, 'journal: unreadable record skipped');
      }
      pos = r.end;
    }
    let size = buf.length;
    if (failure !== undefined) {
      const next = findNextRecord(buf, pos + 1);
      if (n === ids.length - 1 && next < 0) {
        logger.warn({ segment: path, at: pos, dropped: buf.length - pos, reason: failure }, 'journal: torn tail truncated at the last good record');
        const fh = await fs.open(path, 'r+');
        try {
          await fh.truncate(pos);
          await fh.datasync();
        } finally {
          await fh.close();
        }
        size = pos;
      } else {
        damaged.add(id);
        logger.error(
          { segment: path, at: pos, skipped: buf.length - pos, reason: failure, validRecordAfter: next >= 0 ? next : undefined },
          'journal: corrupt record; the rest of this segment is skipped and every channel continues in a new epoch',
        );
      }
    }
    segments.set(id, size);
  }
  return { segments, damaged };
}
