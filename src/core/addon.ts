/**
 * Add-ons: the extension point of the memory engine (persistence, replication, audit). The
 * journal (engines/journal/) is one; docs/addons.md shows how to write another. Like golongpoll's
 * AddOn, with the rules a durable one needs spelled out.
 *
 * Lifecycle, driven by the engine (`MemoryEngine({ addons })`):
 * 1. `open(ctx)` — in array order, inside `engine.start()`. Do your I/O here.
 * 2. `restore()` — in array order, inside `engine.start()`, before anything is served. The items
 *    feed the engine's history, offsets and epochs (rules on `RestoreItem`). They are not passed
 *    to the other add-ons' `onPublish`.
 * 3. `onPublish(event, json, options)` — for every publish, see below.
 * 4. `flush()` — when the owner asks the engine to flush (`MemoryEngine.flush()`).
 * 5. `close()` — in array order, inside `engine.close()` (the hub calls it on shutdown). Must
 *    drain what the add-on holds and return in bounded time; the journal gives up after 5 s.
 *
 * `onPublish` rules:
 * - **Called synchronously by `engine.publish`, in the order offsets are assigned**: per channel
 *   in offset order, across channels in publish order. The engine does not wait for one call to
 *   settle before making the next, so an add-on can batch (the journal writes every record that
 *   arrives during a write in the next single write).
 * - **The engine awaits the returned promise before acknowledging the publish AND before
 *   appending the event to history and fanning it out.** A subscriber or a history read never
 *   sees an event that the add-on could still lose. Return nothing to not delay anything.
 * - **Never reordered**: if the promise of offset 7 settles before that of offset 6, the engine
 *   still commits 6 then 7. A slow add-on delays acknowledgements; it cannot reorder them.
 * - **Failure is fail-stop.** Throwing, or a rejected promise, fails that publish with
 *   `unavailable` and puts the whole engine into a failed state: every publish in flight (whose
 *   offset is after the failed one, or on another channel sharing the add-on's failed write) is
 *   rejected with `unavailable`, no offset is consumed (the next offset stays +1 from the last
 *   committed one, so no hole ever appears), `available()` turns false (readiness 503) and later
 *   publishes are refused until the process restarts. The alternative — committing offset 8
 *   when 7 failed — would leave a gap a client can never fill.
 * - An add-on that fails outside a publish (a background fsync) calls `ctx.fail(error)`: same
 *   effect.
 * - The event and its JSON are shared with the engine and the subscribers: never mutate them.
 */
import type { HeraldEvent } from '../protocol/index.js';
import type { ChannelOptions } from './engine.js';
import type { Logger } from './logger.js';

/** One stored event, in offset order per channel. `json` is its serialisation if the add-on kept it. */
export interface RestoredEvent {
  readonly kind: 'event';
  readonly event: HeraldEvent;
  readonly json?: string;
}

/** A channel's position: what its next publish continues from. */
export interface RestoredChannel {
  readonly kind: 'channel';
  readonly channel: string;
  readonly epoch: string;
  readonly offset: number;
}

/** The epoch given to channels that have no restored position (a channel at offset 0). */
export interface RestoredEpoch {
  readonly kind: 'epoch';
  readonly epoch: string;
}

/**
 * What `restore()` yields. The engine applies each item as it comes:
 * - `event`: appended to its channel's history (size and time-to-live of
 *   `channelOptions(channel)` apply). An event of another epoch than the channel's starts a new
 *   generation (history cleared). An offset at or below the channel's is ignored (duplicate). An
 *   offset beyond the next one clears the older history first, so history never has a hole:
 *   positions before the jump get `recovered: false`.
 * - `channel`: sets the position. Another epoch starts a new generation; a higher offset in the
 *   same epoch clears the history (the events in between are gone); a lower one is ignored.
 * - `epoch`: the epoch of channels nobody restored. Without it the engine picks a random one.
 * Yield a channel's events before its `channel` item.
 */
export type RestoreItem = RestoredEvent | RestoredChannel | RestoredEpoch;

/** A channel as the engine holds it: its position and its retained events, oldest first. */
export interface RetainedChannel {
  readonly epoch: string;
  readonly offset: number;
  readonly events: readonly HeraldEvent[];
  /** `json[i]` is the serialisation of `events[i]`. */
  readonly json: readonly string[];
}

/** What the engine offers its add-ons. */
export interface AddOnContext {
  readonly logger: Logger;
  /** The engine's clock. */
  now(): number;
  /** The channel's storage options (history size, time-to-live), as the server resolves them. */
  channelOptions(channel: string): ChannelOptions;
  /** The committed state of a channel (not the publishes still in flight); undefined if unknown. */
  retained(channel: string, options: ChannelOptions): RetainedChannel | undefined;
  /** Fails the engine (see the rules above), for failures outside `onPublish`. */
  fail(error: unknown): void;
}

export interface AddOn {
  /** For logs and errors. */
  readonly name: string;
  open?(ctx: AddOnContext): void | Promise<void>;
  restore?(): AsyncIterable<RestoreItem> | Iterable<RestoreItem>;
  onPublish?(event: HeraldEvent, json: string, options: ChannelOptions): void | Promise<void>;
  flush?(): void | Promise<void>;
  close?(): void | Promise<void>;
}
