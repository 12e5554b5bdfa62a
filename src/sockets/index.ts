/**
 * `herald/sockets`: WebSocket routes for applications (after go-macaron/sockets). A handler per
 * connection reads messages as an async iterable and writes with a `send` that waits for slow
 * peers; origins, keep-alive, size limits and bounded buffers are handled. See docs/sockets.md.
 */
export { SocketRoute, jsonSocket, textSocket, binarySocket, type BinaryData, type JsonSocketOptions, type SocketMode, type SocketRouteHandler } from './route.js';
export { Socket, type CloseInfo } from './socket.js';
export { SocketError, SOCKET_CLOSE, type SocketErrorCode } from './errors.js';
export { SOCKET_DEFAULTS, LOG_LEVELS, consoleLogger, resolveSocketOptions, type LogLevel, type ResolvedSocketOptions, type SocketRouteOptions } from './options.js';
export type { Schema } from './schema.js';
export { attachUpgrades, rejectUpgrade, type UpgradeEmitter, type UpgradeTarget } from './upgrade.js';
export type { Logger } from '../core/logger.js';
