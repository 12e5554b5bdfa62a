/**
 * Errors of `herald/sockets`. Each has a stable string `code` and, where it ends the connection,
 * the close code the peer sees (ws's habit: an error says both what and how it closed).
 */

export type SocketErrorCode =
  /** `send` on a connection that is closing or closed (also what pending sends reject with at close). */
  | 'ERR_SOCKET_CLOSED'
  /** A message over `maxMessageSize`: closed 1009. */
  | 'ERR_MESSAGE_TOO_LARGE'
  /** A ping stayed unanswered for `pongWait`: the socket was destroyed (the peer sees 1006). */
  | 'ERR_PONG_TIMEOUT'
  /** A `send` waited longer than `writeTimeout` for the peer to read: closed 4008. */
  | 'ERR_WRITE_TIMEOUT'
  /** Unsent bytes went over `maxBufferedBytes` (sends that were not awaited): closed 4008. */
  | 'ERR_SLOW_CONSUMER'
  /** A JSON message that does not parse, or a binary frame on a JSON route: answered, connection kept. */
  | 'ERR_INVALID_JSON'
  /** A JSON message the schema refused: answered, connection kept. */
  | 'ERR_SCHEMA'
  /** A frame of the wrong kind (binary on a text route, text on a binary route): closed 1003. */
  | 'ERR_UNSUPPORTED_DATA'
  /** A value `send` cannot encode (not JSON-serializable, not a string, not bytes). */
  | 'ERR_INVALID_SEND'
  /** The route's handler threw or rejected: closed 1011. */
  | 'ERR_HANDLER'
  /** Any other error ws reported (a protocol violation by the peer: closed 1002 or 1007). */
  | 'ERR_PROTOCOL';

export class SocketError extends Error {
  readonly code: SocketErrorCode;
  /** The close code the connection was (or is being) closed with; absent when it stays open. */
  readonly closeCode: number | undefined;

  constructor(code: SocketErrorCode, message: string, options: { closeCode?: number; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'SocketError';
    this.code = code;
    this.closeCode = options.closeCode;
  }
}

/** Close codes used by `herald/sockets` (RFC 6455 §7.4.1, and herald's 4008 of SPEC §2). */
export const SOCKET_CLOSE = Object.freeze({
  normal: 1000,
  goingAway: 1001,
  unsupportedData: 1003,
  tooLarge: 1009,
  internalError: 1011,
  slowConsumer: 4008,
});
