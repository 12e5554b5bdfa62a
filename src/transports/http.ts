/** Small HTTP helpers shared by the HTTP transports and the server API. */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { HeraldError, safeJsonParse, toHeraldError } from '../protocol/index.js';
import { originAllowed } from './origin.js';

export const DEFAULT_MAX_BODY_BYTES = 65_536;

/** Reads a request body up to `maxBytes`; over it, `too_large` (the rest is discarded, not buffered). */
export function readBody(req: IncomingMessage, maxBytes = DEFAULT_MAX_BODY_BYTES): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length']);
    if (Number.isFinite(declared) && declared > maxBytes) {
      req.resume();
      reject(new HeraldError('too_large', `request body is over ${maxBytes} bytes`));
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let failed = false;
    req.on('data', (chunk: Buffer) => {
      if (failed) return;
      size += chunk.length;
      if (size > maxBytes) {
        failed = true;
        chunks.length = 0;
        reject(new HeraldError('too_large', `request body is over ${maxBytes} bytes`));
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => {
      if (!failed) resolve(Buffer.concat(chunks, size));
    });
    req.on('error', (err) => {
      if (!failed) {
        failed = true;
        reject(new HeraldError('bad_request', 'request body could not be read', { cause: err }));
      }
    });
  });
}

/** Reads a JSON object body; `bad_request` when it is not one. */
export async function readJsonObject(req: IncomingMessage, maxBytes = DEFAULT_MAX_BODY_BYTES): Promise<Record<string, unknown>> {
  const body = await readBody(req, maxBytes);
  const parsed = safeJsonParse(body.toString('utf8'));
  if (!parsed) throw new HeraldError('bad_request', 'body is not valid JSON');
  const value = parsed.value;
  if (!value || typeof value !== 'object' || Array.isArray(value)) throw new HeraldError('bad_request', 'body must be a JSON object');
  return value as Record<string, unknown>;
}

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  if (res.headersSent) {
    res.end();
    return;
  }
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store', ...headers });
  res.end(text);
}

/** Writes `{"error":{"code","message"}}` with the code's status. Never a stack trace. */
export function sendError(res: ServerResponse, err: unknown): void {
  const e = toHeraldError(err);
  sendJson(res, e.status, { error: { code: e.code, message: e.message } });
}

/**
 * CORS for SSE, poll and chat endpoints. Returns false (and answers 403) when the origin is refused.
 * Answers preflight OPTIONS requests itself (returns false then too: nothing left to do).
 */
export function applyCors(req: IncomingMessage, res: ServerResponse, allowedOrigins: readonly string[] | undefined): boolean {
  const origin = req.headers.origin;
  if (!originAllowed(req, allowedOrigins)) {
    sendJson(res, 403, { error: { code: 'forbidden', message: 'origin not allowed' } });
    return false;
  }
  if (origin) {
    res.setHeader('access-control-allow-origin', origin);
    res.setHeader('vary', 'Origin');
    res.setHeader('access-control-allow-credentials', 'true');
  }
  if (req.method === 'OPTIONS') {
    res.writeHead(204, {
      'access-control-allow-methods': 'GET, POST, OPTIONS',
      'access-control-allow-headers': 'content-type, authorization, last-event-id',
      'access-control-max-age': '600',
    });
    res.end();
    return false;
  }
  return true;
}
