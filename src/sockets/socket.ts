/**
 * One connection of a `herald/sockets` route, as the handler sees it: incoming messages as an
 * async iterable, a `send` that waits when the peer does not keep up, close and error signals,
 * and the upgrade request.
 *
 * Flow control, both ways bounded:
 * - **In**: received messages queue for the handler. At `receiveBuffer` queued messages the
 *   socket stops reading (TCP pushes back on the peer); it reads again once the handler has
 *   taken half of them. The queue can exceed the bound only by the messages already read from
 *   the same TCP chunk.
 * - **Out**: `send` writes at once. When more than `sendBuffer` bytes are then unsent, its promise
 *   resolves only once the message has been handed to the kernel, so an awaiting sender goes at
 *   the peer's pace; if no progress is made for `writeTimeout`, the connection is closed 4008
 *   and waiting sends reject. Sends that are not awaited are bounded by `maxBufferedBytes`
 *   (closed 4008 as a slow consumer).
 */
import type { IncomingMessage } from 'node:http';
import type { SocketConnection, WriteCallback } from '../transports/websocket/binding.js';
import { SOCKET_CLOSE, SocketError } from './errors.js';
import type { ResolvedSocketOptions } from './options.js';

export interface CloseInfo {
  /**
   * The close code the peer sent back (1006 when none arrived: the peer vanished, or herald
   * destroyed the socket). When herald closed the connection because of an error, the code it
   * sent is `error.closeCode` (a peer too busy to answer the close frame shows up here as 1006).
   */
  readonly code: number;
  readonly reason: string;
  /** What ended the connection, when herald knows (a timeout, a message too large, …). */
  readonly error: SocketError | undefined;
}

/** @internal What a socket needs from its route (kept as an interface: no import cycle). */
export interface RouteCore<In> {
  readonly options: ResolvedSocketOptions;
  /** Encodes for `send`; throws ERR_INVALID_SEND. */
  encode(message: unknown): string | Buffer;
  /** Turns a received frame into a message; undefined when refused (the peer was already told). */
  decode(socket: Socket<In, unknown>, data: Buffer, isBinary: boolean): In | undefined | Promise<In | undefined>;
  report(socket: Socket<In, unknown>, error: SocketError): void;
}

interface Waiter {
  resolve: () => void;
  reject: (err: Error) => void;
}

interface Received {
  data: Buffer;
  isBinary: boolean;
}

const RESOLVED = Promise.resolve();
const DONE: IteratorReturnResult<undefined> = Object.freeze({ done: true, value: undefined });

export class Socket<In = unknown, Out = unknown> implements AsyncIterable<In> {
  /** The HTTP upgrade request (headers, URL, the authenticated user an app wrapper put there). */
  readonly request: IncomingMessage;
  /** Resolves once the connection is gone (never rejects). */
  readonly closed: Promise<CloseInfo>;
  /** Aborted when the connection is gone (its `reason` is the CloseInfo): pass it to fetch, timers… */
  readonly signal: AbortSignal;
  /** The incoming messages (the socket itself is iterable too). Ends when the connection closes. */
  readonly messages: AsyncIterable<In>;

  private readonly conn: SocketConnection<Socket<In, Out>>;
  private readonly route: RouteCore<In>;
  private readonly queue: Received[] = [];
  private readonly waiters = new Set<Waiter>();
  private readonly iterator: AsyncIterableIterator<In>;
  private readonly abort = new AbortController();
  private resolveClosed!: (info: CloseInfo) => void;
  private wake: (() => void) | undefined;
  private pulling: Promise<unknown> = RESOLVED;
  private writeTimer: NodeJS.Timeout | undefined;
  private readPaused = false;
  /** The connection is gone. */
  private ended = false;
  /** The handler stopped iterating (`break`/`return`): what arrives later is dropped. */
  private stopped = false;
  private firstError: SocketError | undefined;

  /** @internal */
  constructor(route: RouteCore<In>, conn: SocketConnection<Socket<In, Out>>, request: IncomingMessage) {
    this.route = route;
    this.conn = conn;
    this.request = request;
    this.signal = this.abort.signal;
    this.closed = new Promise((resolve) => (this.resolveClosed = resolve));
    this.iterator = {
      next: () => {
        const p = this.pulling.then(() => this.pull());
        this.pulling = p.catch(() => undefined);
        return p;
      },
      return: () => {
        this.stopReading();
        return Promise.resolve(DONE);
      },
      [Symbol.asyncIterator]() {
        return this;
      },
    };
    this.messages = { [Symbol.asyncIterator]: () => this.iterator };
  }

  [Symbol.asyncIterator](): AsyncIterator<In> {
    return this.iterator;
  }

  /** Sends are accepted (not closing, not closed). */
  get open(): boolean {
    return this.conn.open;
  }

  /** Bytes accepted but not yet handed to the kernel. */
  get bufferedAmount(): number {
    return this.conn.bufferedAmount;
  }

  /** Received messages waiting for the handler. */
  get queued(): number {
    return this.queue.length;
  }

  /** The first error the connection had, if any (also in `closed`'s CloseInfo). */
  get error(): SocketError | undefined {
    return this.firstError;
  }

  /**
   * Sends one message. Resolves at once while the unsent bytes stay within `sendBuffer`, else once
   * this message has been handed to the kernel. Rejects with `ERR_SOCKET_CLOSED` when the
   * connection is (or gets) closed first, `ERR_WRITE_TIMEOUT` when the peer made no progress for
   * `writeTimeout`, `ERR_INVALID_SEND` for a value the route cannot encode.
   */
  send(message: Out): Promise<void> {
    if (!this.conn.open) return Promise.reject(this.closedError());
    let payload: string | Buffer;
    try {
      payload = this.route.encode(message);
    } catch (err) {
      return Promise.reject(err as Error);
    }
    const size = typeof payload === 'string' ? Buffer.byteLength(payload) : payload.length;
    if (this.conn.bufferedAmount + size <= this.route.options.sendBuffer) {
      return this.write(payload) ? RESOLVED : Promise.reject(this.closedError());
    }
    return new Promise<void>((resolve, reject) => {
      const waiter: Waiter = { resolve, reject };
      this.waiters.add(waiter);
      if (!this.write(payload, (err) => this.written(waiter, err))) {
        this.waiters.delete(waiter);
        reject(this.closedError());
        return;
      }
      if (!this.writeTimer) this.armWriteTimer();
    });
  }

  /**
   * Sends without waiting: false when the connection is closing or closed, or when this message
   * took the unsent bytes over `maxBufferedBytes` (the connection is then closed 4008). Throws
   * `ERR_INVALID_SEND` for a value the route cannot encode.
   */
  trySend(message: Out): boolean {
    if (!this.conn.open) return false;
    return this.write(this.route.encode(message));
  }

  /** Closes after what is queued (default 1000). The socket is destroyed if the peer has not closed `closeGrace` later. */
  close(code: number = SOCKET_CLOSE.normal, reason = ''): void {
    this.conn.close(code, reason);
  }

  /** Destroys the socket now, without a close handshake. */
  terminate(): void {
    this.conn.terminate();
  }

  // ---- internals (called by the route) ---------------------------------------------------------

  /** @internal A frame arrived. */
  received(data: Buffer, isBinary: boolean): void {
    if (this.stopped || this.ended) return;
    this.queue.push({ data, isBinary });
    if (this.queue.length >= this.route.options.receiveBuffer && !this.readPaused) {
      this.readPaused = true;
      this.conn.pause();
    }
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }

  /** @internal The connection is gone. */
  released(code: number, reason: Buffer): void {
    if (this.ended) return;
    this.ended = true;
    if (this.writeTimer) clearTimeout(this.writeTimer);
    this.writeTimer = undefined;
    this.rejectWaiters(this.closedError());
    const info: CloseInfo = Object.freeze({ code, reason: reason.toString('utf8'), error: this.firstError });
    this.resolveClosed(info);
    this.abort.abort(info);
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }

  /** @internal Records an error (the first one is kept) and reports it. */
  failed(error: SocketError): void {
    this.firstError ??= error;
    this.route.report(this as Socket<In, unknown>, error);
  }

  /** @internal Answers the peer without waiting (error replies). */
  reply(payload: string): void {
    this.conn.send(payload);
  }

  // ---- private -----------------------------------------------------------------------------------

  private write(payload: string | Buffer, callback?: WriteCallback): boolean {
    return typeof payload === 'string' ? this.conn.send(payload, callback) : this.conn.sendBinary(payload, callback);
  }

  private async pull(): Promise<IteratorResult<In>> {
    for (;;) {
      if (this.stopped) return DONE;
      const item = this.queue.shift();
      if (item) {
        if (this.readPaused && this.queue.length <= this.route.options.receiveBuffer >> 1) {
          this.readPaused = false;
          this.conn.resume();
        }
        const value = await this.route.decode(this as Socket<In, unknown>, item.data, item.isBinary);
        if (value !== undefined) return { done: false, value };
        continue;
      }
      if (this.ended) {
        this.stopped = true;
        return DONE;
      }
      await new Promise<void>((resolve) => (this.wake = resolve));
    }
  }

  private stopReading(): void {
    this.stopped = true;
    this.queue.length = 0;
    if (this.readPaused) {
      this.readPaused = false;
      this.conn.resume();
    }
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }

  private written(waiter: Waiter, err: Error | null | undefined): void {
    if (!this.waiters.delete(waiter)) return;
    if (err) waiter.reject(this.closedError(err));
    else waiter.resolve();
    // Progress: the write timeout measures the time without any.
    if (this.writeTimer) clearTimeout(this.writeTimer);
    this.writeTimer = undefined;
    if (this.waiters.size > 0) this.armWriteTimer();
  }

  private armWriteTimer(): void {
    this.writeTimer = setTimeout(writeTimedOut, this.route.options.writeTimeout, this);
    this.writeTimer.unref();
  }

  /** @internal */
  writeTimedOut(): void {
    this.writeTimer = undefined;
    if (this.waiters.size === 0) return;
    const error = new SocketError('ERR_WRITE_TIMEOUT', `the peer read nothing for ${this.route.options.writeTimeout} ms`, { closeCode: SOCKET_CLOSE.slowConsumer });
    this.failed(error);
    this.rejectWaiters(error);
    this.conn.close(SOCKET_CLOSE.slowConsumer, 'write timeout');
  }

  private rejectWaiters(err: Error): void {
    if (this.waiters.size === 0) return;
    const waiting = [...this.waiters];
    this.waiters.clear();
    for (const w of waiting) w.reject(err);
  }

  private closedError(cause?: unknown): SocketError {
    return new SocketError('ERR_SOCKET_CLOSED', 'the connection is closed', { cause: cause ?? this.firstError });
  }
}

function writeTimedOut(socket: Socket<unknown, unknown>): void {
  socket.writeTimedOut();
}
