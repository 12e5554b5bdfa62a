/**
 * Helpers for the security suites: tokens (good, expired, forged), a server with every transport
 * on one shared TransportLimits (the way startServer is to mount them), and small HTTP readers.
 */
import { createServer, request, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { SignJWT } from 'jose';
import { Hub, type HubHooks, type NamespaceOptions } from '../../src/core/index.js';
import { MemoryEngine } from '../../src/engines/memory.js';
import { HeraldError } from '../../src/protocol/index.js';
import { sendError } from '../../src/transports/http.js';
import { TransportLimits, type LimitOptions } from '../../src/transports/limits.js';
import { SseTransport } from '../../src/transports/sse.js';
import { LongPollTransport } from '../../src/transports/longpoll.js';
import { GolongpollTransport } from '../../src/transports/compat/golongpoll.js';
import { GpollTransport } from '../../src/transports/compat/gpoll.js';
import { WebSocketTransport } from '../../src/transports/websocket/index.js';

export const SECRET = 'herald-test-secret-0123456789-abcdefghij';
export const OTHER_SECRET = 'another-secret-of-at-least-32-bytes-000';

export interface Claims {
  sub?: string;
  subscribe?: string[];
  publish?: string[];
  presence?: string[];
  [claim: string]: unknown;
}

/** An HS256 token; `exp` = now + `ttl` seconds (negative: already expired), unless `exp` is given. */
export async function sign(claims: Claims, o: { ttl?: number; exp?: number | null; secret?: string } = {}): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  const jwt = new SignJWT({ ...claims }).setProtectedHeader({ alg: 'HS256', typ: 'JWT' }).setIssuedAt(now);
  if (o.exp !== null) jwt.setExpirationTime(o.exp ?? now + (o.ttl ?? 600));
  return jwt.sign(new TextEncoder().encode(o.secret ?? SECRET));
}

function b64(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url');
}

/** An unsigned token (`alg: none`), the classic forgery. */
export function unsigned(claims: Claims, exp = Math.floor(Date.now() / 1000) + 600): string {
  return `${b64({ alg: 'none', typ: 'JWT' })}.${b64({ ...claims, exp })}.`;
}

/** A valid token whose payload was rewritten (the signature no longer matches). */
export function tampered(token: string, claims: Claims): string {
  const [header, payload, signature] = token.split('.') as [string, string, string];
  const original = JSON.parse(Buffer.from(payload, 'base64url').toString()) as Record<string, unknown>;
  return `${header}.${b64({ ...original, ...claims })}.${signature}`;
}

/** Alice may read `news` and her own channels, write only her own, see presence of `news`. */
export const ALICE: Claims = { sub: 'alice', subscribe: ['news', 'user:alice:*'], publish: ['user:alice:*'], presence: ['news'] };

/** The bad tokens every transport must refuse with `unauthorized`. */
export async function badTokens(): Promise<Record<string, string>> {
  const good = await sign(ALICE);
  return {
    expired: await sign(ALICE, { ttl: -30 }),
    'alg none': unsigned({ ...ALICE, subscribe: ['*'], publish: ['*'] }),
    'wrong key': await sign({ ...ALICE, subscribe: ['*'] }, { secret: OTHER_SECRET }),
    tampered: tampered(good, { subscribe: ['*'], publish: ['*'] }),
    'no exp': await sign(ALICE, { exp: null }),
    garbage: 'not.a.token',
  };
}

// ---- a server with every transport and shared limits ------------------------------------------

export interface SecureServerOptions {
  hooks?: HubHooks;
  namespaces?: Record<string, Partial<NamespaceOptions>>;
  /** Default: anonymous access off (as with JWT configured). */
  namespaceBase?: Partial<NamespaceOptions>;
  limits?: Partial<LimitOptions>;
  /** The limits' clock (ms); default performance.now. */
  clock?: () => number;
  /** The gpoll broadcast channel. Default `broadcast`. */
  gpollChannel?: string;
}

export interface SecureServer {
  url: string;
  hub: Hub;
  http: Server;
  limits: TransportLimits;
  websocket: WebSocketTransport;
  /** Errors that escaped a handler (must stay empty). */
  escaped: unknown[];
  close(): Promise<void>;
}

export async function startSecure(o: SecureServerOptions = {}): Promise<SecureServer> {
  const hubOptions: ConstructorParameters<typeof Hub>[0] = {
    engine: new MemoryEngine(),
    namespaces: { '': { historySize: 1000 }, ...o.namespaces },
    namespaceBase: o.namespaceBase ?? { anonymousSubscribe: false, anonymousPublish: false },
  };
  if (o.hooks) hubOptions.hooks = o.hooks;
  const hub = new Hub(hubOptions);
  await hub.start();
  const limits = new TransportLimits(o.limits, o.clock);
  const websocket = new WebSocketTransport(hub, { limits, pingInterval: 0 });
  const sse = new SseTransport(hub, { limits });
  const poll = new LongPollTransport(hub, { limits });
  const golongpoll = new GolongpollTransport(hub, { limits });
  const gpoll = new GpollTransport(hub, { limits, channel: o.gpollChannel ?? 'broadcast' });
  const escaped: unknown[] = [];
  const http = createServer((req, res) => {
    let url: URL;
    try {
      url = new URL(req.url ?? '/', 'http://herald');
    } catch {
      return sendError(res, new HeraldError('bad_request', 'malformed request target'));
    }
    let done: void | Promise<void> = undefined;
    if (url.pathname === '/sse') done = sse.handle(req, res, url);
    else if (url.pathname === '/poll') done = poll.handle(req, res, url);
    else if (url.pathname.startsWith('/golongpoll/')) done = golongpoll.handle(req, res, url);
    else if (url.pathname === '/gpoll') done = gpoll.handle(req, res, url);
    else if (url.pathname === '/healthz') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"status":"ok"}');
    } else sendError(res, new HeraldError('not_found', 'no such endpoint'));
    Promise.resolve(done).catch((err: unknown) => {
      escaped.push(err);
      if (!res.headersSent) res.writeHead(500);
      res.end();
    });
  });
  http.on('upgrade', (req, socket, head) => {
    socket.on('error', () => {});
    websocket.handleUpgrade(req, socket, head);
  });
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  const port = (http.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    hub,
    http,
    limits,
    websocket,
    escaped,
    async close() {
      await Promise.all([websocket.close(), sse.close(), poll.close(), golongpoll.close(), gpoll.close()]);
      await hub.close();
      http.closeAllConnections();
      await new Promise<void>((resolve) => http.close(() => resolve()));
    },
  };
}

// ---- HTTP --------------------------------------------------------------------------------------

export interface Reply {
  status: number;
  headers: IncomingHttpHeaders;
  text: string;
  /** True when the body was cut short by `maxMs` (a stream or a waiting poll). */
  cut: boolean;
}

/**
 * GET (or `method`) `path`; resolves with what arrived once the response ends, or after `maxMs`
 * (then the request is destroyed: a stream or a poll that is still waiting).
 */
export function fetchRaw(base: string, path: string, o: { method?: string; headers?: Record<string, string>; body?: string | Buffer; maxMs?: number; until?: (text: string) => boolean } = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string | number> = { connection: 'close', ...o.headers };
    if (o.body !== undefined) headers['content-length'] = Buffer.byteLength(o.body);
    const req = request(`${base}${path}`, { method: o.method ?? 'GET', headers }, (res) => {
      let text = '';
      let settled = false;
      const finish = (cut: boolean): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text, cut });
        if (cut) req.destroy();
      };
      const timer = setTimeout(() => finish(true), o.maxMs ?? 5_000);
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        text += chunk;
        if (o.until?.(text)) finish(true);
      });
      res.on('end', () => finish(false));
      res.on('error', () => finish(true));
      res.on('close', () => finish(true));
    });
    req.on('error', reject);
    req.end(o.body);
  });
}

/** The JSON body of a finished reply. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export function json(reply: Reply): any {
  return JSON.parse(reply.text);
}

/** The messages of an SSE body: `{event, id, data}` each. */
export function sseMessages(text: string): { event: string; id: string | undefined; data: string }[] {
  const out: { event: string; id: string | undefined; data: string }[] = [];
  for (const block of text.split('\n\n')) {
    let event = 'message';
    let id: string | undefined;
    const data: string[] = [];
    for (const line of block.split('\n')) {
      if (line.startsWith('event: ')) event = line.slice(7);
      else if (line.startsWith('id: ')) id = line.slice(4);
      else if (line.startsWith('data: ')) data.push(line.slice(6));
    }
    if (data.length > 0) out.push({ event, id, data: data.join('\n') });
  }
  return out;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A monotonic clock the test moves forward by hand: real time plus what `advance` added. */
export class ManualClock {
  private skew = 0;
  readonly now = (): number => performance.now() + this.skew;
  advance(ms: number): void {
    this.skew += ms;
  }
}

/** Waits until `cond()` holds, checking every few milliseconds; fails after `ms`. */
export async function until(cond: () => boolean, what: string, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}
