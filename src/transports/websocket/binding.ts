/**
 * A reusable WebSocket binding on `ws` (to become `herald/sockets`, in the spirit of
 * go-macaron/sockets): the upgrade with its origin check, a size limit on incoming messages,
 * keep-alive, a bounded send path with a slow-consumer policy, and write batching. What the
 * messages mean is the handler's business.
 *
 * Policies, all on by default:
 * - **Origin**: a refused upgrade gets a plain HTTP 403 (SPEC §5), nothing else is read.
 * - **Size**: a message over `maxMessageBytes` closes the connection with 1009 (ws's `maxPayload`).
 * - **Keep-alive**: one interval timer for all connections. Every `pingInterval` seconds a
 *   connection is pinged; one that leaves a ping unanswered for `pongWait` seconds (default: the
 *   ping interval) is terminated. The timer ticks at a step that divides both periods when they
 *   have a reasonable common divisor (25 s and 20 s tick every 5 s), else at an eighth of the
 *   shorter one, so a dead peer goes at most one step after `pongWait`. A connection the
 *   application has paused (`pause()`: it is not reading, pongs included) is never counted dead.
 * - **Bounded sends**: a send is written only while the connection's unsent bytes (`bufferedAmount`:
 *   the socket's write buffer plus anything ws holds) stay within `maxBufferedBytes`. A send that
 *   would go over it is dropped and the connection is closed as a slow consumer (`slowConsumerCode`),
 *   the close frame queued after what is already buffered. A single frame may exceed the bound
 *   only when nothing is buffered, so unsent bytes per connection stay under
 *   max(maxBufferedBytes, one frame) plus control frames.
 * - **Close grace**: a connection the server closes is destroyed if the close handshake has not
 *   completed `closeGraceMs` later (a paused peer never reads its close frame).
 * - **Batching**: `cork()` holds a connection's writes until the end of the current event-loop
 *   turn (setImmediate, after the I/O phase); one shared flush writes every corked connection. So
 *   the events of every publish handled in the same turn (several HTTP publishes, a Redis read that
 *   carried several events) leave each socket in one write. A corked connection that reaches the
 *   bound is flushed first, so corking never makes a consumer "slow". The first frame of a turn is
 *   only held (a reference, no copy); the socket itself is corked when a second one comes. So the
 *   common case at modest rates, one event per connection per turn, costs one plain socket write
 *   at the flush, as a hand-written broadcast does, without the stream's cork buffering.
 */
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocket, WebSocketServer, type RawData } from 'ws';
import { silentLogger, type Logger } from '../../core/logger.js';
import { originAllowed } from '../origin.js';
import { closeReason, framePayload, textFrame } from './frame.js';

export interface SocketBindingOptions {
  /** Origins allowed to upgrade ('*' = any). Unset: an Origin header must be same-origin; none is allowed. */
  allowedOrigins?: readonly string[] | undefined;
  /** Largest incoming message, in bytes; over it the connection is closed with 1009. Default 65,536. */
  maxMessageBytes: number;
  /** Seconds between keep-alive pings. 0 = off. Default 25. */
  pingInterval: number;
  /** Seconds a ping may stay unanswered before the peer is terminated. Default: `pingInterval`. */
  pongWait?: number | undefined;
  /** Unsent bytes a connection may hold before it is closed as a slow consumer. Default 1 MiB. */
  maxBufferedBytes: number;
  /** Close code for a slow consumer. Default 4008. */
  slowConsumerCode: number;
  /** Close reason for a slow consumer. Default "slow consumer". */
  slowConsumerReason: string;
  /** Milliseconds after a server-side close before the socket is destroyed. Default 5,000. */
  closeGraceMs: number;
  /**
   * Write coalescing: milliseconds a connection holds its first write so that those that follow
   * leave in the same socket write. 0 (default) = the writes of one event-loop turn. At most 1,000.
   */
  coalesceMs: number;
  logger: Logger;
}

export const SOCKET_BINDING_DEFAULTS: Readonly<SocketBindingOptions> = Object.freeze({
  maxMessageBytes: 65_536,
  pingInterval: 25,
  maxBufferedBytes: 1_048_576,
  slowConsumerCode: 4008,
  slowConsumerReason: 'slow consumer',
  closeGraceMs: 5_000,
  coalesceMs: 0,
  logger: silentLogger,
});

/**
 * What the application does with connections. `open` returns the per-connection context the
 * other callbacks receive. Callbacks run synchronously from socket events: they must not throw
 * (a throw is logged and the connection closed with 1011).
 */
export interface SocketHandler<T> {
  open(conn: SocketConnection<T>, req: IncomingMessage): T;
  /** A complete message; `data` is the raw bytes (valid UTF-8 when `isBinary` is false). */
  message(context: T, data: Buffer, isBinary: boolean): void;
  /** The connection is gone (called once). */
  close(context: T, code: number, reason: Buffer): void;
  /** The connection overflowed `maxBufferedBytes` and is being closed. */
  slowConsumer?(context: T, bufferedAmount: number): void;
  /**
   * Something went wrong on the connection: ws's errors (`code` WS_ERR_UNSUPPORTED_MESSAGE_LENGTH
   * for a message over the limit, then close 1009; protocol errors, then 1002/1007), or
   * `ERR_PONG_TIMEOUT` just before a peer that stopped answering pings is terminated.
   */
  error?(context: T, err: Error & { code?: string }): void;
}

const kConnection = Symbol('herald.connection');
type TaggedWebSocket = WebSocket & { [kConnection]?: SocketConnection<unknown> };

const OPEN = WebSocket.OPEN;
const TEXT = Object.freeze({ binary: false });
const BINARY = Object.freeze({ binary: true });

/** `SocketConnection.corked` */
const NOT_CORKED = 0;
const HOLDING = 1;
const SOCKET_CORKED = 2;
/** A write callback (`send`'s optional last argument): called once the bytes are handed to the kernel, or with an error. */
export type WriteCallback = (err?: Error | null) => void;

/** One WebSocket connection of a binding. Its state is kept to a few fields on purpose. */
export class SocketConnection<T = unknown> {
  /** The handler's per-connection context (set right after `open` returns). */
  context!: T;
  /** @internal Keep-alive tick of the last ping sent (or of the open). */
  pingTick = 0;
  /** @internal Keep-alive tick of the oldest unanswered ping; -1 when none. */
  unansweredTick = -1;
  /** @internal NOT_CORKED, HOLDING (corked: at most one frame held in `held`) or SOCKET_CORKED (the socket's own cork holds the writes). */
  corked = NOT_CORKED;
  /** The one frame held while HOLDING. */
  private held: Buffer | undefined;
  /** @internal */
  readonly binding: SocketBinding<T>;
  private readonly ws: WebSocket;
  /** The net socket, when frames built by `textFrame` can be written to it directly. */
  private readonly raw: Duplex | undefined;
  private closeTimer: NodeJS.Timeout | undefined;

  constructor(binding: SocketBinding<T>, ws: WebSocket) {
    this.binding = binding;
    this.ws = ws;
    // Writing our own frames next to ws's is safe only when ws never holds frames back, i.e. no
    // extension (permessage-deflate is off in the binding) and no Blob sends (the binding makes none).
    const socket = (ws as unknown as { _socket?: Duplex })._socket;
    this.raw = ws.extensions === '' && socket && typeof socket.write === 'function' ? socket : undefined;
  }

  /** Open: sends are accepted (not closing or closed). */
  get open(): boolean {
    return this.ws.readyState === OPEN;
  }

  /** Bytes accepted but not yet handed to the kernel. */
  get bufferedAmount(): number {
    const held = this.held;
    return held === undefined ? this.ws.bufferedAmount : this.ws.bufferedAmount + held.length;
  }

  /** Reading is paused (`pause()`). */
  get paused(): boolean {
    return this.ws.isPaused;
  }

  /**
   * Sends a text message. False when it was not sent (closing, or the connection overflowed);
   * `callback`, if given, is then never called.
   */
  send(text: string, callback?: WriteCallback): boolean {
    if (this.ws.readyState !== OPEN) return false;
    if (this.raw) return this.sendFrame(textFrame(text), callback);
    if (!this.fits(Buffer.byteLength(text))) return this.overflow();
    this.ws.send(text, TEXT, callback);
    return true;
  }

  /**
   * Sends a frame built once by `textFrame` (the same Buffer can go to many connections).
   * False when it was not sent.
   */
  sendFrame(frame: Buffer, callback?: WriteCallback): boolean {
    if (this.ws.readyState !== OPEN) return false;
    if (!this.fits(frame.length)) return this.overflow();
    const raw = this.raw;
    if (raw === undefined) this.ws.send(framePayload(frame), TEXT, callback);
    else if (this.corked === HOLDING && this.held === undefined && callback === undefined) this.held = frame;
    else {
      if (this.corked === HOLDING) this.corkSocket();
      raw.write(frame, callback);
    }
    return true;
  }

  /** Sends a binary message (ws frames it; the bytes are not copied). False when it was not sent. */
  sendBinary(data: Buffer | Uint8Array, callback?: WriteCallback): boolean {
    if (this.ws.readyState !== OPEN) return false;
    if (!this.fits(data.byteLength)) return this.overflow();
    if (this.corked === HOLDING) this.corkSocket();
    this.ws.send(data, BINARY, callback);
    return true;
  }

  /** Holds this connection's writes until the end of this event-loop turn (one shared flush for all). */
  cork(): void {
    if (this.corked !== NOT_CORKED || !this.raw || this.ws.readyState !== OPEN) return;
    this.corked = HOLDING;
    this.binding.corkList.add(this as SocketConnection<unknown>);
  }

  /** @internal Writes what `cork` held. */
  uncork(): void {
    const corked = this.corked;
    if (corked === NOT_CORKED) return;
    this.corked = NOT_CORKED;
    if (corked === SOCKET_CORKED) {
      this.raw!.uncork();
      return;
    }
    const held = this.held;
    if (held === undefined) return;
    this.held = undefined;
    // Closing (the peer's close frame arrived and ws answered it): nothing may follow the close
    // frame. The client resumes from the last event it got.
    if (this.ws.readyState === OPEN) this.raw!.write(held);
  }

  /** From HOLDING to the socket's own cork, the held frame first: what is written next queues behind it. */
  private corkSocket(): void {
    this.corked = SOCKET_CORKED;
    const raw = this.raw!;
    raw.cork();
    const held = this.held;
    if (held === undefined) return;
    this.held = undefined;
    raw.write(held);
  }

  /** Closes with `code` after what is already queued; destroyed if not closed `closeGraceMs` later. */
  close(code: number, reason: string): void {
    if (this.ws.readyState !== OPEN) return;
    // Read again if paused: the close handshake needs the peer's close frame.
    if (this.ws.isPaused) this.ws.resume();
    // What is held goes before the close frame, in the same write.
    if (this.corked === HOLDING) this.corkSocket();
    this.ws.close(code, closeReason(reason));
    this.uncork();
    this.closeTimer = setTimeout(destroyConnection, this.binding.options.closeGraceMs, this);
    this.closeTimer.unref();
  }

  /** Destroys the socket now, without a close handshake. */
  terminate(): void {
    this.ws.terminate();
  }

  /** Stops reading from the peer (TCP backpressure applies); `resume` starts again. */
  pause(): void {
    this.ws.pause();
  }

  resume(): void {
    this.ws.resume();
  }

  /** @internal */
  ping(): void {
    if (this.ws.readyState !== OPEN) return;
    if (this.corked === HOLDING) this.corkSocket();
    this.ws.ping();
  }

  /** @internal The socket is gone. */
  released(): void {
    if (this.closeTimer) clearTimeout(this.closeTimer);
    this.closeTimer = undefined;
    this.corked = NOT_CORKED;
    this.held = undefined;
  }

  private fits(bytes: number): boolean {
    const max = this.binding.options.maxBufferedBytes;
    let buffered = this.bufferedAmount;
    if (buffered === 0 || buffered + bytes <= max) return true;
    if (this.corked === NOT_CORKED) return false;
    // Held by our own cork, not by the peer: hand it to the kernel and look again.
    this.uncork();
    buffered = this.ws.bufferedAmount;
    return buffered === 0 || buffered + bytes <= max;
  }

  private overflow(): false {
    const buffered = this.ws.bufferedAmount;
    const { options, handler } = this.binding;
    if (!handler.slowConsumer) {
      options.logger.warn({ bufferedAmount: buffered, maxBufferedBytes: options.maxBufferedBytes }, 'websocket slow consumer: closing');
    } else {
      try {
        handler.slowConsumer(this.context, buffered);
      } catch (err) {
        options.logger.error({ err }, 'websocket slowConsumer handler threw');
      }
    }
    this.close(options.slowConsumerCode, options.slowConsumerReason);
    return false;
  }
}

// ---- one shared end-of-tick flush for every corked connection ---------------------------------

/** Corked connections and the one timer that uncorks them all (per delay; shared at delay 0). */
export class CorkList {
  private readonly corked: SocketConnection<unknown>[] = [];
  private scheduled = false;
  readonly delayMs: number;

  constructor(delayMs: number) {
    this.delayMs = delayMs;
  }

  add(conn: SocketConnection<unknown>): void {
    this.corked.push(conn);
    if (this.scheduled) return;
    this.scheduled = true;
    if (this.delayMs > 0) setTimeout(flushCorked, this.delayMs, this).unref();
    else setImmediate(flushCorked, this);
  }

  /** @internal */
  flush(): void {
    this.scheduled = false;
    const corked = this.corked;
    // Connections corked while flushing (a write callback sending more) are flushed in this loop too.
    for (let i = 0; i < corked.length; i++) corked[i]!.uncork();
    corked.length = 0;
  }
}

function flushCorked(list: CorkList): void {
  list.flush();
}

/** Every binding without a coalescing delay shares this list: one flush per event-loop turn. */
const endOfTurn = new CorkList(0);

function destroyConnection(conn: SocketConnection<unknown>): void {
  conn.binding.options.logger.debug({}, 'websocket close handshake timed out: destroying the socket');
  conn.terminate();
}

// ---- ws listeners: module-level, shared by every connection ----------------------------------

function connectionOf(ws: WebSocket): SocketConnection<unknown> | undefined {
  return (ws as TaggedWebSocket)[kConnection];
}

function toBuffer(data: RawData): Buffer {
  if (Buffer.isBuffer(data)) return data;
  return Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data);
}

function onWsMessage(this: WebSocket, data: RawData, isBinary: boolean): void {
  const conn = connectionOf(this);
  if (!conn || this.readyState !== OPEN) return;
  try {
    conn.binding.handler.message(conn.context, toBuffer(data), isBinary);
  } catch (err) {
    conn.binding.options.logger.error({ err }, 'websocket message handler threw');
    conn.close(1011, 'internal error');
  }
}

function onWsPong(this: WebSocket): void {
  const conn = connectionOf(this);
  if (conn) conn.unansweredTick = -1;
}

function onWsError(this: WebSocket, err: Error): void {
  // ws has already started closing (1009 for too large, 1002/1007 for protocol errors).
  const conn = connectionOf(this);
  if (!conn) return;
  conn.binding.options.logger.debug({ err: { message: err.message, code: (err as { code?: unknown }).code } }, 'websocket error');
  conn.binding.reportError(conn, err);
}

function onWsClose(this: WebSocket, code: number, reason: Buffer): void {
  const conn = connectionOf(this);
  if (conn) conn.binding.release(conn, code, reason);
}

function refuseUpgrade(socket: Duplex, status: number, text: string, message: string): void {
  socket.on('error', ignore);
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  socket.once('finish', destroySelf);
  socket.end(
    `HTTP/1.1 ${status} ${text}\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\n` +
      `Content-Length: ${Buffer.byteLength(message)}\r\n\r\n${message}`,
  );
}

function destroySelf(this: Duplex): void {
  this.destroy();
}

function ignore(): void {}

// ---- the binding ------------------------------------------------------------------------------

export class SocketBinding<T> {
  readonly options: Readonly<SocketBindingOptions>;
  /** @internal Where corked connections wait for their flush (coalesceMs). */
  readonly corkList: CorkList;
  /** @internal */
  readonly handler: SocketHandler<T>;
  private readonly wss: WebSocketServer;
  private readonly live = new Set<SocketConnection<T>>();
  private pingTimer: NodeJS.Timeout | undefined;
  /** @internal Keep-alive: the timer's step (ms), and the ping interval and pong wait in steps. */
  readonly keepAlive: { readonly stepMs: number; readonly pingSteps: number; readonly pongSteps: number } | undefined;
  /** @internal Keep-alive steps so far. */
  tick = 0;
  private closing = false;
  private drained: (() => void)[] = [];
  private readonly accept: (ws: WebSocket, req: IncomingMessage) => void;

  constructor(handler: SocketHandler<T>, options: Partial<SocketBindingOptions> = {}) {
    this.options = resolveBindingOptions(options);
    this.corkList = this.options.coalesceMs > 0 ? new CorkList(this.options.coalesceMs) : endOfTurn;
    this.handler = handler;
    this.wss = new WebSocketServer({
      noServer: true,
      maxPayload: this.options.maxMessageBytes,
      perMessageDeflate: false,
      // We keep our own set; ws's tracking adds a closure per connection.
      clientTracking: false,
    });
    this.accept = (ws, req) => this.opened(ws, req);
    this.keepAlive = keepAliveSteps(this.options.pingInterval, this.options.pongWait ?? this.options.pingInterval);
  }

  /** Open connections. */
  get size(): number {
    return this.live.size;
  }

  connections(): IterableIterator<SocketConnection<T>> {
    return this.live.values();
  }

  /** Handles an HTTP upgrade (the caller has matched the path). */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    if (this.closing) {
      refuseUpgrade(socket, 503, 'Service Unavailable', 'server shutting down');
      return;
    }
    if (!originAllowed(req, this.options.allowedOrigins)) {
      this.options.logger.info({ origin: req.headers.origin }, 'websocket upgrade refused: origin not allowed');
      refuseUpgrade(socket, 403, 'Forbidden', 'origin not allowed');
      return;
    }
    this.wss.handleUpgrade(req, socket, head, this.accept);
  }

  /**
   * Stops accepting, closes every connection with `code` (after what is queued) and resolves once
   * all are gone (at most `closeGraceMs` later).
   */
  close(code = 1001, reason = 'server shutting down'): Promise<void> {
    this.closing = true;
    this.stopPing();
    this.wss.close();
    for (const conn of this.live) conn.close(code, reason);
    if (this.live.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.drained.push(resolve));
  }

  private opened(ws: WebSocket, req: IncomingMessage): void {
    const conn = new SocketConnection<T>(this, ws);
    (ws as TaggedWebSocket)[kConnection] = conn as SocketConnection<unknown>;
    ws.on('error', onWsError);
    try {
      conn.context = this.handler.open(conn, req);
    } catch (err) {
      this.options.logger.error({ err }, 'websocket open handler threw');
      (ws as TaggedWebSocket)[kConnection] = undefined;
      ws.terminate();
      return;
    }
    ws.on('message', onWsMessage);
    ws.on('pong', onWsPong);
    ws.on('close', onWsClose);
    conn.pingTick = this.tick;
    this.live.add(conn);
    if (this.closing) conn.close(1001, 'server shutting down');
    else this.startPing();
  }

  /** @internal */
  reportError(conn: SocketConnection<T>, err: Error): void {
    if (!this.handler.error) return;
    try {
      this.handler.error(conn.context, err);
    } catch (e) {
      this.options.logger.error({ err: e }, 'websocket error handler threw');
    }
  }

  /** @internal The socket closed. */
  release(conn: SocketConnection<T>, code: number, reason: Buffer): void {
    if (!this.live.delete(conn)) return;
    conn.released();
    try {
      this.handler.close(conn.context, code, reason);
    } catch (err) {
      this.options.logger.error({ err }, 'websocket close handler threw');
    }
    if (this.live.size === 0) {
      this.stopPing();
      const waiting = this.drained;
      this.drained = [];
      for (const resolve of waiting) resolve();
    }
  }

  private startPing(): void {
    if (this.pingTimer || !this.keepAlive) return;
    this.pingTimer = setInterval(sweep, this.keepAlive.stepMs, this);
    this.pingTimer.unref();
  }

  private stopPing(): void {
    if (this.pingTimer) clearInterval(this.pingTimer);
    this.pingTimer = undefined;
  }
}

/** The keep-alive tick, for all connections of a binding. */
function sweep<T>(binding: SocketBinding<T>): void {
  const { pingSteps, pongSteps } = binding.keepAlive!;
  const tick = ++binding.tick;
  for (const conn of binding.connections()) {
    // Paused by the application: pongs wait unread in the socket; the peer is not to blame.
    const paused = conn.paused;
    if (paused) conn.unansweredTick = -1;
    else if (conn.unansweredTick >= 0 && tick - conn.unansweredTick >= pongSteps) {
      binding.options.logger.debug({}, 'websocket peer did not answer ping: terminating');
      binding.reportError(conn, Object.assign(new Error('the peer did not answer a ping in time'), { code: 'ERR_PONG_TIMEOUT' }));
      conn.terminate();
      continue;
    }
    if (tick - conn.pingTick >= pingSteps) {
      conn.pingTick = tick;
      if (conn.unansweredTick < 0 && !paused) conn.unansweredTick = tick;
      conn.ping();
    }
  }
}

function gcd(a: number, b: number): number {
  while (b > 0) [a, b] = [b, a % b];
  return a;
}

/** The keep-alive timer's step and both periods in steps (see the module comment); undefined when off. */
export function keepAliveSteps(pingInterval: number, pongWait: number): { stepMs: number; pingSteps: number; pongSteps: number } | undefined {
  if (pingInterval <= 0) return undefined;
  const pingMs = Math.max(1, Math.round(pingInterval * 1000));
  const pongMs = Math.max(1, Math.round(pongWait * 1000));
  const stepMs = Math.max(gcd(pingMs, pongMs), Math.ceil(Math.min(pingMs, pongMs) / 8));
  return { stepMs, pingSteps: Math.max(1, Math.round(pingMs / stepMs)), pongSteps: Math.max(1, Math.ceil(pongMs / stepMs)) };
}

/** Defaults filled in, every key checked (the error names it), then frozen. */
export function resolveBindingOptions(options: Partial<SocketBindingOptions> = {}): Readonly<SocketBindingOptions> {
  const o: SocketBindingOptions = { ...SOCKET_BINDING_DEFAULTS, ...definedOnly(options) };
  checkNumber('socket option "maxMessageBytes"', o.maxMessageBytes, 1, true);
  checkNumber('socket option "pingInterval"', o.pingInterval, 0, false);
  if (o.pongWait !== undefined) checkNumber('socket option "pongWait"', o.pongWait, 0.001, false);
  checkNumber('socket option "maxBufferedBytes"', o.maxBufferedBytes, 1, true);
  checkNumber('socket option "closeGraceMs"', o.closeGraceMs, 0, true);
  checkNumber('socket option "coalesceMs"', o.coalesceMs, 0, true);
  if (o.coalesceMs > 1000) throw new TypeError('socket option "coalesceMs" must be at most 1000 (milliseconds)');
  if (!Number.isInteger(o.slowConsumerCode) || o.slowConsumerCode < 1000 || o.slowConsumerCode > 4999) {
    throw new RangeError(`socket option "slowConsumerCode" must be a close code (1000..4999), got ${String(o.slowConsumerCode)}`);
  }
  if (typeof o.slowConsumerReason !== 'string') throw new TypeError('socket option "slowConsumerReason" must be a string');
  if (o.allowedOrigins !== undefined) {
    if (!Array.isArray(o.allowedOrigins) || !o.allowedOrigins.every((v) => typeof v === 'string')) {
      throw new TypeError('socket option "allowedOrigins" must be an array of strings');
    }
    o.allowedOrigins = Object.freeze([...o.allowedOrigins]);
  }
  if (!o.logger || typeof o.logger.warn !== 'function') throw new TypeError('socket option "logger" must be a Logger');
  return Object.freeze(o);
}

/** Throws a RangeError naming the option (`label`) unless `value` is a finite number >= `min` (an integer if asked). */
export function checkNumber(label: string, value: unknown, min: number, integer: boolean): void {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < min || (integer && !Number.isInteger(value))) {
    throw new RangeError(`${label} must be ${integer ? 'an integer' : 'a number'} >= ${min}, got ${JSON.stringify(value)}`);
  }
}

export function definedOnly<O extends object>(options: O): Partial<O> {
  const out: Partial<O> = {};
  for (const [key, value] of Object.entries(options)) if (value !== undefined) (out as Record<string, unknown>)[key] = value;
  return out;
}
