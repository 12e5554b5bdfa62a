/**
 * herald in a Fastify (5) application: a plugin, `await fastify.register(heraldFastify(herald))`.
 *
 * It adds catch-all routes under herald's prefix (`<prefix>` and `<prefix>/*`; `/*` at the root,
 * where Fastify's own routes still win as more specific). Their `onRequest` hook hands the raw
 * request and response to herald with `reply.hijack()`, before Fastify parses any body (herald
 * reads its own). Paths herald does not serve go to Fastify's not-found handler. Upgrades are
 * hooked on `fastify.server`, and herald closes when Fastify does (`preClose`), so its streams and
 * WebSockets do not hold `fastify.close()`.
 *
 * The plugin is not encapsulated (like fastify-plugin): Fastify's `prefix` register option does
 * not apply, use herald's `prefix`.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Herald } from '../server/herald.js';
import { attachUpgrades, type UpgradeEmitter } from '../sockets/upgrade.js';

/** The parts of Fastify's request and reply used here (no import of fastify). */
export interface FastifyRequestLike {
  readonly raw: IncomingMessage;
}
export interface FastifyReplyLike {
  readonly raw: ServerResponse;
  hijack(): unknown;
  callNotFound(): unknown;
}

/**
 * A Fastify instance, as far as the plugin's type goes. Fastify's own types are generic over
 * HTTP/1 and HTTP/2 servers; herald serves HTTP/1 (`node:http`/`node:https`) Fastify servers.
 */
export interface FastifyInstanceLike {
  readonly server: unknown;
  route(options: never): unknown;
  addHook(name: never, hook: never): unknown;
}

/** What the plugin actually calls. */
interface FastifyUsed {
  readonly server: UpgradeEmitter;
  route(options: {
    method: string[];
    url: string;
    onRequest: (request: FastifyRequestLike, reply: FastifyReplyLike, done: (err?: Error) => void) => void;
    handler: (request: FastifyRequestLike, reply: FastifyReplyLike) => void;
  }): unknown;
  addHook(name: 'preClose' | 'onClose', hook: () => Promise<void>): unknown;
}

export interface HeraldFastifyOptions {
  /** Close herald when Fastify closes (its `preClose` hook). Default true. */
  closeWithServer?: boolean;
}

export type HeraldFastifyPlugin = ((instance: FastifyInstanceLike, options: unknown, done: (err?: Error) => void) => void) & {
  readonly [key: symbol]: unknown;
};

const METHODS = ['DELETE', 'GET', 'HEAD', 'PATCH', 'POST', 'PUT', 'OPTIONS'];

export function heraldFastify(herald: Herald, options: HeraldFastifyOptions = {}): HeraldFastifyPlugin {
  const closeWithServer = options.closeWithServer ?? true;
  const plugin = (instance: FastifyInstanceLike, _opts: unknown, done: (err?: Error) => void): void => {
    const fastify = instance as unknown as FastifyUsed;
    const onRequest = (request: FastifyRequestLike, reply: FastifyReplyLike, next: (err?: Error) => void): void => {
      if (!herald.owns(request.raw)) {
        next();
        return;
      }
      // Hijacked: Fastify stops here (no body parsing, no handler) and herald owns the response.
      reply.hijack();
      next();
      void herald.handleRequest(request.raw, reply.raw);
    };
    const handler = (_request: FastifyRequestLike, reply: FastifyReplyLike): void => {
      reply.callNotFound();
    };
    const urls = herald.prefix === '' ? ['/*'] : [herald.prefix, `${herald.prefix}/*`];
    for (const url of urls) fastify.route({ method: METHODS, url, onRequest, handler });
    const detach = attachUpgrades(fastify.server, herald);
    fastify.addHook('onClose', async () => detach());
    if (closeWithServer) fastify.addHook('preClose', () => herald.close());
    done();
  };
  return Object.assign(plugin, {
    // fastify-plugin's markers: not encapsulated, and a name in Fastify's plugin tree.
    [Symbol.for('skip-override')]: true,
    [Symbol.for('fastify.display-name')]: 'herald',
  });
}
