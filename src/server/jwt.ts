/**
 * Client authentication with JWTs (SPEC §8, docs/security.md), as the hub's `authenticate` hook.
 *
 * A token is verified with `jose`: HS256 with a shared secret (its UTF-8 bytes), RS256 or ES256 with
 * a public key or the keys of a JWKS URL. Both kinds can be configured at once: the token's `alg`
 * picks the key, and an algorithm that is not allowed is refused before any key is looked at
 * (`alg: none` never is). `exp` is required; `nbf` is honoured; `iss` and `aud` are checked when
 * configured. The claims:
 *
 * - `sub`: the user (optional: a token without one is a client without a user name);
 * - `subscribe`, `publish`, `presence`: arrays of channel patterns (`*` = any characters). A token's
 *   patterns are the whole of what its holder may do; namespace rules for anonymous clients do
 *   not add to them. A claim that is absent grants nothing.
 *
 * Without a token the client is anonymous (the namespaces' `anonymousSubscribe` and
 * `anonymousPublish` apply; both off by default once JWT is configured). Any bad token is
 * `unauthorized`; a key server that cannot be reached or answers garbage is `unavailable` (the
 * client may try again). The result carries `expiresAt` (`exp` plus the clock tolerance): the hub
 * disconnects the session then with 4003 "token expired", and the client reconnects with a new one.
 */
import { createPublicKey, type KeyObject } from 'node:crypto';
import { createRemoteJWKSet, errors as joseErrors, jwtVerify, type JWK, type JWTPayload, type JWTVerifyOptions } from 'jose';
import { HeraldError } from '../protocol/index.js';
import type { AuthResult, HubHooks, Permissions } from '../core/index.js';
import type { HeraldConfig } from './config.js';

/** The smallest HS256 secret accepted (RFC 7518 §3.2: a key at least as long as the hash). */
export const MIN_SECRET_BYTES = 32;

export type HmacAlgorithm = 'HS256' | 'HS384' | 'HS512';
export type AsymmetricAlgorithm = 'RS256' | 'RS384' | 'RS512' | 'PS256' | 'PS384' | 'PS512' | 'ES256' | 'ES384' | 'ES512' | 'EdDSA';
export type JwtAlgorithm = HmacAlgorithm | AsymmetricAlgorithm;

const HMAC: readonly string[] = ['HS256', 'HS384', 'HS512'];
const ASYMMETRIC: readonly string[] = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'];

export interface JwtAuthOptions {
  /** HS256 secret: a string (its UTF-8 bytes) or bytes; at least 32 bytes. */
  secret?: string | Uint8Array;
  /** URL of a JWKS (RS256/ES256 keys), fetched and cached by jose's `createRemoteJWKSet`. */
  jwksUrl?: string | URL;
  /** A public key for RS256/ES256: a PEM (SPKI) string, a KeyObject, a CryptoKey or a JWK. */
  publicKey?: string | KeyObject | CryptoKey | JWK;
  /** Algorithms accepted. Default: HS256 with `secret`, RS256 and ES256 with `jwksUrl` or `publicKey`. */
  algorithms?: readonly JwtAlgorithm[];
  /** Seconds of clock skew tolerated on `exp` and `nbf`. Default 0. */
  clockTolerance?: number;
  /** Required `iss`, if set. */
  issuer?: string;
  /** Required `aud` (the token's `aud` must contain it), if set. */
  audience?: string;
  /** Milliseconds to wait for the JWKS URL. Default 5,000. */
  jwksTimeoutMs?: number;
}

/** The hub's `authenticate` hook, always asynchronous. */
export type JwtAuthenticate = (token: string | undefined, transport: string) => Promise<AuthResult>;
type KeyInput = Uint8Array | KeyObject | CryptoKey | JWK;

/**
 * The hub's `authenticate` hook for JWTs. Throws a TypeError for bad options (no key, a short
 * secret, an algorithm that does not fit the keys).
 */
export function createJwtAuthenticator(options: JwtAuthOptions): JwtAuthenticate {
  const secret = options.secret === undefined ? undefined : typeof options.secret === 'string' ? new TextEncoder().encode(options.secret) : options.secret;
  if (secret !== undefined && secret.length < MIN_SECRET_BYTES) throw new TypeError(`jwt: the secret must be at least ${MIN_SECRET_BYTES} bytes`);
  if (options.jwksUrl !== undefined && options.publicKey !== undefined) throw new TypeError('jwt: give jwksUrl or publicKey, not both');
  const publicKey = options.publicKey === undefined ? undefined : typeof options.publicKey === 'string' ? createPublicKey(options.publicKey) : options.publicKey;
  let jwks: ReturnType<typeof createRemoteJWKSet> | undefined;
  if (options.jwksUrl !== undefined) {
    const url = new URL(options.jwksUrl);
    if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new TypeError('jwt: jwksUrl must be an http(s) URL');
    jwks = createRemoteJWKSet(url, { timeoutDuration: options.jwksTimeoutMs ?? 5_000 });
  }
  const asymmetric = publicKey !== undefined || jwks !== undefined;
  if (secret === undefined && !asymmetric) throw new TypeError('jwt: give a secret, a jwksUrl or a publicKey');

  const defaults = [...(secret ? ['HS256'] : []), ...(asymmetric ? ['RS256', 'ES256'] : [])];
  const algorithms = [...(options.algorithms ?? defaults)];
  if (algorithms.length === 0) throw new TypeError('jwt: algorithms must not be empty');
  for (const alg of algorithms) {
    if (HMAC.includes(alg) ? !secret : ASYMMETRIC.includes(alg) ? !asymmetric : true) {
      throw new TypeError(`jwt: algorithm ${JSON.stringify(alg)} is not allowed with the keys given`);
    }
  }
  const clockTolerance = options.clockTolerance ?? 0;
  if (!(Number.isFinite(clockTolerance) && clockTolerance >= 0)) throw new TypeError('jwt: clockTolerance must be a number of seconds >= 0');

  const verifyOptions: JWTVerifyOptions = { algorithms, clockTolerance, requiredClaims: ['exp'] };
  if (options.issuer !== undefined) verifyOptions.issuer = options.issuer;
  if (options.audience !== undefined) verifyOptions.audience = options.audience;

  // jose checks the header's alg against `algorithms` before it asks for a key.
  const getKey = async (header: { alg?: string }, token: Parameters<NonNullable<typeof jwks>>[1]): Promise<KeyInput> => {
    if (HMAC.includes(header.alg ?? '')) return secret!;
    if (jwks) return jwks(header, token);
    return publicKey!;
  };

  return async (token) => {
    if (token === undefined || token === '') return {};
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, getKey, verifyOptions));
    } catch (err) {
      throw refusal(err);
    }
    return toAuthResult(payload, clockTolerance);
  };
}

function toAuthResult(payload: JWTPayload, clockTolerance: number): AuthResult {
  const { sub, exp } = payload;
  if (sub !== undefined && (typeof sub !== 'string' || sub === '')) throw new HeraldError('unauthorized', 'invalid token: "sub" must be a non-empty string');
  if (typeof exp !== 'number') throw new HeraldError('unauthorized', 'invalid token: "exp" is required');
  const permissions: Permissions = { subscribe: patterns(payload, 'subscribe'), publish: patterns(payload, 'publish'), presence: patterns(payload, 'presence') };
  const result: AuthResult = { permissions, expiresAt: (exp + clockTolerance) * 1000 };
  if (sub !== undefined) result.user = sub;
  return result;
}

function patterns(payload: JWTPayload, claim: keyof Permissions): readonly string[] {
  const value = payload[claim];
  if (value === undefined || value === null) return Object.freeze([]);
  if (!Array.isArray(value) || !value.every((p) => typeof p === 'string')) {
    throw new HeraldError('unauthorized', `invalid token: "${claim}" must be an array of channel patterns`);
  }
  return Object.freeze([...(value as string[])]);
}

/** What a verification failure tells the client: why, never how far the attacker got beyond that. */
function refusal(err: unknown): HeraldError {
  if (err instanceof HeraldError) return err;
  if (err instanceof joseErrors.JWTExpired) return new HeraldError('unauthorized', 'token expired', { cause: err });
  if (err instanceof joseErrors.JWKSTimeout || err instanceof joseErrors.JWKSInvalid) {
    return new HeraldError('unavailable', 'the token keys cannot be fetched; try again', { cause: err });
  }
  if (err instanceof joseErrors.JWKSNoMatchingKey || err instanceof joseErrors.JWKSMultipleMatchingKeys) {
    return new HeraldError('unauthorized', 'invalid token: no key matches it', { cause: err });
  }
  if (err instanceof joseErrors.JOSEAlgNotAllowed || err instanceof joseErrors.JOSENotSupported) {
    return new HeraldError('unauthorized', 'invalid token: algorithm not allowed', { cause: err });
  }
  if (err instanceof joseErrors.JWSSignatureVerificationFailed) return new HeraldError('unauthorized', 'invalid token: bad signature', { cause: err });
  if (err instanceof joseErrors.JWTClaimValidationFailed) return new HeraldError('unauthorized', `invalid token: ${err.message}`, { cause: err });
  if (err instanceof joseErrors.JOSEError && err.code === 'ERR_JOSE_GENERIC') {
    // jose's own failures fetching the JWKS (e.g. not "200 OK") are generic JOSEErrors.
    return new HeraldError('unavailable', 'the token keys cannot be fetched; try again', { cause: err });
  }
  if (err instanceof joseErrors.JOSEError || err instanceof TypeError) {
    // Malformed tokens (JWSInvalid, JWTInvalid, …). A TypeError here is jose refusing a key, or
    // fetch failing to reach the JWKS URL.
    if (err instanceof TypeError && /fetch/i.test(err.message)) return new HeraldError('unavailable', 'the token keys cannot be fetched; try again', { cause: err });
    return new HeraldError('unauthorized', 'invalid token', { cause: err });
  }
  return new HeraldError('unauthorized', 'invalid token', { cause: err });
}

/**
 * The hooks `startServer` adds for the configuration's `jwtSecret` / `jwksUrl`
 * (`jwtIssuer`, `jwtAudience`); undefined when JWT is not configured.
 */
export function authHooksFromConfig(config: Pick<HeraldConfig, 'jwtSecret' | 'jwksUrl' | 'jwtIssuer' | 'jwtAudience'>): HubHooks | undefined {
  if (config.jwtSecret === undefined && config.jwksUrl === undefined) return undefined;
  const options: JwtAuthOptions = {};
  if (config.jwtSecret !== undefined) options.secret = config.jwtSecret;
  if (config.jwksUrl !== undefined) options.jwksUrl = config.jwksUrl;
  if (config.jwtIssuer !== undefined) options.issuer = config.jwtIssuer;
  if (config.jwtAudience !== undefined) options.audience = config.jwtAudience;
  return { authenticate: createJwtAuthenticator(options) };
}
