/** Options of the Redis engine: defaults next to their docs, validated once, then frozen. */
import type { RedisOptions } from 'ioredis';
import { silentLogger, type Logger } from '../../core/logger.js';

export interface RedisEngineOptions {
  /** One Redis server: `redis://[[user]:password@]host[:port][/db]` or `rediss://…` for TLS. */
  url?: string;
  /**
   * Several Redis servers. Without `cluster`: independent servers, channels spread over them by a
   * stable hash of the channel name (sharding; every key and the pub/sub of a channel live on its
   * server). With `cluster: true`: the startup nodes of one Redis Cluster.
   */
  urls?: readonly string[];
  /** The URLs are nodes of a Redis Cluster. Default false. */
  cluster?: boolean;
  /** Prefix of every key and pub/sub channel, so several herald deployments can share a Redis. Default `herald`. */
  prefix?: string;
  /** Seconds a presence entry lives without being refreshed by its node (a crashed node's clients vanish within it). Default 30. */
  presenceTtl?: number;
  /**
   * Seconds a channel's epoch and offset are kept after its last publish or read; 0 = for ever.
   * Bounds the keys left behind by channels nobody uses any more. Default 30 days.
   */
  metaTtl?: number;
  /** Seconds a Redis command may take before the operation fails with `unavailable`. Default 5. */
  commandTimeout?: number;
  /** Extra ioredis options (TLS, credentials, …), applied under the engine's own. */
  redisOptions?: RedisOptions;
  logger?: Logger;
}

export interface ResolvedRedisOptions {
  readonly urls: readonly string[];
  readonly cluster: boolean;
  readonly prefix: string;
  readonly presenceTtlMs: number;
  readonly metaTtlMs: number;
  readonly commandTimeoutMs: number;
  readonly redisOptions: RedisOptions;
  readonly logger: Logger;
}

export const REDIS_ENGINE_DEFAULTS = Object.freeze({
  prefix: 'herald',
  presenceTtl: 30,
  metaTtl: 30 * 24 * 3600,
  commandTimeout: 5,
});

function fail(key: string, message: string): never {
  throw new TypeError(`redis engine option "${key}" ${message}`);
}

function seconds(key: string, value: number | undefined, fallback: number, allowZero: boolean): number {
  const v = value ?? fallback;
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0 || (!allowZero && v === 0)) {
    fail(key, allowZero ? 'must be a number of seconds >= 0' : 'must be a number of seconds > 0');
  }
  return Math.round(v * 1000);
}

export function resolveRedisOptions(options: RedisEngineOptions): ResolvedRedisOptions {
  if (options.url !== undefined && options.urls !== undefined) fail('url', 'and "urls" are exclusive: give one');
  const urls = options.urls ?? (options.url !== undefined ? [options.url] : []);
  if (!Array.isArray(urls) || urls.length === 0) fail('url', 'is required (or "urls")');
  for (const u of urls) {
    if (typeof u !== 'string' || !/^rediss?:\/\/./.test(u)) fail(options.urls ? 'urls' : 'url', `must be redis:// or rediss:// URLs, got ${JSON.stringify(u)}`);
  }
  if (new Set(urls).size !== urls.length) fail('urls', 'lists a server twice');
  // ioredis would prefix KEYS but not the pub/sub names inside the scripts: use `prefix`.
  if (options.redisOptions?.keyPrefix !== undefined) fail('redisOptions.keyPrefix', 'is not supported: use "prefix"');
  const prefix = options.prefix ?? REDIS_ENGINE_DEFAULTS.prefix;
  if (typeof prefix !== 'string' || prefix.length === 0 || /[{}]/.test(prefix)) fail('prefix', 'must be a non-empty string without { or }');
  return Object.freeze({
    urls: Object.freeze([...urls]),
    cluster: options.cluster === true,
    prefix,
    presenceTtlMs: seconds('presenceTtl', options.presenceTtl, REDIS_ENGINE_DEFAULTS.presenceTtl, false),
    metaTtlMs: seconds('metaTtl', options.metaTtl, REDIS_ENGINE_DEFAULTS.metaTtl, true),
    commandTimeoutMs: seconds('commandTimeout', options.commandTimeout, REDIS_ENGINE_DEFAULTS.commandTimeout, false),
    redisOptions: Object.freeze({ ...options.redisOptions }),
    logger: options.logger ?? silentLogger,
  });
}
