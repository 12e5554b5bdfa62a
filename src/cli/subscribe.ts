/**
 * `herald subscribe <channel…> [--since <epoch>:<offset>]`: prints every event as one JSON line on
 * stdout; status goes to stderr. On a dropped connection it reconnects (with backoff) and resumes
 * each channel from the last event printed, so nothing is lost or printed twice.
 */
import { channelProblem, shouldReconnect, type HeraldEvent, type Position, type SubscribeResult } from '../protocol/index.js';
import { UsageError, lastValue, type ParsedArgs } from './args.js';
import { ProtocolSocket, RemoteError, resolveTarget, webSocketUrl } from './remote.js';

/** Answers that will not change by trying again. */
const FATAL = new Set(['bad_request', 'unauthorized', 'forbidden', 'not_found', 'limit_exceeded', 'too_large']);
const MAX_BACKOFF_MS = 5_000;

export function parseSince(text: string | undefined): Position | undefined {
  if (text === undefined) return undefined;
  const i = text.lastIndexOf(':');
  const epoch = text.slice(0, i);
  const offset = text.slice(i + 1);
  if (i <= 0 || epoch.length > 64 || !/^\d{1,15}$/.test(offset)) throw new UsageError(`--since must be <epoch>:<offset>, got ${JSON.stringify(text)}`);
  return { epoch, offset: Number(offset) };
}

export function runSubscribe(args: ParsedArgs): Promise<number> {
  const channels = [...new Set(args.positionals)];
  if (channels.length === 0) throw new UsageError('subscribe needs at least one channel');
  for (const channel of channels) {
    const problem = channelProblem(channel);
    if (problem) throw new UsageError(`${problem}: ${JSON.stringify(channel)}`);
  }
  const since = parseSince(lastValue(args, 'since'));
  const target = resolveTarget(args, process.env);
  const url = webSocketUrl(target);
  /** Where each channel's output stands: the next run resumes from here. */
  const positions = new Map<string, Position | undefined>(channels.map((c) => [c, since]));
  const status = (line: string): void => {
    process.stderr.write(`herald: ${line}\n`);
  };

  const emit = (event: HeraldEvent): void => {
    const p = positions.get(event.channel);
    if (p && p.epoch === event.epoch && event.offset <= p.offset) return; // already printed
    process.stdout.write(`${JSON.stringify(event)}\n`);
    if (positions.has(event.channel)) positions.set(event.channel, { epoch: event.epoch, offset: event.offset });
  };

  return new Promise<number>((done) => {
    let stopped = false;
    let socket: ProtocolSocket | undefined;
    let retryTimer: NodeJS.Timeout | undefined;
    let attempt = 0;

    const finish = (code: number): void => {
      if (stopped) return;
      stopped = true;
      clearTimeout(retryTimer);
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      socket?.close();
      done(code);
    };
    const onSignal = (): void => finish(0);
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);

    const retry = (why: string): void => {
      if (stopped) return;
      const delay = Math.round(Math.min(MAX_BACKOFF_MS, 250 * 2 ** Math.min(attempt, 5)) * (0.5 + Math.random() / 2));
      attempt++;
      status(`${why}; reconnecting in ${delay} ms`);
      retryTimer = setTimeout(() => void start(), delay);
    };

    const onPush = (m: Record<string, unknown>): void => {
      if (m.push === 'event' && isEvent(m.event)) emit(m.event);
      else if (m.push === 'unsubscribe' && typeof m.channel === 'string') {
        status(`the server ended the subscription to ${JSON.stringify(m.channel)}: ${String(m.reason)}`);
        positions.delete(m.channel);
        if (positions.size === 0) finish(1);
      } else if (m.push === 'disconnect') status(`disconnected by the server: ${String(m.code)} ${String(m.reason)}`);
    };

    const start = async (): Promise<void> => {
      const s: ProtocolSocket = new ProtocolSocket(url, {
        onPush,
        onClose: (code, reason) => {
          if (socket !== s || stopped) return;
          socket = undefined;
          const why = `connection closed (${code}${reason ? ` ${reason}` : ''})`;
          if (shouldReconnect(code)) retry(why);
          else {
            status(`${why}; not reconnecting`);
            finish(1);
          }
        },
      });
      socket = s;
      try {
        await s.open(target.token);
        for (const channel of [...positions.keys()]) {
          const from = positions.get(channel);
          const r = (await s.request('subscribe', from ? { channel, since: from } : { channel })) as SubscribeResult;
          if (from && !r.recovered) status(`could not resume ${JSON.stringify(channel)} from ${from.epoch}:${from.offset}; printing the retained events`);
          for (const event of r.events) emit(event);
          let offset = r.offset;
          for (const event of r.events) if (event.epoch === r.epoch) offset = Math.max(offset, event.offset);
          positions.set(channel, { epoch: r.epoch, offset });
          status(`subscribed to ${JSON.stringify(channel)} at ${r.epoch}:${offset}`);
        }
        attempt = 0;
      } catch (err) {
        if (stopped || socket !== s) return;
        socket = undefined;
        s.close();
        if (err instanceof RemoteError && FATAL.has(err.code)) {
          status(`${err.code}: ${err.message}`);
          finish(1);
        } else retry(err instanceof Error ? err.message : String(err));
      }
    };

    void start();
  });
}

function isEvent(value: unknown): value is HeraldEvent {
  if (!value || typeof value !== 'object') return false;
  const e = value as Record<string, unknown>;
  return typeof e.channel === 'string' && typeof e.epoch === 'string' && typeof e.offset === 'number';
}
