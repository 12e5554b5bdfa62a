/**
 * Checks every delivery of a benchmark run: offsets go up by exactly one per subscriber (anything
 * else is loss, a duplicate or a reorder), the epoch never changes, and the payload is the one
 * the publisher sent. Latency is receive time minus the send time the publisher put in `data`.
 *
 * At a million deliveries per second JSON.parse on every frame would make the load generator the
 * bottleneck, so each event is checked with a byte scan (offset, epoch, send time, scenario) and
 * one in SAMPLE_EVERY is also parsed in full and compared field by field.
 *
 * Times are CLOCK_MONOTONIC microseconds (`process.hrtime`), one clock for every process on the
 * machine, so publisher and subscribers may live in different processes.
 */
import { Histogram, type HistogramData } from './histogram.js';

/** Parse one event in this many in full. */
const SAMPLE_EVERY = 64;
/** How many missing offsets a subscriber remembers to tell a late arrival from a duplicate. */
const MISSING_WINDOW = 1_000;

// performance.now() reads the same monotonic clock as process.hrtime but from this process's
// start; anchoring it once gives a shared clock without a BigInt per reading.
// The first calls are slow, so take the tightest of a few readings.
const anchorUs = ((): number => {
  let best = Infinity;
  let anchor = 0;
  for (let i = 0; i < 20; i++) {
    const before = Number(process.hrtime.bigint()) / 1000;
    const now = performance.now() * 1000;
    const after = Number(process.hrtime.bigint()) / 1000;
    if (after - before < best) {
      best = after - before;
      anchor = (before + after) / 2 - now;
    }
  }
  return anchor;
})();

/** Monotonic microseconds, the same clock in every process. */
export function nowUs(): number {
  return Math.round(anchorUs + performance.now() * 1000);
}

/** The `data` a publisher sends: send time, scenario (-1 = warm-up) and padding to the size asked. */
export interface BenchData {
  t: number;
  m: number;
  pad: string;
}

/** Builds the padding once per scenario so `JSON.stringify(data)` is about `size` bytes. */
export function padFor(size: number): string {
  // {"t":1234567890123,"m":0,"pad":""} is 34 bytes with a 13-digit time.
  return 'x'.repeat(Math.max(0, size - 34));
}

/** One subscriber's position in the stream. */
export class SubState {
  epoch = '';
  epochBuf: Buffer = Buffer.alloc(0);
  /** The next offset this subscriber must receive. */
  expected = 0;
  /** Offsets at or below this one are no longer waited for (counted lost at a drain timeout). */
  ignoreUpTo = 0;
  missing = new Set<number>();
  closed = false;
  /** Closed and already reported: left out of later scenarios. */
  retired = false;
  closeCode = 0;
  closeReason = '';

  constructor(readonly index: number) {}

  /** Where the stream starts: the channel's latest offset when the subscription began. */
  start(epoch: string, offset: number): void {
    this.epoch = epoch;
    this.epochBuf = Buffer.from(epoch, 'utf8');
    this.expected = offset + 1;
  }

  /** Records why the subscriber ended; the first reason wins. */
  markClosed(code: number, reason: string): void {
    if (this.closed) return;
    this.closed = true;
    this.closeCode = code;
    this.closeReason = reason;
  }

  /** The last offset received in order. */
  get position(): number {
    return this.expected - 1;
  }
}

export interface Integrity {
  lost: number;
  duplicates: number;
  reordered: number;
  /** Arrived after the drain gave up on them (already counted lost). */
  late: number;
  /** Malformed frames, wrong epoch, channel or payload. */
  invalid: number;
}

export interface ScenarioData {
  delivered: number;
  /** Batches that carried the scenario's deliveries (see `Verifier.beginBatch`). */
  batches: number;
  firstUs: number;
  lastUs: number;
  latency: HistogramData;
}

class ScenarioAcc {
  delivered = 0;
  batches = 0;
  firstUs = 0;
  lastUs = 0;
  latency = new Histogram();
}

const emptyIntegrity = (): Integrity => ({ lost: 0, duplicates: 0, reordered: 0, late: 0, invalid: 0 });

export class Verifier {
  /** Problems since the last `takeIntegrity()`. */
  integrity: Integrity = emptyIntegrity();
  /** Up to a few human-readable examples of what went wrong. */
  problems: string[] = [];
  private scenarios = new Map<number, ScenarioAcc>();
  private sampleCounter = 0;
  /** Deliveries of any scenario since the start (for progress). */
  total = 0;
  /** A batch began and its first delivery has not been counted yet. */
  private batchOpen = false;

  constructor(readonly channel: string) {}

  problem(text: string): void {
    this.integrity.invalid++;
    if (this.problems.length < 10) this.problems.push(text);
  }

  /**
   * What the subscriber read next arrived together: one poll answer, or one socket read of a
   * stream (which joins several server writes when the subscriber lags). Counted for the scenario
   * of its first delivery: events per batch shows the server's write coalescing.
   */
  beginBatch(): void {
    this.batchOpen = true;
  }

  /** One event for `sub`. `epochOk` is false when the event names another epoch. */
  event(sub: SubState, offset: number, epochOk: boolean, t: number, m: number, now: number): void {
    if (!epochOk) {
      this.problem(`subscriber ${sub.index}: event ${offset} has another epoch`);
      return;
    }
    if (offset <= sub.ignoreUpTo) {
      this.integrity.late++;
      return;
    }
    if (offset === sub.expected) {
      sub.expected++;
    } else if (offset > sub.expected) {
      this.integrity.lost += offset - sub.expected;
      for (let o = sub.expected; o < offset && sub.missing.size < MISSING_WINDOW; o++) sub.missing.add(o);
      sub.expected = offset + 1;
    } else if (sub.missing.delete(offset)) {
      this.integrity.lost--;
      this.integrity.reordered++;
    } else {
      this.integrity.duplicates++;
      return;
    }
    this.total++;
    if (m < 0) return;
    let acc = this.scenarios.get(m);
    if (!acc) {
      acc = new ScenarioAcc();
      acc.firstUs = now;
      this.scenarios.set(m, acc);
    }
    acc.delivered++;
    if (this.batchOpen) {
      this.batchOpen = false;
      acc.batches++;
    }
    acc.lastUs = now;
    acc.latency.record(now - t);
  }

  /** Whether this event should also be parsed in full. */
  sample(): boolean {
    return ++this.sampleCounter % SAMPLE_EVERY === 0;
  }

  /** Full check of a parsed push against what the byte scan found. */
  checkParsed(sub: SubState, text: string, offset: number, t: number, m: number): void {
    let msg: unknown;
    try {
      msg = JSON.parse(text);
    } catch {
      this.problem(`subscriber ${sub.index}: a frame is not JSON`);
      return;
    }
    const push = msg as { push?: unknown; event?: unknown };
    const event = (push.push === 'event' ? push.event : msg) as Record<string, unknown> | null;
    const data = event?.data as Record<string, unknown> | undefined;
    const ok = !!event && event.channel === this.channel && event.offset === offset && event.epoch === sub.epoch
      && typeof event.id === 'string' && typeof event.timestamp === 'number'
      && !!data && data.t === t && data.m === m && typeof data.pad === 'string';
    if (!ok) this.problem(`subscriber ${sub.index}: event ${offset} does not have the expected shape: ${text.slice(0, 200)}`);
  }

  /** Takes (and resets) the figures of scenario `m`. */
  takeScenario(m: number): ScenarioData {
    const acc = this.scenarios.get(m) ?? new ScenarioAcc();
    this.scenarios.delete(m);
    return { delivered: acc.delivered, batches: acc.batches, firstUs: acc.firstUs, lastUs: acc.lastUs, latency: acc.latency.toJSON() };
  }

  takeIntegrity(): Integrity {
    const out = this.integrity;
    this.integrity = emptyIntegrity();
    return out;
  }
}

// --- Byte scanning of one event's JSON, without building strings or objects ---

const OFFSET = Buffer.from('"offset":');
const EPOCH = Buffer.from('"epoch":"');
const T = Buffer.from('"t":');
const M = Buffer.from('"m":');

/** The result of `scanEvent`, reused (module-level, as on a hot path). */
export const scanned = { offset: 0, t: 0, m: 0, epochStart: 0, epochEnd: 0 };

function intAt(buf: Buffer, i: number, end: number): number {
  let neg = false;
  if (buf[i] === 0x2d) {
    neg = true;
    i++;
  }
  let n = 0;
  let digits = 0;
  for (; i < end; i++) {
    const c = buf[i]!;
    if (c < 0x30 || c > 0x39) break;
    n = n * 10 + (c - 0x30);
    digits++;
  }
  if (digits === 0) return NaN;
  return neg ? -n : n;
}

/** Finds `needle` in `buf[from, end)`, trying `hint` first (herald writes fields in a fixed order). */
function find(buf: Buffer, needle: Buffer, hint: number, start: number, end: number): number {
  let i = buf.indexOf(needle, hint);
  if (i >= 0 && i < end) return i;
  if (hint === start) return -1;
  i = buf.indexOf(needle, start);
  return i >= 0 && i < end ? i : -1;
}

/**
 * Finds offset, epoch, send time and scenario of the event JSON in `buf[start, end)`.
 * False when one is missing (not an event of ours).
 */
export function scanEvent(buf: Buffer, start: number, end: number): boolean {
  let i = find(buf, OFFSET, start, start, end);
  if (i < 0) return false;
  scanned.offset = intAt(buf, i + OFFSET.length, end);
  i = find(buf, EPOCH, i, start, end);
  if (i < 0) return false;
  scanned.epochStart = i + EPOCH.length;
  const close = buf.indexOf(0x22, scanned.epochStart);
  if (close < 0 || close >= end) return false;
  scanned.epochEnd = close;
  i = find(buf, T, close, start, end);
  if (i < 0) return false;
  scanned.t = intAt(buf, i + T.length, end);
  i = find(buf, M, i, start, end);
  if (i < 0) return false;
  scanned.m = intAt(buf, i + M.length, end);
  return Number.isSafeInteger(scanned.offset) && Number.isFinite(scanned.t) && Number.isInteger(scanned.m);
}

/** Whether the epoch bytes found by `scanEvent` are `sub`'s (a loop: epochs are short). */
export function epochMatches(buf: Buffer, sub: SubState): boolean {
  const want = sub.epochBuf;
  const s = scanned.epochStart;
  if (scanned.epochEnd - s !== want.length) return false;
  for (let k = 0; k < want.length; k++) if (buf[s + k] !== want[k]) return false;
  return true;
}
