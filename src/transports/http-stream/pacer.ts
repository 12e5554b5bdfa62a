/**
 * Long-poll answer pacing that follows the load. A poll is a whole HTTP exchange (tens of
 * microseconds of server CPU whatever it carries), and a client polls again as soon as it is
 * answered: on a busy channel, answering each poll the moment an event is ready makes the server
 * answer as fast as it can, one or two events per answer, until it saturates. Pacing holds a poll
 * whose client got its last event less than `paceMs` ago until that event is `paceMs` old, so
 * each client gets about one answer per `paceMs` with everything published meanwhile.
 *
 * The pace is 0 while the event loop is mostly idle (answer at once: no latency added where the
 * server can afford it), grows (a quarter of the most, then doubling) while the loop's
 * utilisation is over `loadPercent`, holds between half of that and it, and halves below half.
 * So it settles where the polls leave the server some room. `loadPercent` 0 paces always at the
 * most; `maxMs` 0 never paces.
 *
 * One sample per `SAMPLE_MS` for the whole transport: nothing per poll.
 */
import { performance, type EventLoopUtilization } from 'node:perf_hooks';

/** How often the event loop's utilisation is read. */
export const PACE_SAMPLE_MS = 250;

function sample(pacer: LoadPacer): void {
  pacer.sample();
}

export class LoadPacer {
  /** The longest pace, ms. */
  readonly maxMs: number;
  /** Event-loop utilisation (percent) over which the pace grows; 0 = always `maxMs`. */
  readonly loadPercent: number;
  /** The first step up, and the least pace kept on the way down: a quarter of the most. */
  private readonly step: number;
  private pace: number;
  private timer: NodeJS.Timeout | undefined;
  private last: EventLoopUtilization | undefined;

  constructor(maxMs: number, loadPercent: number) {
    if (!Number.isSafeInteger(maxMs) || maxMs < 0) throw new TypeError('pace must be a non-negative integer of milliseconds');
    if (!Number.isFinite(loadPercent) || loadPercent < 0 || loadPercent > 100) throw new TypeError('pace load must be a percentage from 0 to 100');
    this.maxMs = maxMs;
    this.loadPercent = loadPercent;
    this.step = Math.max(1, Math.floor(maxMs / 4));
    this.pace = loadPercent === 0 ? maxMs : 0;
  }

  /** Milliseconds a client's last event must be old before its next answer leaves (0 = at once). */
  get paceMs(): number {
    return this.pace;
  }

  /** Whether the pace follows the load (and so needs `start()`). */
  get adaptive(): boolean {
    return this.maxMs > 0 && this.loadPercent > 0;
  }

  /** Feeds one reading of the event loop's utilisation, from 0 to 1. */
  update(utilization: number): void {
    if (!this.adaptive) return;
    const load = utilization * 100;
    if (load > this.loadPercent) {
      this.pace = this.pace === 0 ? this.step : Math.min(this.maxMs, this.pace * 2);
    } else if (load < this.loadPercent / 2 && this.pace > 0) {
      const half = Math.floor(this.pace / 2);
      this.pace = half < this.step ? 0 : half;
    }
  }

  /** Starts reading the event loop (once; the timer does not keep the process alive). */
  start(): void {
    if (this.timer || !this.adaptive) return;
    this.last = performance.eventLoopUtilization();
    this.timer = setInterval(sample, PACE_SAMPLE_MS, this);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    if (this.adaptive) this.pace = 0;
  }

  /** @internal One reading since the last. */
  sample(): void {
    const now = performance.eventLoopUtilization();
    this.update(performance.eventLoopUtilization(now, this.last).utilization);
    this.last = now;
  }
}
