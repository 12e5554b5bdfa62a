/**
 * Property-based fuzzing (fast-check) of every parser that reads what clients send: the WebSocket
 * command parser, cursors, the HTTP transports' query parsing, golongpoll's parsers, channel names
 * and patterns, tokens. Each runs thousands of cases: none may throw (other than the documented
 * HeraldError), hang, or accept something its contract refuses.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import {
  HeraldError,
  MAX_JSON_DEPTH,
  OPS,
  channelProblem,
  decodeCursor,
  encodeCursor,
  isPosition,
  matchPattern,
  parseCommand,
  type Cursor,
} from '../../src/protocol/index.js';
import { bearerToken, parseChannels, parseStrictInt } from '../../src/transports/http-stream/request.js';
import { decodePublishBody, goParseInt, goParseUuid } from '../../src/transports/compat/golongpoll.js';
import { addressKey } from '../../src/transports/limits.js';
import { createJwtAuthenticator } from '../../src/server/jwt.js';
import { SECRET, sign } from './helpers.js';

const RUNS = 3000;
const anyText = fc.string({ unit: 'binary', maxLength: 120 });
const validChannel = fc.string({ unit: 'grapheme', minLength: 1, maxLength: 40 }).filter((c) => channelProblem(c) === null);
const position = fc.record({ epoch: fc.string({ maxLength: 64 }), offset: fc.nat() }).map(({ epoch, offset }) => ({ epoch, offset }));
/** Values that are almost what a field wants, and sometimes exactly it. */
const fieldValue = fc.oneof(
  fc.integer(),
  fc.double(),
  fc.string({ unit: 'binary', maxLength: 30 }),
  fc.constantFrom(null, true, false, [], {}, '', -0, 2 ** 53, Number.MAX_SAFE_INTEGER, '__proto__'),
  fc.jsonValue({ maxDepth: 3 }),
  position,
);

function checkParseResult(text: string): void {
  const r = parseCommand(text);
  if (r.ok) {
    const c = r.command;
    assert.ok(Number.isSafeInteger(c.id));
    assert.ok((OPS as readonly string[]).includes(c.op));
    if ('channel' in c) assert.equal(channelProblem(c.channel), null);
    if ('since' in c && c.since !== undefined) assert.ok(isPosition(c.since));
    if (c.op === 'history' && c.limit !== undefined) assert.ok(Number.isSafeInteger(c.limit) && c.limit >= 0);
    if (c.op === 'connect' && c.token !== undefined) assert.equal(typeof c.token, 'string');
    if (c.op === 'publish') assert.notEqual(c.data, undefined);
  } else {
    assert.ok(r.error instanceof HeraldError);
    assert.equal(r.error.code, 'bad_request');
    assert.ok(r.id === undefined || Number.isSafeInteger(r.id));
    assert.ok(!r.error.message.includes('\n'), 'one-line messages');
    assert.ok(r.error.message.length < 200, 'bounded messages (no echo of the frame)');
  }
}

describe('WebSocket command parser (parseCommand)', () => {
  test('arbitrary text never throws and yields a valid command or bad_request', () => {
    fc.assert(fc.property(anyText, (text) => checkParseResult(text)), { numRuns: RUNS });
  });

  test('arbitrary JSON values never throw', () => {
    fc.assert(fc.property(fc.jsonValue({ maxDepth: 6 }), (value) => checkParseResult(JSON.stringify(value))), { numRuns: RUNS });
  });

  test('command-shaped objects with wrong, missing and extra fields: only valid ones pass, data kept exactly', () => {
    const command = fc.record(
      {
        id: fc.oneof(fc.integer(), fieldValue),
        op: fc.oneof(fc.constantFrom(...OPS), fc.string({ maxLength: 12 })),
        channel: fc.oneof(validChannel, fieldValue),
        since: fc.oneof(position, fieldValue),
        limit: fc.oneof(fc.nat(), fieldValue),
        token: fc.oneof(fc.string(), fieldValue),
        data: fc.jsonValue({ maxDepth: 4 }),
        __proto__: fieldValue,
        constructor: fieldValue,
      },
      { requiredKeys: [] },
    );
    fc.assert(
      fc.property(command, (obj) => {
        const text = JSON.stringify(obj);
        checkParseResult(text);
        const r = parseCommand(text);
        if (r.ok && r.command.op === 'publish') assert.deepEqual(r.command.data, JSON.parse(text).data);
        if (r.ok) assert.equal(r.command.id, JSON.parse(text).id);
      }),
      { numRuns: RUNS },
    );
  });

  test('nesting is refused past the depth limit, whatever the brackets', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 5000 }), fc.constantFrom('[', '{"a":'), (depth, open) => {
        const close = open === '[' ? ']' : '}';
        const text = `{"id":1,"op":"publish","channel":"c","data":${open.repeat(depth)}1${close.repeat(depth)}}`;
        const r = parseCommand(text);
        assert.equal(r.ok, depth + 1 <= MAX_JSON_DEPTH);
      }),
      { numRuns: 500 },
    );
  });

  test('a valid command survives arbitrary whitespace and key order', () => {
    fc.assert(
      fc.property(fc.integer(), validChannel, fc.jsonValue({ maxDepth: 3 }), fc.boolean(), (id, channel, data, reverse) => {
        const fields: [string, unknown][] = [['id', id], ['op', 'publish'], ['channel', channel], ['data', data]];
        if (reverse) fields.reverse();
        const r = parseCommand(` \n${JSON.stringify(Object.fromEntries(fields), null, 1)}\t`);
        assert.ok(r.ok);
        assert.deepEqual(r.command, { id, op: 'publish', channel, data: JSON.parse(JSON.stringify(data)) });
      }),
      { numRuns: 1000 },
    );
  });
});

describe('cursors (decodeCursor)', () => {
  const cursorModel = fc.uniqueArray(fc.tuple(validChannel, position), { selector: (t) => t[0], maxLength: 8 }).map((entries) => new Map(entries) as Cursor);

  function checkCursor(c: Cursor | undefined): void {
    if (c === undefined) return;
    assert.ok(c instanceof Map);
    for (const [channel, p] of c) {
      assert.equal(channelProblem(channel), null);
      assert.ok(isPosition(p));
      assert.ok(p.epoch.length <= 64);
    }
  }

  test('arbitrary text is a valid cursor or undefined, never an exception', () => {
    fc.assert(fc.property(fc.oneof(anyText, fc.base64String({ maxLength: 200 }), fc.stringMatching(/^[A-Za-z0-9_-]{0,120}$/)), (text) => checkCursor(decodeCursor(text))), { numRuns: RUNS });
  });

  test('any JSON, base64url-encoded, decodes to a valid cursor or undefined', () => {
    const payload = fc.oneof(
      fc.jsonValue({ maxDepth: 5 }),
      fc.tuple(fc.constantFrom(1, 2, 0, '1'), fc.array(fc.tuple(fieldValue, fieldValue, fieldValue), { maxLength: 4 })),
      fc.tuple(fc.constant(1), fc.array(fc.array(fieldValue, { maxLength: 4 }), { maxLength: 4 })),
    );
    fc.assert(fc.property(payload, (value) => checkCursor(decodeCursor(Buffer.from(JSON.stringify(value)).toString('base64url')))), { numRuns: RUNS });
  });

  test('encode → decode is the identity; a one-character mutation is still valid-or-undefined', () => {
    fc.assert(
      fc.property(cursorModel, fc.nat(), fc.string({ minLength: 1, maxLength: 2 }), (model, at, insert) => {
        const text = encodeCursor(model);
        assert.deepEqual(decodeCursor(text), model);
        const i = text.length === 0 ? 0 : at % text.length;
        checkCursor(decodeCursor(text.slice(0, i) + insert + text.slice(i + 1)));
        checkCursor(decodeCursor(text.slice(0, i) + text.slice(i + 1)));
      }),
      { numRuns: RUNS },
    );
  });
});

describe('HTTP transport request parsing', () => {
  const queryPart = fc.oneof(anyText, validChannel, fc.constantFrom('', '%', '%zz', '&', '=', '+', '%00', '%C3%28', 'channel'));
  const query = fc.array(fc.tuple(fc.constantFrom('channel', 'timeout', 'cursor', 'since', 'token', 'Channel', 'channel[]', ''), queryPart), { maxLength: 8 });

  test('parseChannels: valid unique channels within the limit, or bad_request / limit_exceeded', () => {
    fc.assert(
      fc.property(query, fc.integer({ min: 1, max: 5 }), fc.boolean(), (pairs, max, raw) => {
        // Both URLSearchParams encoding and raw (possibly malformed) percent-escapes.
        const search = raw ? pairs.map(([k, v]) => `${k}=${v}`).join('&') : new URLSearchParams(pairs).toString();
        let url: URL;
        try {
          url = new URL(`http://h/poll?${search}`);
        } catch {
          return; // not a request node:http would route
        }
        try {
          const channels = parseChannels(url, max);
          assert.ok(channels.length >= 1 && channels.length <= max);
          assert.equal(new Set(channels).size, channels.length);
          for (const c of channels) assert.equal(channelProblem(c), null);
        } catch (err) {
          assert.ok(err instanceof HeraldError, String(err));
          assert.ok(err.code === 'bad_request' || err.code === 'limit_exceeded');
        }
      }),
      { numRuns: RUNS },
    );
  });

  test('parseStrictInt: plain decimal integers only', () => {
    fc.assert(
      fc.property(fc.oneof(anyText, fc.integer().map(String), fc.double().map(String), fc.constantFrom('30', '030', '+1', '1e3', ' 1', '1 ', '0x10', '1_0', '٣')), (text) => {
        const n = parseStrictInt(text);
        if (n === undefined) assert.ok(!/^[0-9]{1,9}$/.test(text));
        else {
          assert.ok(Number.isSafeInteger(n) && n >= 0);
          assert.equal(n, Number(text));
        }
      }),
      { numRuns: RUNS },
    );
  });

  test('bearerToken: one visible token or nothing', () => {
    fc.assert(
      fc.property(fc.oneof(anyText, fc.string().map((s) => `Bearer ${s}`), fc.string().map((s) => `bearer  ${s}  `)), (header) => {
        const token = bearerToken({ headers: { authorization: header } } as never);
        if (token !== undefined) assert.match(token, /^\S+$/);
      }),
      { numRuns: RUNS },
    );
  });

  test('client addresses: any text gives a key without throwing', () => {
    fc.assert(fc.property(fc.oneof(anyText, fc.ipV4(), fc.ipV6(), fc.ipV4Extended()), (address) => assert.equal(typeof addressKey(address), 'string')), { numRuns: RUNS });
  });
});

describe('golongpoll parsers', () => {
  test('goParseInt: Go strconv.ParseInt syntax within int64', () => {
    fc.assert(
      fc.property(fc.oneof(anyText, fc.bigInt({ min: -(2n ** 70n), max: 2n ** 70n }).map(String), fc.integer().map((n) => `+${n}`)), (text) => {
        const n = goParseInt(text);
        if (n === undefined) return;
        assert.match(text, /^[+-]?[0-9]+$/);
        const big = BigInt(text);
        assert.ok(big <= 9223372036854775807n && big >= -9223372036854775808n);
        assert.equal(n, Number(big));
      }),
      { numRuns: RUNS },
    );
  });

  test('goParseUuid: any accepted form gives the canonical lower-case UUID', () => {
    fc.assert(
      fc.property(fc.oneof(anyText, fc.uuid(), fc.uuid().map((u) => `{${u.toUpperCase()}}`), fc.uuid().map((u) => `urn:uuid:${u}`), fc.uuid().map((u) => u.replace(/-/g, ''))), (text) => {
        const u = goParseUuid(text);
        if (u !== undefined) assert.match(u, /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
      }),
      { numRuns: RUNS },
    );
  });

  test('decodePublishBody: never throws; a decoded body has a string category', () => {
    const body = fc.oneof(
      anyText,
      fc.jsonValue({ maxDepth: 4 }).map((v) => JSON.stringify(v)),
      fc.record({ category: fieldValue, data: fieldValue, Category: fieldValue, DATA: fieldValue, __proto__: fieldValue }, { requiredKeys: [] }).map((v) => JSON.stringify(v)),
      fc.tuple(fc.jsonValue({ maxDepth: 2 }), anyText).map(([v, rest]) => JSON.stringify(v) + rest),
      fc.integer({ min: 1, max: 3000 }).map((d) => `{"category":"c","data":${'['.repeat(d)}${']'.repeat(d)}}`),
    );
    fc.assert(
      fc.property(body, (text) => {
        const r = decodePublishBody(text);
        if (r.ok) assert.equal(typeof r.category, 'string');
        else assert.equal(r.error, 'body');
      }),
      { numRuns: RUNS },
    );
  });
});

describe('channels and permission patterns', () => {
  test('channelProblem never throws and agrees with the definition of SPEC §1', () => {
    fc.assert(
      fc.property(fc.oneof(anyText, fieldValue), (value) => {
        const problem = channelProblem(value);
        if (typeof value !== 'string') return assert.notEqual(problem, null);
        const points = [...value];
        const valid = points.length >= 1 && points.length <= 1024 && points.every((p) => {
          const cp = p.codePointAt(0)!;
          return cp > 0x1f && cp !== 0x7f && (cp < 0xd800 || cp > 0xdfff);
        });
        assert.equal(problem === null, valid, JSON.stringify(value));
      }),
      { numRuns: RUNS },
    );
  });

  test('matchPattern: exact without "*", and "*" matches exactly the runs it should', () => {
    fc.assert(
      fc.property(validChannel, validChannel, fc.nat(), fc.nat(), (channel, other, a, b) => {
        assert.equal(matchPattern(channel.replace(/\*/g, ''), channel), !channel.includes('*'));
        assert.equal(matchPattern(other.replace(/\*/g, ''), channel), other.replace(/\*/g, '') === channel);
        assert.ok(matchPattern('*', channel));
        // Cut the channel in three and put stars at the cuts: it must match; a different suffix must not.
        const i = a % (channel.length + 1);
        const j = i + (b % (channel.length - i + 1));
        const pattern = `${channel.slice(0, i)}*${channel.slice(i, j)}*${channel.slice(j)}`;
        if (!channel.includes('*')) {
          assert.ok(matchPattern(pattern, channel), `${pattern} ~ ${channel}`);
          assert.equal(matchPattern(`${channel}*x`, channel), false);
          assert.equal(matchPattern(`x${channel}`, channel), false);
        }
      }),
      { numRuns: RUNS },
    );
  });

  test('matchPattern against a regex model: "*" is "any run of characters" and nothing else is special', () => {
    const alphabet = fc.constantFrom('a', 'b', ':', '.', '*', '?', '[', '\\');
    fc.assert(
      fc.property(fc.string({ unit: alphabet, maxLength: 8 }), fc.string({ unit: fc.constantFrom('a', 'b', ':', '.', '?', '[', '\\'), minLength: 1, maxLength: 10 }), (pattern, channel) => {
        const regex = new RegExp(`^${pattern.split('*').map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('[\\s\\S]*')}$`);
        assert.equal(matchPattern(pattern, channel), regex.test(channel), `${pattern} ~ ${channel}`);
      }),
      { numRuns: RUNS },
    );
  });
});

describe('tokens', () => {
  const auth = createJwtAuthenticator({ secret: SECRET });

  test('any text as a token is unauthorized (or, if empty, anonymous), never another failure', async () => {
    await fc.assert(
      fc.asyncProperty(fc.oneof(anyText, fc.tuple(fc.base64String(), fc.base64String(), fc.base64String()).map((p) => p.join('.').replace(/=/g, ''))), async (token) => {
        try {
          const result = await auth(token, 'websocket');
          assert.equal(token, '', 'only the empty token passes');
          assert.deepEqual(result, {});
        } catch (err) {
          assert.ok(err instanceof HeraldError, String(err));
          assert.equal(err.code, 'unauthorized');
        }
      }),
      { numRuns: 2000 },
    );
  });

  test('a one-character change to a valid token is refused, unless it decodes to the same bytes', async () => {
    const token = await sign({ sub: 'alice', subscribe: ['news'] });
    const original = await auth(token, 'websocket');
    await fc.assert(
      fc.asyncProperty(fc.nat({ max: token.length - 1 }), fc.constantFrom(...'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.='), async (i, ch) => {
        const mutated = token.slice(0, i) + ch + token.slice(i + 1);
        if (mutated === token) return;
        try {
          assert.deepEqual(await auth(mutated, 'websocket'), original, 'accepted only as the same token');
        } catch (err) {
          assert.ok(err instanceof HeraldError && err.code === 'unauthorized', String(err));
        }
      }),
      { numRuns: 2000 },
    );
  });
});
