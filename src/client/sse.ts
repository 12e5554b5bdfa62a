/**
 * The SSE transport (SPEC §3) over `fetch` streaming (Node 20 has no EventSource, and fetch shows
 * error statuses): `GET /sse?channel=…&since=<cursor>&token=…`. The `ready` message's cursor gives
 * each channel's start position; every event advances its channel's position; a `disconnect`
 * message says whether to come back. No byte for 45 s (the server sends a heartbeat every 15 s)
 * means a dead stream.
 */
import { decodeCursor, encodeCursor, safeJsonParse } from '../protocol/index.js';
import { HeraldClientError } from './errors.js';
import { fetchWithTimeout, httpError, SseParser, type SseMessage } from './http.js';
import { StreamTransport } from './stream.js';
import { endpointUrl, isEvent, type CloseInfo } from './transport.js';

export const SSE_IDLE_MS = 45_000;

export class SseTransport extends StreamTransport {
  readonly name = 'sse' as const;
  private streamId = 0;
  private abort: AbortController | undefined;
  private idleTimer: ReturnType<typeof setTimeout> | undefined;
  private serverDisconnect: CloseInfo | undefined;

  protected restart(): void {
    this.stop();
    if (this.positions.size === 0) return;
    const url = new URL(endpointUrl(this.ctx.url, '/sse', 'http'));
    for (const channel of this.positions.keys()) url.searchParams.append('channel', channel);
    const cursor = this.cursor();
    if (cursor.size > 0) url.searchParams.set('since', encodeCursor(cursor));
    if (this.token !== undefined) url.searchParams.set('token', this.token);
    const abort = (this.abort = new AbortController());
    void this.run(this.streamId, url.toString(), abort.signal, this.included());
  }

  protected stop(): void {
    this.streamId++;
    this.abort?.abort();
    this.abort = undefined;
    clearTimeout(this.idleTimer);
  }

  private async run(id: number, url: string, signal: AbortSignal, included: ReturnType<StreamTransport['included']>): Promise<void> {
    const live = (): boolean => id === this.streamId && !this.finished;
    let reader: ReadableStreamDefaultReader<Uint8Array>;
    try {
      const res = await fetchWithTimeout(url, { timeoutMs: this.ctx.timeout, signal, accept: 'text/event-stream' });
      if (!res.ok || !res.body) {
        const text = await res.text().catch(() => '');
        if (live()) this.failed(included, httpError(res.status, safeJsonParse(text)?.value));
        return;
      }
      reader = res.body.getReader();
    } catch (error) {
      if (live()) this.failed(included, error as HeraldClientError);
      return;
    }
    signal.addEventListener('abort', () => void reader.cancel().catch(() => {}), { once: true });
    const decoder = new TextDecoder();
    const parser = new SseParser((m) => {
      if (live()) this.message(m, included);
    });
    this.touch(id);
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (!live()) return;
        if (done) break;
        this.touch(id);
        parser.feed(decoder.decode(value, { stream: true }));
      }
    } catch {
      // The connection failed mid-stream: reported below as an abnormal end.
    }
    if (live()) this.finish(this.serverDisconnect ?? { code: 1006, reason: 'the event stream ended', reconnect: true, unusable: !this.worked });
  }

  private message(m: SseMessage, included: ReturnType<StreamTransport['included']>): void {
    const value = safeJsonParse(m.data)?.value as Record<string, unknown> | undefined;
    switch (m.event) {
      case 'ready': {
        const cursor = typeof value?.cursor === 'string' ? decodeCursor(value.cursor) : undefined;
        if (!cursor) {
          this.finish({ code: 1006, reason: 'malformed ready message', reconnect: true });
          return;
        }
        this.started(included, cursor);
        return;
      }
      case 'event':
        if (isEvent(value)) this.event(value);
        else this.ctx.handlers.onError(new HeraldClientError('bad_request', 'the server sent a malformed event'));
        return;
      case 'disconnect':
        this.serverDisconnect = {
          code: typeof value?.code === 'number' ? value.code : 1000,
          reason: typeof value?.reason === 'string' ? value.reason : '',
          reconnect: value?.reconnect === true,
        };
        return;
    }
  }

  private touch(id: number): void {
    clearTimeout(this.idleTimer);
    this.idleTimer = setTimeout(() => {
      if (id === this.streamId && !this.finished) this.finish({ code: 1006, reason: `nothing from the event stream for ${SSE_IDLE_MS / 1000} s`, reconnect: true });
    }, SSE_IDLE_MS);
  }
}
