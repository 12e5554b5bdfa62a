/**
 * herald in an Express (5) application: a middleware. Mount it before any body parser (herald
 * reads its own bodies) and without a path (herald's `prefix` places it):
 * `app.use(heraldExpress(herald))`. Express has no notion of upgrades: hook them on the server
 * `app.listen()` returns, with `attachUpgrades(server, herald)`.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Herald } from '../server/herald.js';

/** Express's `(req, res, next)` middleware shape (typed on node's request and response). */
export type ExpressMiddleware = (req: IncomingMessage, res: ServerResponse, next: (err?: unknown) => void) => void;

export function heraldExpress(herald: Herald): ExpressMiddleware {
  return function heraldMiddleware(req, res, next) {
    herald.handleRequest(req, res, next);
  };
}
