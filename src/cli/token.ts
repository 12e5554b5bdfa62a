/**
 * `herald token`: prints a client JWT (HS256) for a server started with `--jwt-secret`, e.g.
 *
 *   herald token --secret "$SECRET" --sub alice --subscribe 'news' 'user:alice:*' --publish 'user:alice:*' --ttl 3600
 *
 * A list flag takes every following argument up to the next flag, and may be repeated. The secret
 * may come from `HERALD_JWT_SECRET` instead of `--secret` (kept out of the shell history and `ps`).
 */
import { SignJWT } from 'jose';
import { MIN_SECRET_BYTES } from '../server/jwt.js';
import { UsageError } from './args.js';

export interface TokenOptions {
  /** The server's `--jwt-secret` (its UTF-8 bytes), at least 32 bytes. */
  secret: string;
  /** The user (`sub`); omitted when undefined. */
  sub?: string | undefined;
  subscribe?: readonly string[];
  publish?: readonly string[];
  presence?: readonly string[];
  /** Seconds until `exp`. Default 3600. */
  ttl?: number;
  issuer?: string | undefined;
  audience?: string | undefined;
  /** Issue time, in seconds since the Unix epoch. Default now. */
  now?: number;
}

/** Signs a client token: `sub`, `iat`, `exp`, and the permission claims that were given. */
export async function createToken(o: TokenOptions): Promise<string> {
  const secret = new TextEncoder().encode(o.secret);
  if (secret.length < MIN_SECRET_BYTES) throw new UsageError(`the secret must be at least ${MIN_SECRET_BYTES} bytes (the server refuses shorter ones)`);
  const ttl = o.ttl ?? 3600;
  if (!Number.isSafeInteger(ttl) || ttl < 1) throw new UsageError('--ttl must be a positive integer (seconds)');
  const iat = o.now ?? Math.floor(Date.now() / 1000);
  const claims: Record<string, string[]> = {};
  if (o.subscribe) claims.subscribe = [...o.subscribe];
  if (o.publish) claims.publish = [...o.publish];
  if (o.presence) claims.presence = [...o.presence];
  const jwt = new SignJWT(claims).setProtectedHeader({ alg: 'HS256', typ: 'JWT' }).setIssuedAt(iat).setExpirationTime(iat + ttl);
  if (o.sub !== undefined) jwt.setSubject(o.sub);
  if (o.issuer !== undefined) jwt.setIssuer(o.issuer);
  if (o.audience !== undefined) jwt.setAudience(o.audience);
  return jwt.sign(secret);
}

const SINGLE = new Set(['secret', 'sub', 'ttl', 'issuer', 'audience']);
const LISTS = new Set(['subscribe', 'publish', 'presence']);

/** `herald token …`: prints the token and a newline. */
export async function runToken(argv: readonly string[], env: Readonly<Record<string, string | undefined>>): Promise<number> {
  const single = new Map<string, string>();
  const lists = new Map<string, string[]>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const m = /^--([a-z]+)(?:=([\s\S]*))?$/.exec(arg);
    if (!m) throw new UsageError(`unexpected argument ${JSON.stringify(arg)}`);
    const name = m[1]!;
    if (SINGLE.has(name)) {
      const value = m[2] ?? argv[++i];
      if (value === undefined) throw new UsageError(`option --${name} needs a value`);
      single.set(name, value);
    } else if (LISTS.has(name)) {
      const values = lists.get(name) ?? [];
      lists.set(name, values);
      if (m[2] !== undefined) values.push(m[2]);
      else {
        const start = values.length;
        while (i + 1 < argv.length && !argv[i + 1]!.startsWith('--')) values.push(argv[++i]!);
        if (values.length === start) throw new UsageError(`option --${name} needs at least one channel pattern`);
      }
    } else throw new UsageError(`unknown option --${name}`);
  }
  const secret = single.get('secret') ?? env.HERALD_JWT_SECRET;
  if (secret === undefined || secret === '') throw new UsageError('--secret (or HERALD_JWT_SECRET) is required: the server\'s --jwt-secret');
  let ttl = 3600;
  const ttlText = single.get('ttl');
  if (ttlText !== undefined) {
    if (!/^[0-9]{1,10}$/.test(ttlText) || Number(ttlText) < 1) throw new UsageError(`--ttl must be a positive integer (seconds), got ${JSON.stringify(ttlText)}`);
    ttl = Number(ttlText);
  }
  const options: TokenOptions = { secret, sub: single.get('sub'), ttl, issuer: single.get('issuer'), audience: single.get('audience') };
  const subscribe = lists.get('subscribe');
  const publish = lists.get('publish');
  const presence = lists.get('presence');
  if (subscribe) options.subscribe = subscribe;
  if (publish) options.publish = publish;
  if (presence) options.presence = presence;
  process.stdout.write(`${await createToken(options)}\n`);
  return 0;
}
