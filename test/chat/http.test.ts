/**
 * The chat endpoints over real sockets (SPEC §7): the room and token API, the WebSocket at /chat,
 * SSE at /chat/sse with POST /chat/send, and the demo's /chat/join.
 */
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import WebSocket from 'ws';
import type { ChatController } from '../../src/chat/index.js';
import { post, SseUser, sleep, startChat, tokenFor, until, WsUser, type ChatHarness, type ChatHarnessOptions } from './helpers.js';

let harness: ChatHarness | undefined;

async function start(options: ChatHarnessOptions = {}): Promise<ChatHarness> {
  harness = await startChat(options);
  return harness;
}

afterEach(async () => {
  const h = harness;
  harness = undefined;
  if (h) {
    await h.close();
    assert.deepEqual(h.errors, []);
  }
});

async function errorOf(res: Response | { status: number; json: Record<string, unknown> }): Promise<{ status: number; code: string; message: string }> {
  const json = res instanceof Response ? ((await res.json()) as Record<string, unknown>) : res.json;
  const error = json.error as { code: string; message: string };
  return { status: res.status, code: error.code, message: error.message };
}

describe('chat HTTP API', () => {
  it('creates, lists and deletes rooms with the SPEC status codes', async () => {
    const { base } = await start();
    assert.deepEqual(await post(base, '/api/chat/rooms', { name: 'lobby' }), { status: 201, json: { name: 'lobby' } });
    assert.deepEqual(await errorOf(await post(base, '/api/chat/rooms', { name: 'lobby' })), { status: 409, code: 'conflict', message: 'room "lobby" already exists' });
    const bad = await errorOf(await post(base, '/api/chat/rooms', { name: 'no spaces' }));
    assert.equal(bad.status, 400);
    assert.equal(bad.code, 'bad_request');
    assert.match(bad.message, /1 to 64 characters/);
    assert.equal((await errorOf(await post(base, '/api/chat/rooms', { name: 7 }))).code, 'bad_request');
    assert.equal((await errorOf(await post(base, '/api/chat/rooms', '{nope'))).message, 'body is not valid JSON');
    await post(base, '/api/chat/rooms', { name: 'b-room' });

    const ws = new WsUser(base, await tokenFor(base, 'lobby', 'alice'));
    await ws.inbox.wait('alice joined');
    const list = await fetch(`${base}/api/chat/rooms`);
    assert.equal(list.status, 200);
    assert.deepEqual(await list.json(), { rooms: [{ name: 'b-room', users: [] }, { name: 'lobby', users: ['alice'] }] });

    const del = await fetch(`${base}/api/chat/rooms/lobby`, { method: 'DELETE' });
    assert.equal(del.status, 204);
    assert.equal(await del.text(), '');
    assert.deepEqual(await ws.closed, { code: 1000, reason: 'room closed' });
    assert.ok(ws.inbox.has('the room "lobby" was closed', 'system'));
    assert.deepEqual(await errorOf(await fetch(`${base}/api/chat/rooms/lobby`, { method: 'DELETE' })), { status: 404, code: 'not_found', message: 'no room named "lobby"' });
    assert.equal((await errorOf(await fetch(`${base}/api/chat/rooms/a%20b`, { method: 'DELETE' }))).status, 400);
    assert.deepEqual(await (await fetch(`${base}/api/chat/rooms`)).json(), { rooms: [{ name: 'b-room', users: [] }] });
  });

  it('mints tokens: 404 for an unknown room, 409 for a taken name, 400 for a bad name', async () => {
    const { base } = await start({ chat: { tokenTtlMs: 5_000 } });
    await post(base, '/api/chat/rooms', { name: 'lobby' });
    const before = Date.now();
    const ok = await post(base, '/api/chat/tokens', { room: 'lobby', user: 'alice' });
    assert.equal(ok.status, 200);
    assert.deepEqual(Object.keys(ok.json), ['token', 'expires']);
    assert.equal(typeof ok.json.token, 'string');
    assert.ok((ok.json.expires as number) >= before + 5_000 && (ok.json.expires as number) <= Date.now() + 5_000);
    assert.deepEqual(await errorOf(await post(base, '/api/chat/tokens', { room: 'nope', user: 'alice' })), { status: 404, code: 'not_found', message: 'no room named "nope"' });
    assert.equal((await errorOf(await post(base, '/api/chat/tokens', { room: 'lobby', user: 'a b' }))).status, 400);
    assert.equal((await errorOf(await post(base, '/api/chat/tokens', { room: 'lobby' }))).message, '"user" must be a string');
    const ws = new WsUser(base, ok.json.token as string);
    await ws.inbox.wait('alice joined');
    assert.deepEqual(await errorOf(await post(base, '/api/chat/tokens', { room: 'lobby', user: 'alice' })), {
      status: 409,
      code: 'conflict',
      message: 'the name "alice" is already taken in room "lobby"',
    });
  });
});

describe('chat over WebSocket', () => {
  it('two users chat with text and {"text"} frames; joins, leaves, /users and whispers', async () => {
    const { base } = await start();
    await post(base, '/api/chat/rooms', { name: 'lobby' });
    const alice = new WsUser(base, await tokenFor(base, 'lobby', 'alice'));
    await alice.inbox.wait('alice joined');
    const bob = new WsUser(base, await tokenFor(base, 'lobby', 'bob'));
    await alice.inbox.wait('bob joined');
    const carol = new WsUser(base, await tokenFor(base, 'lobby', 'carol'));
    await carol.inbox.wait('carol joined');

    alice.send('hi bob');
    const m = await bob.inbox.wait('hi bob', 'message');
    assert.equal(m.from, 'alice');
    bob.send(JSON.stringify({ text: 'hi alice' }));
    assert.equal((await alice.inbox.wait('hi alice', 'message')).from, 'bob');
    bob.send('{not json}');
    await alice.inbox.wait('{not json}');
    bob.send(JSON.stringify({ nope: 1 }));
    await bob.inbox.wait('a JSON message needs a string "text"', 'system');
    bob.ws.send(Buffer.from([1, 2, 3]), { binary: true });
    await bob.inbox.wait('binary messages are not supported: send text', 'system');

    carol.send('/users');
    await carol.inbox.wait('users: alice, bob, carol', 'system');
    alice.send('/w bob secret');
    await bob.inbox.wait('secret', 'whisper');
    await alice.inbox.wait('secret', 'whisper');
    alice.send('public');
    await carol.inbox.wait('public');
    assert.equal(carol.inbox.has('secret'), false);
    assert.equal(carol.inbox.has('users: alice, bob, carol') && alice.inbox.has('users: alice, bob, carol'), false);

    bob.close();
    await alice.inbox.wait('bob left', 'system');
    carol.send('/quit');
    assert.deepEqual(await carol.closed, { code: 1000, reason: 'bye' });
    await alice.inbox.wait('carol left', 'system');
  });

  it('a join that loses a name race gets a system message, then close 4009', async () => {
    const { base } = await start();
    await post(base, '/api/chat/rooms', { name: 'lobby' });
    const t1 = await tokenFor(base, 'lobby', 'bob');
    const t2 = await tokenFor(base, 'lobby', 'bob');
    const first = new WsUser(base, t1);
    await first.inbox.wait('bob joined');
    const second = new WsUser(base, t2);
    assert.deepEqual(await second.closed, { code: 4009, reason: 'name taken' });
    assert.deepEqual(second.inbox.texts('system'), ['the name "bob" is already taken in this room']);
  });

  it('a used or unknown token gets a system message, then close 4001', async () => {
    const { base } = await start();
    await post(base, '/api/chat/rooms', { name: 'lobby' });
    const token = await tokenFor(base, 'lobby', 'alice');
    const first = new WsUser(base, token);
    await first.inbox.wait('alice joined');
    const again = new WsUser(base, token);
    assert.deepEqual(await again.closed, { code: 4001, reason: 'unauthorized' });
    assert.deepEqual(again.inbox.texts('system'), ['invalid or expired chat token']);
    const none = new WsUser(base, '');
    assert.equal((await none.closed).code, 4001);
  });

  it('refuses other origins (403), plain GETs (400) and messages over the size limit (1009)', async () => {
    const { base } = await start({ endpoints: { maxBodyBytes: 1_000 } });
    await post(base, '/api/chat/rooms', { name: 'lobby' });
    const foreign = new WsUser(base, await tokenFor(base, 'lobby', 'eve'), { origin: 'http://evil.example' });
    await assert.rejects(foreign.opened, /upgrade refused: 403/);
    const plain = await fetch(`${base}/chat`);
    assert.equal(plain.status, 400);
    assert.equal(plain.headers.get('upgrade'), 'websocket');
    const alice = new WsUser(base, await tokenFor(base, 'lobby', 'alice'));
    await alice.inbox.wait('alice joined');
    alice.send('x'.repeat(1_001));
    assert.equal((await alice.closed).code, 1009);
  });

  it('says "message too long" for a text over maxTextBytes and keeps the connection', async () => {
    const { base } = await start({ chat: { maxTextBytes: 20 } });
    await post(base, '/api/chat/rooms', { name: 'lobby' });
    const alice = new WsUser(base, await tokenFor(base, 'lobby', 'alice'));
    await alice.inbox.wait('alice joined');
    alice.send('x'.repeat(21));
    await alice.inbox.wait('message too long: at most 20 bytes (it was not sent)', 'system');
    alice.send('x'.repeat(20));
    await alice.inbox.wait('x'.repeat(20), 'message');
  });
});

describe('chat over SSE + POST', () => {
  it('the first message carries the session; POST /chat/send chats with a WebSocket user', async () => {
    const { base } = await start();
    await post(base, '/api/chat/rooms', { name: 'lobby' });
    const ws = new WsUser(base, await tokenFor(base, 'lobby', 'alice'));
    await ws.inbox.wait('alice joined');
    const sse = new SseUser(base, await tokenFor(base, 'lobby', 'bob'));
    assert.equal(await sse.started, 200);
    await sse.inbox.wait('bob joined');
    assert.deepEqual(Object.keys(sse.frames[0]!), ['type', 'session']);
    assert.equal(sse.frames[0]!.type, 'system');
    assert.match(sse.session!, /^[A-Za-z0-9_-]{24}$/);

    const sent = await sse.send(base, 'hello from sse');
    assert.equal(sent.status, 200);
    assert.deepEqual(await sent.json(), {});
    assert.equal((await ws.inbox.wait('hello from sse', 'message')).from, 'bob');
    await sse.inbox.wait('hello from sse', 'message');
    ws.send('hello from ws');
    await sse.inbox.wait('hello from ws');
    await sse.send(base, '/w alice psst');
    await ws.inbox.wait('psst', 'whisper');
    await sse.send(base, '/users');
    await sse.inbox.wait('users: alice, bob', 'system');

    assert.deepEqual(await errorOf(await post(base, '/chat/send', { session: 'nope', text: 'x' })), {
      status: 404,
      code: 'not_found',
      message: 'no such chat session (the stream ended: join again)',
    });
    assert.equal((await errorOf(await post(base, '/chat/send', { session: sse.session, text: 5 }))).message, '"text" must be a string');
    assert.deepEqual(await errorOf(await post(base, '/chat/send', { session: sse.session, text: 'x'.repeat(4_097) })), { status: 413, code: 'too_large', message: '"text" is over 4096 bytes' });

    await sse.send(base, '/quit');
    await sse.ended;
    assert.deepEqual(sse.closeEvent, { code: 1000, reason: 'bye' });
    await ws.inbox.wait('bob left');
    assert.equal((await errorOf(await sse.send(base, 'late'))).status, 404);
  });

  it('a refused token is a plain HTTP 401; a lost name race is a system message and a close event 4009', async () => {
    const { base } = await start();
    await post(base, '/api/chat/rooms', { name: 'lobby' });
    const bad = new SseUser(base, 'nope');
    assert.equal(await bad.started, 401);
    await bad.ended;
    assert.deepEqual(JSON.parse(bad.body), { error: { code: 'unauthorized', message: 'invalid or expired chat token' } });

    const t1 = await tokenFor(base, 'lobby', 'bob');
    const t2 = await tokenFor(base, 'lobby', 'bob');
    const first = new SseUser(base, t1);
    await first.inbox.wait('bob joined');
    const second = new SseUser(base, t2);
    await second.ended;
    assert.equal(second.status, 200);
    assert.equal(second.frames[0]!.session !== undefined, true);
    assert.deepEqual(second.inbox.texts(), ['the name "bob" is already taken in this room']);
    assert.deepEqual(second.closeEvent, { code: 4009, reason: 'name taken' });
    first.abort();
  });

  it('answers CORS preflights and refuses other origins', async () => {
    const { base } = await start({ endpoints: { allowedOrigins: ['http://app.example'] } });
    const pre = await fetch(`${base}/chat/send`, { method: 'OPTIONS', headers: { origin: 'http://app.example', 'access-control-request-method': 'POST' } });
    assert.equal(pre.status, 204);
    assert.equal(pre.headers.get('access-control-allow-origin'), 'http://app.example');
    const refused = await post(base, '/chat/send', { session: 'x', text: 'y' }, { origin: 'http://evil.example' });
    assert.equal(refused.status, 403);
  });
});

describe('chat endpoints: leaving', () => {
  it('onDisconnect fires once for a WebSocket close, an SSE end and a server close', async () => {
    const calls: string[] = [];
    const controller: Partial<ChatController> = {
      onDisconnect: (_room, user, reason) => {
        calls.push(`${user}:${reason}`);
      },
    };
    const h = await start({ chat: { controller } });
    const { base } = h;
    await post(base, '/api/chat/rooms', { name: 'lobby' });
    const ws = new WsUser(base, await tokenFor(base, 'lobby', 'ws'));
    const sse = new SseUser(base, await tokenFor(base, 'lobby', 'sse'));
    const wsStay = new WsUser(base, await tokenFor(base, 'lobby', 'wsStay'));
    const sseStay = new SseUser(base, await tokenFor(base, 'lobby', 'sseStay'));
    await until(() => h.chat.room('lobby')!.users().length === 4, 'four users');
    ws.ws.terminate();
    sse.abort();
    await until(() => calls.length === 2, 'two leaves');
    assert.deepEqual(calls.sort(), ['sse:closed', 'ws:closed']);
    await h.endpoints.close();
    assert.deepEqual(await wsStay.closed, { code: 1001, reason: 'server shutting down' });
    await sseStay.ended;
    assert.deepEqual(sseStay.closeEvent, { code: 1001, reason: 'server shutting down' });
    await sleep(20);
    assert.deepEqual(calls.sort(), ['sse:closed', 'sseStay:server_closed', 'ws:closed', 'wsStay:server_closed']);
  });

  it('an SSE stream that a server close finds still joining is ended too', async () => {
    const h = await start();
    await post(h.base, '/api/chat/rooms', { name: 'lobby' });
    const sse = new SseUser(h.base, await tokenFor(h.base, 'lobby', 'x'));
    await sse.inbox.wait('x joined');
    await h.close();
    await sse.ended;
    assert.equal(sse.closeEvent?.code, 1001);
  });
});

describe('chat demo join', () => {
  it('POST /chat/join exists only with demo: true', async () => {
    const { base } = await start();
    assert.equal((await post(base, '/chat/join', { room: 'lobby', user: 'alice' })).status, 404);
  });

  it('creates the room if missing and mints a token; 409 for a taken name', async () => {
    const { base, chat } = await start({ endpoints: { demo: true } });
    const a = await post(base, '/chat/join', { room: 'lobby', user: 'alice' });
    assert.equal(a.status, 200);
    assert.deepEqual(Object.keys(a.json), ['token', 'expires']);
    assert.ok(chat.room('lobby'));
    const alice = new WsUser(base, a.json.token as string);
    await alice.inbox.wait('alice joined');
    assert.deepEqual(await errorOf(await post(base, '/chat/join', { room: 'lobby', user: 'alice' })), {
      status: 409,
      code: 'conflict',
      message: 'the name "alice" is already taken in room "lobby"',
    });
    assert.equal((await post(base, '/chat/join', { room: 'lobby', user: 'bob' })).status, 200);
    assert.equal((await errorOf(await post(base, '/chat/join', { room: 'lob by', user: 'bob' }))).code, 'bad_request');
    assert.equal((await fetch(`${base}/chat/join`)).status, 405);
    assert.equal((await post(base, '/chat/join', { room: 'lobby', user: 'eve' }, { origin: 'http://evil.example' })).status, 403);
    // WebSocket is imported for its types in helpers; keep a direct use so a refactor notices.
    assert.equal(alice.ws.readyState, WebSocket.OPEN);
  });
});
