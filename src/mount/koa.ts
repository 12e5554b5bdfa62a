/**
 * herald in a Koa (3) application: a middleware. Put it before any body parser (herald reads its
 * own bodies) and outside koa-mount (herald's `prefix` places it): `app.use(heraldKoa(herald))`.
 * It takes over the raw request and response (`ctx.respond = false`) and resolves once herald's
 * handler has returned (a stream or a long poll then carries on by itself). Upgrades: hook them
 * on the server `app.listen()` returns, with `attachUpgrades(server, herald)`.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Herald } from '../server/herald.js';

/** The part of Koa's context used here. */
export interface KoaContextLike {
  req: IncomingMessage;
  res: ServerResponse;
  respond?: boolean;
}

export type KoaMiddleware = (ctx: KoaContextLike, next: () => Promise<unknown>) => Promise<void>;

export function heraldKoa(herald: Herald): KoaMiddleware {
  return async function heraldMiddleware(ctx, next) {
    if (!herald.owns(ctx.req)) {
      await next();
      return;
    }
    ctx.respond = false;
    // Koa starts every response at 404; herald's handlers set their own status, start it at 200.
    ctx.res.statusCode = 200;
    await herald.handleRequest(ctx.req, ctx.res);
  };
}
