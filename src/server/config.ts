/**
 * Server configuration (SPEC §8), resolved in one place: command-line flags > `HERALD_*`
 * environment variables > a JSON or YAML file (`--config`) > the defaults below. Every value is
 * validated once, with a message that names the key, and the result is frozen.
 *
 * Names: the camelCase key (`maxMessageBytes`) is the file key; the flag is its kebab-case form
 * (`--max-message-bytes`); the environment variable its upper snake case with a `HERALD_` prefix
 * (`HERALD_MAX_MESSAGE_BYTES`). Lists are comma-separated in flags and environment variables
 * (a list flag may also be repeated) and arrays or comma-separated strings in a file.
 */
import { readFile } from 'node:fs/promises';
import { extname, resolve as resolvePath } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { channelProblem } from '../protocol/index.js';
import { NAMESPACE_DEFAULTS, NAMESPACE_KEYS, type NamespaceOptions } from '../core/index.js';
import { LIMIT_DEFAULTS, TransportLimits } from '../transports/limits.js';

export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal' | 'silent';
export const LOG_LEVELS: readonly LogLevel[] = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'];

/** `always`: acknowledge a publish once its journal record is fsynced; `never`: leave it to the OS; a number: fsync every that many ms. */
export type FsyncPolicy = 'always' | 'never' | number;

export type NamespacesConfig = Readonly<Record<string, Readonly<Partial<NamespaceOptions>>>>;

export interface HeraldConfig {
  /** Interface to listen on. Default `127.0.0.1`. */
  host: string;
  /** TCP port; 0 picks any free port. Default 8080. */
  port: number;
  /** The JSON or YAML file the other options were read from, if any. */
  config: string | undefined;
  /** Redis URL (`redis://…`, `rediss://…`) for the multi-node engine. Default none: the memory engine. */
  redis: string | undefined;
  /** Prefix of every Redis key and channel. Default `herald`. */
  redisPrefix: string;
  /** Seconds after which a crashed node's presence entries vanish (Redis engine). Default 30. */
  presenceTtl: number;
  /** Directory of the durable journal of the memory engine. Default none. */
  journal: string | undefined;
  /** Journal fsync policy. Default `always`: a publish is acknowledged once its record is on disk. */
  fsync: FsyncPolicy;
  /** API keys accepted on `/api/*` (Bearer). Default none: the API is open. */
  apiKey: readonly string[];
  /** HS256 secret for client JWTs (its UTF-8 bytes, at least 32). Default none: no JWT authentication. */
  jwtSecret: string | undefined;
  /** JWKS URL for RS256/ES256 client JWTs. Default none. */
  jwksUrl: string | undefined;
  /** When set, a client JWT's `iss` must equal it. Default none. */
  jwtIssuer: string | undefined;
  /** When set, a client JWT's `aud` must contain it. Default none. */
  jwtAudience: string | undefined;
  /** Origins allowed for WebSocket upgrades and CORS. Default none: same-origin only. */
  allowedOrigins: readonly string[];
  /** Log level. Default `info`. */
  logLevel: LogLevel;
  /** Seconds a chat token stays valid. Default 30. */
  chatTokenTtl: number;
  /** Seconds before a chat room with no one connected closes. Default 300. */
  chatIdleTimeout: number;
  /** Seconds between the server's WebSocket pings. Default 25. */
  pingInterval: number;
  /** Largest WebSocket frame, HTTP request body and serialized event, in bytes. Default 65,536. */
  maxMessageBytes: number;
  /** Channels one connection, SSE stream or poll may hold. Default 128. */
  maxChannelsPerClient: number;
  /** Unsent bytes a WebSocket client may accumulate before it is closed 4008. Default 1,048,576. */
  maxBufferedBytes: number;
  /** Largest long-poll `timeout`, in seconds. Default 110. */
  pollTimeoutMax: number;
  /**
   * Write coalescing window in milliseconds: a WebSocket, SSE stream or poll holds its first ready
   * event this long so that those that follow leave in the same write. 0 = the events of one
   * event-loop turn. Default 0.
   */
  coalesceMs: number;
  /**
   * Long-poll answer pacing, the most in milliseconds: under load, a client whose last event is
   * younger than the pace gets its next answer when that event is that old, with everything
   * published meanwhile. 0 = never pace. Default 250.
   */
  pollPaceMs: number;
  /** Event-loop utilisation (percent) over which long-poll pacing grows; 0 = pace always. Default 50. */
  pollPaceLoad: number;
  /** Commands per second per WebSocket connection (bursts of twice that); 0 = no limit. Default 100. */
  commandRate: number;
  /** Publishes per second per WebSocket connection (bursts of twice that); 0 = no limit. Default 50. */
  publishRate: number;
  /** Commands and HTTP transport requests per second per client address; 0 = no limit. Default 1,000. */
  ipCommandRate: number;
  /** Publishes per second per client address (WebSocket, golongpoll); 0 = no limit. Default 500. */
  ipPublishRate: number;
  /** WebSocket connections, SSE streams and waiting polls per client address; 0 = no limit. Default 1,000. */
  maxConnectionsPerIp: number;
  /** Per-namespace options (file only), e.g. `{"": {…}, "chat": {historySize: 50}}`. Default `{}`. */
  namespaces: NamespacesConfig;
}

export type ConfigErrorCode =
  /** A value is of the wrong type or out of range. */
  | 'invalid_option'
  /** A flag or file key herald does not know. */
  | 'unknown_option'
  /** The config file cannot be read or parsed. */
  | 'config_file'
  /** A valid option whose feature this build does not have yet. */
  | 'not_available';

/** A configuration problem, found at start. `key` is the camelCase option name. */
export class ConfigError extends Error {
  readonly code: ConfigErrorCode;
  readonly key: string;

  constructor(code: ConfigErrorCode, key: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ConfigError';
    this.code = code;
    this.key = key;
  }
}

// ---- option table ---------------------------------------------------------------------------

interface OptionSpec<T> {
  /** One line for `herald serve --help`. */
  readonly doc: string;
  readonly default: T;
  /** Placeholder in the help text; absent for file-only options. */
  readonly arg?: string;
  /** Turns a raw value (a string from a flag or the environment, or a typed file value) into T; throws a reason. */
  readonly parse: (raw: unknown) => T;
  /** Never echo the value in an error message. */
  readonly secret?: boolean;
  /** Only in a config file (or programmatic options). */
  readonly fileOnly?: boolean;
  /** A list: repeated flags add up. */
  readonly list?: boolean;
}

/** A reason a value is refused; parse functions throw it and the resolver adds the key. */
class Invalid extends Error {}

const MiB = 1024 * 1024;

function text(check?: (s: string) => string | undefined) {
  return (raw: unknown): string => {
    if (typeof raw !== 'string') throw new Invalid('must be a string');
    const s = raw.trim();
    if (s === '') throw new Invalid('must not be empty');
    const problem = check?.(s);
    if (problem) throw new Invalid(problem);
    return s;
  };
}

function optional<T>(parse: (raw: unknown) => T) {
  return (raw: unknown): T | undefined => (raw === undefined || raw === null ? undefined : parse(raw));
}

function integer(min: number, max: number, unit = '') {
  return (raw: unknown): number => {
    let n: number;
    if (typeof raw === 'number') n = raw;
    else if (typeof raw === 'string' && /^\s*-?\d+\s*$/.test(raw)) n = Number(raw);
    else throw new Invalid(`must be an integer from ${min} to ${max}${unit}`);
    if (!Number.isSafeInteger(n) || n < min || n > max) throw new Invalid(`must be an integer from ${min} to ${max}${unit}`);
    return n;
  };
}

function list(item: (s: string) => string | undefined) {
  return (raw: unknown): readonly string[] => {
    let items: unknown[];
    if (typeof raw === 'string') items = raw.split(',');
    else if (Array.isArray(raw)) items = raw.flatMap((v) => (typeof v === 'string' ? v.split(',') : [v]));
    else throw new Invalid('must be a list (an array, or comma-separated)');
    const out: string[] = [];
    for (const v of items) {
      if (typeof v !== 'string') throw new Invalid('must be a list of strings');
      const s = v.trim();
      if (s === '') continue;
      const problem = item(s);
      if (problem) throw new Invalid(problem);
      out.push(s);
    }
    return Object.freeze(out);
  };
}

function url(protocols: readonly string[]) {
  return text((s) => {
    let u: URL;
    try {
      u = new URL(s);
    } catch {
      return `must be a URL (${protocols.join(' or ')})`;
    }
    return protocols.includes(u.protocol.slice(0, -1)) ? undefined : `must be a URL (${protocols.join(' or ')})`;
  });
}

function parseFsync(raw: unknown): FsyncPolicy {
  if (raw === 'always' || raw === 'never') return raw;
  try {
    return integer(1, 60_000)(raw);
  } catch {
    throw new Invalid('must be "always", "never" or a number of milliseconds from 1 to 60000');
  }
}

function parseLogLevel(raw: unknown): LogLevel {
  if (typeof raw === 'string' && (LOG_LEVELS as readonly string[]).includes(raw.trim().toLowerCase())) return raw.trim().toLowerCase() as LogLevel;
  throw new Invalid(`must be one of ${LOG_LEVELS.join(', ')}`);
}

const parseHost = text((s) => (/[\s/]/.test(s) ? 'must be a host name or an IP address' : undefined));

const NAMESPACE_INT_MAX: Partial<Record<keyof NamespaceOptions, number>> = { historySize: 1_000_000, historyTtl: 31_536_000 };

function parseNamespaces(raw: unknown): NamespacesConfig {
  if (!isPlainObject(raw)) throw new Invalid('must be an object of namespace name → options');
  // Assigned with defineProperty: a namespace named "__proto__" is a namespace, not a prototype.
  const out: Record<string, Readonly<Partial<NamespaceOptions>>> = {};
  for (const [name, opts] of Object.entries(raw)) {
    const where = `namespaces.${JSON.stringify(name)}`;
    if (name !== '' && (name.includes(':') || channelProblem(name))) throw new Invalid(`${where}: a namespace name must be a channel prefix without ":"`);
    if (!isPlainObject(opts)) throw new Invalid(`${where} must be an object`);
    const ns: Partial<Record<keyof NamespaceOptions, number | boolean>> = {};
    for (const [key, value] of Object.entries(opts)) {
      if (!(NAMESPACE_KEYS as string[]).includes(key)) throw new Invalid(`${where}.${key} is not a namespace option (known: ${NAMESPACE_KEYS.join(', ')})`);
      const k = key as keyof NamespaceOptions;
      if (typeof NAMESPACE_DEFAULTS[k] === 'number') {
        const max = NAMESPACE_INT_MAX[k] ?? Number.MAX_SAFE_INTEGER;
        if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0 || value > max) throw new Invalid(`${where}.${key} must be an integer from 0 to ${max}`);
      } else if (typeof value !== 'boolean') throw new Invalid(`${where}.${key} must be true or false`);
      ns[k] = value as number | boolean;
    }
    Object.defineProperty(out, name, { value: Object.freeze(ns as Partial<NamespaceOptions>), enumerable: true });
  }
  return Object.freeze(out);
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Every option, with its default and its help line. The order is the order of `--help`. */
export const OPTIONS: { readonly [K in keyof HeraldConfig]: OptionSpec<HeraldConfig[K]> } = {
  host: { doc: 'interface to listen on', default: '127.0.0.1', arg: '<host>', parse: parseHost },
  port: { doc: 'TCP port; 0 = any free port', default: 8080, arg: '<port>', parse: integer(0, 65_535) },
  config: { doc: 'JSON or YAML file of options (keys in camelCase)', default: undefined, arg: '<file>', parse: optional(text()) },
  redis: { doc: 'Redis URL for the multi-node engine', default: undefined, arg: '<url>', parse: optional(url(['redis', 'rediss'])) },
  redisPrefix: { doc: 'prefix of Redis keys and channels', default: 'herald', arg: '<prefix>', parse: text((s) => (/[\s{}]/.test(s) ? 'must not contain spaces or braces' : undefined)) },
  presenceTtl: { doc: "seconds before a crashed node's presence entries vanish (Redis)", default: 30, arg: '<s>', parse: integer(1, 3600, ' seconds') },
  journal: { doc: 'directory of the durable journal (memory engine)', default: undefined, arg: '<dir>', parse: optional(text()) },
  fsync: { doc: 'journal fsync: always | never | <ms>', default: 'always', arg: '<policy>', parse: parseFsync },
  apiKey: {
    doc: 'API key for /api/* (repeatable)',
    default: Object.freeze([]),
    arg: '<key>',
    list: true,
    secret: true,
    parse: list((s) => (/^[\x21-\x7e]{1,4096}$/.test(s) ? undefined : 'each key must be 1 to 4096 visible ASCII characters')),
  },
  jwtSecret: {
    doc: 'HS256 secret for client tokens (at least 32 bytes)',
    default: undefined,
    arg: '<secret>',
    secret: true,
    parse: optional(text((s) => (Buffer.byteLength(s) < 32 ? 'must be at least 32 bytes (RFC 7518: an HS256 key is at least as long as its hash)' : undefined))),
  },
  jwksUrl: { doc: 'JWKS URL for RS256/ES256 client tokens', default: undefined, arg: '<url>', parse: optional(url(['https', 'http'])) },
  jwtIssuer: { doc: 'required "iss" of client tokens', default: undefined, arg: '<iss>', parse: optional(text()) },
  jwtAudience: { doc: 'required "aud" of client tokens', default: undefined, arg: '<aud>', parse: optional(text()) },
  allowedOrigins: {
    doc: 'origins allowed for WebSocket and CORS (comma-separated; * = any)',
    default: Object.freeze([]),
    arg: '<origins>',
    list: true,
    parse: list((s) => (s === '*' || /^[a-z][a-z0-9+.-]*:\/\/[^\s/]+\/?$/i.test(s) ? undefined : `"${s}" is not an origin like https://example.com`)),
  },
  logLevel: { doc: `log level: ${LOG_LEVELS.join(' | ')}`, default: 'info', arg: '<level>', parse: parseLogLevel },
  chatTokenTtl: { doc: 'seconds a chat token stays valid', default: 30, arg: '<s>', parse: integer(1, 86_400, ' seconds') },
  chatIdleTimeout: { doc: 'seconds before an empty chat room closes', default: 300, arg: '<s>', parse: integer(1, 604_800, ' seconds') },
  pingInterval: { doc: 'seconds between WebSocket pings', default: 25, arg: '<s>', parse: integer(1, 3600, ' seconds') },
  maxMessageBytes: { doc: 'largest frame, request body or event', default: 65_536, arg: '<bytes>', parse: integer(1024, 64 * MiB, ' bytes') },
  maxChannelsPerClient: { doc: 'channels per connection, stream or poll', default: 128, arg: '<n>', parse: integer(1, 100_000) },
  maxBufferedBytes: { doc: 'unsent bytes per WebSocket client before 4008', default: MiB, arg: '<bytes>', parse: integer(1024, 1024 * MiB, ' bytes') },
  pollTimeoutMax: { doc: 'largest long-poll timeout, seconds', default: 110, arg: '<s>', parse: integer(1, 3600, ' seconds') },
  coalesceMs: { doc: 'write coalescing window, ms (0 = one event-loop turn)', default: 0, arg: '<ms>', parse: integer(0, 1000, ' ms') },
  pollPaceMs: { doc: "long-poll pacing under load, most ms a client's next answer waits after its last event (0 = never)", default: 250, arg: '<ms>', parse: integer(0, 1000, ' ms') },
  pollPaceLoad: { doc: 'event-loop busy %, over which long-poll pacing grows (0 = always pace)', default: 50, arg: '<percent>', parse: integer(0, 100, ' percent') },
  commandRate: { doc: 'commands/s per WebSocket connection; 0 = no limit', default: LIMIT_DEFAULTS.commandRate, arg: '<n>', parse: integer(0, 1_000_000) },
  publishRate: { doc: 'publishes/s per WebSocket connection; 0 = no limit', default: LIMIT_DEFAULTS.publishRate, arg: '<n>', parse: integer(0, 1_000_000) },
  ipCommandRate: { doc: 'commands and stream/poll requests/s per client address; 0 = no limit', default: LIMIT_DEFAULTS.ipCommandRate, arg: '<n>', parse: integer(0, 10_000_000) },
  ipPublishRate: { doc: 'publishes/s per client address; 0 = no limit', default: LIMIT_DEFAULTS.ipPublishRate, arg: '<n>', parse: integer(0, 10_000_000) },
  maxConnectionsPerIp: { doc: 'connections, streams and waiting polls per client address; 0 = no limit', default: LIMIT_DEFAULTS.maxConnectionsPerIp, arg: '<n>', parse: integer(0, 10_000_000) },
  namespaces: { doc: 'per-namespace options (config file only)', default: Object.freeze({}), fileOnly: true, parse: parseNamespaces },
};

export type OptionKey = keyof HeraldConfig;
export const OPTION_KEYS = Object.keys(OPTIONS) as OptionKey[];

/** Options that are accepted and validated, but whose feature is not in this build yet (none today). */
const NOT_AVAILABLE_YET: readonly OptionKey[] = [];

/** Environment variables with the prefix that are not server options (the CLI's client side). */
const CLIENT_ENV = new Set(['HERALD_URL', 'HERALD_TOKEN']);

export function flagName(key: OptionKey): string {
  return key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}

export function envName(key: OptionKey): string {
  return `HERALD_${key.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase()}`;
}

/** The option a `--flag` sets, if any (file-only options have no flag). */
export function optionForFlag(flag: string): OptionKey | undefined {
  const key = flag.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase()) as OptionKey;
  return Object.prototype.hasOwnProperty.call(OPTIONS, key) && !OPTIONS[key].fileOnly && flagName(key) === flag ? key : undefined;
}

/** Whether a flag may be given several times (its values add up). */
export function isListOption(key: OptionKey): boolean {
  return OPTIONS[key].list === true;
}

// ---- resolution -----------------------------------------------------------------------------

type Source = { label: (key: OptionKey) => string; values: Partial<Record<OptionKey, unknown>> };

export interface ResolveInput {
  /** Flag values by flag name without dashes (`port`, `api-key`); each occurrence in order. */
  flags?: Readonly<Record<string, readonly string[]>>;
  /** Usually `process.env`. */
  env?: Readonly<Record<string, string | undefined>>;
  /** Directory a relative `--config` path is resolved from. Default `process.cwd()`. */
  cwd?: string;
}

export interface ResolvedConfig {
  config: HeraldConfig;
  /** Things worth telling the operator (unknown `HERALD_*` variables). */
  warnings: string[];
}

/** Resolves flags > environment > config file > defaults, validates and freezes. */
export async function resolveConfig(input: ResolveInput = {}): Promise<ResolvedConfig> {
  const warnings: string[] = [];
  const flags: Source = { label: (k) => `--${flagName(k)}`, values: {} };
  for (const [flag, values] of Object.entries(input.flags ?? {})) {
    const key = optionForFlag(flag);
    if (!key) throw new ConfigError('unknown_option', flag, `unknown option --${flag}`);
    if (values.length === 0) continue;
    flags.values[key] = isListOption(key) ? [...values] : values[values.length - 1];
  }

  const env: Source = { label: envName, values: {} };
  const byEnvName = new Map(OPTION_KEYS.filter((k) => !OPTIONS[k].fileOnly).map((k) => [envName(k), k]));
  for (const [name, value] of Object.entries(input.env ?? {})) {
    if (!name.startsWith('HERALD_') || CLIENT_ENV.has(name)) continue;
    const key = byEnvName.get(name);
    if (!key) {
      warnings.push(`ignoring unknown environment variable ${name}`);
      continue;
    }
    if (value !== undefined && value !== '') env.values[key] = value;
  }

  const file: Source = { label: (k) => k, values: {} };
  const configPath = (flags.values.config ?? env.values.config) as string | undefined;
  let resolvedPath: string | undefined;
  if (configPath !== undefined) {
    resolvedPath = resolvePath(input.cwd ?? process.cwd(), parseWith('config', OPTIONS.config, configPath, flags.values.config !== undefined ? flags : env)!);
    file.values = await readConfigFile(resolvedPath);
  }

  const merged: Record<string, unknown> = {};
  for (const key of OPTION_KEYS) {
    for (const source of [flags, env, file]) {
      if (source.values[key] !== undefined) {
        merged[key] = parseWith(key, OPTIONS[key] as OptionSpec<unknown>, source.values[key], source);
        break;
      }
    }
  }
  merged.config = resolvedPath;
  return { config: freezeConfig(merged), warnings };
}

/** Validates programmatic options (typed values) over the defaults, and freezes them. Unknown keys are ignored. */
export function validateConfig(options: Partial<Record<OptionKey, unknown>> = {}): HeraldConfig {
  const source: Source = { label: (k) => k, values: options };
  const merged: Record<string, unknown> = {};
  for (const key of OPTION_KEYS) {
    if (options[key] !== undefined) merged[key] = parseWith(key, OPTIONS[key] as OptionSpec<unknown>, options[key], source);
  }
  return freezeConfig(merged);
}

/** Throws `not_available` for an option whose feature this build does not have. */
export function assertAvailable(config: HeraldConfig): void {
  for (const key of NOT_AVAILABLE_YET) {
    if (config[key] !== undefined) {
      throw new ConfigError('not_available', key, `${key} (--${flagName(key)}) is not available yet in this version of herald`);
    }
  }
}

/** Namespace options under every namespace: no anonymous access once authentication is configured. */
export function namespaceBase(config: HeraldConfig): Partial<NamespaceOptions> {
  const authenticated = config.jwtSecret !== undefined || config.jwksUrl !== undefined;
  return { anonymousSubscribe: !authenticated, anonymousPublish: !authenticated };
}

/** The transports' rate and connection limits (one instance, shared by every transport of a server). */
export function transportLimitsFromConfig(config: HeraldConfig): TransportLimits {
  return new TransportLimits({
    commandRate: config.commandRate,
    publishRate: config.publishRate,
    ipCommandRate: config.ipCommandRate,
    ipPublishRate: config.ipPublishRate,
    maxConnectionsPerIp: config.maxConnectionsPerIp,
  });
}

/** Things an operator should hear about at start: a configuration that is valid but leaves a door open. */
export function securityWarnings(config: HeraldConfig): string[] {
  const warnings: string[] = [];
  const jwt = config.jwtSecret !== undefined || config.jwksUrl !== undefined;
  if (jwt && config.apiKey.length === 0) {
    warnings.push('client tokens are required (--jwt-secret/--jwks-url) but no --api-key is set: anyone who can reach /api/* may publish and disconnect clients');
  }
  return warnings;
}

/** The defaults, frozen. */
export function defaultConfig(): HeraldConfig {
  return freezeConfig({});
}

function parseWith<T>(key: OptionKey, spec: OptionSpec<T>, raw: unknown, source: Source): T {
  try {
    return spec.parse(raw);
  } catch (err) {
    if (!(err instanceof Invalid)) throw err;
    const label = source.label(key);
    const where = label === key ? key : `${key} (${label})`;
    const got = spec.secret || raw === undefined ? '' : `, got ${JSON.stringify(raw)?.slice(0, 80)}`;
    throw new ConfigError('invalid_option', key, `invalid ${where}: ${err.message}${got}`);
  }
}

function freezeConfig(values: Record<string, unknown>): HeraldConfig {
  const out: Record<string, unknown> = {};
  for (const key of OPTION_KEYS) out[key] = values[key] !== undefined ? values[key] : OPTIONS[key].default;
  return Object.freeze(out) as unknown as HeraldConfig;
}

async function readConfigFile(path: string): Promise<Partial<Record<OptionKey, unknown>>> {
  let body: string;
  try {
    body = await readFile(path, 'utf8');
  } catch (err) {
    throw new ConfigError('config_file', 'config', `cannot read config file ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, { cause: err });
  }
  let raw: unknown;
  try {
    raw = extname(path).toLowerCase() === '.json' ? JSON.parse(body) : parseYaml(body, { maxAliasCount: 100 });
  } catch (err) {
    const reason = err instanceof Error ? err.message.split('\n')[0] : String(err);
    throw new ConfigError('config_file', 'config', `cannot parse config file ${path}: ${reason}`, { cause: err });
  }
  if (raw === null || raw === undefined) return {};
  if (!isPlainObject(raw)) throw new ConfigError('config_file', 'config', `config file ${path} must hold an object of options`);
  const values: Partial<Record<OptionKey, unknown>> = {};
  for (const [key, value] of Object.entries(raw)) {
    if (!Object.prototype.hasOwnProperty.call(OPTIONS, key)) throw new ConfigError('unknown_option', key, `unknown option ${JSON.stringify(key)} in config file ${path}`);
    if (key === 'config') throw new ConfigError('invalid_option', 'config', `a config file cannot name another config file (${path})`);
    if (value !== null && value !== undefined) values[key as OptionKey] = value;
  }
  return values;
}
