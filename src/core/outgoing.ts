/**
 * One published event on its way out: serialised once per publish, and once per wire format,
 * however many subscribers receive it. Transports register an Encoding and read it from here.
 */
import type { HeraldEvent } from '../protocol/index.js';

export interface Encoding<T> {
  readonly slot: number;
  readonly encode: (out: OutgoingEvent) => T;
}

let nextSlot = 0;

/** Declares a wire format. Call once at module level, never per event. */
export function defineEncoding<T>(encode: (out: OutgoingEvent) => T): Encoding<T> {
  return { slot: nextSlot++, encode };
}

/** The OutgoingEvent built when an event was fanned out, while the event object lives (in history). */
const byEvent = new WeakMap<HeraldEvent, OutgoingEvent>();

export class OutgoingEvent {
  /**
   * The OutgoingEvent of an event read back from history: the one made at fan-out when the engine
   * hands back the same object (memory, journal), so a poll or a resume re-serialises nothing.
   */
  static of(event: HeraldEvent): OutgoingEvent {
    let out = byEvent.get(event);
    if (out === undefined) {
      out = new OutgoingEvent(event);
      byEvent.set(event, out);
    }
    return out;
  }

  /** Remembers `out` as the OutgoingEvent of its event (the hub does this once per fan-out). */
  static remember(out: OutgoingEvent): OutgoingEvent {
    byEvent.set(out.event, out);
    return out;
  }

  readonly event: HeraldEvent;
  private jsonText: string | undefined;
  private readonly cache: unknown[] = [];

  constructor(event: HeraldEvent, json?: string) {
    this.event = event;
    this.jsonText = json;
  }

  /** The event's JSON (SPEC §1 shape). */
  get json(): string {
    return (this.jsonText ??= JSON.stringify(this.event));
  }

  encoded<T>(encoding: Encoding<T>): T {
    let value = this.cache[encoding.slot] as T | undefined;
    if (value === undefined) {
      value = encoding.encode(this);
      this.cache[encoding.slot] = value;
    }
    return value;
  }
}
