/**
 * Chat test harness: a hub on the memory engine, a ChatServer, its endpoints mounted on a real
 * node:http server (127.0.0.1, port 0) by the server's own Router, the demo page's files served
 * with the server's static handler (and its CSP); and small clients: an in-memory Conn, a
 * WebSocket client and an SSE client.
 */
import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import WebSocket from 'ws';
import { Hub, type HubOptions } from '../../src/core/index.js';
import { MemoryEngine } from '../../src/engines/memory.js';
import { HeraldError, toHeraldError } from '../../src/protocol/index.js';
import { sendError } from '../../src/transports/http.js';
import { Router } from '../../src/server/router.js';
import { staticFile } from '../../src/server/static.js';
import { ChatServer, createChatEndpoints, type ChatEndpointOptions, type ChatEndpoints, type ChatMessage, type ChatOptions, type Conn } from '../../src/chat/index.js';

export interface ChatHarness {
  hub: Hub;
  chat: ChatServer;
  endpoints: ChatEndpoints;
  server: Server;
  base: string;
  /** Errors that escaped a handler (must stay empty). */
  errors: unknown[];
  close(): Promise<void>;
}

export interface ChatHarnessOptions {
  chat?: Partial<ChatOptions>;
  endpoints?: Partial<ChatEndpointOptions>;
  hub?: Partial<Omit<HubOptions, 'engine'>>;
  /** Serve public/chat.html at `/` with chat.js and chat.css. */
  page?: boolean;
}

/** Starts a hub + chat + endpoints on a real HTTP server. */
export async function startChat(options: ChatHarnessOptions = {}): Promise<ChatHarness> {
  const hub = new Hub({ engine: new MemoryEngine(), ...options.hub });
  await hub.start();
  const chat = new ChatServer(hub, options.chat);
  const endpoints = createChatEndpoints(chat, options.endpoints);
  const routes = new Router();
  for (const [route, handler] of Object.entries(endpoints.routes)) routes.set(route, handler);
  if (options.page) {
    routes
      .set('GET /', staticFile('public/chat.html', 'text/html; charset=utf-8', 'the chat page is missing'))
      .set('GET /chat.js', staticFile('public/chat.js', 'text/javascript; charset=utf-8', 'chat.js is missing'))
      .set('GET /chat.css', staticFile('public/chat.css', 'text/css; charset=utf-8', 'chat.css is missing'));
  }
  const upgrades = new Map(Object.entries(endpoints.upgrades));
  const errors: unknown[] = [];
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    void (async () => {
      try {
        const url = new URL(`http://chat${req.url ?? '/'}`);
        const match = routes.match(req.method ?? 'GET', url.pathname);
        if (match.kind === 'none') throw new HeraldError('not_found', 'no such endpoint');
        if (match.kind === 'method') {
          res.writeHead(405, { allow: match.allowed.join(', ') });
          res.end();
          return;
        }
        await match.handler(req, res, url);
      } catch (err) {
        if (toHeraldError(err).code === 'internal') errors.push(err);
        if (res.headersSent) res.destroy();
        else sendError(res, err);
      }
    })();
  });
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const handler = upgrades.get(new URL(`http://chat${req.url ?? '/'}`).pathname);
    if (handler) handler(req, socket, head);
    else socket.destroy();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  let closed = false;
  return {
    hub,
    chat,
    endpoints,
    server,
    base,
    errors,
    async close() {
      if (closed) return;
      closed = true;
      await endpoints.close();
      await hub.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** Resolves when `check` returns a value other than undefined/false, polling every 5 ms. */
export async function until<T>(check: () => T | undefined | false, what: string, ms = 3_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = check();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** Like `until`, for an asynchronous check. */
export async function eventually(check: () => Promise<boolean>, what: string, ms = 5_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Collects what a user receives, whatever carries it. */
export class Inbox {
  readonly messages: ChatMessage[] = [];
  /** The parsed message, or fails on what is not a chat message. */
  push(text: string): void {
    this.messages.push(JSON.parse(text) as ChatMessage);
  }
  texts(type?: ChatMessage['type']): string[] {
    return this.messages.filter((m) => type === undefined || m.type === type).map((m) => m.text);
  }
  has(text: string, type?: ChatMessage['type']): boolean {
    return this.texts(type).includes(text);
  }
  wait(text: string, type?: ChatMessage['type'], ms?: number): Promise<ChatMessage> {
    return until(() => this.messages.find((m) => m.text === text && (type === undefined || m.type === type)), `message ${JSON.stringify(text)}`, ms);
  }
}

/** An in-memory Conn: the test plays the user. */
export class MemoryConn implements Conn {
  readonly inbox = new Inbox();
  closedWith: { code: number; reason: string } | undefined;
  private onText: ((text: string) => void) | undefined;
  private onClose: (() => void) | undefined;
  received = 0;

  receive(onText: (text: string) => void, onClose: () => void): void {
    this.received++;
    this.onText = onText;
    this.onClose = onClose;
  }
  send(message: string): void {
    if (this.closedWith) throw new Error('send after close');
    this.inbox.push(message);
  }
  close(code: number, reason: string): void {
    if (this.closedWith) throw new Error('closed twice');
    this.closedWith = { code, reason };
  }
  /** The user types. */
  say(text: string): void {
    this.onText?.(text);
  }
  /** The connection drops on the user's side. */
  drop(): void {
    const onClose = this.onClose;
    this.onClose = undefined;
    this.onText = undefined;
    onClose?.();
  }
  get messages(): ChatMessage[] {
    return this.inbox.messages;
  }
}

/** A WebSocket chat client. */
export class WsUser {
  readonly inbox = new Inbox();
  readonly ws: WebSocket;
  readonly opened: Promise<void>;
  readonly closed: Promise<{ code: number; reason: string }>;

  constructor(base: string, token: string, headers: Record<string, string> = {}) {
    this.ws = new WebSocket(`${base.replace(/^http/, 'ws')}/chat?token=${encodeURIComponent(token)}`, { headers });
    this.ws.on('message', (data: Buffer) => this.inbox.push(data.toString('utf8')));
    this.opened = new Promise((resolve, reject) => {
      this.ws.once('open', () => resolve());
      this.ws.once('unexpected-response', (_req, res) => reject(new Error(`upgrade refused: ${res.statusCode}`)));
      this.ws.once('error', reject);
    });
    this.closed = new Promise((resolve) => this.ws.once('close', (code: number, reason: Buffer) => resolve({ code, reason: reason.toString() })));
    this.opened.catch(() => {});
  }
  send(text: string): void {
    this.ws.send(text);
  }
  close(): void {
    this.ws.close();
  }
}

/** An SSE chat client on node:http: every `data:` message parsed, and the `close` event. */
export class SseUser {
  readonly inbox = new Inbox();
  /** Raw first messages, including the session one. */
  readonly frames: Record<string, unknown>[] = [];
  session: string | undefined;
  status = 0;
  body = '';
  closeEvent: { code: number; reason: string } | undefined;
  readonly ended: Promise<void>;
  readonly started: Promise<number>;
  private res: IncomingMessage | undefined;

  constructor(base: string, token: string, headers: Record<string, string> = {}) {
    let buf = '';
    let resolveStarted!: (status: number) => void;
    this.started = new Promise((r) => (resolveStarted = r));
    this.ended = new Promise((resolve) => {
      const req = request(`${base}/chat/sse?token=${encodeURIComponent(token)}`, { headers: { accept: 'text/event-stream', ...headers } }, (res) => {
        this.res = res;
        this.status = res.statusCode ?? 0;
        resolveStarted(this.status);
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          if (this.status !== 200) {
            this.body += chunk;
            return;
          }
          buf += chunk;
          let end: number;
          while ((end = buf.indexOf('\n\n')) >= 0) {
            const block = buf.slice(0, end);
            buf = buf.slice(end + 2);
            this.block(block);
          }
        });
        res.on('end', () => resolve());
        res.on('close', () => resolve());
      });
      req.on('error', () => resolve());
      req.end();
    });
  }

  private block(block: string): void {
    let event = 'message';
    let data = '';
    for (const line of block.split('\n')) {
      if (line.startsWith('event: ')) event = line.slice(7);
      else if (line.startsWith('data: ')) data += line.slice(6);
    }
    if (data === '') return;
    const value = JSON.parse(data) as Record<string, unknown>;
    if (event === 'close') {
      this.closeEvent = value as { code: number; reason: string };
      return;
    }
    this.frames.push(value);
    if (typeof value.session === 'string') this.session = value.session;
    else this.inbox.push(data);
  }

  /** POST /chat/send with this stream's session. */
  async send(base: string, text: string): Promise<Response> {
    return fetch(`${base}/chat/send`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ session: this.session, text }) });
  }

  /** Ends the stream from the client's side. */
  abort(): void {
    this.res?.destroy();
  }
}

/** JSON POST with fetch. */
export async function post(base: string, path: string, body: unknown, headers: Record<string, string> = {}): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await fetch(base + path, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: typeof body === 'string' ? body : JSON.stringify(body) });
  const text = await res.text();
  return { status: res.status, json: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
}

/** A token from POST /api/chat/tokens (the room must exist). */
export async function tokenFor(base: string, room: string, user: string): Promise<string> {
  const { status, json } = await post(base, '/api/chat/tokens', { room, user });
  if (status !== 200) throw new Error(`token: ${status} ${JSON.stringify(json)}`);
  return json.token as string;
}
