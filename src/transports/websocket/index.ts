/** The WebSocket transport (SPEC §2) and the reusable socket binding it is built on. */
export { WebSocketTransport, WEBSOCKET_DEFAULTS, resolveWebSocketOptions, type WebSocketTransportOptions } from './transport.js';
export {
  SocketBinding,
  SocketConnection,
  SOCKET_BINDING_DEFAULTS,
  resolveBindingOptions,
  type SocketBindingOptions,
  type SocketHandler,
} from './binding.js';
export { textFrame, closeReason, MAX_CLOSE_REASON_BYTES } from './frame.js';
