/**
 * The API key guard of `/api/*` (SPEC §5): `Authorization: Bearer <key>`. Keys are compared as
 * SHA-256 digests with `timingSafeEqual`, so the comparison takes the same time whatever the
 * key's length or content, and every configured key is checked (no early exit).
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { HeraldError } from '../protocol/index.js';

export type ApiKeyCheck = (req: IncomingMessage) => HeraldError | undefined;

const BEARER = /^Bearer[ \t]+([\x21-\x7e]+)[ \t]*$/i;

function digest(value: string): Buffer {
  return createHash('sha256').update(value, 'utf8').digest();
}

/** A check that returns `unauthorized` unless the request carries one of `keys`; no keys = always allowed. */
export function apiKeyGuard(keys: readonly string[]): ApiKeyCheck {
  if (keys.length === 0) return () => undefined;
  const digests = keys.map(digest);
  return (req) => {
    const header = req.headers.authorization;
    if (header === undefined || header === '') return new HeraldError('unauthorized', 'an API key is required (Authorization: Bearer <key>)');
    const m = BEARER.exec(header);
    if (!m) return new HeraldError('unauthorized', 'the Authorization header must be "Bearer <key>"');
    const given = digest(m[1]!);
    let ok = false;
    for (const d of digests) ok = timingSafeEqual(given, d) || ok;
    return ok ? undefined : new HeraldError('unauthorized', 'invalid API key');
  };
}
