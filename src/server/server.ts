/**
 * The herald server (SPEC §5, §8): a plain node:http server, a route table, the HTTP API, the
 * WebSocket transport at `/ws`, health, readiness and metrics, and a bounded graceful shutdown.
 */
import { STATUS_CODES, createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
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
import { ConfigError, assertAvailable, namespaceBase, validateConfig, type HeraldConfig } from './config.js';
import { createMetrics } from './metrics.js';
import { Router, type UpgradeHandler } from './router.js';
import { staticFile } from './static.js';

/** Shutdown waits this long for clients to go, then destroys what is left (exit stays within SPEC §5's 10 s). */
export const SHUTDOWN_GRACE_MS = 9_000;
/** Time a client has to send a request's headers, then its whole request (slowloris bound). */
export const HEADERS_TIMEOUT_MS = 10_000;
export const REQUEST_TIMEOUT_MS = 30_000;
/** How often node:http checks those two timeouts. */
const CONNECTIONS_CHECK_MS = 1_000;
/** The WebSocket `connect` command must arrive within this (SPEC §2). */
const WS_CONNECT_TIMEOUT_MS = 10_000;

export interface StartOptions extends Partial<HeraldConfig> {
  /** Default: a new MemoryEngine. */
  engine?: Engine;
  hooks?: HubHooks;
  /** Default: silent. */
  logger?: Logger;
}

export interface HeraldServer {
  /** `http://HOST:PORT`, IPv6 in brackets. */
  readonly url: string;
  /** The address bound. */
  readonly host: string;
  readonly port: number;
  readonly hub: Hub;
  readonly http: Server;
  /** The transports, for introspection (connection counts, waiting polls). */
  readonly transports: {
    readonly websocket: WebSocketTransport;
    readonly sse: SseTransport;
    readonly poll: LongPollTransport;
    readonly golongpoll: GolongpollTransport;
    readonly gpoll: GpollTransport;
  };
  /** Graceful shutdown (SPEC §5); resolves once everything is closed, within SHUTDOWN_GRACE_MS. Idempotent. */
  close(): Promise<void>;
}

type State = 'starting' | 'running' | 'closing' | 'closed';

/** Validates the options, starts the hub and listens. Rejects with a ConfigError on a bad option. */
export async function startServer(options: StartOptions = {}): Promise<HeraldServer> {
  const config = validateConfig(options);
  assertAvailable(config);
  const logger = options.logger ?? silentLogger;
  const engine = options.engine ?? (await createEngine(config, logger));
  const hubOptions: HubOptions = {
    engine,
    namespaces: config.namespaces,
    namespaceBase: namespaceBase(config),
    limits: { maxEventBytes: config.maxMessageBytes, maxChannelsPerClient: config.maxChannelsPerClient },
  };
  if (options.hooks) hubOptions.hooks = options.hooks;
  const hub = new Hub(hubOptions);
  const allowedOrigins = config.allowedOrigins.length > 0 ? [...config.allowedOrigins] : undefined;
  const checkApiKey = apiKeyGuard(config.apiKey);
  let state: State = 'starting';

  const websocket = new WebSocketTransport(hub, {
    ...(allowedOrigins ? { allowedOrigins } : {}),
    pingInterval: config.pingInterval,
    maxMessageBytes: config.maxMessageBytes,
    maxBufferedBytes: config.maxBufferedBytes,
    connectTimeout: WS_CONNECT_TIMEOUT_MS,
    logger,
  });

  const metrics = createMetrics(hub, { websocketBuffers: () => websocket.bufferStats() });

  // ---- route table ---------------------------------------------------------------------------
  const routes = new Router();
  const upgrades = new Map<string, UpgradeHandler>();
  /** Called at shutdown before the hub closes: each transport ends its connections. */
  const closers: (() => Promise<void>)[] = [];

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
    .set('GET /', staticFile('public/index.html', 'text/html; charset=utf-8', 'the demo page is not installed'))
    .set('GET /herald.js', staticFile('dist/browser/herald.js', 'text/javascript; charset=utf-8', 'the browser client is not built: run npm run build'))
    .set('GET /herald.js.map', staticFile('dist/browser/herald.js.map', 'application/json; charset=utf-8', 'the browser client is not built: run npm run build'))
    .set('GET /ws', (_req, res) => {
      res.setHeader('upgrade', 'websocket');
      sendError(res, new HeraldError('bad_request', 'this endpoint needs a WebSocket upgrade'));
    });

  upgrades.set('/ws', (req, socket, head) => websocket.handleUpgrade(req, socket, head));
  closers.push(() => websocket.close());

  // ---- HTTP transports ----------------------------------------------------------------------
  // Each transport adds its routes and, if it holds connections, a closer. Handlers are
  // `(req, res, url) => void | Promise<void>`; a thrown HeraldError becomes its JSON error answer.
  // SSE and poll take every method: they answer CORS preflights themselves.
  // `/api/*` routes are behind the API key guard automatically.
  const origins = allowedOrigins ? { allowedOrigins } : {};
  const sse = new SseTransport(hub, { ...origins, logger });
  const poll = new LongPollTransport(hub, { ...origins, maxTimeout: config.pollTimeoutMax, logger });
  const golongpoll = new GolongpollTransport(hub, { ...origins, maxTimeout: config.pollTimeoutMax, maxBodyBytes: config.maxMessageBytes, logger });
  const gpoll = new GpollTransport(hub, { ...origins, logger });
  routes
    .set('* /sse', (req, res, url) => sse.handle(req, res, url))
    .set('* /poll', (req, res, url) => poll.handle(req, res, url))
    .set('* /golongpoll/*', (req, res, url) => golongpoll.handle(req, res, url))
    .set('GET /gpoll', (req, res, url) => gpoll.handle(req, res, url));
  closers.push(() => sse.close(), () => poll.close(), () => golongpoll.close(), () => gpoll.close());

  // ---- HTTP server ---------------------------------------------------------------------------
  const inflight = new Set<ServerResponse>();
  const upgraded = new Set<Duplex>();
  // SSE cursors come back in Last-Event-ID and grow with channel names: allow 64 KiB of headers.
  const http = createServer({ maxHeaderSize: 65_536, headersTimeout: HEADERS_TIMEOUT_MS, requestTimeout: REQUEST_TIMEOUT_MS, connectionsCheckingInterval: CONNECTIONS_CHECK_MS });

  const closeIdleSoon = (): void => {
    setImmediate(() => http.closeIdleConnections());
  };
  const forget = function (this: ServerResponse): void {
    inflight.delete(this);
  };
  const forgetUpgraded = function (this: Duplex): void {
    upgraded.delete(this);
  };

  http.on('request', (req: IncomingMessage, res: ServerResponse) => {
    inflight.add(res);
    res.once('close', forget);
    res.setHeader('x-content-type-options', 'nosniff');
    if (state === 'closing' || state === 'closed') {
      res.setHeader('connection', 'close');
      res.once('finish', closeIdleSoon);
    }
    void handleRequest(req, res);
  });

  const handleRequest = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    try {
      const target = req.url ?? '';
      if (!target.startsWith('/')) throw new HeraldError('bad_request', 'malformed request target');
      const url = new URL(`http://herald${target}`);
      const method = req.method ?? 'GET';
      if (url.pathname.startsWith('/api/') && method !== 'OPTIONS') {
        const denied = checkApiKey(req);
        if (denied) {
          res.setHeader('www-authenticate', 'Bearer realm="herald"');
          throw denied;
        }
        if (!originAllowed(req, allowedOrigins)) throw new HeraldError('forbidden', 'origin not allowed');
      }
      const match = routes.match(method, url.pathname);
      if (match.kind === 'none') throw new HeraldError('not_found', 'no such endpoint');
      if (match.kind === 'method') {
        // 405 carries the bad_request code: the error codes of SPEC §2 have no "method" code.
        sendJson(res, 405, { error: { code: 'bad_request', message: `method ${method} not allowed here` } }, { allow: match.allowed.join(', ') });
        return;
      }
      await match.handler(req, res, url);
    } catch (err) {
      const e = toHeraldError(err);
      if (e.code === 'internal') logger.error({ err, method: req.method, url: req.url }, 'request failed');
      if (res.headersSent) res.destroy();
      else sendError(res, e);
    }
  };

  http.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on('error', ignore);
    upgraded.add(socket);
    socket.once('close', forgetUpgraded);
    let pathname = '';
    try {
      if ((req.url ?? '').startsWith('/')) pathname = new URL(`http://herald${req.url}`).pathname;
    } catch {
      // Unparsable target: no route.
    }
    if (state !== 'running') return rejectUpgrade(socket, new HeraldError('unavailable', state === 'starting' ? 'starting' : 'shutting down'));
    const handler = upgrades.get(pathname);
    if (!handler) return rejectUpgrade(socket, new HeraldError('not_found', 'no such endpoint'));
    try {
      handler(req, socket, head);
    } catch (err) {
      logger.error({ err, url: req.url }, 'upgrade failed');
      rejectUpgrade(socket, toHeraldError(err));
    }
  });

  // ---- start ---------------------------------------------------------------------------------
  const abandon = async (): Promise<void> => {
    metrics.clear();
    await websocket.close().catch(() => {});
    await engine.close().catch(() => {});
  };
  try {
    await new Promise<void>((resolve, reject) => {
      const onError = (err: Error): void => reject(err);
      http.once('error', onError);
      http.listen({ host: config.host, port: config.port }, () => {
        http.off('error', onError);
        resolve();
      });
    });
  } catch (err) {
    await abandon();
    throw err;
  }
  http.on('error', (err) => logger.error({ err }, 'http server error'));
  try {
    await hub.start();
  } catch (err) {
    const closed = new Promise<void>((resolve) => http.close(() => resolve()));
    http.closeAllConnections();
    await closed;
    await abandon();
    throw err;
  }
  state = 'running';

  const address = http.address() as AddressInfo;
  const host = address.address;
  const port = address.port;
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;

  let closing: Promise<void> | undefined;
  const close = (): Promise<void> =>
    (closing ??= (async () => {
      state = 'closing';
      const httpClosed = new Promise<void>((resolve) => http.close(() => resolve()));
      // In-flight answers end their connection; long ones (streams, polls) are ended by hub.close.
      for (const res of inflight) {
        if (!res.headersSent) res.setHeader('connection', 'close');
        res.once('finish', closeIdleSoon);
      }
      const graceful = (async () => {
        // Transports first (clients told to reconnect, polls answered, streams ended), then the
        // hub, which disconnects what is left and closes the engine (the journal flushes there).
        await Promise.all(closers.map((c) => c().catch((err: unknown) => logger.error({ err }, 'transport close failed'))));
        try {
          await hub.close(1001, 'server shutting down');
        } catch (err) {
          logger.error({ err }, 'hub close failed');
        }
        http.closeIdleConnections();
        await httpClosed;
      })();
      let timer: NodeJS.Timeout | undefined;
      const timedOut = await Promise.race([
        graceful.then(() => false),
        new Promise<boolean>((resolve) => {
          timer = setTimeout(() => resolve(true), SHUTDOWN_GRACE_MS);
        }),
      ]);
      clearTimeout(timer);
      if (timedOut) {
        logger.warn({ connections: inflight.size + upgraded.size }, 'shutdown grace period over: closing remaining connections');
        http.closeAllConnections();
        for (const socket of upgraded) socket.destroy();
      }
      metrics.clear();
      state = 'closed';
    })());

  const transports = Object.freeze({ websocket, sse, poll, golongpoll, gpoll });
  return { url, host, port, hub, http, transports, close };
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

function ignore(): void {}

/** Answers a refused upgrade with a plain HTTP response, then closes the socket. */
function rejectUpgrade(socket: Duplex, err: HeraldError): void {
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
