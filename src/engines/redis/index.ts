/** The Redis engine (SPEC §8 "Engines"): several herald nodes as one. See docs/scaling.md. */
export { RedisEngine, createRedisEngine, type ClusterChannel } from './engine.js';
export { REDIS_ENGINE_DEFAULTS, type RedisEngineOptions } from './options.js';
