/**
 * Options of a `herald/sockets` route: defaults next to their doc, checked once (the error names
 * the key), then frozen. Times are in milliseconds, sizes in bytes.
 */
import type { Logger } from '../core/logger.js';
import type { SocketError } from './errors.js';
import type { Socket } from './socket.js';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error' | 'silent';
export const LOG_LEVELS: readonly LogLevel[] = Object.freeze(['debug', 'info', 'warn', 'error', 'silent']);

export interface SocketRouteOptions {
  /**
   * Only upgrades for this path (e.g. `/echo`; the query string is ignored) are taken; for
   * others `handleUpgrade` returns false. Unset: every upgrade handed to the route is taken.
   */
  path?: string | undefined;
  /**
   * Origins allowed to upgrade. `{{host}}` stands for the request's Host (`https://{{host}}`);
   * `'*'` allows any. Unset: a browser (a request with `Origin`) must be same-origin; a request
   * without `Origin` (not a browser) is allowed. A refused upgrade gets HTTP 403.
   */
  allowedOrigins?: readonly string[] | undefined;
  /** Milliseconds between pings. 0 = no keep-alive. Default 25,000. */
  pingPeriod?: number;
  /** Milliseconds a ping may stay unanswered before the socket is destroyed. Default 20,000. */
  pongWait?: number;
  /**
   * Milliseconds a `send` may wait for the peer to read before the connection is closed 4008
   * (`ERR_WRITE_TIMEOUT`) and the waiting sends reject. Default 10,000.
   */
  writeTimeout?: number;
  /** Largest incoming message, bytes; over it the connection is closed 1009. Default 65,536. */
  maxMessageSize?: number;
  /**
   * The send buffer, bytes: while more than this is unsent, `send` waits (its promise resolves
   * once the message has been handed to the kernel). Default 65,536.
   */
  sendBuffer?: number;
  /**
   * Hard limit on unsent bytes, for sends that are not awaited (`trySend`, `broadcast`, or a
   * `send` whose promise is ignored): past it the connection is closed 4008 as a slow consumer
   * (`ERR_SLOW_CONSUMER`), after what is already queued. Default 1 MiB. At least `sendBuffer`.
   */
  maxBufferedBytes?: number;
  /**
   * The receive buffer, messages: when this many received messages wait for the handler to take
   * them, reading from the socket stops (TCP pushes back on the peer) until the handler has
   * taken half of them. Default 16.
   */
  receiveBuffer?: number;
  /** Milliseconds after a server-side close before an unresponsive socket is destroyed. Default 5,000. */
  closeGrace?: number;
  /** Where to log (pino's interface; a pino logger plugs in as is). Default: the console (stderr). */
  logger?: Logger;
  /** Least severe level logged. Default `'warn'`. */
  logLevel?: LogLevel;
  /**
   * Called for every error on a connection (see `SocketError` codes), besides logging: an
   * invalid message, a timeout, a message too large. Must not throw.
   */
  onError?: ((error: SocketError, socket: Socket<unknown, unknown>) => void) | undefined;
}

export interface ResolvedSocketOptions {
  readonly path: string | undefined;
  readonly allowedOrigins: readonly string[] | undefined;
  readonly pingPeriod: number;
  readonly pongWait: number;
  readonly writeTimeout: number;
  readonly maxMessageSize: number;
  readonly sendBuffer: number;
  readonly maxBufferedBytes: number;
  readonly receiveBuffer: number;
  readonly closeGrace: number;
  readonly logger: Logger;
  readonly logLevel: LogLevel;
  readonly onError: ((error: SocketError, socket: Socket<unknown, unknown>) => void) | undefined;
}

export const SOCKET_DEFAULTS = Object.freeze({
  pingPeriod: 25_000,
  pongWait: 20_000,
  writeTimeout: 10_000,
  maxMessageSize: 65_536,
  sendBuffer: 65_536,
  maxBufferedBytes: 1_048_576,
  receiveBuffer: 16,
  closeGrace: 5_000,
  logLevel: 'warn' as LogLevel,
});

/** Logs to stderr through `console`, one line per entry: `herald/sockets: <msg> <fields as JSON>`. */
export const consoleLogger: Logger = {
  debug: (obj, msg) => console.debug(line(obj, msg)),
  info: (obj, msg) => console.error(line(obj, msg)),
  warn: (obj, msg) => console.error(line(obj, msg)),
  error: (obj, msg) => console.error(line(obj, msg)),
};

function line(obj: object | string, msg: string | undefined): string {
  if (typeof obj === 'string') return `herald/sockets: ${obj}`;
  let fields = '';
  try {
    fields = JSON.stringify(obj, (_k, v: unknown) => (v instanceof Error ? { message: v.message, code: (v as { code?: unknown }).code } : v));
  } catch {
    fields = '';
  }
  return `herald/sockets: ${msg ?? ''}${fields && fields !== '{}' ? ` ${fields}` : ''}`;
}

const RANK: Record<LogLevel, number> = { debug: 0, info: 1, warn: 2, error: 3, silent: 4 };

/** `logger` with the entries below `level` dropped. */
export function levelFiltered(logger: Logger, level: LogLevel): Logger {
  const min = RANK[level];
  const noop = (): void => {};
  return {
    debug: min <= 0 ? (o, m) => logger.debug(o, m) : noop,
    info: min <= 1 ? (o, m) => logger.info(o, m) : noop,
    warn: min <= 2 ? (o, m) => logger.warn(o, m) : noop,
    error: min <= 3 ? (o, m) => logger.error(o, m) : noop,
  };
}

function check(key: string, value: unknown, min: number, integer: boolean): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < min || (integer && !Number.isInteger(value))) {
    throw new RangeError(`sockets option "${key}" must be ${integer ? 'an integer' : 'a number'} >= ${min}, got ${JSON.stringify(value)}`);
  }
  return value;
}

export function resolveSocketOptions(options: SocketRouteOptions = {}): ResolvedSocketOptions {
  const o = { ...SOCKET_DEFAULTS, ...Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)) } as SocketRouteOptions & typeof SOCKET_DEFAULTS;
  const path = o.path;
  if (path !== undefined && (typeof path !== 'string' || !path.startsWith('/'))) throw new TypeError(`sockets option "path" must start with "/", got ${JSON.stringify(path)}`);
  let allowedOrigins: readonly string[] | undefined;
  if (o.allowedOrigins !== undefined) {
    if (!Array.isArray(o.allowedOrigins) || !o.allowedOrigins.every((v) => typeof v === 'string')) {
      throw new TypeError('sockets option "allowedOrigins" must be an array of strings');
    }
    allowedOrigins = Object.freeze([...o.allowedOrigins]);
  }
  const sendBuffer = check('sendBuffer', o.sendBuffer, 0, true);
  const maxBufferedBytes = check('maxBufferedBytes', o.maxBufferedBytes, 1, true);
  if (maxBufferedBytes < sendBuffer) throw new RangeError(`sockets option "maxBufferedBytes" (${maxBufferedBytes}) must be at least "sendBuffer" (${sendBuffer})`);
  if (!LOG_LEVELS.includes(o.logLevel)) throw new TypeError(`sockets option "logLevel" must be one of ${LOG_LEVELS.join(', ')}, got ${JSON.stringify(o.logLevel)}`);
  const logger = o.logger ?? consoleLogger;
  if (typeof logger.warn !== 'function' || typeof logger.error !== 'function') throw new TypeError('sockets option "logger" must be a Logger (debug, info, warn, error)');
  if (o.onError !== undefined && typeof o.onError !== 'function') throw new TypeError('sockets option "onError" must be a function');
  return Object.freeze({
    path,
    allowedOrigins,
    pingPeriod: check('pingPeriod', o.pingPeriod, 0, false),
    pongWait: check('pongWait', o.pongWait, 1, false),
    writeTimeout: check('writeTimeout', o.writeTimeout, 1, false),
    maxMessageSize: check('maxMessageSize', o.maxMessageSize, 1, true),
    sendBuffer,
    maxBufferedBytes,
    receiveBuffer: check('receiveBuffer', o.receiveBuffer, 1, true),
    closeGrace: check('closeGrace', o.closeGrace, 0, false),
    logger: levelFiltered(logger, o.logLevel),
    logLevel: o.logLevel,
    onError: o.onError,
  });
}
