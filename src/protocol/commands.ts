/**
 * The WebSocket command protocol (SPEC §2): parsing client frames into typed commands,
 * and the shapes of answers and pushes. Pure: no I/O.
 */
import { channelProblem } from './channel.js';
import { HeraldError, type ErrorCode } from './errors.js';
import { isPosition, type ClientInfo, type HeraldEvent, type Position } from './event.js';

export const PROTOCOL_VERSION = 1;

export type Command =
  | { id: number; op: 'connect'; token?: string }
  | { id: number; op: 'subscribe'; channel: string; since?: Position }
  | { id: number; op: 'unsubscribe'; channel: string }
  | { id: number; op: 'publish'; channel: string; data: unknown }
  | { id: number; op: 'history'; channel: string; limit?: number; since?: Position }
  | { id: number; op: 'presence'; channel: string }
  | { id: number; op: 'ping' };

export type Op = Command['op'];
export const OPS: readonly Op[] = ['connect', 'subscribe', 'unsubscribe', 'publish', 'history', 'presence', 'ping'];

export type ParseResult =
  | { ok: true; command: Command }
  /** `id` is set when the frame had a usable integer id: the error is answered with it. */
  | { ok: false; id?: number; error: HeraldError };

/** Nesting deeper than this is refused before anything walks it. */
export const MAX_JSON_DEPTH = 64;

function fail(message: string, id?: number, code: ErrorCode = 'bad_request'): ParseResult {
  return id === undefined ? { ok: false, error: new HeraldError(code, message) } : { ok: false, id, error: new HeraldError(code, message) };
}

/** Depth of JSON nesting in `text`, counted on the raw characters (cheap; strings are skipped). */
export function jsonDepthExceeds(text: string, max: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 92 /* \ */) i++;
      else if (c === 34 /* " */) inString = false;
    } else if (c === 34) inString = true;
    else if (c === 123 || c === 91) {
      if (++depth > max) return true;
    } else if (c === 125 || c === 93) depth--;
  }
  return false;
}

/** JSON.parse that refuses deep nesting; returns undefined on any failure. */
export function safeJsonParse(text: string): { value: unknown } | undefined {
  if (jsonDepthExceeds(text, MAX_JSON_DEPTH)) return undefined;
  try {
    return { value: JSON.parse(text) };
  } catch {
    return undefined;
  }
}

function has(obj: Record<string, unknown>, key: string): boolean {
  return Object.prototype.hasOwnProperty.call(obj, key);
}

/** Parses one text frame. Never throws. */
export function parseCommand(text: string): ParseResult {
  const parsed = safeJsonParse(text);
  if (!parsed) return fail('frame is not valid JSON (or nests too deep)');
  const raw = parsed.value;
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) return fail('a command must be a JSON object');
  const obj = raw as Record<string, unknown>;
  const id = obj.id;
  if (typeof id !== 'number' || !Number.isSafeInteger(id)) return fail('a command needs an integer "id"');
  const op = obj.op;
  if (typeof op !== 'string' || !(OPS as readonly string[]).includes(op)) {
    return fail(`unknown op ${JSON.stringify(typeof op === 'string' ? op.slice(0, 32) : op)}`, id);
  }
  const needChannel = (): string | ParseResult => {
    const problem = channelProblem(obj.channel);
    return problem ? fail(problem, id) : (obj.channel as string);
  };
  const readSince = (): Position | undefined | ParseResult => {
    if (!has(obj, 'since') || obj.since === null || obj.since === undefined) return undefined;
    if (!isPosition(obj.since)) return fail('"since" must be {epoch: string, offset: integer >= 0}', id);
    return { epoch: obj.since.epoch, offset: obj.since.offset };
  };
  switch (op as Op) {
    case 'connect': {
      if (has(obj, 'token') && obj.token !== undefined && obj.token !== null && typeof obj.token !== 'string') return fail('"token" must be a string', id);
      return { ok: true, command: typeof obj.token === 'string' ? { id, op: 'connect', token: obj.token } : { id, op: 'connect' } };
    }
    case 'subscribe': {
      const channel = needChannel();
      if (typeof channel !== 'string') return channel;
      const since = readSince();
      if (since && 'ok' in since) return since;
      return { ok: true, command: since ? { id, op: 'subscribe', channel, since } : { id, op: 'subscribe', channel } };
    }
    case 'unsubscribe':
    case 'presence': {
      const channel = needChannel();
      if (typeof channel !== 'string') return channel;
      return { ok: true, command: { id, op: op as 'unsubscribe' | 'presence', channel } };
    }
    case 'publish': {
      const channel = needChannel();
      if (typeof channel !== 'string') return channel;
      if (!has(obj, 'data')) return fail('"data" is required (null is allowed)', id);
      return { ok: true, command: { id, op: 'publish', channel, data: obj.data } };
    }
    case 'history': {
      const channel = needChannel();
      if (typeof channel !== 'string') return channel;
      const since = readSince();
      if (since && 'ok' in since) return since;
      let limit: number | undefined;
      if (has(obj, 'limit') && obj.limit !== undefined && obj.limit !== null) {
        if (typeof obj.limit !== 'number' || !Number.isSafeInteger(obj.limit) || obj.limit < 0) return fail('"limit" must be an integer >= 0', id);
        limit = obj.limit;
      }
      const command: Command = { id, op: 'history', channel };
      if (limit !== undefined) command.limit = limit;
      if (since) command.since = since;
      return { ok: true, command };
    }
    case 'ping':
      return { ok: true, command: { id, op: 'ping' } };
  }
}

/** Server → client messages. */
export type ServerMessage =
  | { id: number; result: unknown }
  | { id?: number; error: { code: ErrorCode; message: string } }
  | { push: 'event'; event: HeraldEvent }
  | ({ push: 'join' | 'leave'; channel: string } & ClientInfo)
  | { push: 'unsubscribe'; channel: string; reason: string }
  | { push: 'disconnect'; code: number; reason: string; reconnect: boolean };

export interface ConnectResult {
  client: string;
  version: number;
  /** Seconds between the server's WebSocket pings. */
  ping: number;
}
