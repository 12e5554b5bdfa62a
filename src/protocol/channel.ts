import { HeraldError } from './errors.js';

export const MAX_CHANNEL_LENGTH = 1024;

/** A channel is 1..1024 code points with no control character (SPEC §1). Returns a reason or null. */
export function channelProblem(channel: unknown): string | null {
  if (typeof channel !== 'string') return 'channel must be a string';
  if (channel.length === 0) return 'channel must not be empty';
  let count = 0;
  for (const ch of channel) {
    const cp = ch.codePointAt(0)!;
    if (cp <= 0x1f || cp === 0x7f) return 'channel must not contain control characters';
    if (cp >= 0xd800 && cp <= 0xdfff) return 'channel must be valid Unicode';
    if (++count > MAX_CHANNEL_LENGTH) return `channel must be at most ${MAX_CHANNEL_LENGTH} characters`;
  }
  return null;
}

export function assertChannel(channel: unknown): asserts channel is string {
  const problem = channelProblem(channel);
  if (problem) throw new HeraldError('bad_request', problem);
}

/** The part before the first ':' (`chat:lobby` → `chat`); no colon → the default namespace "". */
export function namespaceOf(channel: string): string {
  const i = channel.indexOf(':');
  return i < 0 ? '' : channel.slice(0, i);
}

/** Matches a channel against a pattern where `*` matches any run of characters. */
export function matchPattern(pattern: string, channel: string): boolean {
  if (pattern === '*') return true;
  if (!pattern.includes('*')) return pattern === channel;
  const parts = pattern.split('*');
  const first = parts[0]!;
  const last = parts[parts.length - 1]!;
  if (!channel.startsWith(first)) return false;
  if (channel.length < first.length + last.length || !channel.endsWith(last)) return false;
  let pos = first.length;
  const end = channel.length - last.length;
  for (let i = 1; i < parts.length - 1; i++) {
    const idx = channel.indexOf(parts[i]!, pos);
    if (idx < 0 || idx + parts[i]!.length > end) return false;
    pos = idx + parts[i]!.length;
  }
  return true;
}
