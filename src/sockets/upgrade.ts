/**
 * Hooking WebSocket upgrades into a server: `node:http` (and every framework built on it: Express,
 * Koa, Fastify's `fastify.server`) hands upgrades to its `'upgrade'` listeners, bypassing the
 * request handlers. One listener offers each upgrade to its targets in turn (a `herald/sockets`
 * route, a mounted herald, anything with `handleUpgrade(req, socket, head): boolean`).
 *
 * An upgrade nobody takes is answered 404 and closed, but only when every `'upgrade'` listener
 * of the server is one of ours: another library's listener (e.g. @fastify/websocket) may take it.
 */
import { STATUS_CODES, type IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';

/** Something that may take an upgrade: returns false (and does nothing) when it is not for it. */
export interface UpgradeTarget {
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): boolean;
}

/** The part of `http.Server` (or `https.Server`) used here. */
export interface UpgradeEmitter {
  on(event: 'upgrade', listener: (req: IncomingMessage, socket: Duplex, head: Buffer) => void): unknown;
  off(event: 'upgrade', listener: (req: IncomingMessage, socket: Duplex, head: Buffer) => void): unknown;
  listeners(event: 'upgrade'): unknown[];
}

const ours = new WeakSet<object>();
const taken = new WeakSet<IncomingMessage>();

/**
 * Adds one `'upgrade'` listener to `server` that offers every upgrade to `targets`, in order,
 * until one takes it. Returns a function that removes the listener.
 */
export function attachUpgrades(server: UpgradeEmitter, ...targets: UpgradeTarget[]): () => void {
  for (const t of targets) {
    if (!t || typeof t.handleUpgrade !== 'function') throw new TypeError('attachUpgrades: every target needs handleUpgrade(req, socket, head)');
  }
  const listener = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    if (taken.has(req)) return;
    for (const target of targets) {
      let took: boolean;
      try {
        took = target.handleUpgrade(req, socket, head);
      } catch {
        taken.add(req);
        rejectUpgrade(socket, 500, 'upgrade failed');
        return;
      }
      if (took) {
        taken.add(req);
        return;
      }
    }
    // Nobody of ours took it. The last of our listeners answers, if no foreign listener exists.
    const all = server.listeners('upgrade');
    if (all[all.length - 1] === listener && all.every((l) => ours.has(l as object))) {
      rejectUpgrade(socket, 404, 'no WebSocket endpoint here');
    }
  };
  ours.add(listener);
  server.on('upgrade', listener);
  return () => server.off('upgrade', listener);
}

/**
 * Refuses an upgrade with a plain HTTP answer, then closes the socket: for an application's own
 * check in front of a route (`if (!authorized(req)) return rejectUpgrade(socket, 401, 'unauthorized')`).
 */
export function rejectUpgrade(socket: Duplex, status: number, message: string = STATUS_CODES[status] ?? 'refused', headers: Record<string, string> = {}): void {
  socket.on('error', ignore);
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  let extra = '';
  for (const [name, value] of Object.entries(headers)) extra += `${name}: ${value.replace(/[\r\n]/g, ' ')}\r\n`;
  socket.once('finish', destroySelf);
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Error'}\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\n` +
      `Content-Length: ${Buffer.byteLength(message)}\r\n${extra}\r\n${message}`,
  );
}

function destroySelf(this: Duplex): void {
  this.destroy();
}

function ignore(): void {}
