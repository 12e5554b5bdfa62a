/**
 * The application's hooks into a room, after go-chat-i-guess's ChannelController: what happens
 * when a user connects or leaves, and what becomes of each message a user sends.
 */
import type { ChatRoom } from './room.js';

/** Why a user left a room. */
export type LeaveReason =
  /** The user sent `/quit`. */
  | 'quit'
  /** The connection ended on the user's side (socket closed, SSE stream ended, slow consumer). */
  | 'closed'
  /** The application removed the user (`room.remove`, `member.leave`, the server API's disconnect). */
  | 'removed'
  /** The room was closed (deleted). */
  | 'room_closed'
  /** The chat server was closed. */
  | 'server_closed';

/** A message a user sent, before it is delivered: `encode` sees it and decides. */
export interface ChatDraft {
  readonly type: 'message' | 'whisper';
  readonly from: string;
  /** For a whisper: its one recipient. */
  readonly to?: string;
  /** Cleaned (no control characters but newline and tab), within `maxTextBytes`. */
  readonly text: string;
  /**
   * For a text that starts with one `/` (a command the chat does not know, e.g. `/roll`): that
   * first word, lower-cased. A text that starts with `//` is a plain message whose text starts
   * with `/` (the first slash removed) and has no `command`.
   */
  readonly command?: string;
}

/**
 * What `encode` decides:
 * - a draft (the one given, or a copy with another `text`): delivered as usual with that text;
 * - `null`: dropped, nobody gets it;
 * - `{ reply }`: not delivered; the sender alone gets `reply` as a system message.
 */
export type EncodeResult = ChatDraft | null | { reply: string };

export interface ChatController {
  /** A user has joined `room` (their replay sent, live messages flowing). Default: announce it. */
  onConnect(room: ChatRoom, user: string): void | Promise<void>;
  /** A user who joined has left, for any reason; called once per join. Default: announce it. */
  onDisconnect(room: ChatRoom, user: string, reason: LeaveReason): void | Promise<void>;
  /**
   * Every message and whisper a user sends (commands other than `/users`, `/w`, `/quit` and
   * `/help` included, so an application can add its own). Called once per message, on the
   * sender's node. Default: unknown `/commands` are answered to the sender, the rest passes.
   */
  encode(draft: ChatDraft, room: ChatRoom): EncodeResult | Promise<EncodeResult>;
}

export const HELP_TEXT = 'commands: /users, /w <user> <text>, /quit';

export const defaultController: Readonly<ChatController> = Object.freeze({
  async onConnect(room: ChatRoom, user: string): Promise<void> {
    await room.broadcast(`${user} joined`);
  },
  async onDisconnect(room: ChatRoom, user: string): Promise<void> {
    await room.broadcast(`${user} left`);
  },
  encode(draft: ChatDraft): EncodeResult {
    if (draft.command !== undefined) return { reply: `unknown command ${draft.command}; ${HELP_TEXT}` };
    return draft;
  },
});
