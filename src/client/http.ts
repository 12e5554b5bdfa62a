/**
 * HTTP pieces of the SSE and long-poll transports: the HTTP API calls (publish, history, presence
 * over `/api/*`) and a Server-Sent Events parser. Uses the global `fetch` (browsers, Node 20).
 */
import { safeJsonParse } from '../protocol/index.js';
import { HeraldClientError, fromWireError } from './errors.js';

export interface FetchOptions {
  method?: 'GET' | 'POST';
  accept?: string;
  body?: unknown;
  token?: string | undefined;
  timeoutMs: number;
  signal?: AbortSignal;
}

/** A JSON request; a non-2xx answer becomes the server's HeraldClientError (SPEC §2 error body). */
export async function fetchJson(url: string, o: FetchOptions): Promise<unknown> {
  const res = await fetchWithTimeout(url, o);
  let text: string;
  try {
    text = await res.text();
  } catch (cause) {
    throw new HeraldClientError(o.signal?.aborted ? 'closed' : 'disconnected', `reading the answer from ${url} failed`, { cause });
  }
  const parsed = text === '' ? undefined : safeJsonParse(text);
  if (!res.ok) throw httpError(res.status, parsed?.value);
  if (!parsed) throw new HeraldClientError('internal', `${url}: the answer is not JSON`);
  return parsed.value;
}

/** fetch with a deadline: `timeout` when it passes, `disconnected` when the network fails. */
export async function fetchWithTimeout(url: string, o: FetchOptions): Promise<Response> {
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), o.timeoutMs);
  const onAbort = (): void => abort.abort();
  o.signal?.addEventListener('abort', onAbort);
  const headers: Record<string, string> = { accept: o.accept ?? 'application/json' };
  if (o.body !== undefined) headers['content-type'] = 'application/json';
  // An API key (SPEC §5) when the app gave one as its token; ignored by a server without keys.
  if (o.token !== undefined) headers.authorization = `Bearer ${o.token}`;
  try {
    const init: RequestInit = { method: o.method ?? 'GET', headers, signal: abort.signal, cache: 'no-store' };
    if (o.body !== undefined) init.body = JSON.stringify(o.body);
    return await fetch(url, init);
  } catch (cause) {
    if (o.signal?.aborted) throw new HeraldClientError('closed', 'request cancelled', { cause });
    if (abort.signal.aborted) throw new HeraldClientError('timeout', `no answer from ${url} within ${o.timeoutMs} ms`, { cause });
    throw new HeraldClientError('disconnected', `request to ${url} failed`, { cause });
  } finally {
    clearTimeout(timer);
    o.signal?.removeEventListener('abort', onAbort);
  }
}

export function httpError(status: number, body: unknown): HeraldClientError {
  const error = body && typeof body === 'object' ? (body as { error?: unknown }).error : undefined;
  if (error !== undefined) return fromWireError(error);
  const code = status === 404 ? 'not_found' : status === 429 ? 'rate_limited' : status >= 500 ? 'unavailable' : 'bad_request';
  return new HeraldClientError(code, `HTTP ${status}`);
}

/** Whether an HTTP failure with this code is worth another try later (the others are refusals). */
export function retryable(code: string): boolean {
  return code === 'unavailable' || code === 'internal' || code === 'rate_limited' || code === 'timeout' || code === 'disconnected';
}

export interface SseMessage {
  event: string;
  data: string;
  id: string | undefined;
}

/**
 * The text/event-stream format (WHATWG HTML §9.2.6): lines end in CRLF, LF or CR; `:` starts a
 * comment; `data` lines join with LF; a blank line dispatches. Pure: feed it decoded text.
 */
export class SseParser {
  private buffer = '';
  private event = '';
  private data: string[] = [];
  private id: string | undefined;
  private readonly onMessage: (m: SseMessage) => void;

  constructor(onMessage: (m: SseMessage) => void) {
    this.onMessage = onMessage;
  }

  feed(text: string): void {
    const s = this.buffer + text;
    let start = 0;
    let i = 0;
    while (i < s.length) {
      const c = s.charCodeAt(i);
      if (c === 13) {
        if (i + 1 === s.length) break; // a CR last: wait to see whether an LF follows
        this.line(s.slice(start, i));
        i += s.charCodeAt(i + 1) === 10 ? 2 : 1;
        start = i;
      } else if (c === 10) {
        this.line(s.slice(start, i));
        start = ++i;
      } else i++;
    }
    this.buffer = s.slice(start);
  }

  private line(line: string): void {
    if (line === '') {
      if (this.data.length > 0) {
        this.onMessage({ event: this.event || 'message', data: this.data.join('\n'), id: this.id });
      }
      this.event = '';
      this.data = [];
      return;
    }
    if (line.charCodeAt(0) === 58 /* : */) return;
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.charCodeAt(0) === 32) value = value.slice(1);
    if (field === 'event') this.event = value;
    else if (field === 'data') this.data.push(value);
    else if (field === 'id' && !value.includes('\u0000')) this.id = value;
  }
}
