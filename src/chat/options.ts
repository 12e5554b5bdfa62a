/** Chat options (SPEC §7): defaults next to their docs, validated once (errors name the key), frozen. */
import { silentLogger, type Logger } from '../core/index.js';
import type { ChatController } from './controller.js';

export interface ChatOptions {
  /** Milliseconds a token stays valid (`--chat-token-ttl` × 1000). Default 30,000. */
  tokenTtlMs: number;
  /** Milliseconds a room with no one connected stays open (`--chat-idle-timeout` × 1000). Default 300,000. */
  idleTimeoutMs: number;
  /** Milliseconds between sweeps that forget expired tokens. Default 60,000 (an expired token is refused at once anyway). */
  tokenSweepMs: number;
  /** Messages of the room replayed to a user who joins. Default 50. */
  replay: number;
  /** Largest message text, in UTF-8 bytes; longer ones are refused with a system message. Default 4,096. */
  maxTextBytes: number;
  /** Rooms open at once (creating one more is `limit_exceeded`). Default 1,000. */
  maxRooms: number;
  /** Users connected to one room at once. Default 1,000. */
  maxUsersPerRoom: number;
  /** Tokens outstanding at once (requesting one more is `limit_exceeded`). Default 10,000. */
  maxTokens: number;
  /** Messages of one user waiting to be handled; over it the message is refused ("slow down"). Default 32. */
  maxPendingPerUser: number;
  /** Hooks; the ones left out use `defaultController`'s (which announce joins and leaves). */
  controller: Partial<ChatController>;
  logger: Logger;
}

export const CHAT_DEFAULTS: Readonly<ChatOptions> = Object.freeze({
  tokenTtlMs: 30_000,
  idleTimeoutMs: 300_000,
  tokenSweepMs: 60_000,
  replay: 50,
  maxTextBytes: 4_096,
  maxRooms: 1_000,
  maxUsersPerRoom: 1_000,
  maxTokens: 10_000,
  maxPendingPerUser: 32,
  controller: Object.freeze({}),
  logger: silentLogger,
});

const INTEGER_KEYS = ['tokenTtlMs', 'idleTimeoutMs', 'tokenSweepMs', 'maxTextBytes', 'maxRooms', 'maxUsersPerRoom', 'maxTokens', 'maxPendingPerUser'] as const;

export function resolveChatOptions(options: Partial<ChatOptions> = {}): Readonly<ChatOptions> {
  const o: ChatOptions = { ...CHAT_DEFAULTS };
  for (const [key, value] of Object.entries(options)) {
    if (value === undefined) continue;
    if (!(key in CHAT_DEFAULTS)) throw new TypeError(`unknown chat option "${key}"`);
    (o as unknown as Record<string, unknown>)[key] = value;
  }
  for (const key of INTEGER_KEYS) checkInteger(key, o[key], 1);
  checkInteger('replay', o.replay, 0);
  if (!o.controller || typeof o.controller !== 'object') throw new TypeError('chat option "controller" must be an object');
  for (const hook of ['onConnect', 'onDisconnect', 'encode'] as const) {
    if (o.controller[hook] !== undefined && typeof o.controller[hook] !== 'function') throw new TypeError(`chat option "controller.${hook}" must be a function`);
  }
  if (!o.logger || typeof o.logger.warn !== 'function') throw new TypeError('chat option "logger" must be a Logger');
  return Object.freeze(o);
}

function checkInteger(key: string, value: unknown, min: number): void {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min) {
    throw new RangeError(`chat option "${key}" must be an integer >= ${min}, got ${JSON.stringify(value)}`);
  }
}
