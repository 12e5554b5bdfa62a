/**
 * SSE and long-poll cursors (SPEC §3, §4): one opaque string holding the position of every
 * channel of a stream, so any node can resume all of them. base64url of a compact JSON array.
 */
import { channelProblem } from './channel.js';
import type { Position } from './event.js';

export type Cursor = Map<string, Position>;

export const CURSOR_VERSION = 1;

// Node's Buffer when there is one (the server: several times faster), else the browser's btoa/atob.
const NodeBuffer = (globalThis as { Buffer?: { from(data: string, encoding: string): Uint8Array & { toString(encoding: string): string } } }).Buffer;
const utf8Decoder = new TextDecoder('utf-8', { fatal: true });

function toBase64Url(text: string): string {
  if (NodeBuffer) return NodeBuffer.from(text, 'utf8').toString('base64url');
  const utf8 = new TextEncoder().encode(text);
  let bin = '';
  for (let i = 0; i < utf8.length; i++) bin += String.fromCharCode(utf8[i]!);
  return btoa(bin).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

function fromBase64Url(text: string): string | undefined {
  // One character over a multiple of 4 is never valid base64 (atob refuses it; Buffer would not).
  if (!/^[A-Za-z0-9_-]*$/.test(text) || text.length % 4 === 1) return undefined;
  try {
    if (NodeBuffer) return utf8Decoder.decode(NodeBuffer.from(text, 'base64url'));
    const bin = atob(text.replace(/-/g, '+').replace(/_/g, '/'));
    const bytes = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    return utf8Decoder.decode(bytes);
  } catch {
    return undefined;
  }
}

export function encodeCursor(cursor: Cursor): string {
  const entries: [string, string, number][] = [];
  for (const [channel, p] of cursor) entries.push([channel, p.epoch, p.offset]);
  return toBase64Url(JSON.stringify([CURSOR_VERSION, entries]));
}

/** Decodes a cursor; undefined when it is not one (never throws). */
export function decodeCursor(text: string, maxChannels = 1024): Cursor | undefined {
  if (text.length > 2_000_000) return undefined;
  const json = fromBase64Url(text);
  if (json === undefined) return undefined;
  let raw: unknown;
  try {
    raw = JSON.parse(json);
  } catch {
    return undefined;
  }
  if (!Array.isArray(raw) || raw[0] !== CURSOR_VERSION || !Array.isArray(raw[1]) || raw[1].length > maxChannels) return undefined;
  const cursor: Cursor = new Map();
  for (const entry of raw[1] as unknown[]) {
    if (!Array.isArray(entry) || entry.length !== 3) return undefined;
    const [channel, epoch, offset] = entry as unknown[];
    if (channelProblem(channel) || typeof epoch !== 'string' || epoch.length > 64) return undefined;
    if (typeof offset !== 'number' || !Number.isSafeInteger(offset) || offset < 0) return undefined;
    cursor.set(channel as string, { epoch, offset });
  }
  return cursor;
}
