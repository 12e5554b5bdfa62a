/**
 * `herald/chat`: chat rooms over any transport, on the hub (SPEC §7), after go-chat-i-guess.
 * See docs/chat.md.
 */
export { ChatServer, privateChatGuard, type ChatToken } from './server.js';
export { ChatRoom, CHAT_CLOSE, type ChatMember } from './room.js';
export type { Conn } from './conn.js';
export { defaultController, type ChatController, type ChatDraft, type EncodeResult, type LeaveReason } from './controller.js';
export { CHAT_DEFAULTS, resolveChatOptions, type ChatOptions } from './options.js';
export { roomChannel, userChannel, parseChatChannel, roomProblem, userProblem, type ChatMessage, type ChatMessageType } from './message.js';
export { createChatEndpoints, CHAT_ENDPOINT_DEFAULTS, type ChatEndpoints, type ChatEndpointOptions, type ChatRouteHandler, type ChatUpgradeHandler } from './http.js';
