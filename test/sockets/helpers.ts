/**
 * Fixtures for the `herald/sockets` tests: a real `node:http` server on 127.0.0.1 (port 0) with
 * routes attached, real `ws` clients, and a logger that records. Timeouts only turn a hang into
 * a failure.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import WebSocket from 'ws';
import type { Logger } from '../../src/core/logger.js';
import { attachUpgrades, type UpgradeTarget } from '../../src/sockets/index.js';

export interface Rig {
  server: Server;
  /** ws://127.0.0.1:PORT */
  base: string;
  stop(): Promise<void>;
}

export async function serve(...targets: (UpgradeTarget & { close?(): Promise<void> })[]): Promise<Rig> {
  const server = createServer((_req, res) => res.writeHead(404).end());
  attachUpgrades(server, ...targets);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  let stopped: Promise<void> | undefined;
  return {
    server,
    base: `ws://127.0.0.1:${port}`,
    stop: () =>
      (stopped ??= (async () => {
        await Promise.all(targets.map((t) => t.close?.()));
        server.closeAllConnections();
        await new Promise<void>((resolve) => server.close(() => resolve()));
      })()),
  };
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

/** A client that keeps every message (text as string, binary as Buffer) and can await the next. */
export class Peer {
  readonly ws: WebSocket;
  readonly received: (string | Buffer)[] = [];
  readonly closed: Promise<{ code: number; reason: string }>;
  private waiters: (() => void)[] = [];
  private taken = 0;

  constructor(url: string, options: WebSocket.ClientOptions = {}) {
    this.ws = new WebSocket(url, options);
    this.ws.on('message', (data, isBinary) => {
      this.received.push(isBinary ? Buffer.from(data as Buffer) : data.toString());
      for (const w of this.waiters.splice(0)) w();
    });
    this.ws.on('error', () => {});
    this.closed = new Promise((resolve) => this.ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() })));
  }

  static async open(url: string, options: WebSocket.ClientOptions = {}): Promise<Peer> {
    const peer = new Peer(url, options);
    await withTimeout(
      new Promise<void>((resolve, reject) => {
        peer.ws.once('open', () => resolve());
        peer.ws.once('unexpected-response', (_req, res) => reject(new Error(`upgrade refused: ${res.statusCode}`)));
        peer.ws.once('error', reject);
      }),
      3000,
      'open',
    );
    return peer;
  }

  /** The next message not yet taken. */
  async next(ms = 3000): Promise<string | Buffer> {
    while (this.received.length <= this.taken) {
      await withTimeout(new Promise<void>((resolve) => this.waiters.push(resolve)), ms, 'a message');
    }
    return this.received[this.taken++]!;
  }

  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  async nextJson(ms = 3000): Promise<any> {
    return JSON.parse(String(await this.next(ms)));
  }

  waitClosed(ms = 5000): Promise<{ code: number; reason: string }> {
    return withTimeout(this.closed, ms, 'close');
  }
}

/** The HTTP status of a refused upgrade. */
export function refusedStatus(url: string, headers: Record<string, string>): Promise<number> {
  const ws = new WebSocket(url, { headers });
  return withTimeout(
    new Promise((resolve, reject) => {
      ws.once('unexpected-response', (_req, res) => {
        resolve(res.statusCode ?? 0);
        res.resume();
        ws.terminate();
      });
      ws.once('open', () => reject(new Error('upgrade was accepted')));
      ws.once('error', () => {});
    }),
    3000,
    'refusal',
  );
}

export type Entry = [level: string, message: string, fields: object];

/** A logger that records every entry. */
export function recorder(): { logger: Logger; entries: Entry[] } {
  const entries: Entry[] = [];
  const record = (level: string) => (obj: object | string, msg?: string) => {
    entries.push(typeof obj === 'string' ? [level, obj, {}] : [level, msg ?? '', obj]);
  };
  return { logger: { debug: record('debug'), info: record('info'), warn: record('warn'), error: record('error') }, entries };
}

/** A promise and its resolver. */
export function deferred<T = void>(): { promise: Promise<T>; resolve: (v: T) => void } {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}
