/**
 * Fuzzing the chat (SPEC §7, src/chat): random texts and commands (`/w`, `/users`, unknown ones,
 * control characters, JSON frames, binary frames) from one member over WebSocket, and random
 * bodies to the chat's HTTP endpoints. Another member keeps chatting normally throughout; nothing
 * escapes a handler and no answer is a 5xx.
 */
import assert from 'node:assert/strict';
import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import fc from 'fast-check';
import WebSocket from 'ws';
import { Hub } from '../../src/core/index.js';
import { MemoryEngine } from '../../src/engines/memory.js';
import { HeraldError, toHeraldError } from '../../src/protocol/index.js';
import { sendError } from '../../src/transports/http.js';
import { ChatServer, createChatEndpoints, type ChatEndpoints } from '../../src/chat/index.js';

let hub: Hub;
let endpoints: ChatEndpoints;
let server: Server;
let base: string;
const escaped: unknown[] = [];
const unhandled: unknown[] = [];
const onUnhandled = (reason: unknown): void => {
  unhandled.push(reason);
};

/** Routes as the server mounts them: 'METHOD /path', '* /path' for any method, a trailing '*' for a prefix. */
function route(method: string, path: string): ((req: IncomingMessage, res: ServerResponse, url: URL) => void | Promise<void>) | undefined {
  for (const [key, handler] of Object.entries(endpoints.routes)) {
    const [m, p] = key.split(' ') as [string, string];
    if (m !== '*' && m !== method) continue;
    if (p.endsWith('*') ? path.startsWith(p.slice(0, -1)) : p === path) return handler;
  }
  return undefined;
}

before(async () => {
  process.on('unhandledRejection', onUnhandled);
  hub = new Hub({ engine: new MemoryEngine() });
  await hub.start();
  endpoints = createChatEndpoints(new ChatServer(hub), { pingInterval: 0 });
  server = createServer((req, res) => {
    void (async () => {
      try {
        const url = new URL(`http://chat${req.url ?? '/'}`);
        const handler = route(req.method ?? 'GET', url.pathname);
        if (!handler) throw new HeraldError('not_found', 'no such endpoint');
        await handler(req, res, url);
      } catch (err) {
        if (toHeraldError(err).code === 'internal') escaped.push(err);
        if (res.headersSent) res.destroy();
        else sendError(res, err);
      }
    })();
  });
  server.on('upgrade', (req, socket, head) => {
    const handler = endpoints.upgrades[new URL(`http://chat${req.url ?? '/'}`).pathname];
    if (handler) handler(req, socket, head);
    else socket.destroy();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

after(async () => {
  await endpoints.close();
  await hub.close();
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  process.off('unhandledRejection', onUnhandled);
});

function post(path: string, body: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = request(`${base}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', connection: 'close', 'content-length': Buffer.byteLength(body) } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

async function tokenFor(room: string, user: string): Promise<string> {
  const answer = await post('/api/chat/tokens', JSON.stringify({ room, user }));
  assert.equal(answer.status, 200, answer.text);
  return (JSON.parse(answer.text) as { token: string }).token;
}

interface Member {
  ws: WebSocket;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  received: any[];
  closed: boolean;
}

async function join(room: string, user: string): Promise<Member> {
  const token = await tokenFor(room, user);
  const ws = new WebSocket(`${base.replace(/^http/, 'ws')}/chat?token=${encodeURIComponent(token)}`);
  const member: Member = { ws, received: [], closed: false };
  ws.on('message', (data: Buffer) => member.received.push(JSON.parse(data.toString('utf8'))));
  ws.on('close', () => (member.closed = true));
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  return member;
}

async function waitFor(what: string, check: () => boolean, ms = 3_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

const text = fc.string({ unit: 'binary', maxLength: 60 });
const user = fc.constantFrom('calm', 'fuzzer', 'nobody', '', ' ', 'CALM', 'calm ', '__proto__', 'a'.repeat(70));
const chatText = fc.oneof(
  text,
  fc.string({ unit: 'grapheme', maxLength: 30 }),
  fc.tuple(fc.constantFrom('/w', '/W', '/w ', '/users', '/USERS', '/roll', '/', '//', '/ w', '/w\t', '/users extra', '/quit x'), fc.option(user), fc.option(text)).map(([c, u, t]) => [c, u, t].filter((p) => p !== null).join(' ')),
  fc.record({ text: fc.oneof(text, fc.jsonValue({ maxDepth: 2 })), extra: fc.jsonValue({ maxDepth: 1 }) }, { requiredKeys: [] }).map((v) => JSON.stringify(v)),
  fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v)),
  fc.constantFrom('\u0000', '\u001b[31mred', '\r\n\r\n', '\u202eevil', '<script>alert(1)</script>', 'x'.repeat(5000)),
);

describe('chat under fuzzing', () => {
  test('random texts and commands from one member: the room keeps working for the other', async () => {
    assert.equal((await post('/api/chat/rooms', '{"name":"fuzz"}')).status, 201);
    const calm = await join('fuzz', 'calm');
    const fuzzer = await join('fuzz', 'fuzzer');
    let round = 0;
    let sentFrames = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(fc.oneof(chatText.map((t) => ({ t, binary: false })), fc.uint8Array({ maxLength: 20 }).map((b) => ({ t: Buffer.from(b).toString('latin1'), binary: true }))), { minLength: 10, maxLength: 10 }), async (frames) => {
        for (const f of frames) {
          if (f.binary) fuzzer.ws.send(Buffer.from(f.t, 'latin1'));
          else fuzzer.ws.send(f.t);
        }
        sentFrames += frames.length;
        // The calm member's own message comes back to it: the room is alive and in order.
        const marker = `calm says ${++round}`;
        calm.ws.send(marker);
        await waitFor(marker, () => calm.received.some((m) => m.type === 'message' && m.text === marker && m.from === 'calm'));
        assert.equal(calm.closed, false, 'the calm member is still connected');
      }),
      { numRuns: 120 },
    );
    assert.ok(sentFrames >= 1200);
    for (const m of [...calm.received, ...fuzzer.received]) {
      assert.ok(['message', 'system', 'whisper'].includes(m.type), JSON.stringify(m));
      assert.equal(typeof m.text, 'string');
    }
    // A whisper sent by the fuzzer to calm reaches calm only as a whisper from "fuzzer".
    for (const m of calm.received.filter((x) => x.type === 'whisper')) assert.ok(m.from === 'fuzzer' || m.from === 'calm', JSON.stringify(m));
    calm.ws.close();
    fuzzer.ws.close();
    assert.deepEqual(escaped, [], 'no error escaped a chat handler');
  });

  test('random bodies to the chat HTTP endpoints: a 2xx or a JSON 4xx, never a 5xx', async () => {
    const body = fc.oneof(
      text,
      fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v)),
      fc.record({ name: fc.oneof(text, fc.stringMatching(/^[A-Za-z0-9_-]{1,70}$/), fc.jsonValue({ maxDepth: 1 })), room: fc.oneof(fc.constant('fuzz'), text), user, session: fc.oneof(text, fc.uuid()), text: chatText, __proto__: fc.jsonValue({ maxDepth: 1 }) }, { requiredKeys: [] }).map((v) => JSON.stringify(v)),
      fc.integer({ min: 60, max: 2000 }).map((d) => `{"name":${'['.repeat(d)}${']'.repeat(d)}}`),
    );
    const path = fc.constantFrom('/api/chat/rooms', '/api/chat/tokens', '/chat/send');
    await fc.assert(
      fc.asyncProperty(fc.array(fc.tuple(path, body), { minLength: 8, maxLength: 8 }), async (cases) => {
        const answers = await Promise.all(cases.map(([p, b]) => post(p, b)));
        answers.forEach((a, i) => {
          assert.ok(a.status >= 200 && a.status < 500, `${cases[i]![0]} ${cases[i]![1].slice(0, 80)} → ${a.status} ${a.text}`);
          if (a.status >= 400) {
            const parsed = JSON.parse(a.text) as { error: { code: string; message: string } };
            assert.equal(typeof parsed.error.code, 'string');
            assert.ok(!/\n\s+at /.test(a.text));
          }
        });
      }),
      { numRuns: 130 },
    );
    assert.deepEqual(escaped, []);
    assert.deepEqual(unhandled, []);
  });
});
