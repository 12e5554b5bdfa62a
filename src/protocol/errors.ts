/**
 * Every error herald reports, in one place (SPEC §2). Each code has a fixed HTTP status;
 * codes that end a WebSocket connection also name the close code. docs/errors.md lists
 * the same table, and a test keeps the two in sync.
 */
export const ERROR_CODES = {
  bad_request: { status: 400, message: 'The request or command is malformed.' },
  unauthorized: { status: 401, message: 'Missing, invalid or expired credentials.' },
  forbidden: { status: 403, message: 'Not allowed on this channel.' },
  not_found: { status: 404, message: 'No such resource.' },
  conflict: { status: 409, message: 'The resource already exists or the state conflicts.' },
  too_large: { status: 413, message: 'Over the size limit.' },
  rate_limited: { status: 429, message: 'Too many requests; slow down.' },
  limit_exceeded: { status: 429, message: 'A resource limit was reached.' },
  unavailable: { status: 503, message: 'A backing service is unavailable; try again.' },
  internal: { status: 500, message: 'Internal error.' },
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

/** WebSocket close codes (SPEC §2). `reconnect` says whether a client should come back. */
export const CLOSE_CODES = {
  normal: { code: 1000, reconnect: false },
  shutdown: { code: 1001, reconnect: true },
  tooLarge: { code: 1009, reconnect: false },
  protocolViolation: { code: 4000, reconnect: false },
  unauthorized: { code: 4001, reconnect: false },
  disconnected: { code: 4002, reconnect: true },
  /** The client's token expired: fetch a new one, reconnect and resume (`since`), losing nothing. */
  tokenExpired: { code: 4003, reconnect: true },
  slowConsumer: { code: 4008, reconnect: true },
  nameTaken: { code: 4009, reconnect: false },
  rateLimited: { code: 4029, reconnect: true },
} as const;

export type CloseName = keyof typeof CLOSE_CODES;

/** Whether a client should reconnect after the server closed with `code`. */
export function shouldReconnect(code: number): boolean {
  for (const value of Object.values(CLOSE_CODES)) if (value.code === code) return value.reconnect;
  // Abnormal closes (1006 and friends) are network trouble: reconnect.
  return code !== 1000 && code < 4000;
}

export function isErrorCode(code: unknown): code is ErrorCode {
  return typeof code === 'string' && Object.prototype.hasOwnProperty.call(ERROR_CODES, code);
}

/** The one error class of herald: a stable string code, a message safe to show a client. */
export class HeraldError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  /** WebSocket close code when this error ends a connection. */
  readonly closeCode: number | undefined;

  constructor(code: ErrorCode, message?: string, options?: { cause?: unknown; closeCode?: number }) {
    super(message ?? ERROR_CODES[code].message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'HeraldError';
    this.code = code;
    this.status = ERROR_CODES[code].status;
    this.closeCode = options?.closeCode;
  }

  toJSON(): { code: ErrorCode; message: string } {
    return { code: this.code, message: this.message };
  }
}

/** Turns anything thrown into a HeraldError; unknown failures become `internal` (no stack leaks). */
export function toHeraldError(err: unknown): HeraldError {
  if (err instanceof HeraldError) return err;
  if (err && typeof err === 'object' && isErrorCode((err as { code?: unknown }).code)) {
    const e = err as { code: ErrorCode; message?: unknown };
    return new HeraldError(e.code, typeof e.message === 'string' ? e.message : undefined, { cause: err });
  }
  return new HeraldError('internal', undefined, { cause: err });
}
