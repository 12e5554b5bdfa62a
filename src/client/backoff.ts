/** Reconnect delays: exponential backoff with jitter. */
export interface ReconnectOptions {
  /** First delay, ms. Default 500. */
  minDelay: number;
  /** Largest delay, ms. Default 20,000. */
  maxDelay: number;
  /** Growth per failed attempt. Default 2. */
  factor: number;
  /**
   * 0..1: the share of the delay that is random. A delay d becomes a value in
   * [d × (1 − jitter), d], so clients dropped together do not all come back at once. Default 0.5.
   */
  jitter: number;
}

export const RECONNECT_DEFAULTS: Readonly<ReconnectOptions> = Object.freeze({ minDelay: 500, maxDelay: 20_000, factor: 2, jitter: 0.5 });

export function resolveReconnect(options: Partial<ReconnectOptions> | undefined): Readonly<ReconnectOptions> {
  const r = { ...RECONNECT_DEFAULTS, ...options };
  const bad = (key: keyof ReconnectOptions, why: string): never => {
    throw new TypeError(`reconnect.${key} ${why}`);
  };
  if (!(r.minDelay >= 0)) bad('minDelay', 'must be a number >= 0');
  if (!(r.maxDelay >= r.minDelay)) bad('maxDelay', 'must be >= reconnect.minDelay');
  if (!(r.factor >= 1)) bad('factor', 'must be >= 1');
  if (!(r.jitter >= 0 && r.jitter <= 1)) bad('jitter', 'must be between 0 and 1');
  return Object.freeze(r);
}

/** The delay before reconnect attempt number `attempt` (0 for the first after a drop). */
export function backoffDelay(attempt: number, o: Readonly<ReconnectOptions>, random: () => number = Math.random): number {
  const base = Math.min(o.maxDelay, o.minDelay * Math.pow(o.factor, Math.min(attempt, 64)));
  return Math.round(base * (1 - o.jitter * random()));
}
