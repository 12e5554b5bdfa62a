/** The event: one JSON shape on every transport (SPEC §1). */
export interface HeraldEvent {
  channel: string;
  /** Per channel, +1 per publish within an epoch; the first event is 1. */
  offset: number;
  /** Names one generation of the channel's history. */
  epoch: string;
  /** UUID v7. */
  id: string;
  /** Milliseconds since the Unix epoch, at publish. */
  timestamp: number;
  data: unknown;
  /** Present only when a connected client published the event. */
  from?: ClientInfo;
}

export interface ClientInfo {
  client: string;
  user?: string;
}

/** A position in a channel's history: resume from here. */
export interface Position {
  epoch: string;
  offset: number;
}

export function isPosition(value: unknown): value is Position {
  if (!value || typeof value !== 'object') return false;
  const p = value as Record<string, unknown>;
  return typeof p.epoch === 'string' && p.epoch.length <= 64 && Number.isSafeInteger(p.offset) && (p.offset as number) >= 0;
}

/** The answer to a publish. */
export interface PublishResult {
  channel: string;
  epoch: string;
  offset: number;
  id: string;
  timestamp: number;
}

export interface SubscribeResult {
  channel: string;
  epoch: string;
  offset: number;
  recovered: boolean;
  events: HeraldEvent[];
}

export interface HistoryResult {
  epoch: string;
  offset: number;
  recovered: boolean;
  events: HeraldEvent[];
}
