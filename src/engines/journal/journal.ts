/**
 * The journal add-on: every event is appended to a segment file before the engine commits it,
 * and replayed at start. See docs/journal.md for the format and the crash rules.
 *
 * Disk stays bounded by tracking, per channel, which segments hold its retained records
 * ("runs": consecutive records of one channel in one segment). A run is released once all its
 * events are evicted (history size, time-to-live) — never the channel's last run, which anchors
 * its position. A segment no run refers to is deleted; a sparse old one is compacted: the
 * channels still in it are re-appended from memory (their retained events and a position
 * record), which releases it.
 */
import { promises as fs, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { AddOn, AddOnContext, RestoreItem } from '../../core/addon.js';
import type { ChannelOptions } from '../../core/engine.js';
import { randomId, type HeraldEvent } from '../../protocol/index.js';
import { encodeRecord, RecordType } from './record.js';
import { listSegments, recoverJournal, ReplayState, type OpenInfo, type ReplayedChannel } from './replay.js';
import { SegmentWriter, segmentName, type FsyncPolicy } from './writer.js';

export interface JournalAddOnOptions {
  dir: string;
  fsync: FsyncPolicy;
  segmentBytes: number;
  closeTimeoutMs: number;
  /** Compact a closed segment once less than this share of it is live. */
  compactBelow: number;
  /** Kernel boot id; undefined where unknown (then any unclean stop with fsync ≠ always is lossy). */
  bootId: string | undefined;
}

/** Consecutive records of one channel in one segment. */
interface Run {
  seg: number;
  first: number;
  last: number;
  lastTs: number;
  bytes: number;
  /** Event records in the run (0: only position records). */
  events: number;
}

interface Track {
  readonly channel: string;
  epoch: string;
  /** Highest offset appended (in flight included). */
  offset: number;
  options: ChannelOptions;
  runs: Run[];
}

/** What the start found, for logs and tests. */
export interface JournalStartInfo {
  clean: boolean;
  lossy: boolean;
  damaged: boolean;
  epoch: string;
  channels: number;
  events: number;
  segments: number;
}

export function readBootId(): string | undefined {
  try {
    return readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
}

export class JournalAddOn implements AddOn {
  readonly name = 'journal';
  private ctx!: AddOnContext;
  private writer!: SegmentWriter;
  private readonly tracks = new Map<string, Track>();
  /** Segment id → bytes appended to it. */
  private readonly segments = new Map<number, number>();
  /** Damaged segments found at start: moved aside rather than deleted once unreferenced. */
  private damaged = new Set<number>();
  private readonly run = randomId(12);
  private epoch = '';
  private restored: ReplayedChannel[] | undefined;
  private gcRunning: Promise<void> | undefined;
  private gcAgain = false;
  private closed = false;
  /** Set by open(): what the replay found. */
  startInfo: JournalStartInfo | undefined;

  constructor(private readonly options: JournalAddOnOptions) {}

  async open(ctx: AddOnContext): Promise<void> {
    this.ctx = ctx;
    const { dir } = this.options;
    await fs.mkdir(dir, { recursive: true });
    const ids = await listSegments(dir);
    const state = new ReplayState(ctx.channelOptions);
    const recovery = await recoverJournal(dir, ids, state, ctx.logger);
    const last = state.lastOpen;
    const clean = state.lastType === RecordType.close;
    const sameBoot = this.options.bootId !== undefined && last?.boot === this.options.bootId;
    // Lossy: acknowledged events may be missing, so offsets could be reused — give channels a new epoch.
    const damaged = recovery.damaged.size > 0;
    const lossy = damaged || (state.records > 0 && !clean && (last === undefined || (last.fsync !== 'always' && !sameBoot)));
    this.epoch = last && !lossy ? last.epoch : randomId(8);
    const channels = state.finish(ctx.now(), lossy ? this.epoch : undefined);
    if (lossy && !damaged) {
      ctx.logger.warn(
        { dir, fsync: last?.fsync, channels: channels.length, epoch: this.epoch },
        'journal: unclean shutdown on another boot with fsync ≠ always: acknowledged events may be lost; channels continue in a new epoch',
      );
    }

    // The new run starts in a new segment: open record (with the relabel, atomically), then every
    // channel's position, so the newest segment always anchors every channel. A channel with
    // events in a damaged segment gets them re-appended here, so that segment is no longer needed
    // and the damage is not met (and a new epoch handed out) again at the next start.
    const first = (ids[ids.length - 1] ?? 0) + 1;
    const records = [this.openRecord(lossy ? this.epoch : undefined)];
    const starts: { channel: ReplayedChannel; copied: boolean; from: number }[] = [];
    for (const c of channels) {
      const copied = c.events.some((e) => recovery.damaged.has(e.seg));
      starts.push({ channel: c, copied, from: records.length });
      if (copied) for (const e of c.events) records.push(encodeRecord(RecordType.event, e.json));
      records.push(positionRecord(c.channel, c.epoch, c.offset));
    }
    this.writer = new SegmentWriter({
      dir,
      fsync: this.options.fsync,
      segmentBytes: this.options.segmentBytes,
      header: () => this.openRecord(undefined),
      onRotate: () => void this.gc(),
      onFail: (error) => ctx.fail(error),
    });
    await this.writer.start(first, records);
    for (const [id, size] of recovery.segments) this.segments.set(id, size);
    this.damaged = recovery.damaged;
    let bytes = 0;
    for (const r of records) bytes += r.length;
    this.segments.set(first, bytes);

    let events = 0;
    for (const { channel: c, copied, from } of starts) {
      const track: Track = { channel: c.channel, epoch: c.epoch, offset: c.offset, options: ctx.channelOptions(c.channel), runs: [] };
      let i = from;
      for (const e of c.events) {
        if (copied) this.addToRun(track, first, e.event.offset, e.event.timestamp, records[i++]!.length, true);
        else this.addToRun(track, e.seg, e.event.offset, e.event.timestamp, e.bytes, true);
      }
      this.addToRun(track, first, c.offset, 0, records[i]!.length, false);
      this.tracks.set(c.channel, track);
      events += c.events.length;
    }
    this.restored = channels;
    this.startInfo = { clean, lossy, damaged, epoch: this.epoch, channels: channels.length, events, segments: ids.length };
    ctx.logger.info({ dir, ...this.startInfo, fsync: this.options.fsync }, 'journal: replayed');
    await this.deleteUnreferenced();
  }

  *restore(): Iterable<RestoreItem> {
    const channels = this.restored ?? [];
    this.restored = undefined;
    yield { kind: 'epoch', epoch: this.epoch };
    for (const c of channels) {
      for (const e of c.events) yield { kind: 'event', event: e.event, json: e.json };
      yield { kind: 'channel', channel: c.channel, epoch: c.epoch, offset: c.offset };
    }
  }

  onPublish(event: HeraldEvent, json: string, options: ChannelOptions): Promise<void> {
    const record = encodeRecord(RecordType.event, json);
    const { seg, done } = this.writer.append(record);
    let track = this.tracks.get(event.channel);
    if (!track) this.tracks.set(event.channel, (track = { channel: event.channel, epoch: event.epoch, offset: 0, options, runs: [] }));
    track.options = options;
    this.segments.set(seg, (this.segments.get(seg) ?? 0) + record.length);
    this.addToRun(track, seg, event.offset, event.timestamp, record.length, true);
    this.evict(track, event.timestamp);
    return done;
  }

  /** Everything accepted so far written and fdatasync'ed, and segment clean-up settled. */
  async flush(): Promise<void> {
    await this.writer.sync();
    while (this.gcRunning) await this.gcRunning;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (!this.writer) return; // never opened
    let timer: NodeJS.Timeout | undefined;
    const drained = (async () => {
      await this.gcRunning;
      return this.writer.close(encodeRecord(RecordType.close, JSON.stringify({ run: this.run, at: Date.now() })));
    })();
    const timeout = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(resolve, this.options.closeTimeoutMs, 'timeout');
    });
    const result = await Promise.race([drained, timeout]);
    clearTimeout(timer);
    if (result === 'timeout') this.ctx.logger.error({ dir: this.options.dir }, 'journal: close timed out; the next start replays it as an unclean shutdown');
    else if (!result) this.ctx.logger.error({ dir: this.options.dir }, 'journal: closed after a write failure; no clean marker written');
  }

  // ---- retention ---------------------------------------------------------------------------

  private openRecord(relabel: string | undefined): Buffer {
    const info: OpenInfo = { v: 1, run: this.run, epoch: this.epoch, fsync: this.options.fsync, at: Date.now() };
    if (this.options.bootId !== undefined) info.boot = this.options.bootId;
    if (relabel !== undefined) info.relabel = relabel;
    return encodeRecord(RecordType.open, JSON.stringify(info));
  }

  private addToRun(track: Track, seg: number, offset: number, ts: number, bytes: number, event: boolean): void {
    const last = track.runs[track.runs.length - 1];
    if (last && last.seg === seg) {
      if (offset > last.last) last.last = offset;
      if (ts > last.lastTs) last.lastTs = ts;
      last.bytes += bytes;
      if (event) last.events++;
    } else track.runs.push({ seg, first: offset, last: offset, lastTs: ts, bytes, events: event ? 1 : 0 });
    if (offset > track.offset) track.offset = offset;
  }

  /** Releases the runs whose events are all evicted, oldest first; never the last one. */
  private evict(track: Track, now: number): void {
    const runs = track.runs;
    const cutoff = track.offset - track.options.historySize;
    const ttl = track.options.historyTtlMs;
    let n = 0;
    while (n < runs.length - 1) {
      const r = runs[n]!;
      if (r.events === 0 || r.last <= cutoff || (ttl > 0 && r.lastTs <= now - ttl)) n++;
      else break;
    }
    if (n > 0) runs.splice(0, n);
  }

  /** Per segment: how many runs refer to it and an estimate of its live bytes. */
  private usage(now: number): Map<number, { refs: number; live: number }> {
    const usage = new Map<number, { refs: number; live: number }>();
    for (const track of this.tracks.values()) {
      this.evict(track, now);
      const from = track.offset - track.options.historySize + 1;
      const lastRun = track.runs[track.runs.length - 1];
      for (const r of track.runs) {
        let live = r.bytes;
        if (r.events === 0) live = r === lastRun ? r.bytes : 0;
        else if (from > r.first) live = (r.bytes * Math.max(0, r.last - from + 1)) / (r.last - r.first + 1);
        const u = usage.get(r.seg);
        if (u) {
          u.refs++;
          u.live += live;
        } else usage.set(r.seg, { refs: 1, live });
      }
    }
    return usage;
  }

  /** Runs after every rotation: compacts sparse old segments, deletes unreferenced ones. */
  private gc(): Promise<void> {
    if (this.gcRunning) {
      this.gcAgain = true;
      return this.gcRunning;
    }
    this.gcRunning = (async () => {
      try {
        do {
          this.gcAgain = false;
          this.compact();
          await this.deleteUnreferenced();
        } while (this.gcAgain && !this.closed);
      } catch (err) {
        this.ctx.logger.error({ err, dir: this.options.dir }, 'journal: segment clean-up failed; will retry at the next rotation');
      } finally {
        this.gcRunning = undefined;
      }
    })();
    return this.gcRunning;
  }

  private compact(): void {
    if (this.closed || this.writer.failed) return;
    const usage = this.usage(this.ctx.now());
    const sparse = new Set<number>();
    for (const [seg, u] of usage) {
      // The segment before the one being written usually empties by itself: leave it one turn.
      if (seg < this.writer.active - 1 && u.live < (this.segments.get(seg) ?? 0) * this.options.compactBelow) sparse.add(seg);
    }
    if (sparse.size === 0) return;
    for (const track of this.tracks.values()) {
      if (track.runs.some((r) => sparse.has(r.seg))) this.rewrite(track);
    }
  }

  /** Re-appends a channel's retained events and position from memory, releasing its older runs. */
  private rewrite(track: Track): void {
    const snap = this.ctx.retained(track.channel, track.options);
    const epoch = snap?.epoch ?? track.epoch;
    const committed = snap?.offset ?? track.offset;
    // Runs holding publishes still in flight stay: their records are already queued.
    const inFlight = track.runs.filter((r) => r.last > committed);
    track.runs = [];
    if (snap) {
      for (let i = 0; i < snap.events.length; i++) {
        const e = snap.events[i]!;
        const record = encodeRecord(RecordType.event, snap.json[i]!);
        const { seg } = this.writer.append(record);
        this.segments.set(seg, (this.segments.get(seg) ?? 0) + record.length);
        this.addToRun(track, seg, e.offset, e.timestamp, record.length, true);
      }
    }
    const record = positionRecord(track.channel, epoch, committed);
    const { seg } = this.writer.append(record);
    this.segments.set(seg, (this.segments.get(seg) ?? 0) + record.length);
    this.addToRun(track, seg, committed, 0, record.length, false);
    track.runs.push(...inFlight);
  }

  /** Deletes closed segments no run refers to, once everything appended so far is durable. */
  private async deleteUnreferenced(): Promise<void> {
    const usage = this.usage(this.ctx.now());
    const doomed = [...this.segments.keys()].filter((seg) => seg < this.writer.active && !usage.has(seg));
    if (doomed.length === 0) return;
    // The records that superseded them must be on disk before they go.
    await this.writer.sync();
    for (const seg of doomed) {
      const path = join(this.options.dir, segmentName(seg));
      if (this.damaged.delete(seg)) {
        await fs.rename(path, path + '.damaged');
        this.ctx.logger.error({ segment: path + '.damaged' }, 'journal: damaged segment moved aside for inspection; delete it when done');
      } else await fs.rm(path, { force: true });
      this.segments.delete(seg);
    }
  }
}

function positionRecord(channel: string, epoch: string, offset: number): Buffer {
  return encodeRecord(RecordType.position, JSON.stringify({ channel, epoch, offset }));
}
