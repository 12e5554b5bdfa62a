/**
 * The client's one error class. Server refusals keep the server's code (SPEC §2 error codes);
 * failures the client sees on its own side have client-only codes:
 *
 * | code | when | safe to retry? |
 * |---|---|---|
 * | any server code (`forbidden`, `too_large`, …) | the server answered with an error | as the code says (`unavailable`, `rate_limited`: yes) |
 * | `too_large` (also local) | a command's frame is over `maxMessageBytes`: refused before sending, the connection is kept | no |
 * | `timeout` | no answer within `timeout` ms (time spent queued before connecting counts) | a publish may or may not have happened |
 * | `disconnected` | the connection dropped after the command was sent, before its answer | a publish may or may not have happened |
 * | `closed` | the client was closed (by the app, or by the server with reconnect: false) | no |
 * | `overflow` | an async iterator's bounded queue overflowed (see Subscription) | catch up with `history({since})` |
 */
import type { ErrorCode } from '../protocol/index.js';

export type ClientErrorCode = ErrorCode | 'timeout' | 'disconnected' | 'closed' | 'overflow';

export class HeraldClientError extends Error {
  readonly code: ClientErrorCode;
  /** The WebSocket close code, when the error comes from a closed connection. */
  readonly closeCode: number | undefined;

  constructor(code: ClientErrorCode, message: string, options?: { cause?: unknown; closeCode?: number }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'HeraldClientError';
    this.code = code;
    this.closeCode = options?.closeCode;
  }
}

/** Turns a server's `{code, message}` into a HeraldClientError. */
export function fromWireError(error: unknown): HeraldClientError {
  if (error && typeof error === 'object') {
    const e = error as { code?: unknown; message?: unknown };
    const message = typeof e.message === 'string' ? e.message : 'server error';
    if (typeof e.code === 'string') return new HeraldClientError(e.code as ErrorCode, message);
  }
  return new HeraldClientError('internal', 'malformed error from the server');
}
