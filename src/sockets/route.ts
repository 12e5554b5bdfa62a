/**
 * A WebSocket route (`herald/sockets`, after go-macaron/sockets): a handler per connection that
 * reads messages as an async iterable and writes with a backpressure-aware `send`, on herald's
 * socket binding (origin check → 403, size limit → 1009, one shared keep-alive timer, bounded
 * sends). Three modes: JSON (optionally checked by a schema), text and binary.
 *
 * The connection lives as long as its handler: when the handler returns, the connection is
 * closed 1000 (if still open); when it throws, 1011 (a send that rejected because the connection
 * closed is a normal end, not an error).
 */
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { SocketBinding, type SocketConnection, type SocketHandler } from '../transports/websocket/binding.js';
import { textFrame } from '../transports/websocket/frame.js';
import { SOCKET_CLOSE, SocketError } from './errors.js';
import { resolveSocketOptions, type ResolvedSocketOptions, type SocketRouteOptions } from './options.js';
import { applySchema, assertSchema, type Schema } from './schema.js';
import { Socket, type RouteCore } from './socket.js';
import type { UpgradeTarget } from './upgrade.js';

export type SocketMode = 'json' | 'text' | 'binary';

/** The route's handler: runs once per connection; the connection ends when it settles. */
export type SocketRouteHandler<In, Out> = (socket: Socket<In, Out>) => void | Promise<void>;

export interface JsonSocketOptions<In> extends SocketRouteOptions {
  /** Checks (and may transform) every parsed message; a refused one is answered and never reaches the handler. */
  schema?: Schema<In> | undefined;
}

/** What binary routes accept in `send`. */
export type BinaryData = Buffer | Uint8Array | ArrayBuffer;

export class SocketRoute<In = unknown, Out = unknown> implements UpgradeTarget {
  readonly mode: SocketMode;
  readonly options: ResolvedSocketOptions;
  private readonly binding: SocketBinding<Socket<In, Out>>;
  private readonly core: RouteCore<In>;

  /** Prefer `jsonSocket`, `textSocket` and `binarySocket`. */
  constructor(mode: SocketMode, options: JsonSocketOptions<In>, handler: SocketRouteHandler<In, Out>) {
    if (mode !== 'json' && mode !== 'text' && mode !== 'binary') throw new TypeError(`sockets mode must be json, text or binary, got ${JSON.stringify(mode)}`);
    if (typeof handler !== 'function') throw new TypeError('a socket route needs a handler function');
    const schema = options.schema;
    if (mode === 'json') assertSchema(schema);
    else if (schema !== undefined) throw new TypeError('sockets option "schema" is for JSON routes only');
    this.mode = mode;
    this.options = resolveSocketOptions(options);
    const o = this.options;
    this.core = {
      options: o,
      encode: mode === 'json' ? encodeJson : mode === 'text' ? encodeText : encodeBinary,
      // In is string for text routes and Buffer for binary ones (the constructors' signatures say so).
      decode: (mode === 'json' ? jsonDecoder(schema) : mode === 'text' ? decodeText : decodeBinary) as RouteCore<In>['decode'],
      report: (socket, error) => this.report(socket, error),
    };
    const core = this.core;
    const bindingHandler: SocketHandler<Socket<In, Out>> = {
      open: (conn: SocketConnection<Socket<In, Out>>, req: IncomingMessage) => {
        const socket = new Socket<In, Out>(core, conn, req);
        // After `open` returns, so the binding has registered the connection.
        queueMicrotask(() => void run(socket, handler, o));
        return socket;
      },
      message: (socket, data, isBinary) => socket.received(data, isBinary),
      close: (socket, code, reason) => socket.released(code, reason),
      slowConsumer: (socket, buffered) =>
        socket.failed(
          new SocketError('ERR_SLOW_CONSUMER', `${buffered} bytes unsent, over maxBufferedBytes (${o.maxBufferedBytes})`, { closeCode: SOCKET_CLOSE.slowConsumer }),
        ),
      error: (socket, err) => socket.failed(fromWsError(err)),
    };
    this.binding = new SocketBinding(bindingHandler, {
      allowedOrigins: o.allowedOrigins,
      maxMessageBytes: o.maxMessageSize,
      pingInterval: o.pingPeriod / 1000,
      pongWait: o.pongWait / 1000,
      maxBufferedBytes: o.maxBufferedBytes,
      slowConsumerCode: SOCKET_CLOSE.slowConsumer,
      slowConsumerReason: 'slow consumer',
      closeGraceMs: Math.round(o.closeGrace),
      logger: o.logger,
    });
  }

  /** Open connections. */
  get size(): number {
    return this.binding.size;
  }

  /** The open connections (for broadcasting, counting, closing some). */
  *sockets(): IterableIterator<Socket<In, Out>> {
    for (const conn of this.binding.connections()) yield conn.context;
  }

  /**
   * Takes an HTTP upgrade: false (nothing done) when the route has a `path` and the request is
   * for another one. A refused origin is answered 403; anything else becomes a connection.
   */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): boolean {
    const path = this.options.path;
    if (path !== undefined && pathOf(req.url) !== path) return false;
    this.binding.handleUpgrade(req, socket, head);
    return true;
  }

  /**
   * Sends one message to every open connection (but `except`), encoded once, without waiting:
   * a connection that cannot keep up is closed 4008 once over `maxBufferedBytes`. Returns how
   * many connections it was written to.
   */
  broadcast(message: Out, except?: Socket<In, Out>): number {
    const payload = this.core.encode(message);
    const frame = typeof payload === 'string' ? textFrame(payload) : payload;
    let sent = 0;
    for (const conn of this.binding.connections()) {
      if (conn.context === except || !conn.open) continue;
      if (typeof payload === 'string' ? conn.sendFrame(frame) : conn.sendBinary(frame)) sent++;
    }
    return sent;
  }

  /** Stops accepting and closes every connection (default 1001); resolves once all are gone. */
  close(code: number = SOCKET_CLOSE.goingAway, reason = 'server shutting down'): Promise<void> {
    return this.binding.close(code, reason);
  }

  private report(socket: Socket<In, unknown>, error: SocketError): void {
    const { logger, onError } = this.options;
    const fields = { code: error.code, closeCode: error.closeCode, path: pathOf(socket.request.url) };
    switch (error.code) {
      case 'ERR_HANDLER':
        logger.error({ ...fields, err: error.cause }, 'socket handler failed');
        break;
      case 'ERR_SCHEMA':
      case 'ERR_INVALID_JSON':
      case 'ERR_UNSUPPORTED_DATA':
      case 'ERR_PONG_TIMEOUT':
      case 'ERR_PROTOCOL':
        logger.info(fields, error.message);
        break;
      default:
        logger.warn(fields, error.message);
    }
    if (!onError) return;
    try {
      onError(error, socket);
    } catch (err) {
      logger.error({ err }, 'sockets onError threw');
    }
  }
}

// ---- the route's three modes ------------------------------------------------------------------

function invalidSend(message: string, cause?: unknown): SocketError {
  return new SocketError('ERR_INVALID_SEND', message, cause === undefined ? {} : { cause });
}

function encodeJson(message: unknown): string {
  let text: string | undefined;
  try {
    text = JSON.stringify(message);
  } catch (err) {
    throw invalidSend(`cannot send as JSON: ${(err as Error).message}`, err);
  }
  if (text === undefined) throw invalidSend(`cannot send ${typeof message} as JSON`);
  return text;
}

function encodeText(message: unknown): string {
  if (typeof message !== 'string') throw invalidSend(`a text route sends strings, got ${typeof message}`);
  return message;
}

function encodeBinary(message: unknown): Buffer {
  if (Buffer.isBuffer(message)) return message;
  if (message instanceof Uint8Array) return Buffer.from(message.buffer, message.byteOffset, message.byteLength);
  if (message instanceof ArrayBuffer) return Buffer.from(message);
  throw invalidSend('a binary route sends a Buffer, Uint8Array or ArrayBuffer');
}

/** The error answer a JSON peer gets for a refused message (SPEC §2's shape, without `id`). */
function errorReply(message: string): string {
  return JSON.stringify({ error: { code: 'bad_request', message } });
}

function jsonDecoder<In>(schema: Schema<In> | undefined) {
  const refuse = (socket: Socket<In, unknown>, code: 'ERR_INVALID_JSON' | 'ERR_SCHEMA', message: string): undefined => {
    socket.reply(errorReply(message));
    socket.failed(new SocketError(code, message));
    return undefined;
  };
  return (socket: Socket<In, unknown>, data: Buffer, isBinary: boolean): In | undefined | Promise<In | undefined> => {
    if (isBinary) return refuse(socket, 'ERR_INVALID_JSON', 'binary frames are not accepted; send JSON text');
    let value: unknown;
    try {
      value = JSON.parse(data.toString('utf8'));
    } catch {
      return refuse(socket, 'ERR_INVALID_JSON', 'message is not valid JSON');
    }
    if (!schema) return value as In;
    return applySchema(schema, value).then((checked) => (checked.ok ? checked.value : refuse(socket, 'ERR_SCHEMA', `invalid message: ${checked.reason}`)));
  };
}

function unsupported<In>(socket: Socket<In, unknown>, message: string): undefined {
  socket.failed(new SocketError('ERR_UNSUPPORTED_DATA', message, { closeCode: SOCKET_CLOSE.unsupportedData }));
  socket.close(SOCKET_CLOSE.unsupportedData, message);
  return undefined;
}

function decodeText(socket: Socket<string, unknown>, data: Buffer, isBinary: boolean): string | undefined {
  if (isBinary) return unsupported(socket, 'text frames only');
  return data.toString('utf8');
}

function decodeBinary(socket: Socket<Buffer, unknown>, data: Buffer, isBinary: boolean): Buffer | undefined {
  if (!isBinary) return unsupported(socket, 'binary frames only');
  return data;
}

function fromWsError(err: Error & { code?: string }): SocketError {
  if (err.code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH') return new SocketError('ERR_MESSAGE_TOO_LARGE', 'message over maxMessageSize', { closeCode: SOCKET_CLOSE.tooLarge, cause: err });
  if (err.code === 'ERR_PONG_TIMEOUT') return new SocketError('ERR_PONG_TIMEOUT', err.message, { closeCode: 1006, cause: err });
  return new SocketError('ERR_PROTOCOL', err.message, { cause: err });
}

async function run<In, Out>(socket: Socket<In, Out>, handler: SocketRouteHandler<In, Out>, options: ResolvedSocketOptions): Promise<void> {
  try {
    await handler(socket);
    if (socket.open) socket.close(SOCKET_CLOSE.normal);
  } catch (err) {
    // A send that found the connection closed ends the handler: the normal way out of a loop.
    if (err instanceof SocketError && err.code === 'ERR_SOCKET_CLOSED' && !socket.open) {
      options.logger.debug({ path: pathOf(socket.request.url) }, 'socket handler ended: connection closed');
      return;
    }
    socket.failed(new SocketError('ERR_HANDLER', 'the socket handler failed', { closeCode: SOCKET_CLOSE.internalError, cause: err }));
    if (socket.open) socket.close(SOCKET_CLOSE.internalError, 'internal error');
  }
}

/** The path of a request target, without the query. */
export function pathOf(url: string | undefined): string {
  const target = url ?? '/';
  const q = target.indexOf('?');
  return q < 0 ? target : target.slice(0, q);
}

// ---- the public constructors --------------------------------------------------------------------

/** A JSON route: each text message is parsed (and checked by `schema`); `send` takes any JSON value. */
export function jsonSocket<In = unknown, Out = unknown>(handler: SocketRouteHandler<In, Out>): SocketRoute<In, Out>;
export function jsonSocket<In = unknown, Out = unknown>(options: JsonSocketOptions<In>, handler: SocketRouteHandler<In, Out>): SocketRoute<In, Out>;
export function jsonSocket<In, Out>(a: JsonSocketOptions<In> | SocketRouteHandler<In, Out>, b?: SocketRouteHandler<In, Out>): SocketRoute<In, Out> {
  return typeof a === 'function' ? new SocketRoute('json', {}, a) : new SocketRoute('json', a, b!);
}

/** A text route: messages are strings; a binary frame closes the connection 1003. */
export function textSocket(handler: SocketRouteHandler<string, string>): SocketRoute<string, string>;
export function textSocket(options: SocketRouteOptions, handler: SocketRouteHandler<string, string>): SocketRoute<string, string>;
export function textSocket(a: SocketRouteOptions | SocketRouteHandler<string, string>, b?: SocketRouteHandler<string, string>): SocketRoute<string, string> {
  return typeof a === 'function' ? new SocketRoute('text', {}, a) : new SocketRoute('text', a, b!);
}

/** A binary route: messages are Buffers; a text frame closes the connection 1003. */
export function binarySocket(handler: SocketRouteHandler<Buffer, BinaryData>): SocketRoute<Buffer, BinaryData>;
export function binarySocket(options: SocketRouteOptions, handler: SocketRouteHandler<Buffer, BinaryData>): SocketRoute<Buffer, BinaryData>;
export function binarySocket(a: SocketRouteOptions | SocketRouteHandler<Buffer, BinaryData>, b?: SocketRouteHandler<Buffer, BinaryData>): SocketRoute<Buffer, BinaryData> {
  return typeof a === 'function' ? new SocketRoute('binary', {}, a) : new SocketRoute('binary', a, b!);
}
