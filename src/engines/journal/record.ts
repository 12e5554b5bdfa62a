/**
 * The journal's record format: bytes in, bytes out, no I/O (tested with raw buffers).
 *
 *   offset  size  field
 *   0       2     magic "HJ" (0x48 0x4a): lets a scan tell a torn tail from mid-file damage
 *   2       4     CRC-32 (little endian) of bytes 6..end: type, flags, length and payload
 *   6       1     type (RecordType)
 *   7       1     flags, 0 (reserved)
 *   8       4     payload length in bytes (little endian)
 *   12      n     payload: UTF-8 JSON (an event record's payload is the event's JSON, as sent)
 */
import { crc32 } from './crc32.js';

export const RecordType = {
  /** An event: its JSON, with channel, epoch and offset. */
  event: 1,
  /** A channel's position `{channel, epoch, offset}`: an anchor, or an epoch change. */
  position: 2,
  /** First record of every segment: who wrote it `{v, run, epoch, fsync, boot, relabel?, at}`. */
  open: 3,
  /** Clean shutdown: everything before it was written and fsynced. */
  close: 4,
} as const;

export type RecordTypeCode = (typeof RecordType)[keyof typeof RecordType];

export const HEADER_BYTES = 12;
/** No record is larger; a length over it is corruption. Events are limited far lower by the hub. */
export const MAX_PAYLOAD_BYTES = 64 * 1024 * 1024;
const MAGIC0 = 0x48;
const MAGIC1 = 0x4a;

export function encodeRecord(type: RecordTypeCode, payload: string): Buffer {
  const length = Buffer.byteLength(payload);
  const buf = Buffer.allocUnsafe(HEADER_BYTES + length);
  buf[0] = MAGIC0;
  buf[1] = MAGIC1;
  buf[6] = type;
  buf[7] = 0;
  buf.writeUInt32LE(length, 8);
  buf.write(payload, HEADER_BYTES, 'utf8');
  buf.writeUInt32LE(crc32(buf.subarray(6)), 2);
  return buf;
}

export type DecodeFailure = 'truncated' | 'magic' | 'length' | 'crc';

export type Decoded =
  | { ok: true; type: number; payload: Buffer; end: number }
  | { ok: false; reason: DecodeFailure };

/** Decodes the record at `pos`. Unknown types decode fine (the reader decides what to do). */
export function decodeRecord(buf: Buffer, pos: number): Decoded {
  if (buf.length - pos < HEADER_BYTES) return { ok: false, reason: 'truncated' };
  if (buf[pos] !== MAGIC0 || buf[pos + 1] !== MAGIC1) return { ok: false, reason: 'magic' };
  const length = buf.readUInt32LE(pos + 8);
  if (length > MAX_PAYLOAD_BYTES) return { ok: false, reason: 'length' };
  const end = pos + HEADER_BYTES + length;
  if (end > buf.length) return { ok: false, reason: 'truncated' };
  if (crc32(buf.subarray(pos + 6, end)) !== buf.readUInt32LE(pos + 2)) return { ok: false, reason: 'crc' };
  return { ok: true, type: buf[pos + 6]!, payload: buf.subarray(pos + HEADER_BYTES, end), end };
}

/** Position of the first valid record at or after `from`, or -1: is there good data after damage? */
export function findNextRecord(buf: Buffer, from: number): number {
  for (let pos = buf.indexOf(MAGIC0, from); pos >= 0; pos = buf.indexOf(MAGIC0, pos + 1)) {
    if (buf[pos + 1] === MAGIC1 && decodeRecord(buf, pos).ok) return pos;
  }
  return -1;
}
