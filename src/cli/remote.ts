/**
 * How the client subcommands reach a server: `--url` (env HERALD_URL), `--api-key`
 * (env HERALD_API_KEY, its first entry), `--token` (env HERALD_TOKEN); the HTTP API; and a small
 * WebSocket protocol client (SPEC §2) over the `ws` package.
 */
import WebSocket from 'ws';
import { safeJsonParse, type ConnectResult, type ErrorCode } from '../protocol/index.js';
import { UsageError, lastValue, type ParsedArgs } from './args.js';

export const DEFAULT_URL = 'http://127.0.0.1:8080';

export interface Target {
  /** Base URL, always ending in `/` so a path prefix (behind a proxy) is kept. */
  base: URL;
  apiKey: string | undefined;
  token: string | undefined;
}

export function resolveTarget(args: ParsedArgs, env: Readonly<Record<string, string | undefined>>): Target {
  const text = lastValue(args, 'url') ?? (env.HERALD_URL || DEFAULT_URL);
  let base: URL;
  try {
    base = new URL(text.endsWith('/') ? text : `${text}/`);
  } catch {
    throw new UsageError(`--url must be an http:// or https:// URL, got ${JSON.stringify(text)}`);
  }
  if (base.protocol !== 'http:' && base.protocol !== 'https:') throw new UsageError(`--url must be an http:// or https:// URL, got ${JSON.stringify(text)}`);
  base.search = '';
  base.hash = '';
  const envKey = env.HERALD_API_KEY?.split(',')[0]?.trim();
  return { base, apiKey: lastValue(args, 'api-key') ?? (envKey || undefined), token: lastValue(args, 'token') ?? (env.HERALD_TOKEN || undefined) };
}

/** A failure the server reported, with its error code. */
export class RemoteError extends Error {
  readonly code: ErrorCode | string;
  readonly status: number | undefined;

  constructor(code: string, message: string, status?: number) {
    super(message);
    this.name = 'RemoteError';
    this.code = code;
    this.status = status;
  }
}

/** Calls the HTTP API; resolves with the JSON answer, rejects with RemoteError. */
export async function apiRequest(target: Target, method: 'GET' | 'POST', path: string, body?: unknown): Promise<unknown> {
  const url = new URL(path.replace(/^\//, ''), target.base);
  const headers: Record<string, string> = { accept: 'application/json' };
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (target.apiKey) headers.authorization = `Bearer ${target.apiKey}`;
  let res: Response;
  try {
    res = await fetch(url, { method, headers, body: body === undefined ? null : JSON.stringify(body), signal: AbortSignal.timeout(30_000) });
  } catch (err) {
    throw new RemoteError('unreachable', `cannot reach ${target.base.origin}: ${describeNetworkError(err)}`);
  }
  const text = await res.text();
  const parsed = safeJsonParse(text)?.value as { error?: { code?: unknown; message?: unknown } } | undefined;
  if (!res.ok) {
    const code = typeof parsed?.error?.code === 'string' ? parsed.error.code : `http_${res.status}`;
    const message = typeof parsed?.error?.message === 'string' ? parsed.error.message : res.statusText;
    throw new RemoteError(code, message, res.status);
  }
  if (parsed === undefined) throw new RemoteError('bad_response', `the server answered ${res.status} with a body that is not JSON`);
  return parsed;
}

function describeNetworkError(err: unknown): string {
  const cause = (err as { cause?: { code?: unknown; message?: unknown } }).cause;
  if (cause && typeof cause.code === 'string') return cause.code;
  if (err instanceof Error && err.name === 'TimeoutError') return 'timed out';
  return err instanceof Error ? err.message : String(err);
}

export function webSocketUrl(target: Target): string {
  const url = new URL('ws', target.base);
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  return url.toString();
}

export interface ProtocolHandlers {
  /** A server push (`{"push": …}`). */
  onPush(message: Record<string, unknown>): void;
  /** The socket closed (after `open()` resolved). */
  onClose(code: number, reason: string): void;
}

/**
 * One WebSocket connection speaking herald's command protocol: `open()` connects and sends
 * `connect`; `request()` sends a command and resolves with its result.
 */
export class ProtocolSocket {
  private readonly ws: WebSocket;
  private readonly pending = new Map<number, { resolve(v: unknown): void; reject(e: Error): void }>();
  private nextId = 1;
  private closed = false;
  private opened = false;
  private livenessTimer: NodeJS.Timeout | undefined;
  private livenessMs = 0;
  private readonly handlers: ProtocolHandlers;

  constructor(url: string, handlers: ProtocolHandlers) {
    this.handlers = handlers;
    this.ws = new WebSocket(url, { handshakeTimeout: 10_000, maxPayload: 64 * 1024 * 1024 });
  }

  /** Connects and authenticates; resolves with the `connect` result. */
  open(token: string | undefined): Promise<ConnectResult> {
    return new Promise((resolve, reject) => {
      const ws = this.ws;
      ws.on('error', (err) => {
        if (this.closed) return;
        reject(new RemoteError('unreachable', describeNetworkError({ cause: err, message: (err as Error).message })));
      });
      ws.on('unexpected-response', (_req, res) => {
        reject(new RemoteError(`http_${res.statusCode ?? 0}`, `WebSocket upgrade refused with HTTP ${res.statusCode ?? 0}`, res.statusCode));
        res.resume();
        ws.terminate();
      });
      ws.on('message', (data, isBinary) => {
        this.alive();
        if (!isBinary) this.onMessage(data.toString());
      });
      ws.on('ping', () => this.alive());
      ws.on('close', (code, reason) => {
        this.closed = true;
        clearTimeout(this.livenessTimer);
        const why = reason.toString();
        for (const p of this.pending.values()) p.reject(new RemoteError('closed', `connection closed (${code}${why ? ` ${why}` : ''})`));
        this.pending.clear();
        reject(new RemoteError('closed', `connection closed (${code}${why ? ` ${why}` : ''})`));
        if (this.opened) this.handlers.onClose(code, why);
      });
      ws.on('open', () => {
        this.request('connect', token === undefined ? {} : { token }).then((result) => {
          const r = result as ConnectResult;
          // A silent peer is gone: no ping nor message within twice the ping interval (+5 s).
          this.livenessMs = (Math.max(1, r.ping) * 2 + 5) * 1000;
          this.opened = true;
          this.alive();
          resolve(r);
        }, reject);
      });
    });
  }

  request(op: string, fields: Record<string, unknown>): Promise<unknown> {
    if (this.closed || this.ws.readyState !== WebSocket.OPEN) return Promise.reject(new RemoteError('closed', 'connection closed'));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.ws.send(JSON.stringify({ id, op, ...fields }));
    });
  }

  /** Closes normally; the socket is destroyed if the server does not finish the handshake within 1 s. */
  close(): void {
    clearTimeout(this.livenessTimer);
    if (this.ws.readyState === WebSocket.CLOSED) return;
    if (this.ws.readyState === WebSocket.CONNECTING) {
      this.ws.terminate();
      return;
    }
    this.ws.close(1000);
    setTimeout(() => this.ws.terminate(), 1000).unref();
  }

  private alive(): void {
    if (this.livenessMs === 0 || this.closed) return;
    clearTimeout(this.livenessTimer);
    this.livenessTimer = setTimeout(() => this.ws.terminate(), this.livenessMs);
    this.livenessTimer.unref();
  }

  private onMessage(text: string): void {
    const msg = safeJsonParse(text)?.value;
    if (!msg || typeof msg !== 'object' || Array.isArray(msg)) return;
    const m = msg as Record<string, unknown>;
    if (typeof m.push === 'string') {
      this.handlers.onPush(m);
      return;
    }
    const id = m.id;
    const waiter = typeof id === 'number' ? this.pending.get(id) : undefined;
    if (waiter) {
      this.pending.delete(id as number);
      const error = m.error as { code?: unknown; message?: unknown } | undefined;
      if (error) waiter.reject(new RemoteError(String(error.code), String(error.message)));
      else waiter.resolve(m.result);
      return;
    }
    const error = m.error as { code?: unknown; message?: unknown } | undefined;
    if (error) process.stderr.write(`herald: server error: ${String(error.code)}: ${String(error.message)}\n`);
  }
}
