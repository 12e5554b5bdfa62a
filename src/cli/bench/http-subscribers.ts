/**
 * SSE (SPEC §3) and long-poll (SPEC §4) subscribers for the benchmark, over plain `node:http`.
 * The first position comes from the stream's first cursor (decoded with herald's own cursor
 * codec), so a missing first event is caught like any other gap.
 */
import { Agent, type ClientRequest, type IncomingMessage, request } from 'node:http';
import { decodeCursor } from '../../protocol/index.js';
import { type SubState, type Verifier, epochMatches, nowUs, scanEvent, scanned } from './verify.js';
import type { Endpoint } from './ws-subscriber.js';

const MAX_BODY = 64 * 1024 * 1024;

/** Sets `sub`'s start from a cursor; an error message when the cursor does not give one. */
function startFromCursor(sub: SubState, cursor: unknown, channel: string): string | undefined {
  if (typeof cursor !== 'string') return 'no cursor in the first answer';
  const position = decodeCursor(cursor)?.get(channel);
  if (!position) return `the first cursor has no position for ${channel}`;
  sub.start(position.epoch, position.offset);
  return undefined;
}

function notAvailable(what: string, res: IncomingMessage): Error {
  return new Error(res.statusCode === 404
    ? `transport not available on this server (${what} answered 404)`
    : `${what} answered HTTP ${res.statusCode}`);
}

export class SseSubscriber {
  private req: ClientRequest | undefined;
  private pending: Buffer | undefined;
  private onReady: ((err?: Error) => void) | undefined;

  constructor(
    readonly state: SubState,
    private readonly verifier: Verifier,
    private readonly endpoint: Endpoint,
    private readonly channel: string,
    private readonly localAddress: string | undefined,
  ) {}

  open(timeoutMs: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => done(new Error(`no ready event within ${timeoutMs} ms`)), timeoutMs);
      const done = (err?: Error): void => {
        clearTimeout(timer);
        this.onReady = undefined;
        if (err) {
          this.close();
          reject(err);
        } else {
          resolve();
        }
      };
      this.onReady = done;
      const path = `${this.endpoint.base}/sse?channel=${encodeURIComponent(this.channel)}`;
      const req = request({
        host: this.endpoint.host,
        port: this.endpoint.port,
        path,
        localAddress: this.localAddress,
        agent: false,
        headers: { ...this.endpoint.headers, Accept: 'text/event-stream' },
      });
      this.req = req;
      req.on('error', (err) => this.ended(1006, err.message));
      req.on('response', (res) => {
        if (res.statusCode !== 200) {
          res.resume();
          this.onReady?.(notAvailable('GET /sse', res));
          return;
        }
        res.on('data', (chunk: Buffer) => this.receive(chunk));
        res.on('end', () => this.ended(1000, 'the server ended the stream'));
        res.on('error', () => {});
        res.socket.setNoDelay(true);
      });
      req.end();
    });
  }

  close(): void {
    this.state.markClosed(1000, 'closed by the benchmark');
    this.req?.destroy();
    this.req = undefined;
  }

  private ended(code: number, reason: string): void {
    this.state.markClosed(code, reason);
    this.onReady?.(new Error(`stream ended before the ready event: ${reason}`));
  }

  private receive(chunk: Buffer): void {
    const now = nowUs();
    this.verifier.beginBatch();
    let buf = chunk;
    if (this.pending) {
      buf = Buffer.concat([this.pending, chunk]);
      this.pending = undefined;
    }
    // A block of lines ends at an empty line; an incomplete block is kept and read again.
    let p = 0;
    let blockStart = 0;
    let type = 'message';
    let dataStart = -1;
    let dataEnd = -1;
    let extra: string[] | undefined;
    for (;;) {
      const nl = buf.indexOf(0x0a, p);
      if (nl < 0) break;
      let e = nl;
      if (e > p && buf[e - 1] === 0x0d) e--;
      if (e === p) {
        if (dataStart >= 0) this.dispatch(type, buf, dataStart, dataEnd, extra, now);
        type = 'message';
        dataStart = -1;
        extra = undefined;
        blockStart = nl + 1;
      } else if (buf[p] === 0x64 && buf.toString('latin1', p, p + 5) === 'data:') {
        let s = p + 5;
        if (buf[s] === 0x20) s++;
        if (dataStart < 0) {
          dataStart = s;
          dataEnd = e;
        } else {
          (extra ??= []).push(buf.toString('utf8', s, e));
        }
      } else if (buf[p] === 0x65 && buf.toString('latin1', p, p + 6) === 'event:') {
        type = buf.toString('utf8', p + 6, e).trim();
      }
      p = nl + 1;
    }
    if (blockStart < buf.length) {
      if (buf.length - blockStart > MAX_BODY) {
        this.verifier.problem(`subscriber ${this.state.index}: an SSE message is over ${MAX_BODY} bytes`);
        this.close();
        return;
      }
      this.pending = Buffer.from(buf.subarray(blockStart));
    }
  }

  private dispatch(type: string, buf: Buffer, start: number, end: number, extra: string[] | undefined, now: number): void {
    const sub = this.state;
    if (type === 'event' && !extra && this.onReady === undefined && scanEvent(buf, start, end)) {
      const { offset, t, m } = scanned;
      this.verifier.event(sub, offset, epochMatches(buf, sub), t, m, now);
      if (this.verifier.sample()) this.verifier.checkParsed(sub, buf.toString('utf8', start, end), offset, t, m);
      return;
    }
    const text = buf.toString('utf8', start, end) + (extra ? `\n${extra.join('\n')}` : '');
    if (type === 'ready') {
      let ready: { cursor?: unknown } | undefined;
      try {
        ready = JSON.parse(text) as { cursor?: unknown };
      } catch {
        ready = undefined;
      }
      const problem = startFromCursor(sub, ready?.cursor, this.channel);
      if (problem) this.onReady?.(new Error(`SSE ready event: ${problem}`));
      else this.onReady?.();
      return;
    }
    if (type === 'event') {
      this.verifier.problem(`subscriber ${sub.index}: unexpected SSE event ${text.slice(0, 200)}`);
    }
  }
}

/** Long-poll requests of one process share keep-alive connections. */
const pollAgent = new Agent({ keepAlive: true, maxSockets: Infinity, maxFreeSockets: 100_000 });

interface PollAnswer {
  events?: unknown;
  cursor?: unknown;
}

export class PollSubscriber {
  private req: ClientRequest | undefined;
  private cursor = '';
  private stopped = false;

  constructor(
    readonly state: SubState,
    private readonly verifier: Verifier,
    private readonly endpoint: Endpoint,
    private readonly channel: string,
    private readonly localAddress: string | undefined,
  ) {}

  /** A first one-second poll gives the starting cursor; then the poll loop runs until `close()`. */
  async open(timeoutMs: number): Promise<void> {
    const first = await this.poll(1, timeoutMs);
    const problem = startFromCursor(this.state, first.cursor, this.channel);
    if (problem) throw new Error(`long-poll: ${problem}`);
    this.cursor = first.cursor as string;
    if (Array.isArray(first.events) && first.events.length > 0) this.verifier.problem(`subscriber ${this.state.index}: events before any publish`);
    void this.loop();
  }

  close(): void {
    this.stopped = true;
    this.state.markClosed(1000, 'closed by the benchmark');
    this.req?.destroy();
    this.req = undefined;
  }

  private async loop(): Promise<void> {
    while (!this.stopped) {
      let answer: PollAnswer;
      try {
        answer = await this.poll(30, 45_000);
      } catch (err) {
        if (!this.stopped) this.state.markClosed(1006, (err as Error).message);
        return;
      }
      const now = nowUs();
      const sub = this.state;
      if (!Array.isArray(answer.events) || typeof answer.cursor !== 'string') {
        this.verifier.problem(`subscriber ${sub.index}: a poll answer without events and cursor`);
        continue;
      }
      this.verifier.beginBatch();
      for (const raw of answer.events as unknown[]) {
        const ev = raw as { offset?: unknown; epoch?: unknown; channel?: unknown; id?: unknown; data?: { t?: unknown; m?: unknown; pad?: unknown } };
        const t = ev.data?.t;
        const m = ev.data?.m;
        if (typeof ev.offset !== 'number' || typeof t !== 'number' || typeof m !== 'number' || ev.channel !== this.channel
          || typeof ev.id !== 'string' || typeof ev.data?.pad !== 'string') {
          this.verifier.problem(`subscriber ${sub.index}: unexpected poll event ${JSON.stringify(raw).slice(0, 200)}`);
          continue;
        }
        this.verifier.event(sub, ev.offset, ev.epoch === sub.epoch, t, m, now);
      }
      this.cursor = answer.cursor;
    }
  }

  private poll(timeoutS: number, deadlineMs: number): Promise<PollAnswer> {
    return new Promise((resolve, reject) => {
      const query = `channel=${encodeURIComponent(this.channel)}&timeout=${timeoutS}${this.cursor ? `&cursor=${encodeURIComponent(this.cursor)}` : ''}`;
      const req = request({
        host: this.endpoint.host,
        port: this.endpoint.port,
        path: `${this.endpoint.base}/poll?${query}`,
        localAddress: this.localAddress,
        agent: pollAgent,
        headers: this.endpoint.headers,
        timeout: deadlineMs,
      });
      this.req = req;
      req.on('timeout', () => req.destroy(new Error(`no poll answer within ${deadlineMs} ms`)));
      req.on('error', reject);
      req.on('response', (res) => {
        if (res.statusCode !== 200) {
          res.resume();
          reject(notAvailable('GET /poll', res));
          return;
        }
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => {
          size += c.length;
          if (size > MAX_BODY) req.destroy(new Error('poll answer too large'));
          else chunks.push(c);
        });
        res.on('end', () => {
          try {
            resolve(JSON.parse(Buffer.concat(chunks, size).toString('utf8')) as PollAnswer);
          } catch {
            reject(new Error('a poll answer is not JSON'));
          }
        });
        res.on('error', reject);
      });
      req.end();
    });
  }
}
