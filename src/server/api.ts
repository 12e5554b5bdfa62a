/**
 * The HTTP API (SPEC §5): publish, broadcast, history, presence, channels, stats, disconnect.
 * The server itself acts here (no client context), guarded by API keys in server.ts.
 */
import type { IncomingMessage } from 'node:http';
import { HeraldError, toHeraldError, type Position } from '../protocol/index.js';
import type { Hub } from '../core/index.js';
import { readJsonObject, sendJson } from '../transports/http.js';
import type { RouteHandler, Router } from './router.js';

/** At most this many channels in one `/api/broadcast`. */
export const MAX_BROADCAST_CHANNELS = 1000;

export interface ApiOptions {
  hub: Hub;
  /** Largest request body, bytes. */
  maxBodyBytes: number;
}

/** Adds the `/api/*` routes to `router`. */
export function addApiRoutes(router: Router, options: ApiOptions): void {
  const { hub, maxBodyBytes } = options;
  const body = (req: IncomingMessage): Promise<Record<string, unknown>> => {
    assertJsonContent(req);
    return readJsonObject(req, maxBodyBytes);
  };

  const publish: RouteHandler = async (req, res) => {
    const b = await body(req);
    const channel = requireString(b, 'channel');
    const result = await hub.publish(channel, requireData(b));
    sendJson(res, 200, result);
  };

  const broadcast: RouteHandler = async (req, res) => {
    const b = await body(req);
    const channels = b.channels;
    if (!Array.isArray(channels) || channels.length === 0) throw new HeraldError('bad_request', '"channels" must be a non-empty array of channels');
    if (channels.length > MAX_BROADCAST_CHANNELS) throw new HeraldError('bad_request', `"channels" may hold at most ${MAX_BROADCAST_CHANNELS} channels`);
    const data = requireData(b);
    const results = await Promise.all(
      channels.map(async (channel: unknown) => {
        try {
          if (typeof channel !== 'string') throw new HeraldError('bad_request', 'channel must be a string');
          return await hub.publish(channel, data);
        } catch (err) {
          const e = toHeraldError(err);
          return { channel, error: { code: e.code, message: e.message } };
        }
      }),
    );
    sendJson(res, 200, { results });
  };

  const history: RouteHandler = async (_req, res, url) => {
    const q = url.searchParams;
    const channel = queryParam(q, 'channel', true)!;
    const limitText = queryParam(q, 'limit');
    const epoch = queryParam(q, 'since_epoch');
    const offsetText = queryParam(q, 'since_offset');
    const query: { since?: Position; limit?: number } = {};
    if (limitText !== undefined) query.limit = nonNegativeInt(limitText, 'limit');
    if ((epoch === undefined) !== (offsetText === undefined)) throw new HeraldError('bad_request', '"since_epoch" and "since_offset" go together');
    if (epoch !== undefined && offsetText !== undefined) {
      if (epoch.length === 0 || epoch.length > 64) throw new HeraldError('bad_request', '"since_epoch" must be 1 to 64 characters');
      query.since = { epoch, offset: nonNegativeInt(offsetText, 'since_offset') };
    }
    const h = await hub.history(channel, query);
    sendJson(res, 200, { epoch: h.epoch, offset: h.offset, recovered: h.recovered, events: h.events });
  };

  const presence: RouteHandler = async (_req, res, url) => {
    const channel = queryParam(url.searchParams, 'channel', true)!;
    sendJson(res, 200, { clients: await hub.presence(channel) });
  };

  const channels: RouteHandler = async (_req, res) => {
    sendJson(res, 200, { channels: await hub.channelList() });
  };

  const stats: RouteHandler = (_req, res) => {
    const s = hub.stats();
    sendJson(res, 200, { connections: s.connections, subscriptions: s.subscriptions, channels: s.channels, published: s.published, delivered: s.delivered, uptime: s.uptime });
  };

  const disconnect: RouteHandler = async (req, res) => {
    const b = await body(req);
    const client = requireString(b, 'client');
    if (client.length === 0 || client.length > 256) throw new HeraldError('bad_request', '"client" must be 1 to 256 characters');
    if (!hub.disconnectClient(client)) throw new HeraldError('not_found', 'no such client');
    sendJson(res, 200, {});
  };

  router
    .set('POST /api/publish', publish)
    .set('POST /api/broadcast', broadcast)
    .set('GET /api/history', history)
    .set('GET /api/presence', presence)
    .set('GET /api/channels', channels)
    .set('GET /api/stats', stats)
    .set('POST /api/disconnect', disconnect);
}

/**
 * JSON bodies only: `application/json` (any charset parameter but UTF-8 is refused). This also
 * keeps cross-site forms out: a browser must preflight a JSON POST, and we answer no preflight here.
 */
export function assertJsonContent(req: IncomingMessage): void {
  const type = req.headers['content-type'];
  const m = type === undefined ? null : /^\s*application\/json\s*(?:;\s*charset\s*=\s*"?utf-?8"?\s*)?$/i.exec(type);
  if (!m) throw new HeraldError('bad_request', 'content-type must be application/json');
}

function requireString(body: Record<string, unknown>, key: string): string {
  const value = body[key];
  if (typeof value !== 'string') throw new HeraldError('bad_request', `"${key}" is required and must be a string`);
  return value;
}

function requireData(body: Record<string, unknown>): unknown {
  if (!Object.prototype.hasOwnProperty.call(body, 'data') || body.data === undefined) throw new HeraldError('bad_request', '"data" is required (null is allowed)');
  return body.data;
}

function queryParam(q: URLSearchParams, name: string, required = false): string | undefined {
  const all = q.getAll(name);
  if (all.length > 1) throw new HeraldError('bad_request', `"${name}" is given more than once`);
  if (all.length === 0 && required) throw new HeraldError('bad_request', `"${name}" is required`);
  return all[0];
}

function nonNegativeInt(text: string, name: string): number {
  if (!/^\d{1,15}$/.test(text)) throw new HeraldError('bad_request', `"${name}" must be an integer >= 0`);
  return Number(text);
}

