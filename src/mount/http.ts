/**
 * herald on a `node:http` (or `node:https`) server: requests under herald's prefix and its
 * upgrades go to herald, everything else to the application.
 */
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { HeraldError } from '../protocol/index.js';
import { sendError } from '../transports/http.js';
import type { Herald } from '../server/herald.js';
import { attachUpgrades } from '../sockets/upgrade.js';

export type RequestListener = (req: IncomingMessage, res: ServerResponse) => void;

function notFound(_req: IncomingMessage, res: ServerResponse): void {
  sendError(res, new HeraldError('not_found', 'no such endpoint'));
}

/**
 * A request listener that serves herald's requests and hands the others to `fallback` (an
 * Express or Koa callback, another listener; default: 404 JSON). Upgrades are not requests:
 * add `attachUpgrades(server, herald)` too, or use `mount`.
 */
export function heraldHttp(herald: Herald, fallback: RequestListener = notFound): RequestListener {
  return (req, res) => {
    if (!herald.handleRequest(req, res)) fallback(req, res);
  };
}

/**
 * Mounts herald on an existing server: its request listeners (the application, as given to
 * `createServer(app)`) now see only what herald does not take, and herald's upgrades are hooked
 * in. Call it after the application's listener is attached. Returns a function that undoes it.
 */
export function mount(server: Server, herald: Herald): () => void {
  const previous = server.listeners('request') as RequestListener[];
  server.removeAllListeners('request');
  const listener: RequestListener = (req, res) => {
    if (herald.handleRequest(req, res)) return;
    if (previous.length === 0) return notFound(req, res);
    for (const l of previous) l.call(server, req, res);
  };
  server.on('request', listener);
  const detach = attachUpgrades(server, herald);
  return () => {
    server.off('request', listener);
    for (const l of previous) server.on('request', l);
    detach();
  };
}
