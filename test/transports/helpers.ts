/**
 * Test harness for the HTTP transports: a hub on the memory engine, the four transports mounted on
 * a real node:http server (127.0.0.1, port 0) by a tiny router, and small HTTP/SSE clients.
 */
import { createServer, request, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Hub, type HubOptions } from '../../src/core/index.js';
import { MemoryEngine } from '../../src/engines/memory.js';
import { SseTransport, type SseOptions } from '../../src/transports/sse.js';
import { LongPollTransport, type LongPollOptions } from '../../src/transports/longpoll.js';
import { GolongpollTransport, type GolongpollOptions } from '../../src/transports/compat/golongpoll.js';
import { GpollTransport, type GpollOptions } from '../../src/transports/compat/gpoll.js';

export interface HarnessOptions {
  hub?: Partial<Omit<HubOptions, 'engine'>>;
  engine?: MemoryEngine;
  sse?: Partial<SseOptions>;
  poll?: Partial<LongPollOptions>;
  golongpoll?: Partial<GolongpollOptions>;
  gpoll?: Partial<GpollOptions>;
  /** Record every socket write of SSE responses. */
  spyWrites?: boolean;
}

export interface Harness {
  hub: Hub;
  sse: SseTransport;
  poll: LongPollTransport;
  golongpoll: GolongpollTransport;
  gpoll: GpollTransport;
  server: Server;
  base: string;
  port: number;
  /** Server-side SSE responses, in arrival order. */
  sseResponses: ServerResponse[];
  /** Writes to the sockets of SSE responses (with spyWrites). */
  sseWrites: string[];
  /** Errors that escaped a handler (must stay empty). */
  errors: unknown[];
  close(): Promise<void>;
}

export async function startHarness(options: HarnessOptions = {}): Promise<Harness> {
  const hub = new Hub({ engine: options.engine ?? new MemoryEngine(), namespaces: { '': { historySize: 2000 } }, ...options.hub });
  await hub.start();
  const sse = new SseTransport(hub, options.sse);
  const poll = new LongPollTransport(hub, options.poll);
  const golongpoll = new GolongpollTransport(hub, options.golongpoll);
  const gpoll = new GpollTransport(hub, options.gpoll);
  const sseResponses: ServerResponse[] = [];
  const sseWrites: string[] = [];
  const errors: unknown[] = [];
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    let done: void | Promise<void> = undefined;
    if (url.pathname === '/sse') {
      sseResponses.push(res);
      if (options.spyWrites) spy(res, sseWrites);
      done = sse.handle(req, res, url);
    } else if (url.pathname === '/poll') done = poll.handle(req, res, url);
    else if (url.pathname.startsWith('/golongpoll/')) done = golongpoll.handle(req, res, url);
    else if (url.pathname === '/gpoll') done = gpoll.handle(req, res, url);
    else {
      res.writeHead(404);
      res.end();
    }
    Promise.resolve(done).catch((err: unknown) => {
      errors.push(err);
      if (!res.headersSent) res.writeHead(500);
      res.end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    hub,
    sse,
    poll,
    golongpoll,
    gpoll,
    server,
    port,
    base: `http://127.0.0.1:${port}`,
    sseResponses,
    sseWrites,
    errors,
    async close() {
      await Promise.all([sse.close(), poll.close(), golongpoll.close(), gpoll.close()]);
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await hub.close();
    },
  };
}

const kSpied = Symbol('spied');

/**
 * Records every write to the response's socket: what the peer receives, write by write (a chunk
 * written through `res.write` shows as its pieces; one written straight to the socket as one).
 */
function spy(res: ServerResponse, into: string[]): void {
  const socket = res.socket as (NonNullable<ServerResponse['socket']> & { [kSpied]?: true }) | null;
  if (!socket || socket[kSpied]) return;
  socket[kSpied] = true;
  const write = socket.write.bind(socket) as (...args: unknown[]) => boolean;
  (socket as unknown as { write: (...args: unknown[]) => boolean }).write = (...args: unknown[]) => {
    into.push(String(args[0]));
    return write(...args);
  };
}

/** Resolves once `check()` is true; fails after `timeoutMs`. Polls every few milliseconds. */
export async function waitFor(check: () => boolean, timeoutMs = 5000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

export interface HttpAnswer {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

/** One HTTP request on its own connection. */
export function http(base: string, path: string, init: { method?: string; headers?: Record<string, string>; body?: string; signal?: AbortSignal } = {}): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const url = new URL(path, base);
    const req = request(
      { host: url.hostname, port: url.port, path: url.pathname + url.search, method: init.method ?? 'GET', headers: init.headers, agent: false, signal: init.signal },
      (res) => {
        res.setEncoding('utf8');
        let body = '';
        res.on('data', (chunk: string) => (body += chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(init.body);
  });
}

export async function getJson<T = Record<string, unknown>>(base: string, path: string, headers?: Record<string, string>): Promise<{ status: number; headers: IncomingHttpHeaders; json: T }> {
  const answer = await http(base, path, { headers });
  return { status: answer.status, headers: answer.headers, json: JSON.parse(answer.body) as T };
}

export interface SseMessage {
  id: string | undefined;
  event: string;
  data: string;
}

/** A minimal EventSource-like reader (one connection, no automatic reconnect). */
export class SseClient {
  status = 0;
  headers: IncomingHttpHeaders = {};
  readonly messages: SseMessage[] = [];
  readonly comments: string[] = [];
  raw = '';
  retry: number | undefined;
  /** The last id of a dispatched message (what EventSource would send as Last-Event-ID). */
  lastEventId = '';
  ended = false;
  /** Called synchronously for each dispatched message. */
  onMessage: ((m: SseMessage) => void) | undefined;
  readonly done: Promise<void>;
  response: IncomingMessage | undefined;
  private readonly abortController = new AbortController();
  private rest = '';
  private id: string | undefined;
  private event = '';
  private data: string[] = [];
  private idSeen = false;

  constructor(base: string, path: string, headers: Record<string, string> = {}) {
    this.done = new Promise((resolve) => {
      const url = new URL(path, base);
      const req = request({ host: url.hostname, port: url.port, path: url.pathname + url.search, headers, agent: false, signal: this.abortController.signal }, (res) => {
        this.response = res;
        this.status = res.statusCode ?? 0;
        this.headers = res.headers;
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => this.feed(chunk));
        res.on('end', () => {
          this.ended = true;
          resolve();
        });
        res.on('error', () => {
          this.ended = true;
          resolve();
        });
        res.on('close', () => {
          this.ended = true;
          resolve();
        });
      });
      req.on('error', () => {
        this.ended = true;
        resolve();
      });
      req.end();
    });
  }

  /** Messages of one event type. */
  of(event: string): SseMessage[] {
    return this.messages.filter((m) => m.event === event);
  }

  abort(): void {
    this.abortController.abort();
  }

  private feed(chunk: string): void {
    this.raw += chunk;
    const text = this.rest + chunk;
    const lines = text.split(/\r\n|\r|\n/);
    this.rest = lines.pop()!;
    for (const line of lines) this.line(line);
  }

  private line(line: string): void {
    if (line === '') {
      if (this.idSeen) this.lastEventId = this.id ?? '';
      if (this.data.length > 0) {
        const m: SseMessage = { id: this.idSeen ? this.id : undefined, event: this.event || 'message', data: this.data.join('\n') };
        this.messages.push(m);
        this.onMessage?.(m);
      }
      this.id = undefined;
      this.idSeen = false;
      this.event = '';
      this.data = [];
      return;
    }
    if (line.startsWith(':')) {
      this.comments.push(line.slice(1).trim());
      return;
    }
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'id') {
      this.id = value;
      this.idSeen = true;
    } else if (field === 'event') this.event = value;
    else if (field === 'data') this.data.push(value);
    else if (field === 'retry') this.retry = Number(value);
  }
}

export function range(from: number, to: number): number[] {
  const out: number[] = [];
  for (let i = from; i <= to; i++) out.push(i);
  return out;
}
