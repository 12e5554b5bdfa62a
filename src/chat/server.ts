/**
 * The chat server (go-chat-i-guess's ChatServer, on herald's hub): rooms, single-use tokens, and
 * connecting a user with a token over any `Conn`.
 *
 * The flow: the application authenticates a user however it likes, asks `requestToken(room, user)`,
 * hands the token to the user, and the user connects with it over whatever connection the
 * application has (`connect(token, conn)`). Rooms are hub channels (`chat:<room>`), so history,
 * resume and multi-node come from the hub; the room registry, tokens and name reservations are
 * per ChatServer (per node).
 */
import { randomBytes } from 'node:crypto';
import { HeraldError } from '../protocol/index.js';
import { defineEncoding, type Action, type ClientContext, type Encoding, type Hub, type Logger } from '../core/index.js';
import type { Conn } from './conn.js';
import { defaultController, type ChatController, type LeaveReason } from './controller.js';
import { encodeMessage, messageFromEvent, parseChatChannel, roomProblem, userProblem } from './message.js';
import { resolveChatOptions, type ChatOptions } from './options.js';
import { CHAT_CLOSE, ChatRoom, type ChatMember, type RoomHost } from './room.js';

export interface ChatToken {
  token: string;
  /** Milliseconds since the Unix epoch. */
  expires: number;
}

interface Grant {
  room: ChatRoom;
  user: string;
  expires: number;
}

export class ChatServer implements RoomHost {
  readonly hub: Hub;
  readonly options: Readonly<ChatOptions>;
  /** The options' hooks, the missing ones filled from `defaultController`. */
  readonly controller: Readonly<ChatController>;
  readonly logger: Logger;
  /** @internal Hub event → the JSON a member receives (null: not a chat message); once per publish. */
  readonly wire: Encoding<string | null>;
  private readonly roomsByName = new Map<string, ChatRoom>();
  private readonly tokens = new Map<string, Grant>();
  private readonly sweepTimer: NodeJS.Timeout;
  private closing: Promise<void> | undefined;

  constructor(hub: Hub, options: Partial<ChatOptions> = {}) {
    this.hub = hub;
    this.options = resolveChatOptions(options);
    this.controller = Object.freeze({ ...defaultController, ...this.options.controller });
    this.logger = this.options.logger;
    const maxTextBytes = this.options.maxTextBytes;
    this.wire = defineEncoding((out) => {
      const msg = messageFromEvent(out.event, maxTextBytes);
      return msg ? encodeMessage(msg) : null;
    });
    this.sweepTimer = setInterval(sweepTokens, this.options.tokenSweepMs, this.tokens);
    this.sweepTimer.unref();
  }

  get closed(): boolean {
    return this.closing !== undefined;
  }

  // ---- rooms -----------------------------------------------------------------------------------

  /** Opens a room. `bad_request` for a bad name, `conflict` if it exists, `limit_exceeded` over `maxRooms`. */
  createRoom(name: string): ChatRoom {
    this.assertOpen();
    const problem = roomProblem(name);
    if (problem) throw new HeraldError('bad_request', problem);
    if (this.roomsByName.has(name)) throw new HeraldError('conflict', `room "${name}" already exists`);
    if (this.roomsByName.size >= this.options.maxRooms) throw new HeraldError('limit_exceeded', `at most ${this.options.maxRooms} rooms`);
    const room = new ChatRoom(this, name);
    this.roomsByName.set(name, room);
    this.logger.debug({ room: name }, 'chat: room created');
    return room;
  }

  room(name: string): ChatRoom | undefined {
    return this.roomsByName.get(name);
  }

  /** Open rooms, by name. */
  rooms(): ChatRoom[] {
    return [...this.roomsByName.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  /** Closes a room (members disconnected). False when there is no such room. */
  async closeRoom(name: string): Promise<boolean> {
    const room = this.roomsByName.get(name);
    if (!room) return false;
    await room.close();
    return true;
  }

  /** @internal RoomHost */
  roomClosed(room: ChatRoom): void {
    if (this.roomsByName.get(room.name) === room) this.roomsByName.delete(room.name);
    for (const [token, grant] of this.tokens) if (grant.room === room) this.tokens.delete(token);
  }

  // ---- tokens ----------------------------------------------------------------------------------

  /**
   * A single-use token for `user` to join `room`, valid `tokenTtlMs`. Ask for it from an
   * authenticated, trusted context. `not_found` for an unknown room, `conflict` if the name is
   * taken in the room (here, or on another node as far as presence tells), `bad_request` for a bad
   * name, `limit_exceeded` over `maxTokens`.
   */
  async requestToken(roomName: string, user: string): Promise<ChatToken> {
    this.assertOpen();
    const problem = roomProblem(roomName) ?? userProblem(user);
    if (problem) throw new HeraldError('bad_request', problem);
    const room = this.roomsByName.get(roomName);
    if (!room) throw new HeraldError('not_found', `no room named "${roomName}"`);
    if (room.members.has(user) || (await room.allUsers()).includes(user)) {
      throw new HeraldError('conflict', `the name "${user}" is already taken in room "${roomName}"`);
    }
    if (room.closed || this.roomsByName.get(roomName) !== room) throw new HeraldError('not_found', `no room named "${roomName}"`);
    if (this.tokens.size >= this.options.maxTokens) {
      sweepTokens(this.tokens);
      if (this.tokens.size >= this.options.maxTokens) throw new HeraldError('limit_exceeded', 'too many chat tokens outstanding; try again later');
    }
    const token = randomBytes(24).toString('base64url');
    const expires = Date.now() + this.options.tokenTtlMs;
    this.tokens.set(token, { room, user, expires });
    return { token, expires };
  }

  // ---- connections -----------------------------------------------------------------------------

  /**
   * Connects the token's user to its room over `conn`; resolves once they have joined (the last
   * messages replayed, `onConnect` run). The token is used up whatever happens.
   *
   * Rejects with `unauthorized` for an unknown, used or expired token or a closed room: `conn` is
   * left untouched (the transport tells the user). Rejects with `conflict` when the name was taken
   * in the meantime (the user got a system message and `conn` was closed with 4009), and with
   * other codes if the join failed later (the user was told, `conn` closed).
   */
  async connect(token: string, conn: Conn): Promise<ChatMember> {
    this.assertOpen();
    const grant = typeof token === 'string' ? this.tokens.get(token) : undefined;
    if (grant) this.tokens.delete(token);
    if (!grant || grant.expires <= Date.now()) throw new HeraldError('unauthorized', 'invalid or expired chat token', { closeCode: CHAT_CLOSE.unauthorized });
    if (grant.room.closed || this.roomsByName.get(grant.room.name) !== grant.room) {
      throw new HeraldError('unauthorized', `the room "${grant.room.name}" is closed`, { closeCode: CHAT_CLOSE.unauthorized });
    }
    return grant.room.join(grant.user, conn);
  }

  /** Like `connect`, but resolves only when the user has left (with why): for a handler that owns its connection. */
  async connectAndWait(token: string, conn: Conn): Promise<LeaveReason> {
    const member = await this.connect(token, conn);
    return member.left;
  }

  /**
   * Closes every room (members disconnected with 1001 and `server_closed`; `onDisconnect` runs) and
   * forgets every token. Call it before the hub closes. Idempotent.
   */
  close(): Promise<void> {
    return (this.closing ??= (async () => {
      clearInterval(this.sweepTimer);
      this.tokens.clear();
      const rooms = [...this.roomsByName.values()];
      await Promise.all(rooms.map((room) => room.shut('server_closed', CHAT_CLOSE.serverShutdown, 'server shutting down', undefined)));
    })());
  }

  private assertOpen(): void {
    if (this.closing) throw new HeraldError('unavailable', 'the chat server is closed');
  }
}

function sweepTokens(tokens: Map<string, Grant>): void {
  const now = Date.now();
  for (const [token, grant] of tokens) if (grant.expires <= now) tokens.delete(token);
}

/**
 * A hub `authorize` hook that keeps whispers private: the user channels `chat:<room>:@<user>` are
 * for the chat's own members only, never for clients of the generic transports (/ws, /sse, /poll)
 * or the HTTP API reads. Compose it into `HubHooks.authorize` when the `chat` namespace lets
 * clients subscribe (the default without authentication).
 */
export function privateChatGuard(_action: Action, client: ClientContext | undefined, channel: string): boolean {
  if (client === undefined || client.transport === 'chat') return true;
  return parseChatChannel(channel)?.user === undefined;
}
