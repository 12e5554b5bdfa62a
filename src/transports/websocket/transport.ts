/**
 * The WebSocket transport (SPEC §2): JSON commands in, answers and pushes out, on top of the
 * socket binding. One `WsClient` per connection is the hub's Subscriber and Session.
 *
 * Lifecycle of a connection: `connect` must be the first command and must be answered within
 * `connectTimeout` of the upgrade (close 4000 "connect timeout"; any other command first closes
 * 4000 "connect required"). While `connect` is being authenticated the socket is paused and
 * commands already received wait, so a client may pipeline `connect` and its subscriptions.
 * Afterwards commands run concurrently; each answer carries its command's `id`.
 *
 * Limits (transports/limits.ts, docs/security.md): an upgrade from an address that already has
 * `maxConnectionsPerIp` connections gets HTTP 429 `limit_exceeded`. Every frame is a command
 * that must pass the connection's and its address's rate; one over it is answered `rate_limited`
 * (with its `id` when it has one) and not run, and a client that keeps sending over its rate gets
 * `disconnect` 4029 and is closed. A client whose token expires is disconnected 4003 by the hub.
 */
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { ClientContext, Hub, Session, Subscriber } from '../../core/hub.js';
import { silentLogger, type Logger } from '../../core/logger.js';
import { defineEncoding, type OutgoingEvent } from '../../core/outgoing.js';
import {
  CLOSE_CODES,
  HeraldError,
  PROTOCOL_VERSION,
  parseCommand,
  toHeraldError,
  type ClientInfo,
  type Command,
  type ConnectResult,
} from '../../protocol/index.js';
import { ADMIT, REFUSE_AND_CLOSE, TransportLimits, refuseUpgrade, type ConnectionRate } from '../limits.js';
import { SocketBinding, checkNumber, definedOnly, type SocketConnection, type SocketHandler } from './binding.js';
import { textFrame } from './frame.js';

export interface WebSocketTransportOptions {
  /** Origins allowed to upgrade ('*' = any). Unset: an Origin header must be same-origin (SPEC §5). */
  allowedOrigins?: readonly string[] | undefined;
  /** Seconds between keep-alive pings, also sent to clients in the connect result. 0 = off. Default 25. */
  pingInterval: number;
  /** Largest incoming frame, in bytes; over it, close 1009. Default 65,536. */
  maxMessageBytes: number;
  /** Unsent bytes per connection before it is closed 4008 "slow consumer". Default 1 MiB. */
  maxBufferedBytes: number;
  /** Milliseconds from the upgrade within which `connect` must be answered. Default 10,000. */
  connectTimeout: number;
  /** Milliseconds a closed connection (slow consumer or other) may take before its socket is destroyed. Default 5,000. */
  slowConsumerGraceMs: number;
  /** Write coalescing: milliseconds a connection holds its first event for those that follow. 0 (default) = one event-loop turn. At most 1,000. */
  coalesceMs: number;
  /**
   * Rate limits and connections per address, shared with the other transports when the server
   * passes one instance to all. Default: a new `TransportLimits` with the defaults of LIMIT_DEFAULTS.
   */
  limits?: TransportLimits | undefined;
  logger: Logger;
}

export const WEBSOCKET_DEFAULTS: Readonly<Omit<WebSocketTransportOptions, 'allowedOrigins' | 'limits'>> = Object.freeze({
  pingInterval: 25,
  maxMessageBytes: 65_536,
  maxBufferedBytes: 1_048_576,
  connectTimeout: 10_000,
  slowConsumerGraceMs: 5_000,
  coalesceMs: 0,
  logger: silentLogger,
});

/** Defaults filled in, every key checked (the error names it), then frozen. */
export function resolveWebSocketOptions(options: Partial<WebSocketTransportOptions> = {}): Readonly<WebSocketTransportOptions> {
  const o: WebSocketTransportOptions = { ...WEBSOCKET_DEFAULTS, ...definedOnly(options) };
  checkNumber('websocket option "pingInterval"', o.pingInterval, 0, false);
  checkNumber('websocket option "maxMessageBytes"', o.maxMessageBytes, 1, true);
  checkNumber('websocket option "maxBufferedBytes"', o.maxBufferedBytes, 1, true);
  checkNumber('websocket option "connectTimeout"', o.connectTimeout, 1, true);
  checkNumber('websocket option "slowConsumerGraceMs"', o.slowConsumerGraceMs, 0, true);
  checkNumber('websocket option "coalesceMs"', o.coalesceMs, 0, true);
  if (o.coalesceMs > 1000) throw new TypeError('websocket option "coalesceMs" must be at most 1000 (milliseconds)');
  if (o.allowedOrigins !== undefined) {
    if (!Array.isArray(o.allowedOrigins) || !o.allowedOrigins.every((v) => typeof v === 'string')) {
      throw new TypeError('websocket option "allowedOrigins" must be an array of strings');
    }
    o.allowedOrigins = Object.freeze([...o.allowedOrigins]);
  }
  if (!o.logger || typeof o.logger.warn !== 'function') throw new TypeError('websocket option "logger" must be a Logger');
  if (o.limits !== undefined && !(o.limits instanceof TransportLimits)) throw new TypeError('websocket option "limits" must be a TransportLimits');
  return Object.freeze(o);
}

/** The event push, framed once per publish and written as is to every subscriber. */
const EVENT_PUSH = defineEncoding((out) => textFrame('{"push":"event","event":' + out.json + '}'));

const SHUTDOWN = CLOSE_CODES.shutdown.code;
const PROTOCOL_VIOLATION = CLOSE_CODES.protocolViolation.code;
const UNAUTHORIZED = CLOSE_CODES.unauthorized.code;
const SLOW_CONSUMER = CLOSE_CODES.slowConsumer.code;
const RATE_LIMITED = CLOSE_CODES.rateLimited.code;

/** Connection phases. */
const AWAITING = 0; // no connect yet
const CONNECTING = 1; // connect received, being authenticated
const CONNECTED = 2;
const CLOSED = 3;

/** Before `connect` succeeds the client has no identity; this placeholder is never registered. */
const NOBODY: ClientContext = Object.freeze({ id: '', transport: 'websocket' });

const EMPTY = Object.freeze({});

/** One WebSocket connection: the hub's Subscriber (deliveries) and Session (server-side disconnect). */
class WsClient implements Subscriber, Session {
  client: ClientContext = NOBODY;
  phase = AWAITING;
  readonly conn: SocketConnection<WsClient>;
  /** Ids of commands still awaiting their answer (created on the first command). */
  inflight: Set<number> | undefined;
  /** Frames received while `connect` is authenticated (the socket is paused meanwhile). */
  held: { data: Buffer; isBinary: boolean }[] | undefined;
  connectTimer: NodeJS.Timeout | undefined;
  /** Its rate buckets and address (see transports/limits.ts). */
  readonly rate: ConnectionRate;

  constructor(conn: SocketConnection<WsClient>, rate: ConnectionRate) {
    this.conn = conn;
    this.rate = rate;
  }

  /** The hot path: the event's frame was built once per publish; cork so a burst leaves in one write. */
  deliver(out: OutgoingEvent): void {
    const conn = this.conn;
    conn.cork();
    conn.sendFrame(out.encoded(EVENT_PUSH));
  }

  onPresence(kind: 'join' | 'leave', channel: string, info: ClientInfo): void {
    this.conn.send(JSON.stringify({ push: kind, channel, ...info }));
  }

  disconnect(code: number, reason: string, reconnect: boolean): void {
    if (!this.conn.open) return;
    this.conn.send(JSON.stringify({ push: 'disconnect', code, reason, reconnect }));
    this.conn.close(code, reason);
  }

  answer(id: number, result: unknown): void {
    if (!this.inflight?.delete(id)) return;
    this.conn.send('{"id":' + id + ',"result":' + JSON.stringify(result) + '}');
  }

  /** An error answer; without `id` for frames that had no usable one. */
  error(id: number | undefined, err: HeraldError): void {
    const body = '"error":' + JSON.stringify({ code: err.code, message: err.message }) + '}';
    this.conn.send(id === undefined ? '{' + body : '{"id":' + id + ',' + body);
  }
}

function onConnectTimeout(client: WsClient): void {
  client.connectTimer = undefined;
  if (client.phase !== CONNECTED) client.conn.close(PROTOCOL_VIOLATION, 'connect timeout');
}

export class WebSocketTransport {
  readonly options: Readonly<WebSocketTransportOptions>;
  private readonly hub: Hub;
  private readonly logger: Logger;
  private readonly binding: SocketBinding<WsClient>;
  private readonly limits: TransportLimits;
  private closing: Promise<void> | undefined;

  constructor(hub: Hub, options: Partial<WebSocketTransportOptions> = {}) {
    this.hub = hub;
    this.options = resolveWebSocketOptions(options);
    this.limits = this.options.limits ?? new TransportLimits();
    this.logger = this.options.logger.child?.({ transport: 'websocket' }) ?? this.options.logger;
    const handler: SocketHandler<WsClient> = {
      open: (conn, req) => this.opened(conn, req),
      message: (client, data, isBinary) => this.received(client, data, isBinary),
      close: (client, code) => this.closed(client, code),
      slowConsumer: (client, buffered) => this.logger.warn({ client: client.client.id, bufferedAmount: buffered }, 'slow consumer: closing 4008'),
    };
    this.binding = new SocketBinding(handler, {
      allowedOrigins: this.options.allowedOrigins,
      maxMessageBytes: this.options.maxMessageBytes,
      pingInterval: this.options.pingInterval,
      maxBufferedBytes: this.options.maxBufferedBytes,
      slowConsumerCode: SLOW_CONSUMER,
      slowConsumerReason: 'slow consumer',
      closeGraceMs: this.options.slowConsumerGraceMs,
      coalesceMs: this.options.coalesceMs,
      logger: this.logger,
    });
  }

  /** Open WebSocket connections (connected or not yet). */
  get connections(): number {
    return this.binding.size;
  }

  /** Unsent bytes held for WebSocket clients: in total and for the worst connection (for metrics). */
  bufferStats(): { total: number; max: number } {
    let total = 0;
    let max = 0;
    for (const conn of this.binding.connections()) {
      const n = conn.bufferedAmount;
      total += n;
      if (n > max) max = n;
    }
    return { total, max };
  }

  /** Handles an upgrade the server routed here (`GET /ws`). Refused origins get HTTP 403; an address over its connections, 429. */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const refused = this.limits.checkUpgrade(req);
    if (refused) {
      this.logger.info({ address: req.socket.remoteAddress }, 'websocket upgrade refused: too many connections from this address');
      refuseUpgrade(socket, refused);
      return;
    }
    this.binding.handleUpgrade(req, socket, head);
  }

  /**
   * Stops accepting; every client gets `{"push":"disconnect","code":1001,…,"reconnect":true}` then
   * close 1001. Resolves once all sockets are gone (at most `slowConsumerGraceMs` later).
   */
  close(): Promise<void> {
    this.closing ??= (async () => {
      for (const conn of this.binding.connections()) conn.context.disconnect(SHUTDOWN, 'server shutting down', true);
      await this.binding.close(SHUTDOWN, 'server shutting down');
    })();
    return this.closing;
  }

  // ---- connection events ---------------------------------------------------------------------

  private opened(conn: SocketConnection<WsClient>, req: IncomingMessage): WsClient {
    const client = new WsClient(conn, this.limits.connectionRate(req));
    this.limits.acquire(client.rate.address);
    client.connectTimer = setTimeout(onConnectTimeout, this.options.connectTimeout, client);
    client.connectTimer.unref();
    return client;
  }

  private closed(client: WsClient, code: number): void {
    const wasConnected = client.phase === CONNECTED;
    this.logger.debug({ client: client.client.id || undefined, code }, 'websocket connection closed');
    client.phase = CLOSED;
    this.limits.release(client.rate.address);
    if (client.connectTimer) clearTimeout(client.connectTimer);
    client.connectTimer = undefined;
    client.inflight = undefined;
    client.held = undefined;
    if (!wasConnected) return;
    this.hub.unregister(client);
    this.hub.unsubscribeAll(client).catch((err: unknown) => this.logger.error({ err, client: client.client.id }, 'unsubscribe on close failed'));
  }

  private received(client: WsClient, data: Buffer, isBinary: boolean): void {
    if (client.phase === CLOSED) return;
    if (client.phase === CONNECTING) {
      (client.held ??= []).push({ data, isBinary });
      return;
    }
    if (isBinary) {
      if (this.limited(client, undefined, false)) return;
      client.error(undefined, new HeraldError('bad_request', 'binary frames are not accepted; send JSON text'));
      return;
    }
    const parsed = parseCommand(data.toString('utf8'));
    if (this.limited(client, parsed.ok ? parsed.command.id : parsed.id, parsed.ok && parsed.command.op === 'publish')) return;
    if (!parsed.ok) {
      client.error(parsed.id, parsed.error);
      return;
    }
    const command = parsed.command;
    if (client.phase === AWAITING) {
      if (command.op === 'connect') void this.connect(client, command.id, command.token);
      else client.conn.close(PROTOCOL_VIOLATION, 'connect required');
      return;
    }
    if (command.op === 'connect') {
      client.error(command.id, new HeraldError('bad_request', 'already connected'));
      return;
    }
    const inflight = (client.inflight ??= new Set());
    if (inflight.has(command.id)) {
      client.error(command.id, new HeraldError('bad_request', `id ${command.id} is still awaiting its answer`));
      return;
    }
    inflight.add(command.id);
    void this.run(client, command);
  }

  /** Every frame passes the rate limits; true when this one was refused (answered, maybe closed). */
  private limited(client: WsClient, id: number | undefined, publish: boolean): boolean {
    const verdict = this.limits.admit(client.rate, publish);
    if (verdict === ADMIT) return false;
    client.error(id, new HeraldError('rate_limited', publish ? 'too many publishes; slow down' : 'too many commands; slow down'));
    if (verdict === REFUSE_AND_CLOSE) {
      this.logger.warn({ client: client.client.id || undefined, address: client.rate.address }, 'websocket client kept exceeding its rate: closing 4029');
      client.disconnect(RATE_LIMITED, 'rate limited', true);
    }
    return true;
  }

  private async connect(client: WsClient, id: number, token: string | undefined): Promise<void> {
    client.phase = CONNECTING;
    client.conn.pause();
    if (!this.hub.running) {
      client.error(id, new HeraldError('unavailable', 'server is not running'));
      client.conn.close(SHUTDOWN, 'server not running');
      return;
    }
    let context: ClientContext;
    try {
      context = await this.hub.authenticate(token, 'websocket');
    } catch (err) {
      if (client.phase === CLOSED) return;
      const e = this.toClientError(err, client);
      client.error(id, e);
      if (e.code === 'unauthorized' || e.code === 'forbidden') client.conn.close(e.closeCode ?? UNAUTHORIZED, 'unauthorized');
      else if (e.closeCode !== undefined) client.conn.close(e.closeCode, e.message);
      // Anything else (a key server unreachable, a failing hook): the client may send connect again.
      else this.resumeAfterConnect(client, AWAITING);
      return;
    }
    if (client.phase === CLOSED || !client.conn.open) return;
    client.client = context;
    if (client.connectTimer) clearTimeout(client.connectTimer);
    client.connectTimer = undefined;
    this.hub.register(client);
    (client.inflight ??= new Set()).add(id);
    const result: ConnectResult = { client: context.id, version: PROTOCOL_VERSION, ping: this.options.pingInterval };
    client.answer(id, result);
    this.resumeAfterConnect(client, CONNECTED);
  }

  /** Leaves the connecting phase and handles the frames that arrived meanwhile, in order. */
  private resumeAfterConnect(client: WsClient, phase: typeof AWAITING | typeof CONNECTED): void {
    client.phase = phase;
    const held = client.held;
    client.held = undefined;
    if (held) {
      for (let i = 0; i < held.length; i++) {
        if (client.phase !== phase) {
          // A held `connect` started authenticating again: keep the rest for after it.
          const rest = held.slice(i);
          if (client.phase === CONNECTING) (client.held ??= []).unshift(...rest);
          break;
        }
        this.received(client, held[i]!.data, held[i]!.isBinary);
      }
    }
    if (client.phase !== CONNECTING) client.conn.resume();
  }

  private async run(client: WsClient, command: Exclude<Command, { op: 'connect' }>): Promise<void> {
    const hub = this.hub;
    const who = client.client;
    try {
      let result: unknown;
      switch (command.op) {
        case 'subscribe': {
          // The answer is written in onReady, before any live event: no gap, no duplicate.
          await hub.subscribe(client, command.channel, command.since, (r) => client.answer(command.id, r));
          // Closed while the subscription was being set up: the hub may not have seen the close.
          if (client.phase === CLOSED) await hub.unsubscribe(client, command.channel);
          return;
        }
        case 'unsubscribe':
          await hub.unsubscribe(client, command.channel);
          result = EMPTY;
          break;
        case 'publish':
          result = await hub.publish(command.channel, command.data, who);
          break;
        case 'history': {
          const query: { since?: typeof command.since; limit?: number } = {};
          if (command.since) query.since = command.since;
          if (command.limit !== undefined) query.limit = command.limit;
          const h = await hub.history(command.channel, query, who);
          result = { epoch: h.epoch, offset: h.offset, recovered: h.recovered, events: h.events };
          break;
        }
        case 'presence':
          result = { clients: await hub.presence(command.channel, who) };
          break;
        case 'ping':
          result = EMPTY;
          break;
      }
      client.answer(command.id, result);
    } catch (err) {
      if (!client.inflight?.delete(command.id)) return; // answered already, or the connection is gone
      client.error(command.id, this.toClientError(err, client));
    }
  }

  /** A HeraldError safe to show the client; anything else is logged and becomes `internal`. */
  private toClientError(err: unknown, client: WsClient): HeraldError {
    const e = toHeraldError(err);
    if (e.code === 'internal') this.logger.error({ err, client: client.client.id || undefined }, 'websocket command failed');
    return e;
  }
}
