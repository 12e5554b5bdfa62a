/**
 * The two files the server serves itself: the demo page (`/` ← public/index.html) and the browser
 * client bundle (`/herald.js` ← dist/browser/herald.js). Paths are fixed, relative to the package
 * root (two levels above this module, in src/ and in dist/ alike), so no request can name a file.
 * A file is re-read only when its mtime changes.
 */
import { createHash } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { HeraldError } from '../protocol/index.js';
import { sendError } from '../transports/http.js';
import type { RouteHandler } from './router.js';

export const PACKAGE_ROOT = fileURLToPath(new URL('../../', import.meta.url));

interface Loaded {
  mtimeMs: number;
  size: number;
  body: Buffer;
  etag: string;
  /** CSP hashes of the page's inline scripts and styles. */
  scriptHashes: string[];
  styleHashes: string[];
}

/** Headers every served page and script carries. */
const COMMON_HEADERS = {
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-cache',
  'cross-origin-resource-policy': 'same-origin',
} as const;

interface StaticFile {
  readonly path: string;
  readonly contentType: string;
  readonly missing: string;
  readonly html: boolean;
}

export function staticFile(relativePath: string, contentType: string, missing: string): RouteHandler {
  const file: StaticFile = { path: join(PACKAGE_ROOT, relativePath), contentType, missing, html: contentType.startsWith('text/html') };
  let cached: Loaded | undefined;
  return async (req, res) => {
    let loaded: Loaded;
    try {
      const info = await stat(file.path);
      if (!cached || cached.mtimeMs !== info.mtimeMs || cached.size !== info.size) cached = load(await readFile(file.path), info.mtimeMs, info.size, file.html);
      loaded = cached;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return sendError(res, new HeraldError('not_found', file.missing));
      throw err;
    }
    serve(req, res, file, loaded);
  };
}

function load(body: Buffer, mtimeMs: number, size: number, html: boolean): Loaded {
  const etag = `"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"`;
  const scriptHashes: string[] = [];
  const styleHashes: string[] = [];
  if (html) {
    const text = body.toString('utf8');
    for (const m of text.matchAll(/<script(?![^>]*\bsrc=)[^>]*>([\s\S]*?)<\/script>/gi)) scriptHashes.push(cspHash(m[1]!));
    for (const m of text.matchAll(/<style[^>]*>([\s\S]*?)<\/style>/gi)) styleHashes.push(cspHash(m[1]!));
  }
  return { mtimeMs, size, body, etag, scriptHashes, styleHashes };
}

function cspHash(content: string): string {
  return `'sha256-${createHash('sha256').update(content, 'utf8').digest('base64')}'`;
}

/** The page may load scripts and styles only from here (and its own inline blocks, by hash), and talk only to this server. */
function contentSecurityPolicy(loaded: Loaded): string {
  return [
    "default-src 'none'",
    `script-src 'self' ${loaded.scriptHashes.join(' ')}`.trim(),
    `style-src 'self' ${loaded.styleHashes.join(' ')}`.trim(),
    "connect-src 'self'",
    "img-src 'self' data:",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
  ].join('; ');
}

function serve(req: IncomingMessage, res: ServerResponse, file: StaticFile, loaded: Loaded): void {
  const headers: Record<string, string | number> = { ...COMMON_HEADERS, 'content-type': file.contentType, etag: loaded.etag };
  if (file.html) {
    headers['content-security-policy'] = contentSecurityPolicy(loaded);
    headers['x-frame-options'] = 'DENY';
    headers['cross-origin-opener-policy'] = 'same-origin';
  }
  const ifNoneMatch = req.headers['if-none-match'];
  if (ifNoneMatch !== undefined && ifNoneMatch.split(',').some((t) => t.trim() === loaded.etag)) {
    res.writeHead(304, headers);
    res.end();
    return;
  }
  headers['content-length'] = loaded.body.length;
  res.writeHead(200, headers);
  res.end(req.method === 'HEAD' ? undefined : loaded.body);
}
