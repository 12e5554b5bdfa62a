/**
 * Test fixtures for the WebSocket transport: a real Hub on the memory engine, a real HTTP server
 * routing `GET /ws` upgrades to the transport, and clients that collect what they receive and
 * can await the next message matching a predicate. Timeouts here only turn a hang into a failure.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import WebSocket from 'ws';
import { Hub, type HubOptions } from '../../src/core/hub.js';
import type { Logger } from '../../src/core/logger.js';
import { MemoryEngine } from '../../src/engines/memory.js';
import { WebSocketTransport, type WebSocketTransportOptions } from '../../src/transports/websocket/index.js';

/** A JSON message from the server (answer or push). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Msg = Record<string, any>;

export interface Harness {
  hub: Hub;
  transport: WebSocketTransport;
  server: Server;
  /** ws://127.0.0.1:port/ws */
  url: string;
  /** http://127.0.0.1:port (same origin) */
  origin: string;
  /** Log entries the transport wrote, as [level, message, fields]. */
  logs: [string, string, object][];
  /** Resolves with the first log entry whose message contains `text` (and whose fields match). */
  logged(text: string, match?: (fields: Msg) => boolean, timeoutMs?: number): Promise<[string, string, object]>;
  /** Resolves once the server has released the connection of `clientId` (it logs every close). */
  released(clientId: string): Promise<unknown>;
  stop(): Promise<void>;
}

export interface HarnessOptions {
  hub?: Omit<HubOptions, 'engine'>;
  transport?: Partial<WebSocketTransportOptions>;
}

export async function startHarness(options: HarnessOptions = {}): Promise<Harness> {
  const hub = new Hub({ engine: new MemoryEngine(), ...options.hub });
  await hub.start();
  const logs: [string, string, object][] = [];
  const logWaiters: { text: string; match: (fields: Msg) => boolean; resolve: (e: [string, string, object]) => void }[] = [];
  const record = (level: string) => (obj: object | string, msg?: string) => {
    const entry: [string, string, object] = typeof obj === 'string' ? [level, obj, {}] : [level, msg ?? '', obj];
    logs.push(entry);
    for (const w of [...logWaiters]) {
      if (entry[1].includes(w.text) && w.match(entry[2])) {
        logWaiters.splice(logWaiters.indexOf(w), 1);
        w.resolve(entry);
      }
    }
  };
  const logger: Logger = { debug: record('debug'), info: record('info'), warn: record('warn'), error: record('error') };
  const transport = new WebSocketTransport(hub, { logger, ...options.transport });
  const server = createServer((_req, res) => res.writeHead(404).end());
  server.on('upgrade', (req, socket, head) => {
    if (new URL(req.url ?? '/', 'http://x').pathname === '/ws') transport.handleUpgrade(req, socket, head);
    else socket.destroy();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  let stopping: Promise<void> | undefined;
  const harness: Harness = {
    hub,
    transport,
    server,
    url: `ws://127.0.0.1:${port}/ws`,
    origin: `http://127.0.0.1:${port}`,
    logs,
    logged(text, match = () => true, timeoutMs = 5000) {
      const found = logs.find((e) => e[1].includes(text) && match(e[2]));
      if (found) return Promise.resolve(found);
      return withTimeout(new Promise((resolve) => logWaiters.push({ text, match, resolve })), timeoutMs, `log "${text}"`);
    },
    released(clientId) {
      return harness.logged('connection closed', (f) => f.client === clientId);
    },
    stop: () =>
      (stopping ??= (async () => {
        await transport.close();
        await hub.close();
        server.closeAllConnections();
        await new Promise<void>((resolve) => server.close(() => resolve()));
      })()),
  };
  return harness;
}

export function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
      timer.unref();
    }),
  ]);
}

interface Waiter {
  match: (m: Msg) => boolean;
  resolve: (m: Msg) => void;
}

/** A WebSocket client that keeps every JSON message it receives. */
export class TestClient {
  readonly ws: WebSocket;
  readonly messages: Msg[] = [];
  /** Resolves with the close code and reason. */
  readonly closed: Promise<{ code: number; reason: string }>;
  /** Set by `connect`. */
  clientId = '';
  private nextId = 1;
  private readonly consumed = new WeakSet<Msg>();
  private waiters: Waiter[] = [];

  private constructor(ws: WebSocket) {
    this.ws = ws;
    ws.on('message', (data, isBinary) => {
      const msg: Msg = isBinary ? { binary: true } : (JSON.parse(data.toString()) as Msg);
      this.messages.push(msg);
      for (const w of this.waiters) {
        if (!this.consumed.has(msg) && w.match(msg)) {
          this.consumed.add(msg);
          this.waiters = this.waiters.filter((x) => x !== w);
          w.resolve(msg);
          break;
        }
      }
    });
    this.closed = new Promise((resolve) => ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() })));
  }

  /** Opens a socket (no `connect` command yet). */
  static async open(url: string, options: WebSocket.ClientOptions = {}): Promise<TestClient> {
    const ws = new WebSocket(url, options);
    const client = new TestClient(ws);
    await withTimeout(
      new Promise<void>((resolve, reject) => {
        ws.once('open', () => resolve());
        ws.once('error', reject);
      }),
      3000,
      'websocket open',
    );
    return client;
  }

  /** Opens a socket and sends `connect`; resolves once it is answered with a result. */
  static async connect(url: string, token?: string, options: WebSocket.ClientOptions = {}): Promise<TestClient> {
    const client = await TestClient.open(url, options);
    const answer = await client.request('connect', token === undefined ? {} : { token });
    if (!answer.result) throw new Error(`connect failed: ${JSON.stringify(answer)}`);
    client.clientId = answer.result.client as string;
    return client;
  }

  /** The next message matching `match` not returned before (already received ones count). */
  next(match: (m: Msg) => boolean, timeoutMs = 3000): Promise<Msg> {
    for (const m of this.messages) {
      if (!this.consumed.has(m) && match(m)) {
        this.consumed.add(m);
        return Promise.resolve(m);
      }
    }
    return withTimeout(new Promise((resolve) => this.waiters.push({ match, resolve })), timeoutMs, `message matching ${match.toString()}`);
  }

  send(value: unknown): void {
    this.ws.send(typeof value === 'string' ? value : JSON.stringify(value));
  }

  /** Sends a command with a fresh id and resolves with its answer. */
  request(op: string, fields: Msg = {}, timeoutMs = 3000): Promise<Msg> {
    const id = this.nextId++;
    this.send({ id, op, ...fields });
    return this.next((m) => m.id === id, timeoutMs);
  }

  /** Sends a command with a fresh id without waiting; returns the id. */
  fire(op: string, fields: Msg = {}): number {
    const id = this.nextId++;
    this.send({ id, op, ...fields });
    return id;
  }

  /** Event pushes of `channel` received so far. */
  events(channel: string): Msg[] {
    return this.messages.filter((m) => m.push === 'event' && m.event.channel === channel).map((m) => m.event as Msg);
  }

  waitClosed(timeoutMs = 8000): Promise<{ code: number; reason: string }> {
    return withTimeout(this.closed, timeoutMs, 'close');
  }

  get isOpen(): boolean {
    return this.ws.readyState === WebSocket.OPEN;
  }

  close(): void {
    this.ws.close();
  }
}

/** Status of an upgrade the server refused (rejects if it was accepted). */
export function refusedStatus(url: string, headers: Record<string, string>): Promise<number> {
  const ws = new WebSocket(url, { headers });
  return withTimeout(
    new Promise((resolve, reject) => {
      ws.once('unexpected-response', (_req, res) => {
        resolve(res.statusCode ?? 0);
        res.resume();
        ws.terminate();
      });
      ws.once('open', () => {
        ws.terminate();
        reject(new Error('upgrade was accepted'));
      });
      ws.once('error', () => {});
    }),
    3000,
    'refusal',
  );
}
