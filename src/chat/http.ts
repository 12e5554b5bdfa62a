/**
 * The chat's HTTP, WebSocket and SSE endpoints (SPEC §7), as routes and upgrades the server mounts:
 *
 *   POST   /api/chat/rooms {name}        → 201 {name}            (409 taken, 400 bad name)
 *   GET    /api/chat/rooms               → {rooms:[{name, users}]}
 *   DELETE /api/chat/rooms/<name>        → 204                   (404 absent; members disconnected)
 *   POST   /api/chat/tokens {room, user} → {token, expires}      (404 room, 409 name taken)
 *   GET    /chat?token=…                 WebSocket: text frames in (or {"text":…}), JSON out
 *   GET    /chat/sse?token=…             SSE: `data: <JSON>` per message, the first {"type":"system","session":"…"}
 *   POST   /chat/send {session, text}    → {}                    (404 unknown session)
 *   POST   /chat/join {room, user}       → {token, expires}      demo only: creates the room if missing
 *
 * `/api/*` routes rely on the server's API key guard. `/chat/join` mints tokens for anyone, so it
 * exists only with `demo: true` (for `herald serve`'s demo page when no API key is configured).
 *
 * SSE: when the server ends a stream it first sends `event: close` / `data: {"code","reason"}` (the
 * WebSocket close code it would have used), so a page knows whether to come back. EventSource's own
 * reconnect cannot work (a token is single-use): a client joins again with a new token, and the
 * replay of the last messages on join shows what it missed.
 */
import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { HeraldError, safeJsonParse, toHeraldError, uuidv7 } from '../protocol/index.js';
import { silentLogger, type Logger } from '../core/index.js';
import { applyCors, readJsonObject, sendError, sendJson } from '../transports/http.js';
import { SocketBinding, checkNumber, definedOnly, type SocketConnection, type SocketHandler } from '../transports/websocket/binding.js';
import type { Conn } from './conn.js';
import { encodeMessage, roomProblem, userProblem, utf8Length } from './message.js';
import { CHAT_CLOSE } from './room.js';
import type { ChatServer } from './server.js';

export type ChatRouteHandler = (req: IncomingMessage, res: ServerResponse, url: URL) => void | Promise<void>;
export type ChatUpgradeHandler = (req: IncomingMessage, socket: Duplex, head: Buffer) => void;

export interface ChatEndpointOptions {
  /** Origins allowed for the WebSocket upgrade and CORS (SPEC §5). Unset: same-origin browsers and non-browser clients. */
  allowedOrigins: readonly string[] | undefined;
  /** Largest request body and WebSocket message, in bytes (over it: 413, close 1009). Default 65,536. */
  maxBodyBytes: number;
  /** Adds `POST /chat/join`, which creates rooms and mints tokens for anyone: for the demo page only. Default false. */
  demo: boolean;
  /** Seconds between WebSocket keep-alive pings (0 = off). Default 25. */
  pingInterval: number;
  /** Unsent bytes a WebSocket or SSE connection may hold before it is closed as a slow consumer. Default 1 MiB. */
  maxBufferedBytes: number;
  /** Milliseconds between SSE heartbeat comments. Default 15,000. */
  heartbeatMs: number;
  logger: Logger;
}

export const CHAT_ENDPOINT_DEFAULTS: Readonly<ChatEndpointOptions> = Object.freeze({
  allowedOrigins: undefined,
  maxBodyBytes: 65_536,
  demo: false,
  pingInterval: 25,
  maxBufferedBytes: 1_048_576,
  heartbeatMs: 15_000,
  logger: silentLogger,
});

/**
 * What the server mounts: the shape of the server's `RouteSet`, so `createChatEndpoints(…)` can be
 * returned as is from an `extraRoutes` factory.
 */
export interface ChatEndpoints {
  /** `'METHOD /path'` → handler; a path ending in `*` is a prefix, method `*` takes every method (CORS preflights). */
  readonly routes: Readonly<Record<string, ChatRouteHandler>>;
  /** Path → WebSocket upgrade handler. */
  readonly upgrades: Readonly<Record<string, ChatUpgradeHandler>>;
  /** Closes the chat server (members told it is shutting down, 1001) and then every chat connection. */
  close(): Promise<void>;
}

const SSE_HEADERS = {
  'content-type': 'text/event-stream; charset=utf-8',
  'cache-control': 'no-cache, no-transform',
  connection: 'keep-alive',
  'x-accel-buffering': 'no',
};
const HEARTBEAT = ': heartbeat\n\n';
/** A stream ended as a slow consumer is destroyed if it has not drained this long after. */
const END_GRACE_MS = 5_000;

export function createChatEndpoints(chat: ChatServer, options: Partial<ChatEndpointOptions> = {}): ChatEndpoints {
  const o = resolveEndpointOptions(options);
  return new Endpoints(chat, o).publicView();
}

function resolveEndpointOptions(options: Partial<ChatEndpointOptions>): Readonly<ChatEndpointOptions> {
  const o: ChatEndpointOptions = { ...CHAT_ENDPOINT_DEFAULTS, ...definedOnly(options) };
  checkNumber('chat endpoint option "maxBodyBytes"', o.maxBodyBytes, 1, true);
  checkNumber('chat endpoint option "pingInterval"', o.pingInterval, 0, false);
  checkNumber('chat endpoint option "maxBufferedBytes"', o.maxBufferedBytes, 1, true);
  checkNumber('chat endpoint option "heartbeatMs"', o.heartbeatMs, 1, true);
  if (typeof o.demo !== 'boolean') throw new TypeError('chat endpoint option "demo" must be a boolean');
  if (o.allowedOrigins !== undefined && (!Array.isArray(o.allowedOrigins) || !o.allowedOrigins.every((v) => typeof v === 'string'))) {
    throw new TypeError('chat endpoint option "allowedOrigins" must be an array of strings');
  }
  return Object.freeze(o);
}

/** A system message for a connection that has no room yet (a refused token). */
function bareSystem(text: string): string {
  return encodeMessage({ type: 'system', room: '', text, timestamp: Date.now(), id: uuidv7() });
}

// ---- WebSocket ---------------------------------------------------------------------------------

/** One WebSocket connection: the chat's Conn. */
class WsConn implements Conn {
  readonly socket: SocketConnection<WsConn>;
  onText: ((text: string) => void) | undefined;
  onClose: (() => void) | undefined;

  constructor(socket: SocketConnection<WsConn>) {
    this.socket = socket;
  }

  receive(onText: (text: string) => void, onClose: () => void): void {
    this.onText = onText;
    this.onClose = onClose;
  }

  send(message: string): void {
    this.socket.send(message);
  }

  close(code: number, reason: string): void {
    this.onClose = undefined;
    this.socket.close(code, reason);
  }
}

function wsHandler(endpoints: Endpoints): SocketHandler<WsConn> {
  return {
    open(socket, req) {
      const conn = new WsConn(socket);
      const token = new URL(req.url ?? '/', 'http://chat').searchParams.get('token') ?? '';
      endpoints.chat.connect(token, conn).catch((err: unknown) => {
        const e = toHeraldError(err);
        if (e.code !== 'unauthorized' && e.code !== 'unavailable') return; // the chat told the user and closed
        socket.send(bareSystem(e.message));
        socket.close(e.code === 'unauthorized' ? CHAT_CLOSE.unauthorized : CHAT_CLOSE.serverShutdown, e.code === 'unauthorized' ? 'unauthorized' : 'server shutting down');
      });
      return conn;
    },
    message(conn, data, isBinary) {
      if (!conn.onText) return;
      if (isBinary) {
        conn.socket.send(bareSystem('binary messages are not supported: send text'));
        return;
      }
      const text = textOfFrame(data.toString('utf8'));
      if (text === undefined) conn.socket.send(bareSystem('a JSON message needs a string "text"'));
      else conn.onText(text);
    },
    close(conn) {
      const onClose = conn.onClose;
      conn.onClose = undefined;
      onClose?.();
    },
  };
}

/** A frame is the text itself, or `{"text": …}`; undefined for a JSON object without a string text. */
function textOfFrame(frame: string): string | undefined {
  if (!frame.startsWith('{')) return frame;
  const parsed = safeJsonParse(frame);
  if (!parsed) return frame; // not JSON: someone typed a brace
  const value = parsed.value as { text?: unknown } | null;
  if (!value || typeof value !== 'object' || Array.isArray(value)) return frame;
  return typeof value.text === 'string' ? value.text : undefined;
}

// ---- SSE ---------------------------------------------------------------------------------------

/**
 * One SSE stream: the chat's Conn. Opened (headers and the session message written) on the first
 * message, so a refused token can still get a plain HTTP 401.
 */
class SseConn implements Conn {
  readonly session = randomBytes(18).toString('base64url');
  onText: ((text: string) => void) | undefined;
  private onClose: (() => void) | undefined;
  private opened = false;
  private ended = false;
  private readonly endpoints: Endpoints;
  readonly res: ServerResponse;

  constructor(endpoints: Endpoints, res: ServerResponse) {
    this.endpoints = endpoints;
    this.res = res;
  }

  get isOpen(): boolean {
    return this.opened;
  }

  receive(onText: (text: string) => void, onClose: () => void): void {
    this.onText = onText;
    this.onClose = onClose;
  }

  open(): void {
    if (this.opened || this.ended) return;
    this.opened = true;
    this.res.writeHead(200, SSE_HEADERS);
    this.res.write(`data: ${JSON.stringify({ type: 'system', session: this.session })}\n\n`);
    this.endpoints.streams.set(this.session, this);
  }

  send(message: string): void {
    if (this.ended) return;
    this.open();
    this.res.write(`data: ${message}\n\n`);
    if (this.res.writableLength > this.endpoints.options.maxBufferedBytes) this.slow();
  }

  heartbeat(): void {
    if (this.opened && !this.ended) this.res.write(HEARTBEAT);
  }

  /** The server ends the stream: a close event first, so the page knows why. */
  close(code: number, reason: string): void {
    if (this.ended) return;
    this.open();
    this.onClose = undefined;
    this.ended = true;
    this.endpoints.streams.delete(this.session);
    this.res.end(`event: close\ndata: ${JSON.stringify({ code, reason })}\n\n`);
  }

  /** The response is gone (the peer left, or we ended it). */
  closed(): void {
    this.ended = true;
    if (this.endpoints.streams.get(this.session) === this) this.endpoints.streams.delete(this.session);
    const onClose = this.onClose;
    this.onClose = undefined;
    this.onText = undefined;
    onClose?.();
  }

  private slow(): void {
    this.endpoints.options.logger.warn({ buffered: this.res.writableLength }, 'chat sse slow consumer: ending the stream');
    this.ended = true;
    this.endpoints.streams.delete(this.session);
    this.res.end();
    setTimeout(destroyResponse, END_GRACE_MS, this.res).unref();
  }
}

function destroyResponse(res: ServerResponse): void {
  if (!res.destroyed) res.destroy();
}

function heartbeatAll(streams: Map<string, SseConn>): void {
  for (const s of streams.values()) s.heartbeat();
}

// ---- the endpoints -------------------------------------------------------------------------------

class Endpoints {
  readonly chat: ChatServer;
  readonly options: Readonly<ChatEndpointOptions>;
  readonly streams = new Map<string, SseConn>();
  /** Every SSE response, open or still being answered, so close() can end them. */
  private readonly responses = new Set<SseConn>();
  private readonly binding: SocketBinding<WsConn>;
  private readonly heartbeatTimer: NodeJS.Timeout;
  private closing: Promise<void> | undefined;

  constructor(chat: ChatServer, options: Readonly<ChatEndpointOptions>) {
    this.chat = chat;
    this.options = options;
    this.binding = new SocketBinding(wsHandler(this), {
      allowedOrigins: options.allowedOrigins,
      maxMessageBytes: options.maxBodyBytes,
      pingInterval: options.pingInterval,
      maxBufferedBytes: options.maxBufferedBytes,
      logger: options.logger,
    });
    this.heartbeatTimer = setInterval(heartbeatAll, options.heartbeatMs, this.streams);
    this.heartbeatTimer.unref();
  }

  publicView(): ChatEndpoints {
    const routes: Record<string, ChatRouteHandler> = {
      'POST /api/chat/rooms': this.guarded((req, res) => this.createRoom(req, res)),
      'GET /api/chat/rooms': this.guarded((_req, res) => this.listRooms(res)),
      'DELETE /api/chat/rooms/*': this.guarded((_req, res, url) => this.deleteRoom(res, url)),
      'POST /api/chat/tokens': this.guarded((req, res) => this.token(req, res)),
      'GET /chat': (_req, res) => {
        res.setHeader('upgrade', 'websocket');
        sendError(res, new HeraldError('bad_request', 'this endpoint needs a WebSocket upgrade (or use /chat/sse)'));
      },
      '* /chat/sse': this.guarded((req, res, url) => this.sse(req, res, url)),
      '* /chat/send': this.guarded((req, res) => this.send(req, res)),
    };
    if (this.options.demo) routes['* /chat/join'] = this.guarded((req, res) => this.demoJoin(req, res));
    const upgrades: Record<string, ChatUpgradeHandler> = { '/chat': (req, socket, head) => this.binding.handleUpgrade(req, socket, head) };
    return Object.freeze({ routes: Object.freeze(routes), upgrades: Object.freeze(upgrades), close: () => this.close() });
  }

  /** Errors become their JSON answer here, so the endpoints behave the same under any router. */
  private guarded(handler: ChatRouteHandler): ChatRouteHandler {
    return async (req, res, url) => {
      try {
        await handler(req, res, url);
      } catch (err) {
        const e = toHeraldError(err);
        if (e.code === 'internal') this.options.logger.error({ err, url: req.url }, 'chat request failed');
        if (res.headersSent) res.destroy();
        else sendError(res, e);
      }
    };
  }

  // ---- /api/chat -----------------------------------------------------------------------------

  private async createRoom(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const body = await readJsonObject(req, this.options.maxBodyBytes);
    const room = this.chat.createRoom(body.name as string);
    sendJson(res, 201, { name: room.name });
  }

  private async listRooms(res: ServerResponse): Promise<void> {
    const rooms = await Promise.all(this.chat.rooms().map(async (room) => ({ name: room.name, users: await room.allUsers() })));
    sendJson(res, 200, { rooms });
  }

  private async deleteRoom(res: ServerResponse, url: URL): Promise<void> {
    let name: string;
    try {
      name = decodeURIComponent(url.pathname.slice('/api/chat/rooms/'.length));
    } catch {
      throw new HeraldError('bad_request', 'the room name is not valid percent-encoding');
    }
    const problem = roomProblem(name);
    if (problem) throw new HeraldError('bad_request', problem);
    if (!(await this.chat.closeRoom(name))) throw new HeraldError('not_found', `no room named "${name}"`);
    res.writeHead(204, { 'cache-control': 'no-store' });
    res.end();
  }

  private async token(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const body = await readJsonObject(req, this.options.maxBodyBytes);
    const { room, user } = checkRoomAndUser(body);
    sendJson(res, 200, await this.chat.requestToken(room, user));
  }

  // ---- /chat ---------------------------------------------------------------------------------

  private async demoJoin(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (!applyCors(req, res, this.options.allowedOrigins)) return;
    if (req.method !== 'POST') return methodNotAllowed(res, 'POST, OPTIONS');
    const body = await readJsonObject(req, this.options.maxBodyBytes);
    const { room, user } = checkRoomAndUser(body);
    if (!this.chat.room(room)) this.chat.createRoom(room);
    sendJson(res, 200, await this.chat.requestToken(room, user));
  }

  private async sse(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    if (!applyCors(req, res, this.options.allowedOrigins)) return;
    if (req.method !== 'GET') return methodNotAllowed(res, 'GET, OPTIONS');
    if (this.closing) throw new HeraldError('unavailable', 'server shutting down');
    const conn = new SseConn(this, res);
    this.responses.add(conn);
    res.once('close', () => {
      this.responses.delete(conn);
      conn.closed();
    });
    res.on('error', ignore);
    try {
      await this.chat.connect(url.searchParams.get('token') ?? '', conn);
    } catch (err) {
      if (!conn.isOpen && !res.headersSent) sendError(res, err);
      return;
    }
    conn.open();
  }

  private async send(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (!applyCors(req, res, this.options.allowedOrigins)) return;
    if (req.method !== 'POST') return methodNotAllowed(res, 'POST, OPTIONS');
    const body = await readJsonObject(req, this.options.maxBodyBytes);
    if (typeof body.session !== 'string') throw new HeraldError('bad_request', '"session" must be a string (from the SSE stream\'s first message)');
    if (typeof body.text !== 'string') throw new HeraldError('bad_request', '"text" must be a string');
    const max = this.chat.options.maxTextBytes;
    if (utf8Length(body.text) > max) throw new HeraldError('too_large', `"text" is over ${max} bytes`);
    const conn = this.streams.get(body.session);
    if (!conn?.onText) throw new HeraldError('not_found', 'no such chat session (the stream ended: join again)');
    conn.onText(body.text);
    sendJson(res, 200, {});
  }

  close(): Promise<void> {
    return (this.closing ??= (async () => {
      clearInterval(this.heartbeatTimer);
      await this.chat.close();
      for (const conn of [...this.responses]) conn.close(CHAT_CLOSE.serverShutdown, 'server shutting down');
      await this.binding.close(CHAT_CLOSE.serverShutdown, 'server shutting down');
    })());
  }
}

function checkRoomAndUser(body: Record<string, unknown>): { room: string; user: string } {
  const problem = roomProblem(body.room) ?? userProblem(body.user);
  if (problem) throw new HeraldError('bad_request', problem);
  return { room: body.room as string, user: body.user as string };
}

function methodNotAllowed(res: ServerResponse, allow: string): void {
  sendJson(res, 405, { error: { code: 'bad_request', message: 'method not allowed here' } }, { allow });
}

function ignore(): void {}
