/** `herald`: the server library. Named exports only; the browser client is `herald/client`. */
export { Hub, clientInfo, OutgoingEvent, defineEncoding, silentLogger, NAMESPACE_DEFAULTS, NAMESPACE_KEYS, HUB_LIMIT_DEFAULTS, Namespaces } from './core/index.js';
export type {
  Action,
  AuthResult,
  ChannelInfo,
  ChannelOptions,
  ClientContext,
  Encoding,
  Engine,
  EngineHandler,
  HistoryQuery,
  HubHooks,
  HubLimits,
  HubOptions,
  HubStats,
  Logger,
  NamespaceOptions,
  Permissions,
  PublishRequest,
  ResolvedNamespace,
  Session,
  Subscriber,
} from './core/index.js';
export { MemoryEngine, type MemoryEngineOptions } from './engines/memory.js';
export { WebSocketTransport } from './transports/websocket/index.js';
export { TransportLimits, LIMIT_DEFAULTS, type LimitOptions } from './transports/limits.js';
export {
  CLOSE_CODES,
  ERROR_CODES,
  HeraldError,
  PROTOCOL_VERSION,
  isErrorCode,
  shouldReconnect,
  toHeraldError,
  type ClientInfo,
  type CloseName,
  type ErrorCode,
  type HeraldEvent,
  type HistoryResult,
  type Position,
  type PublishResult,
  type SubscribeResult,
} from './protocol/index.js';
export {
  ConfigError,
  resolveConfig,
  createJwtAuthenticator,
  startServer,
  validateConfig,
  type ConfigErrorCode,
  type JwtAuthOptions,
  type HeraldConfig,
  type HeraldServer,
  type StartOptions,
} from './server/index.js';
