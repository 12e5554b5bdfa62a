/**
 * `herald/mount`: herald inside an existing application. `createHerald` builds herald without a
 * server; the adapters put it on `node:http`, Express, Fastify or Koa, under a path prefix,
 * upgrades included. See docs/mount-*.md.
 */
export {
  createHerald,
  SHUTDOWN_GRACE_MS,
  type Herald,
  type HeraldHandler,
  type HeraldHandlers,
  type HeraldOptions,
  type HeraldState,
  type HeraldTransports,
  type RouteSet,
  type RouteSetContext,
  type RouteSetFactory,
} from '../server/herald.js';
export type { RouteHandler, UpgradeHandler } from '../server/router.js';
export { heraldHttp, mount, type RequestListener } from './http.js';
export { heraldExpress, type ExpressMiddleware } from './express.js';
export { heraldKoa, type KoaContextLike, type KoaMiddleware } from './koa.js';
export { heraldFastify, type FastifyInstanceLike, type FastifyReplyLike, type FastifyRequestLike, type HeraldFastifyOptions, type HeraldFastifyPlugin } from './fastify.js';
export { attachUpgrades, rejectUpgrade, type UpgradeEmitter, type UpgradeTarget } from '../sockets/upgrade.js';
