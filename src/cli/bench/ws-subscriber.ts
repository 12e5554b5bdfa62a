/**
 * A WebSocket subscriber for the benchmark (SPEC §2): the upgrade goes through `node:http`, then
 * frames are read straight off the socket. The `ws` package costs about 30% more CPU per message
 * on the receiving side, and on a small machine the load generator competes with the server for
 * the same cores; a frame scanner that builds no string and no object per event keeps it cheap.
 *
 * It speaks enough of RFC 6455 to be a correct client: masked frames out, fragments joined,
 * pings answered, close frames answered and recorded. No extensions are offered.
 */
import { createHash, randomBytes } from 'node:crypto';
import { request } from 'node:http';
import type { Socket } from 'node:net';
import { type SubState, type Verifier, epochMatches, nowUs, scanEvent, scanned } from './verify.js';

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
/** Frames bigger than this are refused (herald's default limit is 64 KiB). */
const MAX_FRAME = 16 * 1024 * 1024;

export interface Endpoint {
  host: string;
  port: number;
  /** Path prefix of the server (usually ''). */
  base: string;
  headers: Record<string, string>;
}

/** A masked client frame. */
function clientFrame(opcode: number, payload: Buffer): Buffer {
  const len = payload.length;
  const head = len < 126 ? 2 : len < 65536 ? 4 : 10;
  const out = Buffer.allocUnsafe(head + 4 + len);
  out[0] = 0x80 | opcode;
  if (len < 126) {
    out[1] = 0x80 | len;
  } else if (len < 65536) {
    out[1] = 0x80 | 126;
    out.writeUInt16BE(len, 2);
  } else {
    out[1] = 0x80 | 127;
    out.writeBigUInt64BE(BigInt(len), 2);
  }
  const mask = randomBytes(4);
  mask.copy(out, head);
  for (let i = 0; i < len; i++) out[head + 4 + i] = payload[i]! ^ mask[i & 3]!;
  return out;
}

export class WsSubscriber {
  private socket: Socket | undefined;
  private pending: Buffer | undefined;
  private fragments: Buffer[] = [];
  private fragmentOpcode = 0;
  private onReady: ((err?: Error) => void) | undefined;

  constructor(
    readonly state: SubState,
    private readonly verifier: Verifier,
    private readonly endpoint: Endpoint,
    private readonly channel: string,
    private readonly localAddress: string | undefined,
  ) {}

  /** Connects, sends `connect` and `subscribe`, and resolves once subscribed. */
  open(timeoutMs: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => fail(new Error(`no subscribe answer within ${timeoutMs} ms`)), timeoutMs);
      const fail = (err: Error): void => {
        clearTimeout(timer);
        this.onReady = undefined;
        this.close();
        reject(err);
      };
      this.onReady = (err) => {
        clearTimeout(timer);
        this.onReady = undefined;
        if (err) fail(err);
        else resolve();
      };
      const key = randomBytes(16).toString('base64');
      const req = request({
        host: this.endpoint.host,
        port: this.endpoint.port,
        path: `${this.endpoint.base}/ws`,
        localAddress: this.localAddress,
        agent: false,
        headers: {
          ...this.endpoint.headers,
          Connection: 'Upgrade',
          Upgrade: 'websocket',
          'Sec-WebSocket-Version': '13',
          'Sec-WebSocket-Key': key,
        },
      });
      req.on('response', (res) => {
        res.resume();
        fail(new Error(`GET /ws answered HTTP ${res.statusCode} instead of upgrading`));
      });
      req.on('error', (err) => fail(err));
      req.on('upgrade', (res, socket, head) => {
        const accept = createHash('sha1').update(key + GUID).digest('base64');
        if (res.headers['sec-websocket-accept'] !== accept) {
          socket.destroy();
          fail(new Error('bad Sec-WebSocket-Accept in the upgrade answer'));
          return;
        }
        this.socket = socket;
        socket.setNoDelay(true);
        socket.on('data', (chunk: Buffer) => this.receive(chunk));
        socket.on('error', () => {});
        socket.on('close', () => this.closed(1006, 'connection lost'));
        socket.write(clientFrame(1, Buffer.from('{"id":1,"op":"connect"}')));
        socket.write(clientFrame(1, Buffer.from(JSON.stringify({ id: 2, op: 'subscribe', channel: this.channel }))));
        if (head.length > 0) this.receive(head);
      });
      req.end();
    });
  }

  close(): void {
    const socket = this.socket;
    if (!socket) return;
    this.socket = undefined;
    this.state.markClosed(1000, 'closed by the benchmark');
    // Whatever still arrives is no longer this subscriber's business.
    socket.removeAllListeners('data');
    socket.on('data', () => {});
    if (!socket.destroyed) {
      socket.end(clientFrame(8, Buffer.from([0x03, 0xe8])));
      setTimeout(() => socket.destroy(), 1_000).unref();
    }
  }

  private closed(code: number, reason: string): void {
    this.state.markClosed(code, reason);
    this.onReady?.(new Error(`closed before subscribing: ${code} ${reason}`));
    this.socket = undefined;
  }

  private receive(chunk: Buffer): void {
    const now = nowUs();
    this.verifier.beginBatch();
    let buf = chunk;
    if (this.pending) {
      buf = Buffer.concat([this.pending, chunk]);
      this.pending = undefined;
    }
    let p = 0;
    const n = buf.length;
    while (n - p >= 2) {
      const b0 = buf[p]!;
      const b1 = buf[p + 1]!;
      let len = b1 & 0x7f;
      let head = 2;
      if (len === 126) {
        if (n - p < 4) break;
        len = buf.readUInt16BE(p + 2);
        head = 4;
      } else if (len === 127) {
        if (n - p < 10) break;
        const big = buf.readBigUInt64BE(p + 2);
        len = big > BigInt(MAX_FRAME) ? MAX_FRAME + 1 : Number(big);
        head = 10;
      }
      if ((b1 & 0x80) !== 0 || (b0 & 0x70) !== 0 || len > MAX_FRAME) {
        this.verifier.problem(`subscriber ${this.state.index}: malformed frame from the server`);
        this.socket?.destroy();
        this.closed(1002, 'malformed frame');
        return;
      }
      if (n - p < head + len) break;
      const start = p + head;
      const end = start + len;
      p = end;
      const opcode = b0 & 0x0f;
      const fin = (b0 & 0x80) !== 0;
      if (opcode === 0x1 && fin) {
        this.message(buf, start, end, now);
      } else if (opcode === 0x1 || opcode === 0x0) {
        if (opcode === 0x1) this.fragmentOpcode = 1;
        this.fragments.push(buf.subarray(start, end));
        if (fin) {
          const whole = Buffer.concat(this.fragments);
          this.fragments = [];
          if (this.fragmentOpcode === 1) this.message(whole, 0, whole.length, now);
        }
      } else if (opcode === 0x9) {
        this.socket?.write(clientFrame(0xa, buf.subarray(start, end)));
      } else if (opcode === 0x8) {
        const code = len >= 2 ? buf.readUInt16BE(start) : 1005;
        const reason = buf.toString('utf8', start + Math.min(2, len), end);
        const socket = this.socket;
        this.closed(code, reason);
        if (socket && !socket.destroyed) socket.end(clientFrame(8, Buffer.from([code >> 8, code & 0xff])));
        return;
      } else if (opcode !== 0xa) {
        this.verifier.problem(`subscriber ${this.state.index}: unexpected opcode ${opcode}`);
      }
    }
    if (p < n) this.pending = p === 0 ? buf : Buffer.from(buf.subarray(p));
  }

  private message(buf: Buffer, start: number, end: number, now: number): void {
    const sub = this.state;
    if (this.onReady === undefined && scanEvent(buf, start, end)) {
      const { offset, t, m } = scanned;
      this.verifier.event(sub, offset, epochMatches(buf, sub), t, m, now);
      if (this.verifier.sample()) this.verifier.checkParsed(sub, buf.toString('utf8', start, end), offset, t, m);
      return;
    }
    this.control(buf.toString('utf8', start, end));
  }

  /** Answers and pushes other than events: rare, so parsed in full. */
  private control(text: string): void {
    let msg: Record<string, unknown>;
    try {
      msg = JSON.parse(text) as Record<string, unknown>;
    } catch {
      this.verifier.problem(`subscriber ${this.state.index}: a frame is not JSON`);
      return;
    }
    const error = msg.error as { code?: string; message?: string } | undefined;
    if (msg.id === 1 || msg.id === 2) {
      if (error) {
        this.onReady?.(new Error(`${msg.id === 1 ? 'connect' : 'subscribe'} failed: ${error.code}: ${error.message}`));
        return;
      }
      if (msg.id === 2) {
        const result = msg.result as { epoch?: unknown; offset?: unknown } | undefined;
        if (typeof result?.epoch !== 'string' || !Number.isSafeInteger(result.offset)) {
          this.onReady?.(new Error('subscribe answer without epoch and offset'));
          return;
        }
        this.state.start(result.epoch, result.offset as number);
        this.onReady?.();
      }
      return;
    }
    if (msg.push === 'disconnect') {
      this.state.closeCode = Number(msg.code) || 0;
      this.state.closeReason = String(msg.reason ?? '');
      return;
    }
    if (msg.push === 'event') {
      // An event before the subscribe answer, or one the scan could not read.
      this.verifier.problem(`subscriber ${this.state.index}: unexpected event ${text.slice(0, 200)}`);
      return;
    }
    if (msg.push !== undefined) return; // join/leave and the like: not ours to judge.
    this.verifier.problem(`subscriber ${this.state.index}: unexpected message ${text.slice(0, 200)}`);
  }
}
