/**
 * The server's route table: a map, no framework. A route is `'METHOD /path'`; a path ending in
 * `*` matches by prefix (`'GET /golongpoll/*'`, `'* /chat*'`), and the method `*` takes every
 * method (for handlers that answer their own OPTIONS preflight). HEAD falls back to GET.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';

export type RouteHandler = (req: IncomingMessage, res: ServerResponse, url: URL) => void | Promise<void>;
export type UpgradeHandler = (req: IncomingMessage, socket: Duplex, head: Buffer) => void;

export type RouteMatch =
  | { kind: 'handler'; handler: RouteHandler }
  /** The path exists under other methods: answer 405 with these in `Allow`. */
  | { kind: 'method'; allowed: string[] }
  | { kind: 'none' };

interface PrefixRoute {
  method: string;
  prefix: string;
  handler: RouteHandler;
}

export class Router {
  private readonly exact = new Map<string, Map<string, RouteHandler>>();
  private readonly prefixes: PrefixRoute[] = [];

  /** Adds a route; a later `set` of the same route replaces it. */
  set(route: string, handler: RouteHandler): this {
    if (typeof handler !== 'function') throw new TypeError(`route ${JSON.stringify(route)} needs a handler function`);
    const { method, path } = parseRoute(route);
    if (path.endsWith('*')) {
      const prefix = path.slice(0, -1);
      const i = this.prefixes.findIndex((r) => r.method === method && r.prefix === prefix);
      if (i >= 0) this.prefixes.splice(i, 1);
      this.prefixes.push({ method, prefix, handler });
      // Longest prefix first, so `/chat/sse*` wins over `/chat*`.
      this.prefixes.sort((a, b) => b.prefix.length - a.prefix.length);
    } else {
      let byMethod = this.exact.get(path);
      if (!byMethod) this.exact.set(path, (byMethod = new Map()));
      byMethod.set(method, handler);
    }
    return this;
  }

  /** Removes a route (as given to `set`); false when there was none. */
  delete(route: string): boolean {
    const { method, path } = parseRoute(route);
    if (path.endsWith('*')) {
      const prefix = path.slice(0, -1);
      const i = this.prefixes.findIndex((r) => r.method === method && r.prefix === prefix);
      if (i < 0) return false;
      this.prefixes.splice(i, 1);
      return true;
    }
    const byMethod = this.exact.get(path);
    if (!byMethod?.delete(method)) return false;
    if (byMethod.size === 0) this.exact.delete(path);
    return true;
  }

  /** The handler registered for exactly this route (as given to `set`), if any. */
  get(route: string): RouteHandler | undefined {
    const { method, path } = parseRoute(route);
    if (path.endsWith('*')) {
      const prefix = path.slice(0, -1);
      return this.prefixes.find((r) => r.method === method && r.prefix === prefix)?.handler;
    }
    return this.exact.get(path)?.get(method);
  }

  match(method: string, pathname: string): RouteMatch {
    const byMethod = this.exact.get(pathname);
    if (byMethod) {
      const handler = byMethod.get(method) ?? byMethod.get('*') ?? (method === 'HEAD' ? byMethod.get('GET') : undefined);
      if (handler) return { kind: 'handler', handler };
    }
    const allowed = new Set(byMethod?.keys() ?? []);
    for (const route of this.prefixes) {
      if (!pathname.startsWith(route.prefix)) continue;
      if (route.method === method || route.method === '*' || (method === 'HEAD' && route.method === 'GET')) return { kind: 'handler', handler: route.handler };
      allowed.add(route.method);
    }
    if (allowed.size === 0) return { kind: 'none' };
    if (allowed.has('GET')) allowed.add('HEAD');
    return { kind: 'method', allowed: [...allowed].sort() };
  }
}

function parseRoute(route: string): { method: string; path: string } {
  const space = route.indexOf(' ');
  if (space <= 0 || !route.startsWith('/', space + 1)) throw new TypeError(`route must be "METHOD /path", got ${JSON.stringify(route)}`);
  return { method: route.slice(0, space).toUpperCase(), path: route.slice(space + 1) };
}
