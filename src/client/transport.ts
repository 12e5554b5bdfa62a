/**
 * The contract between the client core (HeraldClient: queueing, subscriptions, resume, reconnect)
 * and a transport (how bytes reach the server). The core never sees a socket; a transport never
 * sees a Subscription. `websocket` (websocket.ts); `sse` and `longpoll` (SPEC §3, §4; sse.ts,
 * longpoll.ts on stream.ts) keep the stream's channel set and cursor (protocol/cursor.ts)
 * themselves and answer `publish`, `history` and `presence` over the HTTP API.
 *
 * Rules every transport follows:
 * 1. After `open()`, exactly one of: `onOpen` then (later) `onClose`; or `onClose` alone.
 *    Nothing is called after `onClose`, nor after the core called `close()`.
 * 2. `request()` calls `done` exactly once: with the answer, or with a HeraldClientError
 *    (`timeout` after `timeoutMs`; `disconnected` when the connection ends first; `closed` after
 *    `close()`; the server's code when it refused). `done` runs synchronously when the answer is
 *    read, before any later message is handled: a `subscribe` answer is applied before the live
 *    events that follow it on the wire.
 * 3. `onEvent` is called in the order the server sent events; the core does dedup and gap checks.
 */
import type { ClientInfo, HeraldEvent, HistoryResult, Position, PublishResult, SubscribeResult } from '../protocol/index.js';
import type { HeraldClientError } from './errors.js';

export type TransportName = 'websocket' | 'sse' | 'longpoll';

export interface PresenceResult {
  clients: ClientInfo[];
}

/** Every request a transport answers: arguments and result. */
export interface Ops {
  subscribe: { args: { channel: string; since?: Position }; result: SubscribeResult };
  unsubscribe: { args: { channel: string }; result: Record<string, never> };
  publish: { args: { channel: string; data: unknown }; result: PublishResult };
  history: { args: { channel: string; limit?: number; since?: Position }; result: HistoryResult };
  presence: { args: { channel: string }; result: PresenceResult };
  ping: { args: Record<string, never>; result: Record<string, never> };
}

export type Op = keyof Ops;

export type Outcome<T> = { ok: true; result: T } | { ok: false; error: HeraldClientError };
export type Done<T> = (outcome: Outcome<T>) => void;

export interface OpenInfo {
  /** The server's id for this connection (WebSocket; the HTTP transports have none). */
  client?: string;
}

export interface CloseInfo {
  code: number;
  reason: string;
  /** Whether the client should come back (the server's `disconnect` push, or the close code). */
  reconnect: boolean;
  /** Why it ended, when there is more to say than the code (e.g. `unauthorized`). */
  error?: HeraldClientError;
  /** The transport never worked here (no route, nothing answered): the client tries the next one. */
  unusable?: boolean;
}

export interface TransportHandlers {
  onOpen(info: OpenInfo): void;
  onEvent(event: HeraldEvent): void;
  onPresence(kind: 'join' | 'leave', channel: string, info: ClientInfo): void;
  /** The server ended a subscription (`{"push":"unsubscribe"}`). */
  onUnsubscribed(channel: string, reason: string): void;
  /** Something went wrong that does not end the connection. */
  onError(error: HeraldClientError): void;
  onClose(info: CloseInfo): void;
}

export interface Transport {
  readonly name: TransportName;
  open(token: string | undefined): void;
  request<K extends Op>(op: K, args: Ops[K]['args'], timeoutMs: number, done: Done<Ops[K]['result']>): void;
  /** Ends the connection; pending requests fail with `error` (default `closed`); no handler is called afterwards. */
  close(error?: HeraldClientError): void;
}

/** What a transport is built with (from the client's resolved options). */
export interface TransportContext {
  /** The base URL (http(s) or ws(s)), as the app gave it. */
  url: string;
  handlers: TransportHandlers;
  /** ms to wait for the connection to be usable, and for each request by default. */
  timeout: number;
  maxMessageBytes: number;
  WebSocket: WebSocketConstructor | undefined;
}

/**
 * The part of the WebSocket API herald uses: the browser's WebSocket and the `ws` package both fit.
 * (Handler parameters are `never` so both constructors are assignable; we read what we need.)
 */
export interface WebSocketLike {
  readonly readyState: number;
  onopen: ((event: never) => void) | null;
  onmessage: ((event: never) => void) | null;
  onclose: ((event: never) => void) | null;
  onerror: ((event: never) => void) | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}

export type WebSocketConstructor = new (url: string) => WebSocketLike;

/** `base` with its scheme switched to `scheme`'s family and `path` appended to its path (a trailing /ws is dropped). */
export function endpointUrl(base: string, path: string, family: 'ws' | 'http'): string {
  const u = new URL(base);
  const secure = u.protocol === 'https:' || u.protocol === 'wss:';
  if (!['http:', 'https:', 'ws:', 'wss:'].includes(u.protocol)) throw new TypeError(`url must be http(s):// or ws(s)://, not ${u.protocol}`);
  u.protocol = family === 'ws' ? (secure ? 'wss:' : 'ws:') : secure ? 'https:' : 'http:';
  u.pathname = u.pathname.replace(/\/ws$/, '').replace(/\/+$/, '') + path;
  u.search = '';
  u.hash = '';
  return u.toString();
}

/** A cheap shape check of an event from the wire: what dedup and routing rely on. */
export function isEvent(value: unknown): value is HeraldEvent {
  if (!value || typeof value !== 'object') return false;
  const e = value as Record<string, unknown>;
  return typeof e.channel === 'string' && typeof e.epoch === 'string' && Number.isSafeInteger(e.offset) && (e.offset as number) >= 0;
}

/** True when `text`'s UTF-8 encoding is longer than `max` bytes (counted without allocating). */
export function utf8LongerThan(text: string, max: number): boolean {
  if (text.length > max) return true;
  if (text.length * 3 <= max) return false;
  let bytes = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x80) bytes += 1;
    else if (c < 0x800) bytes += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < text.length) {
      bytes += 4;
      i++;
    } else bytes += 3;
    if (bytes > max) return true;
  }
  return false;
}
