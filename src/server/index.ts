/** `herald/server`: start a server, resolve its configuration. */
export { startServer, SHUTDOWN_GRACE_MS, type HeraldServer, type StartOptions } from './server.js';
export {
  ConfigError,
  OPTIONS,
  OPTION_KEYS,
  LOG_LEVELS,
  assertAvailable,
  defaultConfig,
  envName,
  flagName,
  namespaceBase,
  optionForFlag,
  resolveConfig,
  securityWarnings,
  transportLimitsFromConfig,
  validateConfig,
  type ConfigErrorCode,
  type FsyncPolicy,
  type HeraldConfig,
  type LogLevel,
  type NamespacesConfig,
  type OptionKey,
  type ResolveInput,
  type ResolvedConfig,
} from './config.js';
export { authHooksFromConfig, createJwtAuthenticator, MIN_SECRET_BYTES, type JwtAlgorithm, type JwtAuthenticate, type JwtAuthOptions } from './jwt.js';
export { Router, type RouteHandler, type RouteMatch, type UpgradeHandler } from './router.js';
