/**
 * Limits shared by the transports (docs/security.md): token-bucket rate limits per WebSocket
 * connection and per client address, and a cap on open connections per client address.
 *
 * - **Per connection** (WebSocket): every frame a client sends is a command and takes a token from
 *   its command bucket; a publish also takes one from its publish bucket. Buckets hold twice their
 *   rate, so a client may burst (e.g. its subscriptions right after `connect`).
 * - **Per address**: the commands of all of an address's WebSocket connections, and its requests
 *   to the HTTP transports (SSE, long-poll, golongpoll, gpoll), share one bucket; publishes (over
 *   WebSocket and golongpoll) another. A connection's own bucket is checked first, so one client
 *   alone cannot drain its address's budget: the others behind that address are unaffected.
 * - **Connections per address**: WebSocket connections, SSE streams and waiting polls together.
 *
 * An address is the TCP peer's: IPv4 as is, IPv6 by its /64 (one subscriber usually holds a whole
 * /64, so counting single IPv6 addresses would limit nothing). `X-Forwarded-For` is not trusted:
 * behind a reverse proxy every client has the proxy's address, so raise or turn off (0) the
 * per-address limits there and limit at the proxy instead.
 *
 * A refused command is answered `rate_limited`; a WebSocket client that keeps sending over its
 * rate (refusals without a one-second pause for `rateLimitGraceMs`, or more than
 * `MAX_REFUSALS` of them) gets `disconnect` 4029 and is closed. Memory: per-address state is one
 * small object per active address, swept when idle and capped at `MAX_TRACKED_ADDRESSES`.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { HeraldError } from '../protocol/index.js';

export interface LimitOptions {
  /** Commands per second per WebSocket connection (bursts of twice that). 0 = no limit. Default 100. */
  commandRate: number;
  /** Publishes per second per WebSocket connection (bursts of twice that). 0 = no limit. Default 50. */
  publishRate: number;
  /** Commands and HTTP transport requests per second per client address. 0 = no limit. Default 1,000. */
  ipCommandRate: number;
  /** Publishes per second per client address (WebSocket and golongpoll). 0 = no limit. Default 500. */
  ipPublishRate: number;
  /** Open WebSocket connections, SSE streams and waiting polls per client address. 0 = no limit. Default 1,000. */
  maxConnectionsPerIp: number;
  /** A WebSocket client still over its rate this long after its first `rate_limited` answer is closed 4029. Default 3,000 ms. */
  rateLimitGraceMs: number;
}

export const LIMIT_DEFAULTS: Readonly<LimitOptions> = Object.freeze({
  commandRate: 100,
  publishRate: 50,
  ipCommandRate: 1000,
  ipPublishRate: 500,
  maxConnectionsPerIp: 1000,
  rateLimitGraceMs: 3000,
});

/** Refusals in one episode after which a WebSocket client is closed 4029 whatever the time. */
export const MAX_REFUSALS = 100;
/** A pause this long without a refusal ends an episode of refusals. */
const EPISODE_QUIET_MS = 1000;
/** Addresses whose buckets are kept at most; past it, idle ones are swept, then the oldest dropped. */
export const MAX_TRACKED_ADDRESSES = 100_000;
const SWEEP_EVERY_MS = 60_000;

function now(): number {
  return performance.now();
}

/** A token bucket: `rate` tokens a second, holding at most `burst`. */
export class TokenBucket {
  private tokens: number;
  private last: number;

  constructor(
    readonly rate: number,
    readonly burst: number,
    at = now(),
  ) {
    this.tokens = burst;
    this.last = at;
  }

  private refill(at: number): void {
    if (at > this.last) {
      this.tokens = Math.min(this.burst, this.tokens + ((at - this.last) * this.rate) / 1000);
      this.last = at;
    }
  }

  /** Takes a token; false when there is none. */
  take(at = now()): boolean {
    this.refill(at);
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }

  /** Milliseconds until a token is available (0 = now). */
  waitMs(at = now()): number {
    this.refill(at);
    return this.tokens >= 1 ? 0 : Math.ceil(((1 - this.tokens) * 1000) / this.rate);
  }

  /** Full: the bucket has been idle long enough to be forgotten. */
  full(at = now()): boolean {
    this.refill(at);
    return this.tokens >= this.burst;
  }
}

/** One bucket per address, created on first use and swept when idle. */
class AddressBuckets {
  private readonly buckets = new Map<string, TokenBucket>();
  /** -Infinity: the first lookup sweeps (an empty map, nothing to do) and starts the clock. */
  private lastSweep = -Infinity;

  constructor(
    private readonly rate: number,
    private readonly burst: number,
  ) {}

  get(address: string, at: number): TokenBucket {
    let bucket = this.buckets.get(address);
    if (!bucket) {
      if (this.buckets.size >= MAX_TRACKED_ADDRESSES || at - this.lastSweep > SWEEP_EVERY_MS) this.sweep(at);
      bucket = new TokenBucket(this.rate, this.burst, at);
      this.buckets.set(address, bucket);
    }
    return bucket;
  }

  get size(): number {
    return this.buckets.size;
  }

  private sweep(at: number): void {
    this.lastSweep = at;
    for (const [address, bucket] of this.buckets) if (bucket.full(at)) this.buckets.delete(address);
    // Still too many busy addresses (a spread-out flood): forget the oldest tenth; they start full again.
    if (this.buckets.size >= MAX_TRACKED_ADDRESSES) {
      let drop = Math.ceil(this.buckets.size / 10);
      for (const address of this.buckets.keys()) {
        if (drop-- <= 0) break;
        this.buckets.delete(address);
      }
    }
  }
}

/** A WebSocket connection's rate state (created per connection by `TransportLimits.connectionRate`). */
export class ConnectionRate {
  /** The client's address key (see `addressKey`). */
  readonly address: string;
  /** @internal */ readonly commands: TokenBucket | undefined;
  /** @internal */ readonly publishes: TokenBucket | undefined;
  /** @internal */ episodeStart = 0;
  /** @internal */ lastRefusal = -Infinity;
  /** @internal */ refused = 0;

  constructor(address: string, options: Readonly<LimitOptions>, at: number) {
    this.address = address;
    if (options.commandRate > 0) this.commands = new TokenBucket(options.commandRate, options.commandRate * 2, at);
    if (options.publishRate > 0) this.publishes = new TokenBucket(options.publishRate, options.publishRate * 2, at);
  }
}

/** What `TransportLimits.admit` decides for one WebSocket command. */
export const ADMIT = 0;
export const REFUSE = 1;
/** Refused, and the client has been over its rate for too long: close it with 4029. */
export const REFUSE_AND_CLOSE = 2;
export type Verdict = typeof ADMIT | typeof REFUSE | typeof REFUSE_AND_CLOSE;

export class TransportLimits {
  readonly options: Readonly<LimitOptions>;
  private readonly ipCommands: AddressBuckets | undefined;
  private readonly ipPublishes: AddressBuckets | undefined;
  private readonly open = new Map<string, number>();

  /**
   * `clock` (milliseconds, monotonic) decides when buckets refill and episodes end; tests pass
   * their own to move time forward instead of waiting for it. Default: performance.now.
   */
  constructor(
    options: Partial<LimitOptions> = {},
    private readonly clock: () => number = now,
  ) {
    const o: LimitOptions = { ...LIMIT_DEFAULTS };
    for (const [key, value] of Object.entries(options)) {
      if (!Object.prototype.hasOwnProperty.call(LIMIT_DEFAULTS, key)) throw new TypeError(`limits: unknown option "${key}"`);
      if (value === undefined) continue;
      if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) throw new RangeError(`limits: option "${key}" must be a number >= 0, got ${JSON.stringify(value)}`);
      o[key as keyof LimitOptions] = value;
    }
    this.options = Object.freeze(o);
    if (o.ipCommandRate > 0) this.ipCommands = new AddressBuckets(o.ipCommandRate, o.ipCommandRate * 2);
    if (o.ipPublishRate > 0) this.ipPublishes = new AddressBuckets(o.ipPublishRate, o.ipPublishRate * 2);
  }

  /** Addresses with buckets (for tests and metrics). */
  get trackedAddresses(): number {
    return Math.max(this.ipCommands?.size ?? 0, this.ipPublishes?.size ?? 0);
  }

  /** Open connections of an address key. */
  connectionsOf(address: string): number {
    return this.open.get(address) ?? 0;
  }

  // ---- WebSocket -------------------------------------------------------------------------------

  connectionRate(req: IncomingMessage): ConnectionRate {
    return new ConnectionRate(addressKey(req.socket.remoteAddress), this.options, this.clock());
  }

  /**
   * One command of a WebSocket client: its own buckets first, then its address's. A refusal
   * starts or continues an episode; a long one (or one of more than MAX_REFUSALS refusals)
   * means "close".
   */
  admit(rate: ConnectionRate, publish: boolean): Verdict {
    const at = this.clock();
    let ok = (!rate.commands || rate.commands.take(at)) && (!publish || !rate.publishes || rate.publishes.take(at));
    if (ok) ok = (!this.ipCommands || this.ipCommands.get(rate.address, at).take(at)) && (!publish || !this.ipPublishes || this.ipPublishes.get(rate.address, at).take(at));
    if (ok) return ADMIT;
    if (at - rate.lastRefusal > EPISODE_QUIET_MS) {
      rate.episodeStart = at;
      rate.refused = 0;
    }
    rate.lastRefusal = at;
    rate.refused++;
    return rate.refused > MAX_REFUSALS || at - rate.episodeStart >= this.options.rateLimitGraceMs ? REFUSE_AND_CLOSE : REFUSE;
  }

  /** Before an upgrade: `limit_exceeded` when the address already has its maximum of connections. */
  checkUpgrade(req: IncomingMessage): HeraldError | undefined {
    const max = this.options.maxConnectionsPerIp;
    if (max > 0 && this.connectionsOf(addressKey(req.socket.remoteAddress)) >= max) return tooManyConnections(max);
    return undefined;
  }

  /** Counts an open connection of `address` (release it once when it ends). */
  acquire(address: string): void {
    if (this.options.maxConnectionsPerIp > 0) this.open.set(address, (this.open.get(address) ?? 0) + 1);
  }

  release(address: string): void {
    const n = this.open.get(address);
    if (n === undefined) return;
    if (n <= 1) this.open.delete(address);
    else this.open.set(address, n - 1);
  }

  // ---- HTTP transports -----------------------------------------------------------------------

  /**
   * One request to an HTTP transport (a publish when `publish`): `rate_limited` (with a
   * `Retry-After` header set on `res`) when its address is over its rate, else undefined.
   */
  request(req: IncomingMessage, res: ServerResponse, publish = false): HeraldError | undefined {
    if (!this.ipCommands && !(publish && this.ipPublishes)) return undefined;
    const at = this.clock();
    const address = addressKey(req.socket.remoteAddress);
    for (const buckets of publish ? [this.ipCommands, this.ipPublishes] : [this.ipCommands]) {
      if (!buckets) continue;
      const bucket = buckets.get(address, at);
      if (!bucket.take(at)) {
        if (!res.headersSent) res.setHeader('retry-after', String(Math.max(1, Math.ceil(bucket.waitMs(at) / 1000))));
        return new HeraldError('rate_limited', 'too many requests from this address; slow down');
      }
    }
    return undefined;
  }

  /**
   * A request that holds its connection open (an SSE stream, a waiting poll): counted against its
   * address until `res` closes. `limit_exceeded` when the address is at its maximum.
   */
  hold(req: IncomingMessage, res: ServerResponse): HeraldError | undefined {
    const max = this.options.maxConnectionsPerIp;
    if (max <= 0) return undefined;
    const address = addressKey(req.socket.remoteAddress);
    if (this.connectionsOf(address) >= max) return tooManyConnections(max);
    this.acquire(address);
    res.once('close', () => this.release(address));
    return undefined;
  }
}

function tooManyConnections(max: number): HeraldError {
  return new HeraldError('limit_exceeded', `at most ${max} connections per client address`);
}

/** Answers a refused WebSocket upgrade with the error's status and `{"error":{code,message}}`, then closes. */
export function refuseUpgrade(socket: Duplex, err: HeraldError): void {
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  const body = JSON.stringify({ error: { code: err.code, message: err.message } });
  const reason = err.status === 429 ? 'Too Many Requests' : 'Error';
  socket.once('finish', () => socket.destroy());
  socket.end(
    `HTTP/1.1 ${err.status} ${reason}\r\nConnection: close\r\nContent-Type: application/json; charset=utf-8\r\n` +
      `Content-Length: ${Buffer.byteLength(body)}\r\nRetry-After: 1\r\nX-Content-Type-Options: nosniff\r\n\r\n${body}`,
  );
}

/**
 * The key an address is counted under: IPv4 (also IPv4-mapped IPv6) as is, IPv6 by its /64
 * prefix (`2001:db8:1:2::/64`). Unknown → `unknown`.
 */
export function addressKey(address: string | undefined): string {
  if (!address) return 'unknown';
  if (!address.includes(':')) return address;
  const lower = address.toLowerCase();
  if (lower.startsWith('::ffff:') && lower.includes('.')) return lower.slice(7);
  const zone = lower.indexOf('%');
  const text = zone >= 0 ? lower.slice(0, zone) : lower;
  const halves = text.split('::');
  if (halves.length > 2) return text;
  const groups = (part: string): string[] => (part === '' ? [] : part.split(':').flatMap((g) => (g.includes('.') ? ['0', '0'] : [g])));
  const head = groups(halves[0]!);
  const tail = halves.length === 2 ? groups(halves[1]!) : [];
  const full = halves.length === 2 ? [...head, ...new Array<string>(Math.max(0, 8 - head.length - tail.length)).fill('0'), ...tail] : head;
  return full
    .slice(0, 4)
    .map((g) => g.replace(/^0+(?=.)/, ''))
    .join(':') + '::/64';
}
