/** Query parsing and option checks shared by the HTTP streaming transports. */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { HeraldError, channelProblem } from '../../protocol/index.js';
import { applyCors, sendError } from '../http.js';
import type { TransportLimits } from '../limits.js';

/**
 * The `channel` query parameters, de-duplicated, in order. Throws `limit_exceeded` over `max`
 * (checked first, so a hostile list is refused before it is walked) and `bad_request` for none or
 * an invalid name.
 */
export function parseChannels(url: URL, max: number): string[] {
  const raw = url.searchParams.getAll('channel');
  if (raw.length === 0) throw new HeraldError('bad_request', 'at least one "channel" query parameter is required');
  const unique = [...new Set(raw)];
  if (unique.length > max) throw new HeraldError('limit_exceeded', `at most ${max} channels per request`);
  for (const channel of unique) {
    const problem = channelProblem(channel);
    if (problem) throw new HeraldError('bad_request', problem);
  }
  return unique;
}

/** A strict decimal integer ("30"; not "30.0", "+30", " 30" or "3e1"), or undefined. */
export function parseStrictInt(text: string): number | undefined {
  if (!/^[0-9]{1,9}$/.test(text)) return undefined;
  return Number(text);
}

/** Answers a method the endpoint does not serve. */
export function sendMethodNotAllowed(res: ServerResponse, allow: string): void {
  const body = JSON.stringify({ error: { code: 'bad_request', message: `method not allowed; use ${allow.split(',')[0]}` } });
  res.writeHead(405, { allow, 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' });
  res.end(body);
}

/** The `Authorization: Bearer …` token of a request, if any. */
export function bearerToken(req: IncomingMessage): string | undefined {
  const header = req.headers.authorization;
  if (!header) return undefined;
  const match = /^Bearer[ ]+(\S+)\s*$/i.exec(header);
  return match ? match[1] : undefined;
}

type Check = (value: unknown) => boolean;

export const isPositiveInt: Check = (v) => typeof v === 'number' && Number.isSafeInteger(v) && v > 0;
export const isNonNegativeInt: Check = (v) => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
export const isWindowMs: Check = (v) => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 && v <= 1000;
export const isOriginList: Check = (v) => v === undefined || (Array.isArray(v) && v.every((o) => typeof o === 'string'));

/**
 * Merges `given` over `defaults`, checks every key named in `checks` (the message names the key),
 * and freezes the result. Unknown keys are refused, so a typo does not pass silently.
 */
export function resolveOptions<T extends object>(name: string, defaults: Readonly<T>, given: Partial<T> | undefined, checks: Partial<Record<keyof T, [Check, string]>>): Readonly<T> {
  const out = { ...defaults } as T;
  for (const [key, value] of Object.entries(given ?? {})) {
    if (!Object.prototype.hasOwnProperty.call(defaults, key)) throw new TypeError(`${name}: unknown option "${key}"`);
    if (value !== undefined) (out as Record<string, unknown>)[key] = value;
  }
  for (const [key, check] of Object.entries(checks) as [string, [Check, string]][]) {
    const value = (out as Record<string, unknown>)[key];
    if (!check[0](value)) throw new TypeError(`${name}: option "${key}" must be ${check[1]} (got ${JSON.stringify(value)})`);
  }
  return Object.freeze(out);
}

export interface StreamAdmission {
  allowedOrigins: readonly string[] | undefined;
  closing: boolean;
  limits: TransportLimits;
  maxChannels: number;
}

/**
 * What every streaming GET (SSE, long-poll) checks before its own work: origin and CORS preflight,
 * the method, shutdown, per-address limits, then the channels. Returns the channels, or undefined
 * when the request was already answered. A bad channel list throws `bad_request`.
 */
export function admitStreamRequest(req: IncomingMessage, res: ServerResponse, url: URL, o: StreamAdmission): string[] | undefined {
  if (!applyCors(req, res, o.allowedOrigins)) return undefined;
  if (req.method !== 'GET') {
    sendMethodNotAllowed(res, 'GET, OPTIONS');
    return undefined;
  }
  if (o.closing) {
    sendError(res, new HeraldError('unavailable', 'server shutting down'));
    return undefined;
  }
  const refused = o.limits.request(req, res) ?? o.limits.hold(req, res);
  if (refused) {
    sendError(res, refused);
    return undefined;
  }
  return parseChannels(url, o.maxChannels);
}
