/**
 * Origin checks (SPEC §5) for WebSocket upgrades and CORS. With an allow-list, the Origin must
 * be in it ('*' allows any; a `{{host}}` placeholder stands for the request's Host). Without
 * one, a request that carries Origin must be same-origin; one without Origin (not a browser) passes.
 */
import type { IncomingMessage } from 'node:http';

export function originAllowed(req: IncomingMessage, allowedOrigins: readonly string[] | undefined): boolean {
  const origin = req.headers.origin;
  if (origin === undefined || origin === '') return true;
  const host = req.headers.host ?? '';
  if (!allowedOrigins || allowedOrigins.length === 0) return sameOrigin(origin, host);
  const normalized = origin.toLowerCase();
  for (const pattern of allowedOrigins) {
    if (pattern === '*') return true;
    const expected = pattern.replace('{{host}}', host).toLowerCase().replace(/\/$/, '');
    if (expected === normalized) return true;
  }
  return false;
}

function sameOrigin(origin: string, host: string): boolean {
  try {
    return new URL(origin).host.toLowerCase() === host.toLowerCase();
  } catch {
    return false;
  }
}
