/**
 * Publishes at a fixed rate over `POST /api/publish` with keep-alive connections. Each tick sends
 * however many messages are due since the phase began, so timer jitter never lowers the rate.
 * The send time goes into `data.t` when the request is made: time spent queued behind a slow
 * server counts as latency (no coordinated omission).
 */
import { Agent, request } from 'node:http';
import { type BenchData, nowUs } from './verify.js';
import type { Endpoint } from './ws-subscriber.js';

/**
 * A server that cannot keep up would make the publish queue, the latency and the run grow
 * without bound, so due publishes are shed (not sent) while the oldest one waiting for its answer
 * was sent over MAX_BEHIND_MS ago, or while more are waiting than the server answered in the
 * last MAX_BEHIND_MS (at least MIN_IN_FLIGHT): the queue holds about a second of the server's
 * own pace.
 */
const MAX_BEHIND_MS = 1_000;
const MIN_IN_FLIGHT = 100;
/** A hard bound on publishes waiting for an answer, whatever their age. */
const MAX_IN_FLIGHT = 20_000;
const PUBLISH_TIMEOUT_MS = 30_000;

export class Publisher {
  // A `timeout` makes node's agent honour the server's `Keep-Alive: timeout=N` hint: an idle socket
  // is dropped a second before the server would close it, instead of being reused just as the
  // server closes it (ECONNRESET, a publish lost). Requests set their own timeout.
  private readonly agent = new Agent({ keepAlive: true, maxSockets: 8, timeout: PUBLISH_TIMEOUT_MS });
  /** Answers received: count and the range of offsets they named. */
  ok = 0;
  failed = 0;
  minOffset = Infinity;
  maxOffset = 0;
  errors: string[] = [];
  inFlight = 0;
  /** Publishes not sent because the server was over MAX_BEHIND_MS behind. */
  shed = 0;
  /** Publishes in send order with their send time (performance.now); answered ones are marked done. */
  private pending: { at: number; done: boolean }[] = [];
  private head = 0;
  /** Answers per tenth of MAX_BEHIND_MS, as a ring: the server's recent pace. */
  private answered = new Float64Array(10);
  private answeredSlot = 0;
  private answeredSlotAt = 0;
  private drainWaiters: (() => void)[] = [];

  constructor(
    private readonly endpoint: Endpoint,
    private readonly channel: string,
  ) {}

  /** Whether the offsets answered so far are exactly one per publish, without gaps. */
  get contiguous(): boolean {
    return this.ok === 0 || this.maxOffset - this.minOffset + 1 === this.ok;
  }

  private error(text: string): void {
    this.failed++;
    if (this.errors.length < 5) this.errors.push(text);
  }

  /** How long the oldest unanswered publish has waited, ms (0 when none). */
  /** Answers in the last MAX_BEHIND_MS (roughly: by tenths). */
  private recentAnswers(now: number, add = 0): number {
    const slotMs = MAX_BEHIND_MS / this.answered.length;
    if (this.answeredSlotAt === 0 || now - this.answeredSlotAt >= MAX_BEHIND_MS) {
      this.answered.fill(0);
      this.answeredSlotAt = now;
    } else {
      while (now - this.answeredSlotAt >= slotMs) {
        this.answeredSlot = (this.answeredSlot + 1) % this.answered.length;
        this.answered[this.answeredSlot] = 0;
        this.answeredSlotAt += slotMs;
      }
    }
    this.answered[this.answeredSlot]! += add;
    let sum = 0;
    for (const n of this.answered) sum += n;
    return sum;
  }

  private behindMs(now: number): number {
    while (this.head < this.pending.length && this.pending[this.head]!.done) this.head++;
    if (this.head > 4096 && this.head * 2 > this.pending.length) {
      this.pending = this.pending.slice(this.head);
      this.head = 0;
    }
    return this.head < this.pending.length ? now - this.pending[this.head]!.at : 0;
  }

  publishOne(data: BenchData): void {
    const body = JSON.stringify({ channel: this.channel, data });
    this.inFlight++;
    const entry = { at: performance.now(), done: false };
    this.pending.push(entry);
    const req = request({
      host: this.endpoint.host,
      port: this.endpoint.port,
      path: `${this.endpoint.base}/api/publish`,
      method: 'POST',
      agent: this.agent,
      timeout: PUBLISH_TIMEOUT_MS,
      headers: { ...this.endpoint.headers, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
    });
    let done = false;
    const finish = (): void => {
      if (done) return;
      done = true;
      entry.done = true;
      this.inFlight--;
      this.recentAnswers(performance.now(), 1);
      if (this.inFlight === 0) for (const w of this.drainWaiters.splice(0)) w();
    };
    req.on('timeout', () => req.destroy(new Error(`no publish answer within ${PUBLISH_TIMEOUT_MS} ms`)));
    req.on('error', (err) => {
      this.error(`publish failed: ${err.message}`);
      finish();
    });
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', () => {});
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        if (res.statusCode !== 200) {
          this.error(`POST /api/publish answered HTTP ${res.statusCode}: ${text.slice(0, 200)}`);
        } else {
          let offset: unknown;
          try {
            offset = (JSON.parse(text) as { offset?: unknown }).offset;
          } catch {
            offset = undefined;
          }
          if (typeof offset !== 'number' || !Number.isSafeInteger(offset)) {
            this.error(`a publish answer has no offset: ${text.slice(0, 200)}`);
          } else {
            this.ok++;
            if (offset < this.minOffset) this.minOffset = offset;
            if (offset > this.maxOffset) this.maxOffset = offset;
          }
        }
        finish();
      });
    });
    req.end(body);
  }

  /**
   * Publishes `rate` messages per second for `seconds`, tagged with scenario `m` (-1: warm-up).
   * `onTick` is called on every tick with the number due so far. Resolves to the number sent
   * (due minus shed).
   */
  run(rate: number, seconds: number, m: number, pad: string, signal: AbortSignal, onTick?: (due: number) => void): Promise<number> {
    const total = Math.round(rate * seconds);
    if (total === 0) return Promise.resolve(0);
    const tickMs = Math.min(10, Math.max(1, Math.floor(1000 / rate)));
    return new Promise((resolve, reject) => {
      const start = performance.now();
      let due = 0;
      let sent = 0;
      const tick = (): void => {
        if (signal.aborted) {
          clearInterval(timer);
          reject(new Error('interrupted'));
          return;
        }
        const now = performance.now();
        const dueNow = Math.min(total, Math.floor(((now - start) * rate) / 1000) + 1);
        const behind = this.behindMs(now) > MAX_BEHIND_MS;
        const maxInFlight = Math.min(MAX_IN_FLIGHT, Math.max(MIN_IN_FLIGHT, this.recentAnswers(now)));
        while (due < dueNow) {
          due++;
          if (behind || this.inFlight >= maxInFlight) {
            this.shed++;
            continue;
          }
          sent++;
          this.publishOne({ t: nowUs(), m, pad });
        }
        onTick?.(due);
        if (due >= total) {
          clearInterval(timer);
          resolve(sent);
        }
      };
      const timer = setInterval(tick, tickMs);
      tick();
    });
  }

  /** Resolves when every publish has its answer (or failed). */
  settled(): Promise<void> {
    if (this.inFlight === 0) return Promise.resolve();
    return new Promise((resolve) => this.drainWaiters.push(resolve));
  }

  close(): void {
    this.agent.destroy();
  }
}
