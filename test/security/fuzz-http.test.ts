/**
 * Fuzzing over the wire (fast-check): random queries, cursors, tokens and bodies to SSE, long-poll,
 * golongpoll and gpoll, and random frames to a WebSocket connection, against a real server. Every
 * answer must be one of the endpoint's documented shapes; meanwhile a well-behaved WebSocket client
 * keeps getting every event in order and every ping answered; afterwards no handler error escaped,
 * no promise was left rejected, and no connection, subscription or session leaked.
 */
import assert from 'node:assert/strict';
import { Agent, request } from 'node:http';
import { after, before, describe, test } from 'node:test';
import fc from 'fast-check';
import { encodeCursor } from '../../src/protocol/index.js';
import { createJwtAuthenticator } from '../../src/server/jwt.js';
import { TestClient } from '../websocket/helpers.js';
import { ALICE, SECRET, sign, sleep, startSecure, unsigned, type SecureServer } from './helpers.js';

const unhandled: unknown[] = [];
const onUnhandled = (reason: unknown): void => {
  unhandled.push(reason);
};

let srv: SecureServer;
let agent: Agent;
let good: TestClient;
let publisher: NodeJS.Timeout;
let published = 0;
let pingsOk = 0;
let pinger: Promise<void>;
let stopPinging = false;
let validToken: string;
let epoch: string;

before(async () => {
  process.on('unhandledRejection', onUnhandled);
  srv = await startSecure({
    hooks: { authenticate: createJwtAuthenticator({ secret: SECRET }) },
    namespaceBase: { anonymousSubscribe: true, anonymousPublish: true },
    // Nobody but the test publishes to the well-behaved client's channel.
    namespaces: { private: { anonymousSubscribe: false, anonymousPublish: false }, calm: { anonymousPublish: false } },
    // The fuzzer is one address sending thousands of requests: per-address limits would answer most with 429.
    limits: { commandRate: 0, ipCommandRate: 0, ipPublishRate: 0, maxConnectionsPerIp: 0 },
  });
  // Idle keep-alive sockets stay open on the server for the whole run: otherwise one it closes just
  // as the agent reuses it resets a request (node's keep-alive race, a client-side artefact here).
  srv.http.keepAliveTimeout = 120_000;
  agent = new Agent({ keepAlive: true, maxSockets: 64 });
  validToken = await sign(ALICE);
  epoch = (await srv.hub.publish('news', 0)).epoch;
  // The well-behaved client: subscribed to a steady stream, pinging all along.
  good = await TestClient.connect(`${srv.url.replace(/^http/, 'ws')}/ws`);
  assert.ok((await good.request('subscribe', { channel: 'calm:steady' })).result);
  publisher = setInterval(() => void srv.hub.publish('calm:steady', ++published), 10);
  pinger = (async () => {
    while (!stopPinging) {
      const started = Date.now();
      const answer = await good.request('ping', {}, 5_000);
      assert.ok(answer.result, JSON.stringify(answer));
      assert.ok(Date.now() - started < 2_000, 'a ping answered within 2 s during the fuzzing');
      pingsOk++;
      await sleep(25);
    }
  })();
});

after(async () => {
  clearInterval(publisher);
  stopPinging = true;
  await pinger;
  good.close();
  agent.destroy();
  await srv.close();
  process.off('unhandledRejection', onUnhandled);
});

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
  /** Still waiting (a stream or a poll) when we hung up. */
  cut: boolean;
  /** The socket error that ended it, if any. */
  error?: string;
}

/** One request; hangs up after `maxMs` if the answer has not ended (streams, waiting polls). */
function send(path: string, o: { method?: string; body?: string; headers?: Record<string, string>; maxMs?: number; fresh?: boolean } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    let done = false;
    let status = 0;
    let headers: Answer['headers'] = {};
    let body = '';
    const finish = (cut: boolean, error?: string): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      resolve(error === undefined ? { status, headers, body, cut } : { status, headers, body, cut, error });
      if (cut) req.destroy();
    };
    // From the request on: a waiting poll sends no headers at all.
    const timer = setTimeout(() => finish(true), o.maxMs ?? 40);
    // `fresh`: a connection of its own. node's client resets a kept-alive socket now and then after
    // an answer sent before the request body was read (e.g. 405 to a PUT): not the server's doing.
    const options = o.fresh ? { method: o.method ?? 'GET', agent: false, headers: { connection: 'close', ...o.headers } } : { method: o.method ?? 'GET', agent, headers: o.headers };
    const req = request(`${srv.url}${path}`, options, (res) => {
      status = res.statusCode ?? 0;
      headers = res.headers;
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => finish(false));
      res.on('error', () => finish(true));
      res.on('close', () => finish(true));
    });
    // Our own hang-up, or a request the server refused to read (node's 400) resetting the socket.
    req.on('error', (err: NodeJS.ErrnoException) => {
      if (done) return;
      if (err.code === 'ECONNRESET' || err.code === 'EPIPE') finish(true, err.code);
      else {
        done = true;
        clearTimeout(timer);
        reject(err);
      }
    });
    req.end(o.body);
  });
}

// ---- arbitraries ---------------------------------------------------------------------------

const text = fc.string({ unit: 'binary', maxLength: 40 });
const channel = fc.oneof(fc.constantFrom('news', 'private:x', 'user:alice:x', 'a', ''), text, fc.string({ unit: 'grapheme', maxLength: 20 }));
const cursor = fc.oneof(
  text,
  fc.base64String({ maxLength: 60 }),
  fc.array(fc.tuple(channel, fc.string({ maxLength: 10 }), fc.integer({ min: -2, max: 5 })), { maxLength: 4 }).map((entries) => {
    const valid = entries.filter(([c, , o]) => c !== '' && o >= 0).map(([c, e, o]) => [c, { epoch: e, offset: o }] as const);
    return encodeCursor(new Map(valid));
  }),
  fc.constant(encodeCursor(new Map([['news', { epoch: 'x', offset: 0 }]]))),
);
const tokenValue = fc.oneof(text, fc.constantFrom('', 'a.b.c', unsigned({ sub: 'm', subscribe: ['*'] })), fc.constant('VALID'));
const timeout = fc.oneof(fc.constantFrom('1', '0', '-1', '111', '30', '1e1', ' 1', '00001', '99999999999999999999'), text);

/** A query string: known keys with fuzzed values, unknown keys, raw percent-escapes. */
function queryOf(keys: Record<string, fc.Arbitrary<string>>): fc.Arbitrary<string> {
  const pair = fc.oneof(
    ...Object.entries(keys).map(([k, v]) => v.map((value) => [k, value] as [string, string])),
    fc.tuple(text, text),
  );
  return fc.tuple(fc.array(pair, { maxLength: 6 }), fc.boolean(), fc.constantFrom('', '&', '%', '%zz', '&&=', '%00', '%C3%28', '#frag')).map(([pairs, raw, junk]) => {
    const withToken = pairs.map(([k, v]) => [k, v === 'VALID' ? validToken : v] as [string, string]);
    const body = raw ? withToken.map(([k, v]) => `${encodeURIComponent(k)}=${v.replace(/[\s#%&]/g, (c) => encodeURIComponent(c))}`).join('&') : new URLSearchParams(withToken).toString();
    return `?${body}${junk}`;
  });
}

function isJson(body: string): unknown {
  try {
    return JSON.parse(body);
  } catch {
    return undefined;
  }
}

/** `{"error":{"code","message"}}` with the status of its code. */
function heraldError(a: Answer): boolean {
  const b = isJson(a.body) as { error?: { code?: unknown; message?: unknown } } | undefined;
  return !!b && typeof b.error?.code === 'string' && typeof b.error.message === 'string' && Object.keys(b).length === 1 && !/\n\s+at /.test(a.body);
}

const batch = <T>(arb: fc.Arbitrary<T>): fc.Arbitrary<T[]> => fc.array(arb, { minLength: 12, maxLength: 12 });

describe('fuzzing over HTTP and WebSocket, with a well-behaved client alongside', () => {
  test('long-poll: every answer is events+cursor, a herald error, or still waiting', async () => {
    const q = queryOf({ channel, timeout, cursor, token: tokenValue });
    await fc.assert(
      fc.asyncProperty(batch(q), async (queries) => {
        for (const a of await Promise.all(queries.map((s) => send(`/poll${s}`)))) {
          if (a.cut) continue;
          if (a.status === 200) {
            const body = isJson(a.body) as { events: unknown[]; cursor: string; recovered: boolean };
            assert.ok(Array.isArray(body.events) && typeof body.cursor === 'string' && typeof body.recovered === 'boolean', a.body);
          } else assert.ok([400, 401, 403, 413, 429].includes(a.status) && heraldError(a), `${a.status} ${a.body}`);
        }
      }),
      { numRuns: 90 },
    );
  });

  test('SSE: a stream that starts with retry and ready, or a herald error', async () => {
    const q = queryOf({ channel, since: cursor, token: tokenValue });
    await fc.assert(
      fc.asyncProperty(batch(fc.tuple(q, fc.option(cursor, { nil: undefined }))), async (cases) => {
        const answers = await Promise.all(cases.map(([s, lastId]) => send(`/sse${s}`, { maxMs: 30, headers: lastId === undefined ? {} : { 'last-event-id': lastId.replace(/[^\x20-\x7e]/g, '') } })));
        for (const a of answers) {
          if (a.status === 200) {
            assert.match(String(a.headers['content-type']), /^text\/event-stream/);
            if (a.body !== '') assert.match(a.body, /^retry: 3000\n\nid: [A-Za-z0-9_-]*\nevent: ready\ndata: \{"cursor":"[A-Za-z0-9_-]*","recovered":(true|false)\}\n\n/);
          } else if (!(a.cut && a.status === 0)) assert.ok([400, 401, 403, 413, 429].includes(a.status) && heraldError(a), `${a.status} ${a.body}`);
        }
      }),
      { numRuns: 85 },
    );
  });

  test('golongpoll events: golongpoll\'s own shapes, or a refusal', async () => {
    const uuidish = fc.oneof(fc.uuid(), text, fc.uuid().map((u) => `{${u}}`));
    const q = queryOf({ timeout, category: channel, since_time: fc.oneof(fc.integer().map(String), text, fc.constant('0')), last_id: uuidish, token: tokenValue });
    await fc.assert(
      fc.asyncProperty(batch(q), async (queries) => {
        for (const a of await Promise.all(queries.map((s) => send(`/golongpoll/events${s}`)))) {
          if (a.cut) continue;
          const body = isJson(a.body) as Record<string, unknown> | undefined;
          assert.ok(body && typeof body === 'object', a.body);
          if (a.status === 200) {
            const ok = typeof body.error === 'string' || Array.isArray(body.events) || (body.timeout === 'no events before timeout' && typeof body.timestamp === 'number');
            assert.ok(ok, a.body);
          } else assert.ok([401, 403, 429].includes(a.status) && typeof body.error === 'string', `${a.status} ${a.body}`);
        }
      }),
      { numRuns: 90 },
    );
  });

  test('golongpoll publish: {"success": true}, or {"error": …} with golongpoll\'s or herald\'s status', async () => {
    const body = fc.oneof(
      text,
      fc.jsonValue({ maxDepth: 4 }).map((v) => JSON.stringify(v)),
      fc.record({ category: fc.oneof(channel, fc.jsonValue({ maxDepth: 1 })), data: fc.jsonValue({ maxDepth: 3 }), Category: channel }, { requiredKeys: [] }).map((v) => JSON.stringify(v)),
      fc.integer({ min: 60, max: 2000 }).map((d) => `{"category":"deep","data":${'['.repeat(d)}${']'.repeat(d)}}`),
    );
    const method = fc.constantFrom('POST', 'POST', 'POST', 'GET', 'PUT', 'DELETE');
    await fc.assert(
      fc.asyncProperty(batch(fc.tuple(method, body, fc.option(tokenValue, { nil: undefined }))), async (cases) => {
        const answers = await Promise.all(
          cases.map(([m, b, token]) => send(`/golongpoll/publish${token === undefined ? '' : `?token=${encodeURIComponent(token === 'VALID' ? validToken : token)}`}`, { method: m, body: m === 'GET' ? undefined : b, maxMs: 2000, fresh: true })),
        );
        for (const [i, a] of answers.entries()) {
          assert.equal(a.cut, false, `a publish is always answered: ${JSON.stringify(cases[i])} ${a.status} ${a.error}`);
          const parsed = isJson(a.body) as Record<string, unknown> | undefined;
          if (a.status === 200) assert.deepEqual(parsed, { success: true });
          else assert.ok([400, 401, 403, 405, 413, 429].includes(a.status) && typeof parsed?.error === 'string', `${a.status} ${a.body}`);
        }
      }),
      { numRuns: 90 },
    );
  });

  test('gpoll: registration, polls of known, unknown and malformed ids', async () => {
    const registered = JSON.parse((await send('/gpoll?client-id=0', { maxMs: 2000 })).body)['client-id'] as string;
    const [n, uuid] = registered.split('$') as [string, string];
    const id = fc.oneof(text, fc.constantFrom('0', '', registered, `${n}$${uuid.toUpperCase()}`, `+${n}$${uuid}`, `${n}$${uuid}$x`, '$', '123456789$'), fc.tuple(fc.integer(), fc.uuid()).map(([a, b]) => `${a}$${b}`));
    const q = fc.tuple(id, fc.option(tokenValue, { nil: undefined })).map(([cid, token]) => {
      const p = new URLSearchParams({ 'client-id': cid });
      if (token !== undefined) p.set('token', token === 'VALID' ? validToken : token);
      return `?${p.toString()}`;
    });
    await fc.assert(
      fc.asyncProperty(batch(q), async (queries) => {
        for (const a of await Promise.all(queries.map((s) => send(`/gpoll${s}`)))) {
          if (a.cut) continue;
          if (a.status === 200) assert.ok(a.body === '' || /^\{"client-id":"\d+\$[0-9a-f-]{36}"\}$/.test(a.body) || a.body.length > 0);
          else assert.ok([401, 403, 404, 429, 503].includes(a.status) && a.body === '', `${a.status} ${a.body}`);
        }
      }),
      { numRuns: 85 },
    );
  });

  test('WebSocket: random frames on one connection are each answered or refused, and the connection stays', async () => {
    const c = await TestClient.connect(`${srv.url.replace(/^http/, 'ws')}/ws`, validToken);
    const op = fc.constantFrom('connect', 'subscribe', 'unsubscribe', 'publish', 'history', 'presence', 'ping', 'refresh', '');
    const frame = fc.oneof(
      text,
      fc.jsonValue({ maxDepth: 4 }).map((v) => JSON.stringify(v)),
      fc
        .record(
          {
            id: fc.oneof(fc.integer({ min: 1_000_000, max: 2_000_000 }), fc.double(), fc.string({ maxLength: 3 })),
            op,
            channel,
            since: fc.oneof(fc.record({ epoch: fc.oneof(fc.constant(epoch), fc.string({ maxLength: 8 })), offset: fc.integer({ min: -1, max: 3 }) }), fc.jsonValue({ maxDepth: 1 })),
            limit: fc.oneof(fc.integer({ min: -1, max: 1000 }), fc.jsonValue({ maxDepth: 1 })),
            data: fc.jsonValue({ maxDepth: 3 }),
            token: tokenValue,
            __proto__: fc.jsonValue({ maxDepth: 1 }),
          },
          { requiredKeys: [] },
        )
        .map((v) => JSON.stringify(v)),
    );
    let sent = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(frame, { minLength: 20, maxLength: 20 }), async (frames) => {
        for (const f of frames) c.send(f);
        sent += frames.length;
        // A round trip after the batch: every frame before it has been handled.
        const mark = await c.request('ping', {}, 5_000);
        assert.ok(mark.result, JSON.stringify(mark));
        assert.ok(c.isOpen, 'the connection stays open');
      }),
      { numRuns: 150 },
    );
    assert.ok(sent >= 3000);
    for (const m of c.messages) {
      if (m.error) {
        assert.equal(typeof m.error.code, 'string');
        assert.ok(!/\n\s+at /.test(m.error.message));
        assert.notEqual(m.error.code, 'internal', JSON.stringify(m));
      }
    }
    c.close();
    await c.waitClosed();
  });

  test('meanwhile the well-behaved client got every event once, in order, and its pings; nothing escaped or leaked', async () => {
    clearInterval(publisher);
    const last = published;
    await good.next((m) => m.push === 'event' && m.event.data === last, 5_000);
    assert.deepEqual(good.events('calm:steady').map((e) => e.data), Array.from({ length: last }, (_, i) => i + 1));
    assert.ok(pingsOk > 20, `pings answered: ${pingsOk}`);
    assert.deepEqual(srv.escaped, [], 'no error escaped a handler');
    assert.deepEqual(unhandled, [], 'no unhandled rejection');
    agent.destroy();
    // Streams and polls the fuzzer hung up on are gone; only the good client is left.
    for (let i = 0; i < 100 && srv.hub.stats().connections > 1; i++) await sleep(20);
    const stats = srv.hub.stats();
    assert.equal(stats.connections, 1, 'sessions left');
    assert.equal(srv.websocket.connections, 1, 'websocket connections left');
  });
});
