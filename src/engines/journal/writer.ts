/**
 * Appends records to segment files: one `writev` per batch, the fsync policy, rotation.
 *
 * Batching: records appended while a write (or fsync) is in flight wait in a queue and all go out
 * in the next single `writev` — group commit. Every record of a batch shares one promise, which
 * settles once the batch is written (`never`, `<ms>`) or written and fdatasync'ed (`always`).
 *
 * Rotation is decided when a record is appended (so the caller learns the record's segment at
 * once): past `segmentBytes`, a rotation marker and the new segment's first record go into the
 * queue. The loop fdatasyncs and closes the full file, creates the next one and fsyncs the
 * directory before writing on.
 *
 * Failure is final: a failed write or fsync rejects the batch and everything after it, and the
 * writer refuses further appends (after a failed fsync the page cache can no longer be trusted).
 */
import { promises as fs, type PathLike } from 'node:fs';
import { join } from 'node:path';

export type FsyncPolicy = 'always' | 'never' | number;

export const SEGMENT_SUFFIX = '.journal';

export function segmentName(id: number): string {
  return String(id).padStart(16, '0') + SEGMENT_SUFFIX;
}

export function segmentId(name: string): number | undefined {
  const m = /^(\d{16})\.journal$/.exec(name);
  return m ? Number(m[1]) : undefined;
}

/** Makes a created or removed file name durable (no-op where directories cannot be opened). */
export async function syncDir(dir: PathLike): Promise<void> {
  let fh: fs.FileHandle | undefined;
  try {
    fh = await fs.open(dir, 'r');
    await fh.sync();
  } catch {
    // Not supported on this platform (Windows): the file data itself is still synced.
  } finally {
    await fh?.close().catch(() => {});
  }
}

interface Deferred {
  readonly promise: Promise<void>;
  resolve(): void;
  reject(error: unknown): void;
}

function deferred(): Deferred {
  let resolve!: () => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  // A batch nobody awaits (compaction copies) must not become an unhandled rejection.
  promise.catch(() => {});
  return { promise, resolve, reject };
}

const ROTATE = Symbol('rotate');

export interface WriterOptions {
  dir: string;
  fsync: FsyncPolicy;
  segmentBytes: number;
  /** The first record of each new segment. */
  header(): Buffer;
  /** A segment was completed (fdatasync'ed and closed) and `active` is now written. */
  onRotate(active: number): void;
  /** The writer failed; every later append throws. */
  onFail(error: Error): void;
}

export class SegmentWriter {
  /** Segment the next appended record goes to. */
  segment = 0;
  /** Segment being written on disk (≤ `segment`). */
  active = 0;
  private fh: fs.FileHandle | undefined;
  private logicalBytes = 0;
  private queue: (Buffer | typeof ROTATE)[] = [];
  private batch: Deferred | undefined;
  private syncWaiters: Deferred[] = [];
  private looping = false;
  private dirty = false;
  private syncDue = false;
  private lastSync = 0;
  private syncTimer: NodeJS.Timeout | undefined;
  private failure: Error | undefined;
  private closed = false;

  constructor(private readonly options: WriterOptions) {}

  get failed(): Error | undefined {
    return this.failure;
  }

  /** Creates segment `id` with these first records, written and synced before anything else. */
  async start(id: number, records: readonly Buffer[]): Promise<void> {
    this.segment = this.active = id;
    this.fh = await fs.open(join(this.options.dir, segmentName(id)), 'ax');
    this.dirty = true;
    await this.writeAll([...records]);
    await this.fh.datasync();
    this.dirty = false;
    this.lastSync = Date.now();
    await syncDir(this.options.dir);
    for (const r of records) this.logicalBytes += r.length;
  }

  /** Queues a record. `seg` is where it will be; `done` settles per the fsync policy. */
  append(record: Buffer): { seg: number; done: Promise<void> } {
    if (this.failure) throw this.failure;
    if (this.closed) throw new Error('journal is closed');
    if (this.logicalBytes >= this.options.segmentBytes) {
      const header = this.options.header();
      this.queue.push(ROTATE, header);
      this.segment++;
      this.logicalBytes = header.length;
    }
    this.queue.push(record);
    this.logicalBytes += record.length;
    const batch = (this.batch ??= deferred());
    const seg = this.segment;
    this.kick(); // may start writing at once, taking the batch
    return { seg, done: batch.promise };
  }

  /** Resolves once everything appended so far is written and fdatasync'ed. */
  sync(): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    const d = deferred();
    this.syncWaiters.push(d);
    this.kick();
    return d.promise;
  }

  /** Writes `last` after everything queued, syncs and closes. False if the writer had failed. */
  async close(last?: Buffer): Promise<boolean> {
    if (this.closed) return !this.failure;
    if (this.syncTimer) clearTimeout(this.syncTimer);
    this.syncTimer = undefined;
    let ok = !this.failure;
    if (ok) {
      if (last) {
        this.queue.push(last);
        this.batch ??= deferred();
      }
      this.closed = true;
      ok = await this.sync().then(
        () => true,
        () => false,
      );
    }
    this.closed = true;
    await this.fh?.close().catch(() => {});
    this.fh = undefined;
    return ok;
  }

  private kick(): void {
    if (this.looping) return;
    this.looping = true;
    void this.loop();
  }

  private async loop(): Promise<void> {
    try {
      while (!this.failure && (this.queue.length > 0 || this.syncWaiters.length > 0 || this.syncDue)) {
        const items = this.queue;
        const batch = this.batch;
        const waiters = this.syncWaiters;
        this.queue = [];
        this.batch = undefined;
        this.syncWaiters = [];
        try {
          let bufs: Buffer[] = [];
          for (const item of items) {
            if (item === ROTATE) {
              await this.writeAll(bufs);
              bufs = [];
              await this.rotate();
            } else bufs.push(item);
          }
          await this.writeAll(bufs);
          if (this.dirty && (this.options.fsync === 'always' || waiters.length > 0 || this.syncDue)) {
            this.syncDue = false;
            await this.fh!.datasync();
            this.dirty = false;
            this.lastSync = Date.now();
          } else if (this.dirty && typeof this.options.fsync === 'number') this.scheduleSync(this.options.fsync);
          this.syncDue = false;
          batch?.resolve();
          for (const w of waiters) w.resolve();
        } catch (err) {
          const error = err instanceof Error ? err : new Error(String(err));
          this.failure = error;
          batch?.reject(error);
          for (const w of waiters) w.reject(error);
          // Appended while this batch was being written: they fail with it.
          (this.batch as Deferred | undefined)?.reject(error);
          for (const w of this.syncWaiters) w.reject(error);
          this.queue = [];
          this.batch = undefined;
          this.syncWaiters = [];
          this.options.onFail(error);
        }
      }
    } finally {
      this.looping = false;
    }
  }

  private scheduleSync(ms: number): void {
    if (this.syncTimer) return;
    this.syncTimer = setTimeout(() => {
      this.syncTimer = undefined;
      this.syncDue = true;
      this.kick();
    }, Math.max(0, this.lastSync + ms - Date.now()));
    this.syncTimer.unref();
  }

  private async writeAll(bufs: Buffer[]): Promise<void> {
    if (bufs.length === 0) return;
    const fh = this.fh!;
    let left = 0;
    for (const b of bufs) left += b.length;
    this.dirty = true;
    for (;;) {
      const { bytesWritten } = await fh.writev(bufs);
      left -= bytesWritten;
      if (left <= 0) return;
      // A short write: skip what went out and write the rest.
      let skip = bytesWritten;
      while (skip >= bufs[0]!.length) skip -= bufs.shift()!.length;
      bufs[0] = bufs[0]!.subarray(skip);
    }
  }

  private async rotate(): Promise<void> {
    const fh = this.fh!;
    await fh.datasync();
    await fh.close();
    this.fh = undefined;
    this.dirty = false;
    this.fh = await fs.open(join(this.options.dir, segmentName(this.active + 1)), 'ax');
    this.active++;
    await syncDir(this.options.dir);
    this.lastSync = Date.now();
    this.options.onRotate(this.active);
  }
}
