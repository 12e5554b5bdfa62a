/**
 * Positions and cursors for the HTTP streaming transports (SSE, long-poll).
 *
 * An SSE stream must put the cursor of *every* channel in the `id:` of *every* event, so that the
 * browser's Last-Event-ID resumes all of them. Re-encoding the whole cursor per event per stream
 * would be per-subscriber work proportional to the number of channels. `CursorBuilder` keeps the
 * cursor as a list of independently encoded base64url pieces: each piece's JSON text is padded with
 * spaces to a multiple of 3 bytes, so base64(piece1 + piece2 + …) = base64(piece1) + base64(piece2) + …
 * and an event only re-encodes its own channel's piece (a few dozen bytes). The pieces around the
 * changed one are cached as two strings, so a run of events on one channel costs one small encode
 * and one (rope) concatenation each. The result is a valid protocol cursor (`decodeCursor` reads it:
 * JSON allows the padding whitespace), just not byte-identical to `encodeCursor`'s output.
 */
import { CURSOR_VERSION, type HeraldEvent, type Position, type SubscribeResult } from '../../protocol/index.js';

function pad3(text: string): string {
  const rest = Buffer.byteLength(text) % 3;
  return rest === 0 ? text : text + (rest === 1 ? '  ' : ' ');
}

function piece(text: string): string {
  return Buffer.from(pad3(text), 'utf8').toString('base64url');
}

const PREFIX = piece(`[${CURSOR_VERSION},[`);
const SUFFIX = piece(']]');

export class CursorBuilder {
  private readonly index = new Map<string, number>();
  /** `[", channel json ,"` head of each entry's JSON text, computed once. */
  private readonly heads: string[] = [];
  private readonly epochs: string[] = [];
  private readonly offsets: number[] = [];
  /** pieces[0] is the prefix, pieces[i + 1] entry i, pieces[n + 1] the suffix. */
  private readonly pieces: string[];
  private value: string | undefined;
  private hot = -1;
  private before = '';
  private after = '';

  constructor(positions: Iterable<readonly [string, Position]>) {
    this.pieces = [PREFIX];
    let i = 0;
    for (const [channel, p] of positions) {
      this.index.set(channel, i);
      this.heads.push((i === 0 ? '[' : ',[') + JSON.stringify(channel) + ',');
      this.epochs.push(p.epoch);
      this.offsets.push(p.offset);
      this.pieces.push(this.encodeEntry(i));
      i++;
    }
    this.pieces.push(SUFFIX);
  }

  private encodeEntry(i: number): string {
    return piece(this.heads[i]! + JSON.stringify(this.epochs[i]!) + ',' + this.offsets[i]! + ']');
  }

  /** Moves `channel` to `position`; unknown channels are ignored. */
  set(channel: string, epoch: string, offset: number): void {
    const i = this.index.get(channel);
    if (i === undefined) return;
    if (this.offsets[i] === offset && this.epochs[i] === epoch) return;
    this.epochs[i] = epoch;
    this.offsets[i] = offset;
    this.pieces[i + 1] = this.encodeEntry(i);
    if (this.hot !== i) {
      this.hot = i;
      this.before = this.pieces.slice(0, i + 1).join('');
      this.after = this.pieces.slice(i + 2).join('');
    }
    this.value = undefined;
  }

  /** Advances the cursor past `event`. */
  advance(event: HeraldEvent): void {
    this.set(event.channel, event.epoch, event.offset);
  }

  /** The encoded cursor. */
  toString(): string {
    if (this.value === undefined) {
      this.value = this.hot < 0 ? this.pieces.join('') : this.before + this.pieces[this.hot + 1]! + this.after;
    }
    return this.value;
  }

  position(channel: string): Position | undefined {
    const i = this.index.get(channel);
    return i === undefined ? undefined : { epoch: this.epochs[i]!, offset: this.offsets[i]! };
  }
}

/**
 * The position *before* the events a subscribe answered with, i.e. where a client that has seen
 * none of them stands. With an honoured `since` it is `since`; otherwise it is just before the
 * first returned event, or the channel's latest position when nothing was returned.
 */
export function startPosition(result: SubscribeResult, since: Position | undefined): Position {
  if (since && result.recovered) return { epoch: since.epoch, offset: since.offset };
  const first = result.events[0];
  if (first) return { epoch: first.epoch, offset: first.offset - 1 };
  return { epoch: result.epoch, offset: result.offset };
}
