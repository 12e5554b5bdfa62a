/**
 * Server → client WebSocket framing (RFC 6455 §5.2), for data that is sent to many
 * connections: the frame is built once and the same Buffer is written to every socket.
 * Pure: no socket here, so it is tested on raw bytes.
 */

/** Largest close reason: a close frame's payload is at most 125 bytes, 2 of them the code. */
export const MAX_CLOSE_REASON_BYTES = 123;

function headerLength(payloadBytes: number): number {
  return payloadBytes < 126 ? 2 : payloadBytes < 65_536 ? 4 : 10;
}

function writeHeader(frame: Buffer, opcode: number, payloadBytes: number): void {
  frame[0] = 0x80 | opcode; // FIN + opcode; server frames are never masked
  if (payloadBytes < 126) {
    frame[1] = payloadBytes;
  } else if (payloadBytes < 65_536) {
    frame[1] = 126;
    frame.writeUInt16BE(payloadBytes, 2);
  } else {
    frame[1] = 127;
    frame.writeUInt32BE(Math.floor(payloadBytes / 0x1_0000_0000), 2);
    frame.writeUInt32BE(payloadBytes >>> 0, 6);
  }
}

/** One complete, unmasked, unfragmented text frame carrying `text`, in a single Buffer. */
export function textFrame(text: string): Buffer {
  const bytes = Buffer.byteLength(text);
  const offset = headerLength(bytes);
  const frame = Buffer.allocUnsafe(offset + bytes);
  writeHeader(frame, 0x1, bytes);
  frame.write(text, offset, 'utf8');
  return frame;
}

/** The payload of a frame made by `textFrame` (a view, not a copy). */
export function framePayload(frame: Buffer): Buffer {
  const len7 = frame[1]! & 0x7f;
  return frame.subarray(len7 < 126 ? 2 : len7 === 126 ? 4 : 10);
}

/** Cuts a close reason to what a close frame can carry, on a character boundary. */
export function closeReason(reason: string): string {
  if (reason.length <= MAX_CLOSE_REASON_BYTES / 3 || Buffer.byteLength(reason) <= MAX_CLOSE_REASON_BYTES) return reason;
  let out = '';
  let bytes = 0;
  for (const ch of reason) {
    const n = Buffer.byteLength(ch);
    if (bytes + n > MAX_CLOSE_REASON_BYTES) break;
    out += ch;
    bytes += n;
  }
  return out;
}
