/**
 * Body writes for long-lived streaming responses (SSE), straight to the socket: one socket write
 * per call, framed the way the response is (HTTP/1.1 chunks, or raw bytes to an HTTP/1.0 peer).
 *
 * Why not `res.write`: for a chunked response it makes four socket writes (size, CRLF, data,
 * CRLF) under a cork that it releases on a `process.nextTick` — per call, per stream. At one event
 * per stream per turn that was a third of an SSE delivery's server CPU.
 *
 * While the response does not own its socket (a pipelined request waits for the one before it),
 * `res.write` is used: it queues in order, and the queue is written before anything direct.
 */
import type { ServerResponse } from 'node:http';
import type { Socket } from 'node:net';

const CRLF = '\r\n';

/** `data` as one HTTP/1.1 chunk: `<size in hex>\r\n<data>\r\n`. */
export function chunkText(data: string): string {
  return Buffer.byteLength(data, 'utf8').toString(16) + CRLF + data + CRLF;
}

/** `bytes` as one HTTP/1.1 chunk, in one buffer (built once, written to many sockets). */
export function chunkBytes(bytes: Uint8Array): Buffer {
  const head = bytes.byteLength.toString(16) + CRLF;
  const chunk = Buffer.allocUnsafe(head.length + bytes.byteLength + 2);
  chunk.write(head, 0, 'latin1');
  chunk.set(bytes, head.length);
  chunk.write(CRLF, head.length + bytes.byteLength, 'latin1');
  return chunk;
}

/** The socket body bytes may be written to directly, or undefined (use `res.write`). Headers must have been written. */
function directSocket(res: ServerResponse): Socket | undefined {
  const socket = res.socket;
  return socket !== null && res.headersSent && !res.writableEnded && socket.writable ? (socket as Socket) : undefined;
}

/** Writes `data` to the body of a streaming response whose headers have been written. */
export function writeBody(res: ServerResponse, data: string): void {
  const socket = directSocket(res);
  if (socket === undefined) res.write(data);
  else socket.write(res.chunkedEncoding ? chunkText(data) : data);
}

/**
 * Writes shared bytes to the body: `chunk` is the same bytes already framed as a chunk (both are
 * built once per publish and written to every stream).
 */
export function writeBodyShared(res: ServerResponse, bytes: Buffer, chunk: Buffer): void {
  const socket = directSocket(res);
  if (socket === undefined) res.write(bytes);
  else socket.write(res.chunkedEncoding ? chunk : bytes);
}
