/**
 * herald/client: the browser and Node client (SPEC §2). Imports only protocol/ and no Node
 * built-ins, so it bundles for browsers (dist/browser/herald.js, global `Herald`).
 *
 *   const client = new HeraldClient({ url: 'http://127.0.0.1:8080', WebSocket }); // Node: `ws`'s WebSocket
 *   const sub = client.subscribe('news');
 *   await client.connect();
 *   for await (const event of sub) console.log(event.data);
 */
export { HeraldClient } from './client.js';
export type { ClientEvents, ClientState, ConnectedInfo, DisconnectedInfo, HeraldClientOptions, HistoryOptions } from './client.js';
export { Subscription, DEFAULT_BUFFER_SIZE } from './subscription.js';
export type { SubscribeOptions, SubscribedInfo, SubscriptionEvents, SubscriptionState, UnsubscribedInfo } from './subscription.js';
export { HeraldClientError } from './errors.js';
export type { ClientErrorCode } from './errors.js';
export { RECONNECT_DEFAULTS, backoffDelay } from './backoff.js';
export type { ReconnectOptions } from './backoff.js';
export type { PresenceResult, TransportName, WebSocketConstructor, WebSocketLike } from './transport.js';
export type { ClientInfo, HeraldEvent, HistoryResult, Position, PublishResult, SubscribeResult, ErrorCode } from '../protocol/index.js';
