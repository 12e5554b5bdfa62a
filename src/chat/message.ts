/**
 * The chat wire (SPEC §7), pure: names, text cleaning, channel names and the outgoing JSON.
 *
 * Out, one JSON object per message:
 *   {"type":"message"|"system"|"whisper","room","from?","to?","text","timestamp","id"}
 *
 * A room is the hub channel `chat:<room>`; a user's private channel (whispers to a user connected
 * to another node) is `chat:<room>:@<user>`. What the chat publishes there is the event `data`
 * `{type, from?, to?, text}`; `room`, `timestamp` and `id` come from the channel and the event.
 */
import type { HeraldEvent } from '../protocol/index.js';

export type ChatMessageType = 'message' | 'system' | 'whisper';

/** One message as a user receives it. */
export interface ChatMessage {
  type: ChatMessageType;
  room: string;
  /** The sender; absent on system messages. */
  from?: string;
  /** The one recipient: whispers, and system messages meant for one user. */
  to?: string;
  text: string;
  /** Milliseconds since the Unix epoch. */
  timestamp: number;
  /** A UUID, unique per message (the hub event's id for messages that went through a channel). */
  id: string;
}

/** What the chat publishes on a room or user channel. */
export interface ChatPayload {
  type: ChatMessageType;
  from?: string;
  to?: string;
  text: string;
}

export const CHANNEL_PREFIX = 'chat:';
const ROOM_NAME = /^[A-Za-z0-9_-]{1,64}$/;
/** Letters, digits, `_`, `.`, `-`: no spaces (so `/w <user> <text>` parses) and nothing a pattern could match wildly. */
const USER_NAME = /^[\p{L}\p{N}_.-]{1,32}$/u;

export function roomProblem(name: unknown): string | undefined {
  if (typeof name !== 'string') return '"room" must be a string';
  if (!ROOM_NAME.test(name)) return 'a room name is 1 to 64 characters A-Z, a-z, 0-9, "_" or "-"';
  return undefined;
}

export function userProblem(name: unknown): string | undefined {
  if (typeof name !== 'string') return '"user" must be a string';
  if (!USER_NAME.test(name)) return 'a user name is 1 to 32 letters, digits, "_", "." or "-" (no spaces)';
  return undefined;
}

export function roomChannel(room: string): string {
  return CHANNEL_PREFIX + room;
}

export function userChannel(room: string, user: string): string {
  return `${CHANNEL_PREFIX}${room}:@${user}`;
}

/** The room (and user, for a user channel) a chat channel belongs to; undefined for other channels. */
export function parseChatChannel(channel: string): { room: string; user?: string } | undefined {
  if (!channel.startsWith(CHANNEL_PREFIX)) return undefined;
  const rest = channel.slice(CHANNEL_PREFIX.length);
  const at = rest.indexOf(':@');
  if (at < 0) return ROOM_NAME.test(rest) ? { room: rest } : undefined;
  const room = rest.slice(0, at);
  const user = rest.slice(at + 2);
  return ROOM_NAME.test(room) && USER_NAME.test(user) ? { room, user } : undefined;
}

// C0 and C1 controls and DEL except tab and newline, and the bidi embeddings, overrides and
// isolates (they can make a line read as something else).
const UNWANTED = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/g;

/** Line breaks made `\n`, unwanted control characters removed, surrounding whitespace trimmed. */
export function cleanText(text: string): string {
  return text.replace(/\r\n?/g, '\n').replace(UNWANTED, '').trim();
}

export function utf8Length(text: string): number {
  return Buffer.byteLength(text, 'utf8');
}

/** `text` cut to at most `maxBytes` UTF-8 bytes, on a code point boundary. */
export function truncateUtf8(text: string, maxBytes: number): string {
  if (text.length * 3 <= maxBytes || utf8Length(text) <= maxBytes) return text;
  let bytes = 0;
  let end = 0;
  for (const ch of text) {
    const cp = ch.codePointAt(0)!;
    const size = cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
    if (bytes + size > maxBytes) break;
    bytes += size;
    end += ch.length;
  }
  return text.slice(0, end);
}

/** The JSON a user receives, fields in the SPEC's order. */
export function encodeMessage(m: ChatMessage): string {
  const out: Record<string, unknown> = { type: m.type, room: m.room };
  if (m.from !== undefined) out.from = m.from;
  if (m.to !== undefined) out.to = m.to;
  out.text = m.text;
  out.timestamp = m.timestamp;
  out.id = m.id;
  return JSON.stringify(out);
}

/**
 * The message a channel event stands for, or undefined when it is not one (then nobody gets it).
 *
 * Events the chat publishes carry no `from` client and a `ChatPayload`. Anything else on a chat
 * channel was published by someone else: by the server API (no `from` client: trusted, a string is
 * a system announcement), or by a client over a generic transport (then only as a plain message
 * signed with the client's authenticated user, never on a user channel, so no one can pose as
 * another user or as the system).
 */
export function messageFromEvent(event: HeraldEvent, maxTextBytes: number): ChatMessage | undefined {
  const where = parseChatChannel(event.channel);
  if (!where) return undefined;
  const data = event.data;
  const d = data && typeof data === 'object' && !Array.isArray(data) ? (data as Record<string, unknown>) : undefined;
  const rawText = typeof data === 'string' ? data : typeof d?.text === 'string' ? d.text : undefined;
  if (rawText === undefined) return undefined;
  const text = truncateUtf8(cleanText(rawText), maxTextBytes);
  if (text === '') return undefined;
  const base = { room: where.room, text, timestamp: event.timestamp, id: event.id };

  if (event.from) {
    const user = event.from.user;
    if (where.user !== undefined || user === undefined || userProblem(user) !== undefined) return undefined;
    return { type: 'message', ...base, from: user };
  }
  if (d === undefined) return where.user === undefined ? { type: 'system', ...base } : { type: 'system', ...base, to: where.user };
  const from = typeof d.from === 'string' && userProblem(d.from) === undefined ? d.from : undefined;
  if (where.user === undefined) {
    if (d.type === 'whisper' || d.to !== undefined) return undefined;
    return from !== undefined && d.type !== 'system' ? { type: 'message', ...base, from } : { type: 'system', ...base };
  }
  if (d.type === 'whisper') return from !== undefined ? { type: 'whisper', ...base, from, to: where.user } : undefined;
  return { type: 'system', ...base, to: where.user };
}
