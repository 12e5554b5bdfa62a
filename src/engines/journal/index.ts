/**
 * `--journal <dir>`: the memory engine with a durable, embedded journal (docs/journal.md).
 *
 *   const engine = createJournalEngine({ dir, fsync: 'always', channelOptions: (ch) => hub.namespaces.forChannel(ch).channel });
 */
import type { AddOn } from '../../core/addon.js';
import type { ChannelOptions } from '../../core/engine.js';
import type { Logger } from '../../core/logger.js';
import { MemoryEngine } from '../memory.js';
import { JournalAddOn, readBootId } from './journal.js';
import type { FsyncPolicy } from './writer.js';

export { JournalAddOn, readBootId, type JournalAddOnOptions, type JournalStartInfo } from './journal.js';
export type { FsyncPolicy } from './writer.js';

export interface JournalEngineOptions {
  /** Directory of the segment files; created if missing. One process per directory. */
  dir: string;
  /**
   * `always` (default): a publish is acknowledged and fanned out only after its record is
   * fdatasync'ed. `<ms>`: acknowledged after the write, fdatasync at most every `ms` milliseconds.
   * `never`: acknowledged after the write, fdatasync only on rotation and close.
   */
  fsync?: FsyncPolicy;
  /** A segment is rotated once it holds this many bytes. Default 8 MiB. */
  segmentBytes?: number;
  /** A channel's options (history size, time-to-live) at replay; pass the namespaces'. */
  channelOptions?: (channel: string) => ChannelOptions;
  logger?: Logger;
  /** Longest `close()` waits for the last writes and fsync. Default 5,000 ms. */
  closeTimeoutMs?: number;
  /** More add-ons, called after the journal. */
  addons?: readonly AddOn[];
  /** Clock (tests of time-to-live). */
  now?: () => number;
  /** Overrides the kernel boot id (tests of crash recovery). */
  bootId?: string;
}

export const JOURNAL_DEFAULTS = Object.freeze({
  fsync: 'always' as FsyncPolicy,
  segmentBytes: 8 * 1024 * 1024,
  closeTimeoutMs: 5000,
  compactBelow: 0.5,
});

/** Parses `--fsync`: `always`, `never` or a whole number of milliseconds (1..60000). */
export function parseFsync(value: string | number): FsyncPolicy {
  if (value === 'always' || value === 'never') return value;
  const ms = typeof value === 'number' ? value : /^\d+$/.test(value.trim()) ? Number(value.trim()) : NaN;
  if (!Number.isSafeInteger(ms) || ms < 1 || ms > 60_000) {
    throw new Error(`fsync: expected "always", "never" or a number of milliseconds from 1 to 60000, got ${JSON.stringify(value)}`);
  }
  return ms;
}

/** The memory engine with its journal add-on at hand (`journal.startInfo` tells what the start found). */
export class JournalEngine extends MemoryEngine {
  constructor(
    readonly journal: JournalAddOn,
    options: ConstructorParameters<typeof MemoryEngine>[0],
  ) {
    super(options);
  }
}

/** A memory engine whose every event is journaled in `dir` and replayed at start. */
export function createJournalEngine(options: JournalEngineOptions): JournalEngine {
  if (typeof options.dir !== 'string' || options.dir.length === 0) throw new Error('journal: "dir" must be a non-empty path');
  const fsync = parseFsync(options.fsync ?? JOURNAL_DEFAULTS.fsync);
  const segmentBytes = options.segmentBytes ?? JOURNAL_DEFAULTS.segmentBytes;
  if (!Number.isSafeInteger(segmentBytes) || segmentBytes < 4096) throw new Error(`journal: "segmentBytes" must be an integer ≥ 4096, got ${segmentBytes}`);
  const closeTimeoutMs = options.closeTimeoutMs ?? JOURNAL_DEFAULTS.closeTimeoutMs;
  if (!(closeTimeoutMs > 0)) throw new Error(`journal: "closeTimeoutMs" must be positive, got ${closeTimeoutMs}`);
  const journal = new JournalAddOn(
    Object.freeze({
      dir: options.dir,
      fsync,
      segmentBytes,
      closeTimeoutMs,
      compactBelow: JOURNAL_DEFAULTS.compactBelow,
      bootId: options.bootId ?? readBootId(),
    }),
  );
  return new JournalEngine(journal, {
    name: 'journal',
    addons: [journal, ...(options.addons ?? [])],
    ...(options.channelOptions ? { channelOptions: options.channelOptions } : {}),
    ...(options.logger ? { logger: options.logger } : {}),
    ...(options.now ? { now: options.now } : {}),
  });
}
