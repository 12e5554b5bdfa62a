/** The WebSocket transport (SPEC §2): JSON commands with integer ids, answers matched by id, pushes. */
import { safeJsonParse, shouldReconnect, type ConnectResult } from '../protocol/index.js';
import { HeraldClientError, fromWireError } from './errors.js';
import {
  endpointUrl,
  isEvent,
  utf8LongerThan,
  type CloseInfo,
  type Done,
  type Op,
  type Ops,
  type Outcome,
  type Transport,
  type TransportContext,
  type WebSocketLike,
} from './transport.js';

interface Pending {
  done: Done<unknown>;
  timer: ReturnType<typeof setTimeout>;
}

const OPEN = 1;
/** What a client-side failure reports as its close code (as a browser reports a dropped socket). */
const ABNORMAL = 1006;

function noop(): void {}

export class WebSocketTransport implements Transport {
  readonly name = 'websocket' as const;
  private readonly ctx: TransportContext;
  private readonly url: string;
  private ws: WebSocketLike | undefined;
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private finished = false;
  /** The server's `disconnect` push: its `reconnect` wins over the close code. */
  private serverDisconnect: CloseInfo | undefined;
  private connectTimer: ReturnType<typeof setTimeout> | undefined;
  private livenessTimer: ReturnType<typeof setTimeout> | undefined;
  private lastReceived = 0;
  private pingMs = 0;

  constructor(ctx: TransportContext) {
    this.ctx = ctx;
    this.url = endpointUrl(ctx.url, '/ws', 'ws');
  }

  open(token: string | undefined): void {
    const Ctor = this.ctx.WebSocket;
    if (!Ctor) {
      const error = new HeraldClientError('bad_request', 'no WebSocket implementation: in Node 20 pass { WebSocket } from the "ws" package');
      queueMicrotask(() => this.finish({ code: ABNORMAL, reason: error.message, reconnect: false, error, unusable: true }));
      return;
    }
    let ws: WebSocketLike;
    try {
      ws = new Ctor(this.url);
    } catch (cause) {
      const error = new HeraldClientError('bad_request', `cannot open ${this.url}`, { cause });
      queueMicrotask(() => this.finish({ code: ABNORMAL, reason: error.message, reconnect: false, error, unusable: true }));
      return;
    }
    this.ws = ws;
    // Never removed: `ws` (Node) throws on an 'error' event nobody listens to.
    ws.onerror = noop;
    ws.onopen = (() => this.handshake(token)) as () => void;
    ws.onmessage = ((event: { data: unknown }) => this.receive(event.data)) as (event: never) => void;
    ws.onclose = ((event: { code: number; reason: string }) => {
      const info = this.serverDisconnect ?? { code: event.code, reason: event.reason, reconnect: shouldReconnect(event.code) };
      this.finish(info);
    }) as (event: never) => void;
    this.connectTimer = setTimeout(() => this.finish({ code: ABNORMAL, reason: 'connect timeout', reconnect: true }), this.ctx.timeout);
  }

  request<K extends Op>(op: K, args: Ops[K]['args'], timeoutMs: number, done: Done<Ops[K]['result']>): void {
    this.send(op, args as Record<string, unknown>, timeoutMs, done as Done<unknown>);
  }

  close(error?: HeraldClientError): void {
    this.finish(undefined, error ?? new HeraldClientError('closed', 'the client was closed'));
  }

  private handshake(token: string | undefined): void {
    this.send('connect', token === undefined ? {} : { token }, this.ctx.timeout, (out: Outcome<unknown>) => {
      if (!out.ok) {
        // A refused token ends here (the server closes with 4001 too); other failures are retried.
        const fatal = out.error.code === 'unauthorized' || out.error.code === 'forbidden' || out.error.code === 'bad_request';
        this.finish({ code: fatal ? 4001 : ABNORMAL, reason: out.error.message, reconnect: !fatal, error: out.error });
        return;
      }
      const result = out.result as Partial<ConnectResult> | null;
      if (!result || typeof result.client !== 'string') {
        this.finish({ code: ABNORMAL, reason: 'malformed connect answer', reconnect: true });
        return;
      }
      clearTimeout(this.connectTimer);
      this.pingMs = typeof result.ping === 'number' && result.ping > 0 ? result.ping * 1000 : 0;
      this.scheduleLiveness();
      this.ctx.handlers.onOpen({ client: result.client });
    });
  }

  private send(op: string, args: Record<string, unknown>, timeoutMs: number, done: Done<unknown>): void {
    const ws = this.ws;
    if (this.finished || !ws || ws.readyState !== OPEN) {
      done({ ok: false, error: new HeraldClientError(this.finished ? 'closed' : 'disconnected', 'not connected') });
      return;
    }
    const id = this.nextId++;
    let text: string;
    try {
      text = JSON.stringify({ ...args, id, op });
    } catch (cause) {
      done({ ok: false, error: new HeraldClientError('bad_request', 'the command is not serialisable to JSON', { cause }) });
      return;
    }
    // Refused here rather than sent: the server would close the whole connection with 1009.
    if (utf8LongerThan(text, this.ctx.maxMessageBytes)) {
      done({ ok: false, error: new HeraldClientError('too_large', `the ${op} command is over ${this.ctx.maxMessageBytes} bytes`) });
      return;
    }
    const timer = setTimeout(() => {
      if (this.pending.delete(id)) done({ ok: false, error: new HeraldClientError('timeout', `no answer to ${op} within ${timeoutMs} ms`) });
    }, timeoutMs);
    this.pending.set(id, { done, timer });
    try {
      ws.send(text);
    } catch (cause) {
      this.pending.delete(id);
      clearTimeout(timer);
      done({ ok: false, error: new HeraldClientError('disconnected', 'the connection failed while sending', { cause }) });
    }
  }

  private receive(data: unknown): void {
    if (this.finished) return;
    this.lastReceived = Date.now();
    const parsed = typeof data === 'string' ? safeJsonParse(data) : undefined;
    const msg = parsed?.value;
    if (!msg || typeof msg !== 'object' || Array.isArray(msg)) {
      this.ctx.handlers.onError(new HeraldClientError('bad_request', 'the server sent a frame that is not a JSON object'));
      return;
    }
    const m = msg as Record<string, unknown>;
    if (typeof m.id === 'number') {
      const p = this.pending.get(m.id);
      if (!p) return; // an answer after its timeout
      this.pending.delete(m.id);
      clearTimeout(p.timer);
      p.done(m.error !== undefined ? { ok: false, error: fromWireError(m.error) } : { ok: true, result: m.result });
      return;
    }
    const h = this.ctx.handlers;
    switch (m.push) {
      case 'event':
        if (isEvent(m.event)) h.onEvent(m.event);
        else h.onError(new HeraldClientError('bad_request', 'the server sent a malformed event'));
        return;
      case 'join':
      case 'leave':
        if (typeof m.channel === 'string' && typeof m.client === 'string') {
          h.onPresence(m.push, m.channel, typeof m.user === 'string' ? { client: m.client, user: m.user } : { client: m.client });
        }
        return;
      case 'unsubscribe':
        if (typeof m.channel === 'string') h.onUnsubscribed(m.channel, typeof m.reason === 'string' ? m.reason : '');
        return;
      case 'disconnect': {
        const code = typeof m.code === 'number' ? m.code : 1000;
        this.serverDisconnect = { code, reason: typeof m.reason === 'string' ? m.reason : '', reconnect: m.reconnect === true };
        return;
      }
    }
    if (m.error !== undefined) h.onError(fromWireError(m.error));
  }

  /** Pings when the line has been quiet for the server's ping interval; no answer means a dead peer. */
  private scheduleLiveness(): void {
    if (this.pingMs <= 0 || this.finished) return;
    this.livenessTimer = setTimeout(() => {
      if (this.finished) return;
      if (Date.now() - this.lastReceived < this.pingMs) {
        this.scheduleLiveness();
        return;
      }
      this.send('ping', {}, Math.min(this.ctx.timeout, this.pingMs), (out) => {
        if (out.ok) this.scheduleLiveness();
        else if (out.error.code === 'timeout') this.finish({ code: ABNORMAL, reason: 'no answer to ping', reconnect: true });
      });
    }, this.pingMs);
  }

  /** Ends the transport once: fails what is pending, closes the socket, reports `info` (none after close()). */
  private finish(info: CloseInfo | undefined, pendingError?: HeraldClientError): void {
    if (this.finished) return;
    this.finished = true;
    clearTimeout(this.connectTimer);
    clearTimeout(this.livenessTimer);
    const ws = this.ws;
    if (ws) {
      ws.onopen = null;
      ws.onmessage = null;
      ws.onclose = null;
      try {
        if (ws.readyState <= OPEN) ws.close(1000, 'client closed');
      } catch {
        // Already closing.
      }
    }
    const error = pendingError ?? new HeraldClientError('disconnected', `connection closed${info ? ` (${info.code}${info.reason ? ` ${info.reason}` : ''})` : ''}`, info ? { closeCode: info.code } : undefined);
    const pending = [...this.pending.values()];
    this.pending.clear();
    for (const p of pending) {
      clearTimeout(p.timer);
      p.done({ ok: false, error });
    }
    if (info) this.ctx.handlers.onClose(info);
  }
}
