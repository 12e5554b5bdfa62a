/**
 * A room and the users connected to it on this node. A room is the hub channel `chat:<room>`:
 * every message goes through the hub (so history, resume and other nodes see it), and each member
 * is a hub Subscriber of that channel and of its own user channel `chat:<room>:@<user>` (whispers
 * from members on other nodes). Whispers between members of this node never touch the hub.
 */
import { HeraldError, randomId, toHeraldError, uuidv7, type HeraldEvent, type Position, type SubscribeResult } from '../protocol/index.js';
import { OutgoingEvent, type ClientContext, type Encoding, type Hub, type Logger, type Session, type Subscriber } from '../core/index.js';
import type { Conn } from './conn.js';
import { HELP_TEXT, type ChatController, type ChatDraft, type EncodeResult, type LeaveReason } from './controller.js';
import {
  cleanText,
  encodeMessage,
  roomChannel,
  truncateUtf8,
  userChannel,
  userProblem,
  utf8Length,
  type ChatMessage,
  type ChatPayload,
} from './message.js';
import type { ChatOptions } from './options.js';

/** Client ids of chat members start with this (hub ids never contain a dot), so presence tells them apart. */
export const CHAT_CLIENT_PREFIX = 'chat.';

/** Close codes the chat uses on a member's connection. */
export const CHAT_CLOSE = Object.freeze({
  /** `/quit`, removed, room closed: do not come back on your own. */
  normal: 1000,
  serverShutdown: 1001,
  internal: 1011,
  tryAgainLater: 1013,
  unauthorized: 4001,
  /** The server API's disconnect (SPEC §5): come back. */
  disconnected: 4002,
  nameTaken: 4009,
});

/** What a room needs from its chat server. @internal */
export interface RoomHost {
  readonly hub: Hub;
  readonly options: Readonly<ChatOptions>;
  readonly controller: Readonly<ChatController>;
  readonly wire: Encoding<string | null>;
  readonly logger: Logger;
  /** The room closed: forget it. */
  roomClosed(room: ChatRoom): void;
}

type MemberState = 'joining' | 'joined' | 'left';

/** A user connected to a room on this node. */
export interface ChatMember {
  readonly room: ChatRoom;
  readonly user: string;
  /** Joined and not yet left. */
  readonly joined: boolean;
  /** Resolves once the user has left (and `onDisconnect` has run), with why. Never rejects. */
  readonly left: Promise<LeaveReason>;
  /** Sends a system message to this user alone. */
  notify(text: string): void;
  /** Removes the user (reason `removed`): a system message `text` if given, then close 1000. */
  leave(text?: string): void;
}

export class ChatRoom {
  readonly name: string;
  /** The hub channel: `chat:<name>`. */
  readonly channel: string;
  /** @internal */
  readonly host: RoomHost;
  /** @internal Members by user name, joining ones included (a name is taken from the first moment). */
  readonly members = new Map<string, Member>();
  private state: 'open' | 'closing' | 'closed' = 'open';
  private idleTimer: NodeJS.Timeout | undefined;

  /** @internal Rooms are made by `ChatServer.createRoom`. */
  constructor(host: RoomHost, name: string) {
    this.host = host;
    this.name = name;
    this.channel = roomChannel(name);
    this.armIdle();
  }

  get closed(): boolean {
    return this.state !== 'open';
  }

  /** Users connected to this room on this node, sorted. */
  users(): string[] {
    const out: string[] = [];
    for (const m of this.members.values()) if (m.joined) out.push(m.user);
    return out.sort();
  }

  /** Whether `user` is connected here. */
  has(user: string): boolean {
    return this.members.get(user)?.joined ?? false;
  }

  /** @internal The member `user` on this node, if joined. */
  member(user: string): ChatMember | undefined {
    const m = this.members.get(user);
    return m?.joined ? m : undefined;
  }

  /**
   * Users connected to this room on any node, sorted: this node's, and the chat members the hub's
   * presence lists (cluster-wide with Redis; empty when the `chat` namespace has presence off).
   */
  async allUsers(): Promise<string[]> {
    const names = new Set(this.users());
    try {
      for (const info of await this.host.hub.presence(this.channel)) {
        if (info.user !== undefined && info.client.startsWith(CHAT_CLIENT_PREFIX)) names.add(info.user);
      }
    } catch (err) {
      this.host.logger.debug({ err, room: this.name }, 'chat: presence lookup failed; listing local users only');
    }
    return [...names].sort();
  }

  /**
   * Sends a message to everyone in the room, through the hub (so it is in the history): a system
   * message, or one signed `from` a user name. Resolves with the message, or undefined if the room
   * is closed. Rejects if the hub refuses the publish.
   */
  async broadcast(text: string, from?: string): Promise<ChatMessage | undefined> {
    if (this.closed) return undefined;
    const clean = truncateUtf8(cleanText(String(text)), this.host.options.maxTextBytes);
    if (clean === '') throw new HeraldError('bad_request', 'the text is empty');
    if (from !== undefined) {
      const problem = userProblem(from);
      if (problem) throw new HeraldError('bad_request', problem);
    }
    const payload: ChatPayload = from === undefined ? { type: 'system', text: clean } : { type: 'message', from, text: clean };
    const ack = await this.host.hub.publish(this.channel, payload);
    const msg: ChatMessage = { type: payload.type, room: this.name, text: clean, timestamp: ack.timestamp, id: ack.id };
    if (from !== undefined) msg.from = from;
    return msg;
  }

  /**
   * Sends a message to one user alone: a system message, or a whisper `from` a user name. Resolves
   * false when `to` is not in the room (on any node).
   */
  async whisper(to: string, text: string, from?: string): Promise<boolean> {
    if (this.closed) return false;
    const clean = truncateUtf8(cleanText(String(text)), this.host.options.maxTextBytes);
    if (clean === '') throw new HeraldError('bad_request', 'the text is empty');
    const type = from === undefined ? 'system' : 'whisper';
    const msg = await this.deliverPrivately(to, { type, from, to, text: clean });
    return msg !== undefined;
  }

  /** Removes `user` from the room (their connection is closed). False when not connected here. */
  remove(user: string, text = 'you were removed from the room'): boolean {
    const m = this.members.get(user);
    if (!m || !m.joined) return false;
    m.leave(text);
    return true;
  }

  /** Closes the room: members get a system message and are disconnected (1000). Resolves once all have left. */
  close(): Promise<void> {
    return this.shut('room_closed', CHAT_CLOSE.normal, 'room closed', `the room "${this.name}" was closed`);
  }

  /** @internal */
  shut(reason: LeaveReason, code: number, closeText: string, notice: string | undefined): Promise<void> {
    if (this.state !== 'open') return Promise.resolve();
    this.state = 'closing';
    this.disarmIdle();
    this.host.roomClosed(this);
    const leaving: Promise<LeaveReason>[] = [];
    for (const m of [...this.members.values()]) {
      if (notice !== undefined && m.joined) m.notify(notice);
      m.end(reason, code, closeText);
      leaving.push(m.left);
    }
    return Promise.all(leaving).then(() => {
      this.state = 'closed';
    });
  }

  /** @internal Takes the name and starts the join; rejects (after telling the user) if the name is taken. */
  join(user: string, conn: Conn): Promise<Member> {
    if (this.members.has(user)) {
      refuse(conn, this.name, user, `the name "${user}" is already taken in this room`, CHAT_CLOSE.nameTaken, 'name taken');
      return Promise.reject(new HeraldError('conflict', `the name "${user}" is already taken in room "${this.name}"`, { closeCode: CHAT_CLOSE.nameTaken }));
    }
    if (this.members.size >= this.host.options.maxUsersPerRoom) {
      refuse(conn, this.name, user, 'the room is full', CHAT_CLOSE.tryAgainLater, 'room full');
      return Promise.reject(new HeraldError('limit_exceeded', `room "${this.name}" is full`, { closeCode: CHAT_CLOSE.tryAgainLater }));
    }
    const m = new Member(this, user, conn);
    this.members.set(user, m);
    this.disarmIdle();
    return m.start().then(() => m);
  }

  /** @internal A member left. */
  forget(m: Member): void {
    if (this.members.get(m.user) === m) this.members.delete(m.user);
    if (this.members.size === 0 && this.state === 'open') this.armIdle();
  }

  /**
   * @internal A whisper or a system message for one user: handed to the member if on this node
   * (never through the hub), else published on the user's channel for the node that has them.
   */
  async deliverPrivately(to: string, payload: ChatPayload & { to: string }, checked = false): Promise<ChatMessage | undefined> {
    const local = this.member(to);
    if (local) {
      const msg = withoutUndefined({ type: payload.type, room: this.name, from: payload.from, to, text: payload.text, timestamp: Date.now(), id: uuidv7() });
      (local as Member).sendMessage(msg);
      return msg;
    }
    if (userProblem(to) !== undefined || (!checked && !(await this.allUsers()).includes(to))) return undefined;
    const ack = await this.host.hub.publish(userChannel(this.name, to), withoutUndefined(payload));
    return withoutUndefined({ type: payload.type, room: this.name, from: payload.from, to, text: payload.text, timestamp: ack.timestamp, id: ack.id });
  }

  private armIdle(): void {
    this.disarmIdle();
    this.idleTimer = setTimeout(closeIdleRoom, this.host.options.idleTimeoutMs, this);
    this.idleTimer.unref();
  }

  private disarmIdle(): void {
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = undefined;
  }
}

function closeIdleRoom(room: ChatRoom): void {
  if (room.members.size > 0 || room.closed) return;
  room.host.logger.info({ room: room.name }, 'chat: idle room closed');
  void room.shut('room_closed', CHAT_CLOSE.normal, 'room closed', undefined);
}

function refuse(conn: Conn, room: string, user: string, text: string, code: number, reason: string): void {
  try {
    conn.send(encodeMessage({ type: 'system', room, to: user, text, timestamp: Date.now(), id: uuidv7() }));
  } finally {
    conn.close(code, reason);
  }
}

function withoutUndefined<T extends object>(o: T): T {
  for (const key of Object.keys(o) as (keyof T)[]) if (o[key] === undefined) delete o[key];
  return o;
}

/** One user in one room on this node: a hub Subscriber (room and user channel) and a hub Session. */
class Member implements ChatMember, Subscriber, Session {
  readonly room: ChatRoom;
  readonly user: string;
  readonly client: ClientContext;
  readonly left: Promise<LeaveReason>;
  private readonly conn: Conn;
  private state: MemberState = 'joining';
  /** Texts received, waiting to be handled in order (the ones sent while joining wait here too). */
  private readonly inbox: string[] = [];
  private handling = false;
  private resolveLeft!: (reason: LeaveReason) => void;

  constructor(room: ChatRoom, user: string, conn: Conn) {
    this.room = room;
    this.user = user;
    this.conn = conn;
    const own = userChannel(room.name, user);
    this.client = Object.freeze({
      id: CHAT_CLIENT_PREFIX + randomId(16),
      user,
      transport: 'chat',
      permissions: Object.freeze({ subscribe: [room.channel, own], publish: [], presence: [room.channel] }),
    });
    this.left = new Promise((resolve) => (this.resolveLeft = resolve));
    conn.receive(
      (text) => this.received(text),
      () => this.end('closed', 0, ''),
    );
  }

  get joined(): boolean {
    return this.state === 'joined';
  }

  // ---- join ------------------------------------------------------------------------------------

  async start(): Promise<void> {
    const { hub, options, controller, logger } = this.room.host;
    hub.register(this);
    try {
      await hub.subscribe(this, userChannel(this.room.name, this.user));
      let since: Position | undefined;
      if (options.replay > 0) {
        const head = await hub.history(this.room.channel, { limit: 0 });
        since = { epoch: head.epoch, offset: Math.max(0, head.offset - options.replay) };
      }
      if (this.state !== 'joining') throw new HeraldError('bad_request', 'the connection closed while joining');
      await hub.subscribe(this, this.room.channel, since, (result) => this.replay(result));
    } catch (err) {
      const e = toHeraldError(err);
      if (this.state === 'joining') {
        logger.warn({ err, room: this.room.name, user: this.user }, 'chat: join failed');
        this.notify(`could not join: ${e.message}`);
        this.end('closed', e.code === 'unavailable' ? CHAT_CLOSE.tryAgainLater : CHAT_CLOSE.internal, 'join failed');
      }
      throw e;
    }
    if (this.state !== 'joining') throw new HeraldError('bad_request', 'the connection closed while joining');
    this.state = 'joined';
    try {
      await controller.onConnect(this.room, this.user);
    } catch (err) {
      logger.error({ err, room: this.room.name, user: this.user }, 'chat: onConnect hook failed');
    }
    this.pump();
  }

  private replay(result: SubscribeResult): void {
    const events: HeraldEvent[] = result.events;
    const from = Math.max(0, events.length - this.room.host.options.replay);
    for (let i = from; i < events.length; i++) this.deliverEvent(events[i]!);
  }

  // ---- out -------------------------------------------------------------------------------------

  /** Subscriber: an event of the room or of this user's channel. */
  deliver(out: OutgoingEvent): void {
    const text = out.encoded(this.room.host.wire);
    if (text !== null && this.state !== 'left') this.conn.send(text);
  }

  private deliverEvent(event: HeraldEvent): void {
    // Replayed events are read from history, not fanned out: wrap them to reuse the encoding.
    this.deliver(new OutgoingEvent(event));
  }

  /** @internal */
  sendMessage(msg: ChatMessage): void {
    if (this.state !== 'left') this.conn.send(encodeMessage(msg));
  }

  notify(text: string): void {
    this.sendMessage({ type: 'system', room: this.room.name, to: this.user, text, timestamp: Date.now(), id: uuidv7() });
  }

  // ---- in --------------------------------------------------------------------------------------

  private received(text: string): void {
    if (this.state === 'left' || typeof text !== 'string') return;
    if (this.inbox.length >= this.room.host.options.maxPendingPerUser) {
      this.notify('too many messages at once; slow down (this one was not sent)');
      return;
    }
    this.inbox.push(text);
    if (this.state === 'joined') this.pump();
  }

  /** Handles queued texts one at a time, in order. */
  private pump(): void {
    if (this.handling) return;
    const next = this.inbox.shift();
    if (next === undefined || this.state !== 'joined') return;
    this.handling = true;
    this.handle(next)
      .catch((err: unknown) => {
        const e = toHeraldError(err);
        if (e.code === 'internal') this.room.host.logger.error({ err, room: this.room.name, user: this.user }, 'chat: message handling failed');
        this.notify(`not sent: ${e.message}`);
      })
      .finally(() => {
        this.handling = false;
        this.pump();
      });
  }

  private async handle(raw: string): Promise<void> {
    const { options } = this.room.host;
    let text = cleanText(raw);
    if (text === '') return;
    if (utf8Length(text) > options.maxTextBytes) {
      this.notify(`message too long: at most ${options.maxTextBytes} bytes (it was not sent)`);
      return;
    }
    let command: string | undefined;
    if (text.startsWith('//')) text = text.slice(1);
    else if (text.startsWith('/')) {
      const space = text.search(/\s/);
      command = (space < 0 ? text : text.slice(0, space)).toLowerCase();
      const rest = space < 0 ? '' : text.slice(space + 1).trim();
      switch (command) {
        case '/users':
          this.notify(`users: ${(await this.room.allUsers()).join(', ')}`);
          return;
        case '/w':
        case '/whisper':
          return this.whisper(rest);
        case '/quit':
          this.end('quit', CHAT_CLOSE.normal, 'bye');
          return;
        case '/help':
          this.notify(HELP_TEXT);
          return;
      }
      // Other commands go to encode: an application may add its own.
    }
    const result = await this.encode(command === undefined ? { type: 'message', from: this.user, text } : { type: 'message', from: this.user, text, command });
    if (result === undefined || this.room.closed) return;
    await this.room.broadcast(result, this.user);
  }

  private async whisper(args: string): Promise<void> {
    const space = args.search(/\s/);
    const to = space < 0 ? args : args.slice(0, space);
    const text = space < 0 ? '' : args.slice(space + 1).trim();
    if (to === '' || text === '') {
      this.notify('usage: /w <user> <text>');
      return;
    }
    if (!this.room.has(to) && (userProblem(to) !== undefined || !(await this.room.allUsers()).includes(to))) {
      this.notify(`no user named "${to}" in this room`);
      return;
    }
    const out = await this.encode({ type: 'whisper', from: this.user, to, text });
    if (out === undefined || this.state !== 'joined') return;
    const msg = await this.room.deliverPrivately(to, { type: 'whisper', from: this.user, to, text: out }, true);
    if (!msg) this.notify(`no user named "${to}" in this room`);
    else if (to !== this.user) this.sendMessage(msg);
  }

  /** Runs the encode hook: the text to deliver, or undefined (dropped, or answered to the sender). */
  private async encode(draft: ChatDraft): Promise<string | undefined> {
    const { controller, options } = this.room.host;
    const result: EncodeResult = await controller.encode(draft, this.room);
    if (result === null || result === undefined) return undefined;
    if (typeof result !== 'object') throw new TypeError('encode must return a draft, null or { reply }');
    if ('reply' in result) {
      if (typeof result.reply === 'string' && result.reply !== '') this.notify(truncateUtf8(cleanText(result.reply), options.maxTextBytes));
      return undefined;
    }
    if (typeof result.text !== 'string') throw new TypeError('encode must return a draft with a string text');
    const text = truncateUtf8(cleanText(result.text), options.maxTextBytes);
    return text === '' ? undefined : text;
  }

  // ---- leave -----------------------------------------------------------------------------------

  /** ChatMember: removed by the application. */
  leave(text?: string): void {
    if (this.state === 'left') return;
    if (text !== undefined && this.state === 'joined') this.notify(text);
    this.end('removed', CHAT_CLOSE.normal, 'removed');
  }

  /** Session: the server API's disconnect (4002) or the hub closing (1001). */
  disconnect(code: number, reason: string): void {
    this.end(code === CHAT_CLOSE.serverShutdown ? 'server_closed' : 'removed', code, reason);
  }

  /**
   * @internal Leaves, once: the name is freed, hub subscriptions end, the connection is closed
   * (unless it closed itself: `closed`), and `onDisconnect` runs if the user had joined.
   */
  end(reason: LeaveReason, code: number, closeText: string): void {
    if (this.state === 'left') return;
    const wasJoined = this.state === 'joined';
    this.state = 'left';
    this.inbox.length = 0;
    const { hub, controller, logger } = this.room.host;
    this.room.forget(this);
    hub.unregister(this);
    void hub.unsubscribeAll(this).catch(() => {});
    if (reason !== 'closed' || code !== 0) {
      try {
        this.conn.close(code, closeText);
      } catch (err) {
        logger.debug({ err }, 'chat: closing a connection failed');
      }
    }
    if (!wasJoined) {
      this.resolveLeft(reason);
      return;
    }
    void (async () => {
      try {
        await controller.onDisconnect(this.room, this.user, reason);
      } catch (err) {
        logger.error({ err, room: this.room.name, user: this.user }, 'chat: onDisconnect hook failed');
      }
      this.resolveLeft(reason);
    })();
  }
}
