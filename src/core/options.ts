/** Namespace options (SPEC §8) and hub limits, with their defaults next to their docs. */
import { namespaceOf } from '../protocol/index.js';
import type { ChannelOptions } from './engine.js';

export interface NamespaceOptions {
  /** Events kept per channel. Default 250. */
  historySize: number;
  /** Seconds an event is kept; 0 = no limit. Default 0. */
  historyTtl: number;
  /** Remove an event once read (golongpoll's DeleteEventAfterFirstRetrieval). Default false. */
  deleteAfterRead: boolean;
  /** Track who is subscribed. Default true. */
  presence: boolean;
  /** Push join/leave to subscribers. Default false. */
  joinLeave: boolean;
  /** Clients without a token may subscribe. Default: true when no authentication is configured. */
  anonymousSubscribe: boolean;
  /** Clients without a token may publish. Default: true when no authentication is configured. */
  anonymousPublish: boolean;
}

export const NAMESPACE_DEFAULTS: Readonly<NamespaceOptions> = Object.freeze({
  historySize: 250,
  historyTtl: 0,
  deleteAfterRead: false,
  presence: true,
  joinLeave: false,
  anonymousSubscribe: true,
  anonymousPublish: true,
});

export const NAMESPACE_KEYS = Object.keys(NAMESPACE_DEFAULTS) as (keyof NamespaceOptions)[];

export interface ResolvedNamespace extends NamespaceOptions {
  readonly channel: ChannelOptions;
}

/** Looks up a channel's namespace options; unknown namespaces use the default namespace "". */
export class Namespaces {
  private readonly byName = new Map<string, ResolvedNamespace>();
  private readonly fallback: ResolvedNamespace;

  constructor(config: Record<string, Partial<NamespaceOptions>> = {}, base: Partial<NamespaceOptions> = {}) {
    const root = { ...NAMESPACE_DEFAULTS, ...base, ...(config[''] ?? {}) };
    this.fallback = resolve(root);
    for (const [name, opts] of Object.entries(config)) {
      if (name !== '') this.byName.set(name, resolve({ ...root, ...opts }));
    }
  }

  forChannel(channel: string): ResolvedNamespace {
    if (this.byName.size === 0) return this.fallback;
    return this.byName.get(namespaceOf(channel)) ?? this.fallback;
  }

  get maxHistorySize(): number {
    let max = this.fallback.historySize;
    for (const ns of this.byName.values()) max = Math.max(max, ns.historySize);
    return max;
  }
}

function resolve(opts: NamespaceOptions): ResolvedNamespace {
  return Object.freeze({
    ...opts,
    channel: Object.freeze({ historySize: opts.historySize, historyTtlMs: opts.historyTtl * 1000, deleteAfterRead: opts.deleteAfterRead }),
  });
}

export interface HubLimits {
  /** Largest serialised event, in bytes. Default 65,536. */
  maxEventBytes: number;
  /** Channels one connection, SSE stream or poll may hold. Default 128. */
  maxChannelsPerClient: number;
}

export const HUB_LIMIT_DEFAULTS: Readonly<HubLimits> = Object.freeze({ maxEventBytes: 65_536, maxChannelsPerClient: 128 });
