/** JWT verification (SPEC §8): HS256, RS256, ES256, JWKS; every forged, expired or malformed token is `unauthorized`. */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { SignJWT, exportJWK, exportSPKI, generateKeyPair, type CryptoKey, type JWK } from 'jose';
import { HeraldError } from '../../src/protocol/index.js';
import { authHooksFromConfig, createJwtAuthenticator } from '../../src/server/jwt.js';
import { validateConfig } from '../../src/server/config.js';
import { createToken } from '../../src/cli/token.js';
import { ALICE, SECRET, badTokens, sign, unsigned } from './helpers.js';

const now = (): number => Math.floor(Date.now() / 1000);

async function refused(promise: Promise<unknown>, code: 'unauthorized' | 'unavailable', message?: RegExp): Promise<void> {
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(err instanceof HeraldError, `a HeraldError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    if (message) assert.match(err.message, message);
    return true;
  });
}

async function signWith(alg: 'RS256' | 'ES256', key: CryptoKey, claims: Record<string, unknown>, o: { kid?: string; ttl?: number } = {}): Promise<string> {
  const header: { alg: string; typ: string; kid?: string } = { alg, typ: 'JWT' };
  if (o.kid) header.kid = o.kid;
  return new SignJWT(claims).setProtectedHeader(header).setIssuedAt().setExpirationTime(now() + (o.ttl ?? 600)).sign(key);
}

describe('HS256 (--jwt-secret)', () => {
  const auth = createJwtAuthenticator({ secret: SECRET });

  test('a valid token gives the user, the permission patterns and the expiry', async () => {
    const exp = now() + 120;
    const result = await auth(await sign(ALICE, { exp }), 'websocket');
    assert.deepEqual(result, {
      user: 'alice',
      permissions: { subscribe: ['news', 'user:alice:*'], publish: ['user:alice:*'], presence: ['news'] },
      expiresAt: exp * 1000,
    });
  });

  test('absent claims grant nothing; no token is an anonymous client', async () => {
    assert.deepEqual((await auth(await sign({ sub: 'bob' }), 'sse')).permissions, { subscribe: [], publish: [], presence: [] });
    assert.deepEqual(await auth(undefined, 'websocket'), {});
    assert.deepEqual(await auth('', 'poll'), {});
  });

  test('expired, alg none, wrong key, tampered, no exp and garbage tokens are unauthorized', async () => {
    for (const [name, token] of Object.entries(await badTokens())) {
      await refused(auth(token, 'websocket'), 'unauthorized').catch((err: unknown) => {
        throw new Error(`${name}: ${String(err)}`);
      });
    }
    await refused(auth((await badTokens()).expired, 'websocket'), 'unauthorized', /^token expired$/);
  });

  test('alg none is refused whatever else the token says, also with an empty-string or "None" alg', async () => {
    for (const alg of ['none', 'None', 'NONE', '']) {
      const b64 = (v: unknown): string => Buffer.from(JSON.stringify(v)).toString('base64url');
      const token = `${b64({ alg, typ: 'JWT' })}.${b64({ sub: 'mallory', subscribe: ['*'], exp: now() + 600 })}.`;
      await refused(auth(token, 'websocket'), 'unauthorized');
    }
    await refused(auth(unsigned({ sub: 'mallory' }), 'sse'), 'unauthorized');
  });

  test('a token not yet valid (nbf) or with claims of the wrong type is unauthorized', async () => {
    const early = await new SignJWT({ sub: 'a' }).setProtectedHeader({ alg: 'HS256' }).setNotBefore(now() + 60).setExpirationTime(now() + 600).sign(new TextEncoder().encode(SECRET));
    await refused(auth(early, 'websocket'), 'unauthorized');
    await refused(auth(await sign({ sub: 'a', subscribe: 'news' as unknown as string[] }), 'websocket'), 'unauthorized', /"subscribe" must be an array/);
    await refused(auth(await sign({ sub: 'a', publish: [1] as unknown as string[] }), 'websocket'), 'unauthorized', /"publish"/);
    await refused(auth(await sign({ sub: 42 as unknown as string }), 'websocket'), 'unauthorized');
    await refused(auth(await sign({ sub: '' }), 'websocket'), 'unauthorized', /"sub"/);
    await refused(auth(await sign({ sub: 'a', exp: 'soon' }, { exp: null }), 'websocket'), 'unauthorized');
  });

  test('HS384 and HS512 tokens are refused unless allowed; issuer and audience are checked when set', async () => {
    const key = new TextEncoder().encode(SECRET);
    const hs512 = await new SignJWT({ sub: 'a' }).setProtectedHeader({ alg: 'HS512' }).setExpirationTime(now() + 60).sign(key);
    await refused(auth(hs512, 'websocket'), 'unauthorized', /algorithm not allowed/);
    assert.equal((await createJwtAuthenticator({ secret: SECRET, algorithms: ['HS512'] })(hs512, 'websocket')).user, 'a');

    const strict = createJwtAuthenticator({ secret: SECRET, issuer: 'https://app.example', audience: 'herald' });
    const good = await createToken({ secret: SECRET, sub: 'a', issuer: 'https://app.example', audience: 'herald' });
    assert.equal((await strict(good, 'websocket')).user, 'a');
    await refused(strict(await createToken({ secret: SECRET, sub: 'a', issuer: 'https://evil.example', audience: 'herald' }), 'websocket'), 'unauthorized');
    await refused(strict(await createToken({ secret: SECRET, sub: 'a', issuer: 'https://app.example', audience: 'other' }), 'websocket'), 'unauthorized');
    await refused(strict(await sign({ sub: 'a' }), 'websocket'), 'unauthorized');
  });

  test('the clock tolerance extends exp and the expiry it reports', async () => {
    const exp = now() - 5;
    const token = await sign({ sub: 'a' }, { exp });
    await refused(auth(token, 'websocket'), 'unauthorized', /expired/);
    const lenient = createJwtAuthenticator({ secret: SECRET, clockTolerance: 30 });
    assert.equal((await lenient(token, 'websocket')).expiresAt, (exp + 30) * 1000);
  });

  test('options are checked: a short secret, no key, or an algorithm the keys cannot verify is refused at creation', () => {
    assert.throws(() => createJwtAuthenticator({ secret: 'short' }), /at least 32 bytes/);
    assert.throws(() => createJwtAuthenticator({}), /give a secret/);
    assert.throws(() => createJwtAuthenticator({ secret: SECRET, algorithms: ['RS256'] }), /not allowed with the keys given/);
    assert.throws(() => createJwtAuthenticator({ secret: SECRET, algorithms: ['none' as 'HS256'] }), /not allowed/);
    assert.throws(() => createJwtAuthenticator({ secret: SECRET, algorithms: [] }), /must not be empty/);
    assert.throws(() => createJwtAuthenticator({ jwksUrl: 'ftp://keys.example/jwks' }), /http/);
  });
});

describe('RS256, ES256 and JWKS', () => {
  let rsa: Awaited<ReturnType<typeof generateKeyPair>>;
  let ec: Awaited<ReturnType<typeof generateKeyPair>>;
  let jwksServer: Server;
  let jwksUrl: string;
  let jwks: { keys: JWK[] };
  let fetches = 0;
  let jwksStatus = 200;

  before(async () => {
    rsa = await generateKeyPair('RS256');
    ec = await generateKeyPair('ES256');
    jwks = {
      keys: [
        { ...(await exportJWK(rsa.publicKey)), kid: 'rsa-1', alg: 'RS256', use: 'sig' },
        { ...(await exportJWK(ec.publicKey)), kid: 'ec-1', alg: 'ES256', use: 'sig' },
      ],
    };
    jwksServer = createServer((_req, res) => {
      fetches++;
      res.writeHead(jwksStatus, { 'content-type': 'application/json' });
      res.end(jwksStatus === 200 ? JSON.stringify(jwks) : 'no');
    });
    await new Promise<void>((resolve) => jwksServer.listen(0, '127.0.0.1', resolve));
    jwksUrl = `http://127.0.0.1:${(jwksServer.address() as AddressInfo).port}/.well-known/jwks.json`;
  });
  after(() => new Promise<void>((resolve) => jwksServer.close(() => resolve())));

  test('a public key (PEM) verifies RS256; a JWK verifies ES256', async () => {
    const byPem = createJwtAuthenticator({ publicKey: await exportSPKI(rsa.publicKey) });
    assert.equal((await byPem(await signWith('RS256', rsa.privateKey, { sub: 'r' }), 'websocket')).user, 'r');
    const byJwk = createJwtAuthenticator({ publicKey: await exportJWK(ec.publicKey) });
    assert.equal((await byJwk(await signWith('ES256', ec.privateKey, { sub: 'e', subscribe: ['a:*'] }), 'websocket')).permissions?.subscribe[0], 'a:*');
  });

  test('with a public key: HS256 tokens (even signed with the public key as secret) and other keys are refused', async () => {
    const pem = await exportSPKI(rsa.publicKey);
    const auth = createJwtAuthenticator({ publicKey: pem });
    // Algorithm confusion: an attacker signs HS256 with the (public) PEM text as the HMAC secret.
    const confused = await new SignJWT({ sub: 'mallory', subscribe: ['*'] }).setProtectedHeader({ alg: 'HS256' }).setExpirationTime(now() + 60).sign(new TextEncoder().encode(pem));
    await refused(auth(confused, 'websocket'), 'unauthorized', /algorithm not allowed/);
    const other = await generateKeyPair('RS256');
    await refused(auth(await signWith('RS256', other.privateKey, { sub: 'x' }), 'websocket'), 'unauthorized', /bad signature/);
    await refused(auth(await signWith('RS256', rsa.privateKey, { sub: 'x' }, { ttl: -60 }), 'websocket'), 'unauthorized', /expired/);
  });

  test('a JWKS URL (served locally) verifies RS256 and ES256 tokens by kid; an unknown kid is unauthorized', async () => {
    const auth = createJwtAuthenticator({ jwksUrl });
    const r = await auth(await signWith('RS256', rsa.privateKey, { sub: 'rs', publish: ['p'] }, { kid: 'rsa-1' }), 'websocket');
    assert.equal(r.user, 'rs');
    assert.deepEqual(r.permissions?.publish, ['p']);
    assert.equal((await auth(await signWith('ES256', ec.privateKey, { sub: 'es' }, { kid: 'ec-1' }), 'sse')).user, 'es');
    assert.equal(fetches, 1, 'the key set is fetched once and cached');
    const stranger = await generateKeyPair('RS256');
    await refused(auth(await signWith('RS256', stranger.privateKey, { sub: 'x' }, { kid: 'rsa-9' }), 'websocket'), 'unauthorized', /no key matches/);
    await refused(auth(await signWith('RS256', stranger.privateKey, { sub: 'x' }, { kid: 'rsa-1' }), 'websocket'), 'unauthorized', /bad signature/);
    await refused(auth(unsigned({ sub: 'x' }), 'websocket'), 'unauthorized');
  });

  test('an unreachable or broken key server is unavailable (try again), not unauthorized', async () => {
    const token = await signWith('RS256', rsa.privateKey, { sub: 'x' }, { kid: 'rsa-1' });
    await refused(createJwtAuthenticator({ jwksUrl: 'http://127.0.0.1:1/jwks.json' })(token, 'websocket'), 'unavailable');
    jwksStatus = 500;
    try {
      await refused(createJwtAuthenticator({ jwksUrl })(token, 'websocket'), 'unavailable');
    } finally {
      jwksStatus = 200;
    }
  });

  test('a secret and a JWKS together: the token alg picks the key', async () => {
    const auth = createJwtAuthenticator({ secret: SECRET, jwksUrl });
    assert.equal((await auth(await sign({ sub: 'h' }), 'websocket')).user, 'h');
    assert.equal((await auth(await signWith('ES256', ec.privateKey, { sub: 'e' }, { kid: 'ec-1' }), 'websocket')).user, 'e');
    await refused(auth(await sign({ sub: 'h' }, { secret: 'x'.repeat(40) }), 'websocket'), 'unauthorized');
  });

  test('authHooksFromConfig: none without JWT options, an authenticate hook with them', async () => {
    assert.equal(authHooksFromConfig(validateConfig({})), undefined);
    const hooks = authHooksFromConfig(validateConfig({ jwtSecret: SECRET }));
    assert.equal((await hooks!.authenticate!(await sign(ALICE), 'websocket')).user, 'alice');
    const both = authHooksFromConfig(validateConfig({ jwtSecret: SECRET, jwksUrl, jwtAudience: 'herald' }));
    await refused(Promise.resolve(both!.authenticate!(await sign(ALICE), 'websocket')), 'unauthorized');
    const withAud = await createToken({ secret: SECRET, sub: 'a', audience: 'herald' });
    assert.equal((await both!.authenticate!(withAud, 'websocket')).user, 'a');
  });
});
