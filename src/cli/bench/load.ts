/**
 * The subscriber side of `herald bench`, run in its own process (forked by the bench command)
 * so that it neither shares an event loop with the publisher nor hides its CPU cost.
 * It talks to its parent over IPC only: see `LoadRequest` and `LoadReply`.
 */
import { PollSubscriber, SseSubscriber } from './http-subscribers.js';
import { type Integrity, type ScenarioData, SubState, Verifier } from './verify.js';
import { type Endpoint, WsSubscriber } from './ws-subscriber.js';

export type Transport = 'ws' | 'sse' | 'poll';

export type LoadRequest =
  | { type: 'open'; endpoint: Endpoint; transport: Transport; channel: string; count: number; firstIndex: number; sources: string[]; timeoutMs: number }
  | { type: 'status' }
  | { type: 'collect'; scenario: number; lastOffset: number }
  /** Replaces the subscribers that were closed by fresh ones, so the next scenario has them all. */
  | { type: 'refill'; timeoutMs: number }
  | { type: 'close' };

export interface LoadStatus {
  /** Lowest in-order position over the subscribers still connected (null: none connected). */
  minPosition: number | null;
  open: number;
  closed: number;
  /** Deliveries since the start, any scenario. */
  total: number;
  /** CPU time of this process, µs. */
  cpuUs: number;
}

export type LoadReply =
  | { type: 'opened'; opened: number; error?: string }
  | ({ type: 'status' } & LoadStatus)
  | { type: 'collected'; scenario: ScenarioData; integrity: Integrity; closes: Record<string, number>; problems: string[] }
  | { type: 'closed' };

type Subscriber = WsSubscriber | SseSubscriber | PollSubscriber;

/** Connections being opened at once. */
const OPEN_CONCURRENCY = 64;

let verifier: Verifier | undefined;
const subscribers: Subscriber[] = [];

function send(reply: LoadReply): void {
  process.send?.(reply);
}

function cpuUs(): number {
  const u = process.cpuUsage();
  return u.user + u.system;
}

let opened: Extract<LoadRequest, { type: 'open' }> | undefined;

function makeSubscriber(req: Extract<LoadRequest, { type: 'open' }>, v: Verifier, index: number): { sub: Subscriber; source: string | undefined } {
  const state = new SubState(index);
  const source = req.sources.length > 0 ? req.sources[index % req.sources.length] : undefined;
  const Kind = req.transport === 'ws' ? WsSubscriber : req.transport === 'sse' ? SseSubscriber : PollSubscriber;
  return { sub: new Kind(state, v, req.endpoint, req.channel, source), source };
}

/** Opens a subscriber for each slot (`slots[i]` is the array position, `indexes[i]` its number). */
async function openSlots(indexes: number[], slots: number[], timeoutMs: number): Promise<string | undefined> {
  const req = opened!;
  const v = verifier!;
  let next = 0;
  let firstError: string | undefined;
  const worker = async (): Promise<void> => {
    while (next < indexes.length && firstError === undefined) {
      const i = next++;
      const { sub, source } = makeSubscriber(req, v, indexes[i]!);
      try {
        await sub.open(timeoutMs);
        subscribers[slots[i]!] = sub;
      } catch (err) {
        const message = (err as Error).message;
        firstError ??= message.startsWith('transport not available') ? message : `subscriber ${indexes[i]}${source ? ` (from ${source})` : ''}: ${message}`;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(OPEN_CONCURRENCY, indexes.length) }, worker));
  return firstError;
}

async function open(req: Extract<LoadRequest, { type: 'open' }>): Promise<void> {
  opened = req;
  verifier = new Verifier(req.channel);
  const indexes = Array.from({ length: req.count }, (_, i) => req.firstIndex + i);
  const error = await openSlots(indexes, indexes.map((_, i) => i), req.timeoutMs);
  const live = subscribers.filter(Boolean);
  subscribers.length = 0;
  subscribers.push(...live);
  const count = live.length;
  send({ type: 'opened', opened: count, ...(error !== undefined ? { error } : {}) });
}

async function refill(timeoutMs: number): Promise<void> {
  const slots: number[] = [];
  const indexes: number[] = [];
  subscribers.forEach((s, i) => {
    if (s.state.retired) {
      slots.push(i);
      indexes.push(s.state.index);
    }
  });
  const error = slots.length > 0 && opened ? await openSlots(indexes, slots, timeoutMs) : undefined;
  const count = subscribers.filter((s) => !s.state.closed).length;
  send({ type: 'opened', opened: count, ...(error !== undefined ? { error } : {}) });
}

function status(): LoadStatus {
  let min: number | null = null;
  let open = 0;
  for (const s of subscribers) {
    if (s.state.closed) continue;
    open++;
    const p = s.state.position;
    if (min === null || p < min) min = p;
  }
  return { minPosition: min, open, closed: subscribers.length - open, total: verifier?.total ?? 0, cpuUs: cpuUs() };
}

/**
 * Ends scenario `scenario`: whatever a subscriber has not received up to `lastOffset` by now is
 * lost, and a subscriber the server closed is reported (once).
 */
function collect(scenario: number, lastOffset: number): void {
  const v = verifier ?? new Verifier('');
  const closes: Record<string, number> = {};
  for (const s of subscribers) {
    const st = s.state;
    // A subscriber closed in an earlier scenario was reported there.
    if (st.retired) continue;
    if (st.closed) {
      st.retired = true;
      const key = `${st.closeCode}${st.closeReason ? ` ${st.closeReason}` : ''}`;
      closes[key] = (closes[key] ?? 0) + 1;
    }
    const have = Math.max(st.position, st.ignoreUpTo);
    if (have < lastOffset) {
      v.integrity.lost += lastOffset - have;
      st.ignoreUpTo = lastOffset;
      st.expected = Math.max(st.expected, lastOffset + 1);
      if (!st.closed) {
        // Still behind after the drain: its backlog would load the next scenario, so it goes
        // (and is replaced by a fresh subscriber before the next one).
        st.markClosed(0, 'dropped by the benchmark: still behind after the drain');
        st.retired = true;
        closes[st.closeReason] = (closes[st.closeReason] ?? 0) + 1;
        s.close();
      }
    }
    for (const o of st.missing) if (o <= lastOffset) st.missing.delete(o);
  }
  const problems = v.problems;
  v.problems = [];
  send({ type: 'collected', scenario: v.takeScenario(scenario), integrity: v.takeIntegrity(), closes, problems });
}

function closeAll(): void {
  for (const s of subscribers) s.close();
  send({ type: 'closed' });
  setTimeout(() => process.exit(0), 200).unref();
}

if (process.send) {
  process.on('message', (msg: LoadRequest) => {
    switch (msg.type) {
      case 'open':
        void open(msg);
        break;
      case 'status':
        send({ type: 'status', ...status() });
        break;
      case 'collect':
        collect(msg.scenario, msg.lastOffset);
        break;
      case 'refill':
        void refill(msg.timeoutMs);
        break;
      case 'close':
        closeAll();
        break;
    }
  });
  // The parent went away: nothing left to measure.
  process.on('disconnect', () => {
    for (const s of subscribers) s.close();
    setTimeout(() => process.exit(0), 200).unref();
  });
}
