/**
 * herald without a server of its own: the hub, every transport, the HTTP API, health and metrics,
 * `/herald.js`, and a route table, ready to be mounted under a path prefix of an application's
 * server (`node:http`, Express, Fastify, Koa: see src/mount/). `startServer` is this plus its own
 * `node:http` server.
 *
 * Paths: every route and upgrade lives under `prefix` (`/realtime` → `/realtime/ws`,
 * `/realtime/api/publish`, …). Under a non-empty prefix herald answers everything (an unknown path
 * is its 404 JSON); at the root it takes only the paths it has routes for, and the application
 * gets the rest.
 *
 * Each transport's handler is also exported alone (`herald.handlers`), with the
 * `(req, res, url?)` signature, so an application can put its own check in front of it and mount
 * it wherever it likes (golongpoll's pattern); `herald.routes.set()` replaces a mounted one.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';
import { HeraldError, toHeraldError } from '../protocol/index.js';
import { Hub, Namespaces, silentLogger, type Engine, type HubHooks, type HubOptions, type Logger } from '../core/index.js';
import { MemoryEngine } from '../engines/memory.js';
import { sendError, sendJson } from '../transports/http.js';
import { originAllowed } from '../transports/origin.js';
import { WebSocketTransport } from '../transports/websocket/index.js';
import { SseTransport } from '../transports/sse.js';
import { LongPollTransport } from '../transports/longpoll.js';
import { GolongpollTransport } from '../transports/compat/golongpoll.js';
import { GpollTransport } from '../transports/compat/gpoll.js';
import { addApiRoutes } from './api.js';
import { apiKeyGuard } from './auth.js';
import { ConfigError, assertAvailable, namespaceBase, securityWarnings, transportLimitsFromConfig, validateConfig, type HeraldConfig } from './config.js';
import { authHooksFromConfig } from './jwt.js';
import { ChatServer, createChatEndpoints, privateChatGuard } from '../chat/index.js';
import { createMetrics } from './metrics.js';
import { Router, type RouteHandler, type UpgradeHandler } from './router.js';
import { staticFile } from './static.js';

/** Shutdown waits this long for clients to go, then destroys what is left (exit stays within SPEC §5's 10 s). */
export const SHUTDOWN_GRACE_MS = 9_000;
/** The WebSocket `connect` command must arrive within this (SPEC §2). */
const WS_CONNECT_TIMEOUT_MS = 10_000;

export interface HeraldOptions extends Partial<HeraldConfig> {
  /** Default: a new MemoryEngine (or what `redis`/`journal` ask for). */
  engine?: Engine;
  /** The hub's hooks (authenticate, authorize, beforePublish), passed through. */
  hooks?: HubHooks;
  /** Default: silent. */
  logger?: Logger;
  /** Path prefix for every route and upgrade: `''` (the root, the default) or like `/realtime`. */
  prefix?: string;
  /**
   * Serve the demo page at `<prefix>/`. Default false: the page talks to `/ws` and `/api/` at the
   * root, and an application usually has its own `/`. `startServer` turns it on.
   */
  demoPage?: boolean;
  /**
   * Further route sets (chat, an application's own endpoints), built once the hub has started,
   * in order; a route set may replace herald's routes. See `RouteSet`.
   */
  extraRoutes?: readonly RouteSetFactory[];
}

/**
 * Routes and upgrades that join herald's (paths relative to the prefix), and what to close at
 * shutdown. `'/api/*'` routes get the API key guard and the origin check like herald's own.
 */
export interface RouteSet {
  /** `'METHOD /path'` (a path ending in `*` matches by prefix; method `*` takes any) → handler. */
  routes?: Readonly<Record<string, RouteHandler>>;
  /** Path → upgrade handler (a WebSocket endpoint). */
  upgrades?: Readonly<Record<string, UpgradeHandler>>;
  /** Called at shutdown, before the hub closes: end the set's connections. */
  close?(): Promise<void>;
}

export interface RouteSetContext {
  readonly hub: Hub;
  readonly logger: Logger;
  readonly config: Readonly<HeraldConfig>;
  /** The origin allow-list (undefined: same origin only), for CORS and upgrade checks. */
  readonly allowedOrigins: readonly string[] | undefined;
}

export type RouteSetFactory = (context: RouteSetContext) => RouteSet | Promise<RouteSet>;

export type HeraldState = 'starting' | 'running' | 'closing' | 'closed';

/**
 * A transport's request handler on its own: `url` defaults to the request's. It never rejects:
 * failures are answered (JSON errors, or the compatibility endpoint's own shape).
 */
export type HeraldHandler = (req: IncomingMessage, res: ServerResponse, url?: URL) => Promise<void>;

export interface HeraldHandlers {
  /** The WebSocket transport (SPEC §2): an upgrade handler. Answers 503 while not running. */
  readonly websocket: UpgradeHandler;
  /** Server-Sent Events (SPEC §3). */
  readonly sse: HeraldHandler;
  /** Long-poll (SPEC §4). */
  readonly poll: HeraldHandler;
  /** golongpoll's SubscriptionHandler (SPEC §6). */
  readonly golongpollEvents: HeraldHandler;
  /** golongpoll's PublishHandler (SPEC §6). */
  readonly golongpollPublish: HeraldHandler;
  /** gpoll (SPEC §6). */
  readonly gpoll: HeraldHandler;
  /**
   * The HTTP API (SPEC §5) with its API key guard: serves the `/api/…` route named by the end of
   * the URL's path (`/anything/api/publish` → publish).
   */
  readonly api: HeraldHandler;
}

export interface HeraldTransports {
  readonly websocket: WebSocketTransport;
  readonly sse: SseTransport;
  readonly poll: LongPollTransport;
  readonly golongpoll: GolongpollTransport;
  readonly gpoll: GpollTransport;
}

export interface Herald {
  readonly hub: Hub;
  readonly config: Readonly<HeraldConfig>;
  /** `''` or like `/realtime` (no trailing slash). */
  readonly prefix: string;
  readonly state: HeraldState;
  readonly transports: HeraldTransports;
  readonly handlers: HeraldHandlers;
  /** The route table (paths relative to the prefix): `set` adds or replaces, `delete` removes. */
  readonly routes: Router;
  /** Upgrade handlers by path (relative to the prefix). */
  readonly upgrades: Map<string, UpgradeHandler>;
  /** Adds a route set (see `HeraldOptions.extraRoutes`). */
  register(set: RouteSet): void;
  /** Whether `handleRequest` would take this request. */
  owns(req: IncomingMessage): boolean;
  /**
   * Serves a request if it is herald's: returns a promise that settles once herald's handler has
   * returned (it never rejects). Otherwise calls `next` (if given) and returns false.
   */
  handleRequest(req: IncomingMessage, res: ServerResponse, next?: (err?: unknown) => void): false | Promise<void>;
  /** Takes an upgrade for one of herald's paths (true); false, with nothing done, for any other path. */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): boolean;
  /**
   * Graceful shutdown (SPEC §5): WebSocket clients get `disconnect` then 1001, streams end, polls
   * are answered, then the hub and engine close. Resolves within SHUTDOWN_GRACE_MS. Idempotent.
   * The application's server is not closed: close it after.
   */
  close(): Promise<void>;
}

/** @internal What startServer needs beyond the public object. */
export interface HeraldInternals {
  readonly herald: Herald;
  /** Starts the hub and builds the extra route sets; state → running. */
  start(): Promise<void>;
  /** Undo after a failed start. */
  abandon(): Promise<void>;
  /** Destroys every upgraded socket still open (after the grace period). */
  destroyUpgraded(): void;
}

interface BuildOptions {
  /** Standalone server: every path is herald's (unknown ones get its 404). */
  ownsEverything?: boolean;
}

/** Validates the options, builds herald and starts its hub. Rejects with a ConfigError on a bad option. */
export async function createHerald(options: HeraldOptions = {}): Promise<Herald> {
  const built = await buildHerald(options);
  try {
    await built.start();
  } catch (err) {
    await built.abandon();
    throw err;
  }
  return built.herald;
}

/** A normalized prefix: `''` or `/a/b` (no trailing slash). */
export function normalizePrefix(prefix: string | undefined): string {
  if (prefix === undefined || prefix === '' || prefix === '/') return '';
  if (typeof prefix !== 'string' || !prefix.startsWith('/') || /[?#\s]/.test(prefix) || prefix.includes('//')) {
    throw new ConfigError('invalid_option', 'prefix', `invalid prefix: must be "" or a path like "/realtime", got ${JSON.stringify(prefix)}`);
  }
  return prefix.endsWith('/') ? prefix.slice(0, -1) : prefix;
}

/** @internal */
export async function buildHerald(options: HeraldOptions = {}, build: BuildOptions = {}): Promise<HeraldInternals> {
  const config = validateConfig(options);
  assertAvailable(config);
  const prefix = normalizePrefix(options.prefix);
  const extraRoutes = options.extraRoutes ?? [];
  if (!Array.isArray(extraRoutes) || !extraRoutes.every((f) => typeof f === 'function')) {
    throw new ConfigError('invalid_option', 'extraRoutes', 'invalid extraRoutes: must be an array of functions (context) => RouteSet');
  }
  const logger = options.logger ?? silentLogger;
  const engine = options.engine ?? (await createEngine(config, logger));
  const hubOptions: HubOptions = {
    engine,
    namespaces: config.namespaces,
    namespaceBase: namespaceBase(config),
    limits: { maxEventBytes: config.maxMessageBytes, maxChannelsPerClient: config.maxChannelsPerClient },
  };
  // Hooks: JWT from the config, the app's own (they win key by key), and chat's guard that keeps
  // whisper channels away from everyone but chat members.
  const hooks: HubHooks = { ...authHooksFromConfig(config), ...options.hooks };
  const appAuthorize = hooks.authorize;
  hooks.authorize = (action, client, channel) => privateChatGuard(action, client, channel) && (appAuthorize ? appAuthorize(action, client, channel) : true);
  hubOptions.hooks = hooks;
  for (const warning of securityWarnings(config)) logger.warn({}, warning);
  const hub = new Hub(hubOptions);
  /** One set of per-address rate and connection limits, shared by every transport. */
  const limits = transportLimitsFromConfig(config);
  const allowedOrigins = config.allowedOrigins.length > 0 ? Object.freeze([...config.allowedOrigins]) : undefined;
  const checkApiKey = apiKeyGuard(config.apiKey);
  let state: HeraldState = 'starting';

  const websocket = new WebSocketTransport(hub, {
    ...(allowedOrigins ? { allowedOrigins } : {}),
    pingInterval: config.pingInterval,
    maxMessageBytes: config.maxMessageBytes,
    maxBufferedBytes: config.maxBufferedBytes,
    connectTimeout: WS_CONNECT_TIMEOUT_MS,
    coalesceMs: config.coalesceMs,
    limits,
    logger,
  });
  const origins = allowedOrigins ? { allowedOrigins } : {};
  const sse = new SseTransport(hub, { ...origins, coalesceMs: config.coalesceMs, limits, logger });
  const poll = new LongPollTransport(hub, { ...origins, maxTimeout: config.pollTimeoutMax, coalesceMs: config.coalesceMs, paceMs: config.pollPaceMs, paceLoadPercent: config.pollPaceLoad, limits, logger });
  const golongpoll = new GolongpollTransport(hub, { ...origins, maxTimeout: config.pollTimeoutMax, maxBodyBytes: config.maxMessageBytes, limits, logger });
  const gpoll = new GpollTransport(hub, { ...origins, limits, logger });
  const metrics = createMetrics(hub, { websocketBuffers: () => websocket.bufferStats(), pollPaceMs: () => poll.paceMs });

  // ---- route table ---------------------------------------------------------------------------
  // Handlers are `(req, res, url) => void | Promise<void>`; a thrown HeraldError becomes its JSON
  // error answer. SSE and poll take every method: they answer CORS preflights themselves.
  const routes = new Router();
  const upgrades = new Map<string, UpgradeHandler>();
  /** Called at shutdown before the hub closes: each transport ends its connections. */
  const closers: (() => Promise<void>)[] = [];
  const upgraded = new Set<Duplex>();

  addApiRoutes(routes, { hub, maxBodyBytes: config.maxMessageBytes });
  routes
    .set('GET /healthz', (_req, res) => sendJson(res, 200, { status: 'ok' }))
    .set('GET /readyz', (_req, res) => {
      if (state === 'running' && hub.ready()) return sendJson(res, 200, { status: 'ready' });
      const reason = state === 'starting' ? 'starting' : state === 'running' ? 'engine unavailable' : 'shutting down';
      sendError(res, new HeraldError('unavailable', reason));
    })
    .set('GET /metrics', async (_req, res) => {
      const text = await metrics.render();
      res.writeHead(200, { 'content-type': metrics.contentType, 'cache-control': 'no-store' });
      res.end(text);
    })
    .set('GET /herald.js', staticFile('dist/browser/herald.js', 'text/javascript; charset=utf-8', 'the browser client is not built: run npm run build'))
    .set('GET /herald.js.map', staticFile('dist/browser/herald.js.map', 'application/json; charset=utf-8', 'the browser client is not built: run npm run build'))
    .set('GET /ws', (_req, res) => {
      res.setHeader('upgrade', 'websocket');
      sendError(res, new HeraldError('bad_request', 'this endpoint needs a WebSocket upgrade'));
    })
    .set('* /sse', (req, res, url) => sse.handle(req, res, url))
    .set('* /poll', (req, res, url) => poll.handle(req, res, url))
    .set('* /golongpoll/*', (req, res, url) => golongpoll.handle(req, res, url))
    .set('GET /gpoll', (req, res, url) => gpoll.handle(req, res, url));
  if (options.demoPage === true) {
    // The demo chat at `/`; the live-events page (channel subscribe + publish) at `/push`.
    routes
      .set('GET /', staticFile('public/chat.html', 'text/html; charset=utf-8', 'the demo chat is not installed'))
      .set('GET /chat.js', staticFile('public/chat.js', 'text/javascript; charset=utf-8', 'the demo chat is not installed'))
      .set('GET /chat.css', staticFile('public/chat.css', 'text/css; charset=utf-8', 'the demo chat is not installed'))
      .set('GET /push', staticFile('public/index.html', 'text/html; charset=utf-8', 'the demo page is not installed'));
  }

  const forgetUpgraded = function (this: Duplex): void {
    upgraded.delete(this);
  };
  /** Tracks an upgraded socket (destroyed if still open when the shutdown grace is over). */
  const track = (socket: Duplex): void => {
    socket.on('error', ignore);
    if (upgraded.has(socket)) return;
    upgraded.add(socket);
    socket.once('close', forgetUpgraded);
  };
  const websocketUpgrade: UpgradeHandler = (req, socket, head) => {
    track(socket);
    if (state !== 'running') return rejectUpgrade(socket, new HeraldError('unavailable', state === 'starting' ? 'starting' : 'shutting down'));
    websocket.handleUpgrade(req, socket, head);
  };
  upgrades.set('/ws', websocketUpgrade);
  closers.push(
    () => websocket.close(),
    () => sse.close(),
    () => poll.close(),
    () => golongpoll.close(),
    () => gpoll.close(),
  );

  // ---- dispatch ------------------------------------------------------------------------------

  /** The request's path relative to the prefix; undefined when it is outside (or unparsable). */
  const relativePath = (req: IncomingMessage): { rel: string; url: URL } | undefined => {
    // Express rewrites req.url under app.use(path, …); originalUrl keeps what the client sent.
    const target = (req as { originalUrl?: unknown }).originalUrl;
    const text = typeof target === 'string' ? target : (req.url ?? '');
    if (!text.startsWith('/')) return undefined;
    let url: URL;
    try {
      url = new URL(`http://herald${text}`);
    } catch {
      return undefined;
    }
    const pathname = url.pathname;
    if (prefix === '') return { rel: pathname, url };
    if (pathname === prefix) return { rel: '/', url };
    if (pathname.startsWith(prefix) && pathname.charCodeAt(prefix.length) === 0x2f) return { rel: pathname.slice(prefix.length), url };
    return undefined;
  };

  const ownsPath = (method: string, rel: string): boolean => build.ownsEverything === true || prefix !== '' || routes.match(method, rel).kind !== 'none';

  /** Answers a failure: JSON error, or the connection cut when the answer has started. */
  const fail = (req: IncomingMessage, res: ServerResponse, err: unknown): void => {
    const e = toHeraldError(err);
    if (e.code === 'internal') logger.error({ err, method: req.method, url: req.url }, 'request failed');
    if (res.headersSent) res.destroy();
    else sendError(res, e);
  };

  /** A body parser of the application ran first: herald would wait forever for a body already read. */
  const assertBodyUnread = (req: IncomingMessage): void => {
    if (!BODY_METHODS.has(req.method ?? '') || !req.readableEnded) return;
    // An `internal` error: `fail` logs it at error level, the message says what to change.
    throw new HeraldError('internal', 'the request body was read before herald could: mount herald before body parsers');
  };

  const guardApi = (req: IncomingMessage, res: ServerResponse): void => {
    const denied = checkApiKey(req);
    if (denied) {
      res.setHeader('www-authenticate', 'Bearer realm="herald"');
      throw denied;
    }
    if (!originAllowed(req, allowedOrigins)) throw new HeraldError('forbidden', 'origin not allowed');
  };

  const dispatch = async (req: IncomingMessage, res: ServerResponse, rel: string, url: URL): Promise<void> => {
    try {
      const method = req.method ?? 'GET';
      if (rel.startsWith('/api/') && method !== 'OPTIONS') guardApi(req, res);
      const match = routes.match(method, rel);
      if (match.kind === 'none') throw new HeraldError('not_found', 'no such endpoint');
      if (match.kind === 'method') {
        // 405 carries the bad_request code: the error codes of SPEC §2 have no "method" code.
        sendJson(res, 405, { error: { code: 'bad_request', message: `method ${method} not allowed here` } }, { allow: match.allowed.join(', ') });
        return;
      }
      assertBodyUnread(req);
      await match.handler(req, res, url);
    } catch (err) {
      fail(req, res, err);
    }
  };

  const owns = (req: IncomingMessage): boolean => {
    const p = relativePath(req);
    return p !== undefined && ownsPath(req.method ?? 'GET', p.rel);
  };

  const handleRequest = (req: IncomingMessage, res: ServerResponse, next?: (err?: unknown) => void): false | Promise<void> => {
    const p = relativePath(req);
    if (p === undefined || !ownsPath(req.method ?? 'GET', p.rel)) {
      next?.();
      return false;
    }
    res.setHeader('x-content-type-options', 'nosniff');
    return dispatch(req, res, p.rel, p.url);
  };

  const handleUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer): boolean => {
    const p = relativePath(req);
    const handler = p && upgrades.get(p.rel);
    if (!handler) return false;
    track(socket);
    try {
      handler(req, socket, head);
    } catch (err) {
      logger.error({ err, url: req.url }, 'upgrade failed');
      rejectUpgrade(socket, toHeraldError(err));
    }
    return true;
  };

  // ---- handlers usable alone -----------------------------------------------------------------

  const alone = (fn: RouteHandler): HeraldHandler => {
    return async (req, res, url) => {
      try {
        if (res.getHeader('x-content-type-options') === undefined && !res.headersSent) res.setHeader('x-content-type-options', 'nosniff');
        assertBodyUnread(req);
        await fn(req, res, url ?? requestUrl(req));
      } catch (err) {
        fail(req, res, err);
      }
    };
  };
  const api: HeraldHandler = async (req, res, url) => {
    try {
      if (!res.headersSent) res.setHeader('x-content-type-options', 'nosniff');
      const u = url ?? requestUrl(req);
      const i = u.pathname.lastIndexOf('/api/');
      if (i < 0) throw new HeraldError('not_found', 'no such endpoint');
      const rel = u.pathname.slice(i);
      await dispatch(req, res, rel, u);
    } catch (err) {
      fail(req, res, err);
    }
  };
  const handlers: HeraldHandlers = Object.freeze({
    websocket: websocketUpgrade,
    sse: alone((req, res, url) => sse.handle(req, res, url)),
    poll: alone((req, res, url) => poll.handle(req, res, url)),
    golongpollEvents: alone((req, res, url) => golongpoll.handleEvents(req, res, url)),
    golongpollPublish: alone((req, res, url) => golongpoll.handlePublish(req, res, url)),
    gpoll: alone((req, res, url) => gpoll.handle(req, res, url)),
    api,
  });

  // ---- lifecycle -----------------------------------------------------------------------------

  const register = (set: RouteSet): void => {
    for (const [route, handler] of Object.entries(set.routes ?? {})) routes.set(route, handler);
    for (const [path, handler] of Object.entries(set.upgrades ?? {})) {
      if (!path.startsWith('/')) throw new TypeError(`upgrade path must start with "/", got ${JSON.stringify(path)}`);
      upgrades.set(path, handler);
    }
    if (set.close) closers.push(() => set.close!());
  };

  const context: RouteSetContext = Object.freeze({ hub, logger, config, allowedOrigins });

  const start = async (): Promise<void> => {
    await hub.start();
    const chat = new ChatServer(hub, { tokenTtlMs: config.chatTokenTtl * 1000, idleTimeoutMs: config.chatIdleTimeout * 1000, logger });
    register(
      createChatEndpoints(chat, {
        ...origins,
        maxBodyBytes: config.maxMessageBytes,
        pingInterval: config.pingInterval,
        maxBufferedBytes: config.maxBufferedBytes,
        // `POST /chat/join` mints tokens without an API key: only for the demo of an open server.
        demo: options.demoPage === true && config.apiKey.length === 0,
        logger,
      }),
    );
    for (const factory of extraRoutes) register(await factory(context));
    state = 'running';
  };

  const destroyUpgraded = (): void => {
    for (const socket of upgraded) socket.destroy();
  };

  const abandon = async (): Promise<void> => {
    metrics.clear();
    await websocket.close().catch(() => {});
    await engine.close().catch(() => {});
    state = 'closed';
  };

  let closing: Promise<void> | undefined;
  const close = (): Promise<void> =>
    (closing ??= (async () => {
      state = 'closing';
      const graceful = (async () => {
        // Transports first (clients told to reconnect, polls answered, streams ended), then the
        // hub, which disconnects what is left and closes the engine (the journal flushes there).
        await Promise.all(closers.map((c) => c().catch((err: unknown) => logger.error({ err }, 'transport close failed'))));
        try {
          await hub.close(1001, 'server shutting down');
        } catch (err) {
          logger.error({ err }, 'hub close failed');
        }
      })();
      const timedOut = await overDeadline(graceful, SHUTDOWN_GRACE_MS);
      if (timedOut) {
        logger.warn({ connections: upgraded.size }, 'shutdown grace period over: closing remaining connections');
        destroyUpgraded();
      }
      metrics.clear();
      state = 'closed';
    })());

  const transports: HeraldTransports = Object.freeze({ websocket, sse, poll, golongpoll, gpoll });
  const herald: Herald = {
    hub,
    config,
    prefix,
    get state() {
      return state;
    },
    transports,
    handlers,
    routes,
    upgrades,
    register,
    owns,
    handleRequest,
    handleUpgrade,
    close,
  };
  return { herald, start, abandon, destroyUpgraded };
}

/** The engine the configuration asks for. Redis is loaded only when used (ioredis stays out otherwise). */
async function createEngine(config: HeraldConfig, logger: Logger): Promise<Engine> {
  if (config.redis !== undefined && config.journal !== undefined) {
    throw new ConfigError('invalid_option', 'journal', 'journal (--journal) is for the memory engine; with --redis, Redis keeps the history');
  }
  if (config.journal !== undefined) {
    const { createJournalEngine } = await import('../engines/journal/index.js');
    // The same namespace rules the hub gets, so replay trims history as publishes would.
    const namespaces = new Namespaces(config.namespaces, namespaceBase(config));
    return createJournalEngine({ dir: config.journal, fsync: config.fsync, channelOptions: (ch) => namespaces.forChannel(ch).channel, logger });
  }
  if (config.redis !== undefined) {
    const { createRedisEngine } = await import('../engines/redis/index.js');
    return createRedisEngine({ url: config.redis, prefix: config.redisPrefix, presenceTtl: config.presenceTtl, logger });
  }
  return new MemoryEngine();
}

/** The request's URL (its target only: the host is not trusted). */
function requestUrl(req: IncomingMessage): URL {
  const target = (req as { originalUrl?: unknown }).originalUrl;
  const text = typeof target === 'string' ? target : (req.url ?? '/');
  if (!text.startsWith('/')) throw new HeraldError('bad_request', 'malformed request target');
  try {
    return new URL(`http://herald${text}`);
  } catch {
    throw new HeraldError('bad_request', 'malformed request target');
  }
}

const BODY_METHODS = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

function ignore(): void {}

/** Answers a refused upgrade with a plain HTTP response, then closes the socket. */
export function rejectUpgrade(socket: Duplex, err: HeraldError): void {
  socket.on('error', ignore);
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  const body = JSON.stringify({ error: { code: err.code, message: err.message } });
  socket.once('finish', () => socket.destroy());
  socket.end(
    `HTTP/1.1 ${err.status} ${STATUS_CODES[err.status] ?? 'Error'}\r\nconnection: close\r\ncontent-type: application/json; charset=utf-8\r\n` +
      `content-length: ${Buffer.byteLength(body)}\r\nx-content-type-options: nosniff\r\n\r\n${body}`,
  );
}

/** Waits for `work` at most `ms`; true when the deadline passed first (the work goes on). */
export async function overDeadline(work: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      work.then(() => false),
      new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(true), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
