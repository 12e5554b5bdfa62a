/**
 * The herald server (SPEC §5, §8): herald (src/server/herald.ts: the hub, every transport, the
 * HTTP API, health, readiness and metrics) on a `node:http` server of its own, with bounds on slow
 * requests and a bounded graceful shutdown.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { HeraldError } from '../protocol/index.js';
import type { Hub } from '../core/index.js';
import { sendError } from '../transports/http.js';
import { SHUTDOWN_GRACE_MS, buildHerald, overDeadline, rejectUpgrade, type Herald, type HeraldOptions, type HeraldTransports } from './herald.js';

export { SHUTDOWN_GRACE_MS };

/** Time a client has to send a request's headers, then its whole request (slowloris bound). */
export const HEADERS_TIMEOUT_MS = 10_000;
export const REQUEST_TIMEOUT_MS = 30_000;
/** How often node:http checks those two timeouts. */
const CONNECTIONS_CHECK_MS = 1_000;

/** `createHerald`'s options plus where to listen (`host`, `port`); the demo page is on unless `demoPage: false`. */
export type StartOptions = HeraldOptions;

export interface HeraldServer {
  /** `http://HOST:PORT`, IPv6 in brackets. */
  readonly url: string;
  /** The address bound. */
  readonly host: string;
  readonly port: number;
  readonly hub: Hub;
  readonly http: Server;
  /** The herald the server serves (its handlers, routes and upgrades). */
  readonly herald: Herald;
  /** The transports, for introspection (connection counts, waiting polls). */
  readonly transports: HeraldTransports;
  /** Graceful shutdown (SPEC §5); resolves once everything is closed, within SHUTDOWN_GRACE_MS. Idempotent. */
  close(): Promise<void>;
}

/** Validates the options, builds herald, listens, then starts the hub. Rejects with a ConfigError on a bad option. */
export async function startServer(options: StartOptions = {}): Promise<HeraldServer> {
  const built = await buildHerald({ ...options, demoPage: options.demoPage ?? true }, { ownsEverything: true });
  const { herald } = built;
  const logger = options.logger;

  // ---- HTTP server ---------------------------------------------------------------------------
  const inflight = new Set<ServerResponse>();
  // SSE cursors come back in Last-Event-ID and grow with channel names: allow 64 KiB of headers.
  const http = createServer({ maxHeaderSize: 65_536, headersTimeout: HEADERS_TIMEOUT_MS, requestTimeout: REQUEST_TIMEOUT_MS, connectionsCheckingInterval: CONNECTIONS_CHECK_MS });

  const closeIdleSoon = (): void => {
    setImmediate(() => http.closeIdleConnections());
  };
  const forget = function (this: ServerResponse): void {
    inflight.delete(this);
  };

  http.on('request', (req: IncomingMessage, res: ServerResponse) => {
    inflight.add(res);
    res.once('close', forget);
    res.setHeader('x-content-type-options', 'nosniff');
    if (herald.state === 'closing' || herald.state === 'closed') {
      res.setHeader('connection', 'close');
      res.once('finish', closeIdleSoon);
    }
    // Every well-formed path is herald's here (unknown ones get its 404), but those outside a prefix.
    if (herald.handleRequest(req, res)) return;
    if ((req.url ?? '').startsWith('/')) sendError(res, new HeraldError('not_found', 'no such endpoint'));
    else sendError(res, new HeraldError('bad_request', 'malformed request target'));
  });

  http.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on('error', ignore);
    if (!herald.handleUpgrade(req, socket, head)) rejectUpgrade(socket, new HeraldError('not_found', 'no such endpoint'));
  });

  // ---- start ---------------------------------------------------------------------------------
  try {
    await new Promise<void>((resolve, reject) => {
      const onError = (err: Error): void => reject(err);
      http.once('error', onError);
      http.listen({ host: herald.config.host, port: herald.config.port }, () => {
        http.off('error', onError);
        resolve();
      });
    });
  } catch (err) {
    await built.abandon();
    throw err;
  }
  http.on('error', (err) => logger?.error({ err }, 'http server error'));
  try {
    await built.start();
  } catch (err) {
    const closed = new Promise<void>((resolve) => http.close(() => resolve()));
    http.closeAllConnections();
    await closed;
    await built.abandon();
    throw err;
  }

  const address = http.address() as AddressInfo;
  const host = address.address;
  const port = address.port;
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;

  let closing: Promise<void> | undefined;
  const close = (): Promise<void> =>
    (closing ??= (async () => {
      // herald.close() marks herald closing at once: new requests get connection: close.
      const heraldClosed = herald.close();
      const httpClosed = new Promise<void>((resolve) => http.close(() => resolve()));
      // In-flight answers end their connection; long ones (streams, polls) are ended by herald.close.
      for (const res of inflight) {
        if (!res.headersSent) res.setHeader('connection', 'close');
        res.once('finish', closeIdleSoon);
      }
      const graceful = (async () => {
        await heraldClosed;
        http.closeIdleConnections();
        await httpClosed;
      })();
      const timedOut = await overDeadline(graceful, SHUTDOWN_GRACE_MS);
      if (timedOut) {
        logger?.warn({ connections: inflight.size }, 'shutdown grace period over: closing remaining connections');
        http.closeAllConnections();
        built.destroyUpgraded();
      }
    })());

  return { url, host, port, hub: herald.hub, http, herald, transports: herald.transports, close };
}

function ignore(): void {}
