/**
 * The long-poll transport (SPEC §4): `GET /poll?channel=…&cursor=…&timeout=30&token=…` in a loop,
 * each answer's cursor feeding the next poll. A poll that adds channels asks `timeout=1`, so their
 * subscribes are answered within about a second even on a quiet channel.
 */
import { decodeCursor, encodeCursor, type HeraldEvent, type Position } from '../protocol/index.js';
import { HeraldClientError } from './errors.js';
import { fetchJson } from './http.js';
import { StreamTransport } from './stream.js';
import { endpointUrl, isEvent } from './transport.js';

/** Seconds a poll waits on the server (SPEC §4 default). */
export const POLL_TIMEOUT_S = 30;

export class LongPollTransport extends StreamTransport {
  readonly name = 'longpoll' as const;
  private pollId = 0;
  private abort: AbortController | undefined;

  protected restart(): void {
    this.stop();
    if (this.positions.size === 0) return;
    const abort = (this.abort = new AbortController());
    void this.loop(this.pollId, abort.signal);
  }

  protected stop(): void {
    this.pollId++;
    this.abort?.abort();
    this.abort = undefined;
  }

  private async loop(id: number, signal: AbortSignal): Promise<void> {
    const live = (): boolean => id === this.pollId && !this.finished;
    while (live()) {
      const included = this.included();
      const timeout = included.size > 0 ? 1 : POLL_TIMEOUT_S;
      const url = new URL(endpointUrl(this.ctx.url, '/poll', 'http'));
      for (const channel of this.positions.keys()) url.searchParams.append('channel', channel);
      const cursor = this.cursor();
      if (cursor.size > 0) url.searchParams.set('cursor', encodeCursor(cursor));
      url.searchParams.set('timeout', String(timeout));
      if (this.token !== undefined) url.searchParams.set('token', this.token);
      let body: unknown;
      try {
        body = await fetchJson(url.toString(), { timeoutMs: timeout * 1000 + this.ctx.timeout, signal });
      } catch (error) {
        if (live()) this.failed(included, error as HeraldClientError);
        return;
      }
      if (!live()) return;
      const answer = body as { events?: unknown; cursor?: unknown };
      const next = typeof answer.cursor === 'string' ? decodeCursor(answer.cursor) : undefined;
      const events = Array.isArray(answer.events) ? answer.events : undefined;
      if (!next || !events || !events.every(isEvent)) {
        this.finish({ code: 1006, reason: 'malformed poll answer', reconnect: true });
        return;
      }
      this.started(included, startPositions(next, events));
      for (const event of events) {
        if (!live()) return;
        this.event(event);
      }
    }
  }
}

/** Each channel's position before the answer's events: before its first event, else the cursor's. */
function startPositions(cursor: Map<string, Position>, events: HeraldEvent[]): Map<string, Position> {
  const starts = new Map(cursor);
  const seen = new Set<string>();
  for (const e of events) {
    if (seen.has(e.channel)) continue;
    seen.add(e.channel);
    starts.set(e.channel, { epoch: e.epoch, offset: e.offset - 1 });
  }
  return starts;
}
