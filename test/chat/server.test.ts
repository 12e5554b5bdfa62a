/**
 * The chat library over the hub, with in-memory connections: tokens, rooms, messages, whispers,
 * commands, the controller hooks and every way a user leaves.
 */
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { Hub } from '../../src/core/index.js';
import { MemoryEngine } from '../../src/engines/memory.js';
import { HeraldError } from '../../src/protocol/index.js';
import { ChatServer, privateChatGuard, type ChatController, type ChatMember, type ChatOptions, type LeaveReason } from '../../src/chat/index.js';
import { MemoryConn, sleep, until } from './helpers.js';

let open: { hub: Hub; chat: ChatServer }[] = [];

async function setup(options: Partial<ChatOptions> = {}, hub?: Hub): Promise<{ hub: Hub; chat: ChatServer }> {
  hub ??= new Hub({ engine: new MemoryEngine() });
  await hub.start();
  const chat = new ChatServer(hub, options);
  open.push({ hub, chat });
  return { hub, chat };
}

afterEach(async () => {
  for (const { hub, chat } of open) {
    await chat.close();
    await hub.close();
  }
  open = [];
});

async function join(chat: ChatServer, room: string, user: string): Promise<{ conn: MemoryConn; member: ChatMember }> {
  const conn = new MemoryConn();
  const { token } = await chat.requestToken(room, user);
  const member = await chat.connect(token, conn);
  return { conn, member };
}

async function rejects(promise: Promise<unknown>, code: string, message?: RegExp): Promise<void> {
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(err instanceof HeraldError, `expected a HeraldError, got ${String(err)}`);
    assert.equal(err.code, code);
    if (message) assert.match(err.message, message);
    return true;
  });
}

describe('chat tokens', () => {
  it('a token works once', async () => {
    const { chat } = await setup();
    chat.createRoom('lobby');
    const { token, expires } = await chat.requestToken('lobby', 'alice');
    assert.match(token, /^[A-Za-z0-9_-]{32}$/);
    assert.ok(expires > Date.now() + 29_000 && expires <= Date.now() + 30_000, 'default TTL is 30 s');
    const member = await chat.connect(token, new MemoryConn());
    assert.equal(member.user, 'alice');
    assert.deepEqual(chat.room('lobby')!.users(), ['alice']);
    await rejects(chat.connect(token, new MemoryConn()), 'unauthorized', /invalid or expired chat token/);
  });

  it('a token expires after tokenTtlMs', async () => {
    const { chat } = await setup({ tokenTtlMs: 30 });
    chat.createRoom('lobby');
    const { token, expires } = await chat.requestToken('lobby', 'alice');
    assert.ok(expires <= Date.now() + 30);
    await sleep(45);
    const conn = new MemoryConn();
    await rejects(chat.connect(token, conn), 'unauthorized', /invalid or expired/);
    assert.equal(conn.received, 0, 'a refused token leaves the connection untouched');
    assert.equal(conn.closedWith, undefined);
    assert.deepEqual(chat.room('lobby')!.users(), []);
  });

  it('expired tokens are forgotten, so they stop counting against maxTokens', async () => {
    const { chat } = await setup({ tokenTtlMs: 30, tokenSweepMs: 10, maxTokens: 2 });
    chat.createRoom('lobby');
    await chat.requestToken('lobby', 'a');
    await chat.requestToken('lobby', 'b');
    await rejects(chat.requestToken('lobby', 'c'), 'limit_exceeded');
    await sleep(50);
    await chat.requestToken('lobby', 'c');
  });

  it('refuses tokens for unknown rooms, bad names and names taken in the room', async () => {
    const { chat } = await setup();
    chat.createRoom('lobby');
    await rejects(chat.requestToken('nowhere', 'alice'), 'not_found', /no room named "nowhere"/);
    await rejects(chat.requestToken('lob by', 'alice'), 'bad_request', /room name/);
    await rejects(chat.requestToken('lobby', 'al ice'), 'bad_request', /user name/);
    await rejects(chat.requestToken('lobby', ''), 'bad_request', /user name/);
    await rejects(chat.requestToken('lobby', 'x'.repeat(33)), 'bad_request', /user name/);
    await join(chat, 'lobby', 'alice');
    await rejects(chat.requestToken('lobby', 'alice'), 'conflict', /"alice" is already taken in room "lobby"/);
    await chat.requestToken('lobby', 'Alice'); // names are case-sensitive
  });

  it('a token for a room that was closed does not open a new room of the same name', async () => {
    const { chat } = await setup();
    chat.createRoom('lobby');
    const { token } = await chat.requestToken('lobby', 'alice');
    assert.equal(await chat.closeRoom('lobby'), true);
    chat.createRoom('lobby');
    await rejects(chat.connect(token, new MemoryConn()), 'unauthorized');
  });
});

describe('chat rooms', () => {
  it('an idle room closes after idleTimeoutMs and its name can be reused', async () => {
    const { chat } = await setup({ idleTimeoutMs: 40 });
    const first = chat.createRoom('lobby');
    assert.throws(() => chat.createRoom('lobby'), (err: HeraldError) => err.code === 'conflict');
    await until(() => chat.room('lobby') === undefined, 'the idle room to close');
    assert.equal(first.closed, true);
    const second = chat.createRoom('lobby');
    assert.notEqual(second, first);
    assert.equal(second.closed, false);
  });

  it('an occupied room stays open; it closes once idle after the last user left', async () => {
    const { chat } = await setup({ idleTimeoutMs: 40 });
    chat.createRoom('lobby');
    const { conn } = await join(chat, 'lobby', 'alice');
    await sleep(80);
    assert.ok(chat.room('lobby'), 'a room with a user is not idle');
    conn.say('/quit');
    await until(() => chat.room('lobby') === undefined, 'the room to close once empty');
  });

  it('validates room names and bounds the number of rooms', async () => {
    const { chat } = await setup({ maxRooms: 2 });
    for (const bad of ['', 'a b', 'é', 'x'.repeat(65), 'a:b']) {
      assert.throws(() => chat.createRoom(bad), (err: HeraldError) => err.code === 'bad_request' && /room name/.test(err.message), bad);
    }
    chat.createRoom('A_b-9');
    chat.createRoom('x'.repeat(64));
    assert.throws(() => chat.createRoom('third'), (err: HeraldError) => err.code === 'limit_exceeded');
    assert.deepEqual(
      chat.rooms().map((r) => r.name),
      ['A_b-9', 'x'.repeat(64)],
    );
  });
});

describe('chat messages', () => {
  it('users exchange messages and see joins and leaves, with the SPEC wire shape', async () => {
    const { chat } = await setup();
    chat.createRoom('lobby');
    const alice = await join(chat, 'lobby', 'alice');
    const bob = await join(chat, 'lobby', 'bob');
    await alice.conn.inbox.wait('bob joined', 'system');
    alice.conn.say('hello bob');
    const got = await bob.conn.inbox.wait('hello bob', 'message');
    assert.deepEqual(Object.keys(got), ['type', 'room', 'from', 'text', 'timestamp', 'id']);
    assert.equal(got.from, 'alice');
    assert.equal(got.room, 'lobby');
    assert.match(got.id, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    assert.ok(Math.abs(got.timestamp - Date.now()) < 2_000);
    const echo = await alice.conn.inbox.wait('hello bob', 'message');
    assert.equal(echo.id, got.id, 'the sender sees the same message');
    bob.conn.say('/quit');
    assert.equal(await bob.member.left, 'quit');
    assert.deepEqual(bob.conn.closedWith, { code: 1000, reason: 'bye' });
    const left = await alice.conn.inbox.wait('bob left', 'system');
    assert.deepEqual(Object.keys(left), ['type', 'room', 'text', 'timestamp', 'id']);
    assert.deepEqual(chat.room('lobby')!.users(), ['alice']);
  });

  it('replays the last `replay` messages of the room on join, then live ones', async () => {
    const { chat } = await setup({ replay: 5 });
    chat.createRoom('lobby');
    const alice = await join(chat, 'lobby', 'alice');
    for (let i = 1; i <= 8; i++) alice.conn.say(`m${i}`);
    await alice.conn.inbox.wait('m8');
    const carol = await join(chat, 'lobby', 'carol');
    await carol.conn.inbox.wait('carol joined');
    assert.deepEqual(carol.conn.inbox.texts(), ['m4', 'm5', 'm6', 'm7', 'm8', 'carol joined']);
  });

  it('replays 50 messages by default', async () => {
    const { chat } = await setup();
    chat.createRoom('lobby');
    const room = chat.room('lobby')!;
    for (let i = 1; i <= 60; i++) await room.broadcast(`n${i}`);
    const bob = await join(chat, 'lobby', 'bob');
    await bob.conn.inbox.wait('bob joined');
    const texts = bob.conn.inbox.texts();
    assert.equal(texts.length, 51);
    assert.equal(texts[0], 'n11');
    assert.equal(texts[49], 'n60');
  });

  it('/users is answered to the sender only', async () => {
    const { chat } = await setup();
    chat.createRoom('lobby');
    const alice = await join(chat, 'lobby', 'alice');
    const bob = await join(chat, 'lobby', 'bob');
    bob.conn.say('/users');
    const answer = await bob.conn.inbox.wait('users: alice, bob', 'system');
    assert.equal(answer.to, 'bob');
    await sleep(20);
    assert.equal(alice.conn.inbox.has('users: alice, bob'), false);
  });

  it('a whisper reaches its target and the sender only, and stays out of the room history', async () => {
    const { chat, hub } = await setup();
    chat.createRoom('lobby');
    const alice = await join(chat, 'lobby', 'alice');
    const bob = await join(chat, 'lobby', 'bob');
    const carol = await join(chat, 'lobby', 'carol');
    alice.conn.say('/w bob the cake is a lie');
    const got = await bob.conn.inbox.wait('the cake is a lie', 'whisper');
    assert.deepEqual(Object.keys(got), ['type', 'room', 'from', 'to', 'text', 'timestamp', 'id']);
    assert.equal(got.from, 'alice');
    assert.equal(got.to, 'bob');
    const echo = await alice.conn.inbox.wait('the cake is a lie', 'whisper');
    assert.equal(echo.id, got.id);
    alice.conn.say('after');
    await carol.conn.inbox.wait('after');
    assert.equal(carol.conn.inbox.has('the cake is a lie'), false, 'carol never sees it');
    const history = await hub.history('chat:lobby', {});
    assert.equal(JSON.stringify(history.events).includes('cake'), false, 'not on the room channel');
  });

  it('a whisper to an unknown user, or without text, answers the sender', async () => {
    const { chat } = await setup();
    chat.createRoom('lobby');
    const alice = await join(chat, 'lobby', 'alice');
    alice.conn.say('/w nobody hi');
    await alice.conn.inbox.wait('no user named "nobody" in this room', 'system');
    alice.conn.say('/w');
    await alice.conn.inbox.wait('usage: /w <user> <text>', 'system');
    alice.conn.say('/frobnicate now');
    const unknown = await alice.conn.inbox.wait('unknown command /frobnicate; commands: /users, /w <user> <text>, /quit', 'system');
    assert.equal(unknown.to, 'alice');
    alice.conn.say('//frobnicate is not a command');
    await alice.conn.inbox.wait('/frobnicate is not a command', 'message');
  });

  it('cleans control characters and refuses texts over maxTextBytes', async () => {
    const { chat } = await setup({ maxTextBytes: 16 });
    chat.createRoom('lobby');
    const alice = await join(chat, 'lobby', 'alice');
    alice.conn.say('  a\u0000b\u001b[31mc\u202e\r\nd\u0007  ');
    await alice.conn.inbox.wait('ab[31mc\nd', 'message');
    alice.conn.say('x'.repeat(17));
    await alice.conn.inbox.wait('message too long: at most 16 bytes (it was not sent)', 'system');
    alice.conn.say('é'.repeat(9)); // 18 bytes
    await until(() => alice.conn.inbox.texts('system').filter((t) => t.startsWith('message too long')).length === 2, 'a second refusal');
    alice.conn.say('\u0000\u0001   ');
    alice.conn.say('end');
    await alice.conn.inbox.wait('end');
    assert.equal(alice.conn.inbox.texts('message').length, 2, 'an empty text is not sent');
  });

  it('a join that loses a name race gets a system message, then close 4009', async () => {
    const { chat } = await setup();
    chat.createRoom('lobby');
    const t1 = await chat.requestToken('lobby', 'bob');
    const t2 = await chat.requestToken('lobby', 'bob');
    const first = new MemoryConn();
    const second = new MemoryConn();
    const [a, b] = await Promise.allSettled([chat.connect(t1.token, first), chat.connect(t2.token, second)]);
    assert.equal(a.status, 'fulfilled');
    assert.equal(b.status, 'rejected');
    assert.equal((b as PromiseRejectedResult).reason.code, 'conflict');
    assert.deepEqual(second.closedWith, { code: 4009, reason: 'name taken' });
    assert.deepEqual(second.inbox.texts(), ['the name "bob" is already taken in this room']);
    assert.equal(second.messages[0]!.type, 'system');
    assert.equal(second.received, 0);
    assert.deepEqual(chat.room('lobby')!.users(), ['bob']);
  });

  it('texts sent while joining are handled after the join, in order', async () => {
    const { chat } = await setup();
    chat.createRoom('lobby');
    const { token } = await chat.requestToken('lobby', 'alice');
    const conn = new MemoryConn();
    const joining = chat.connect(token, conn);
    conn.say('one');
    conn.say('two');
    await joining;
    conn.say('three');
    await conn.inbox.wait('three');
    assert.deepEqual(conn.inbox.texts(), ['alice joined', 'one', 'two', 'three']);
  });

  it('system broadcasts and whispers from the application', async () => {
    const { chat } = await setup();
    const room = chat.createRoom('lobby');
    const alice = await join(chat, 'lobby', 'alice');
    const bob = await join(chat, 'lobby', 'bob');
    const msg = await room.broadcast('server restarts at noon');
    assert.equal(msg!.type, 'system');
    await bob.conn.inbox.wait('server restarts at noon', 'system');
    assert.equal(await room.whisper('alice', 'only for you'), true);
    const w = await alice.conn.inbox.wait('only for you', 'system');
    assert.equal(w.to, 'alice');
    assert.equal(await room.whisper('nobody', 'x'), false);
    assert.equal(await room.whisper('bob', 'psst', 'alice'), true);
    assert.equal((await bob.conn.inbox.wait('psst', 'whisper')).from, 'alice');
    await room.broadcast('hi all', 'bot');
    assert.equal((await alice.conn.inbox.wait('hi all', 'message')).from, 'bot');
    assert.equal(bob.conn.inbox.has('only for you'), false);
  });

  it('remove() and member.leave() disconnect a user with a message', async () => {
    const { chat } = await setup();
    const room = chat.createRoom('lobby');
    const alice = await join(chat, 'lobby', 'alice');
    const bob = await join(chat, 'lobby', 'bob');
    assert.equal(room.remove('bob'), true);
    assert.equal(room.remove('bob'), false);
    assert.equal(await bob.member.left, 'removed');
    assert.equal(bob.conn.inbox.has('you were removed from the room', 'system'), true);
    assert.deepEqual(bob.conn.closedWith, { code: 1000, reason: 'removed' });
    await alice.conn.inbox.wait('bob left');
    assert.deepEqual(room.users(), ['alice']);
  });

  it('connectAndWait resolves when the user leaves', async () => {
    const { chat } = await setup();
    chat.createRoom('lobby');
    const { token } = await chat.requestToken('lobby', 'alice');
    const conn = new MemoryConn();
    let reason: LeaveReason | undefined;
    const done = chat.connectAndWait(token, conn).then((r) => (reason = r));
    await until(() => chat.room('lobby')!.has('alice'), 'alice to join');
    await sleep(20);
    assert.equal(reason, undefined);
    conn.drop();
    await done;
    assert.equal(reason, 'closed');
    assert.equal(conn.closedWith, undefined, 'a connection that closed itself is not closed again');
  });

  it('the private-channel guard keeps whisper channels away from other clients, not from the chat', async () => {
    const hub = new Hub({ engine: new MemoryEngine(), hooks: { authorize: privateChatGuard } });
    const { chat } = await setup({}, hub);
    chat.createRoom('lobby');
    const bob = await join(chat, 'lobby', 'bob');
    const spy = { client: { id: 'spy', transport: 'websocket' }, deliver() {} };
    await rejects(hub.subscribe(spy, 'chat:lobby:@bob'), 'forbidden');
    await hub.subscribe(spy, 'chat:lobby');
    await rejects(hub.history('chat:lobby:@bob', {}, spy.client), 'forbidden');
    await chat.room('lobby')!.whisper('bob', 'still works');
    await bob.conn.inbox.wait('still works');
  });
});

describe('chat controller', () => {
  function withController(controller: Partial<ChatController>): Promise<{ hub: Hub; chat: ChatServer }> {
    return setup({ controller });
  }

  it('encode can drop a message', async () => {
    const { chat } = await withController({ encode: (d) => (d.text.includes('spam') ? null : d) });
    chat.createRoom('lobby');
    const alice = await join(chat, 'lobby', 'alice');
    const bob = await join(chat, 'lobby', 'bob');
    alice.conn.say('buy spam now');
    alice.conn.say('ok');
    await bob.conn.inbox.wait('ok');
    assert.equal(bob.conn.inbox.has('buy spam now'), false);
    assert.equal(alice.conn.inbox.has('buy spam now'), false);
  });

  it('encode can rewrite a message and a whisper', async () => {
    const seen: string[] = [];
    const { chat } = await withController({
      encode: (d) => {
        seen.push(`${d.type}:${d.from}>${d.to ?? '*'}:${d.text}`);
        return { ...d, text: d.text.toUpperCase() };
      },
    });
    chat.createRoom('lobby');
    const alice = await join(chat, 'lobby', 'alice');
    const bob = await join(chat, 'lobby', 'bob');
    alice.conn.say('quiet please');
    await bob.conn.inbox.wait('QUIET PLEASE', 'message');
    alice.conn.say('/w bob hush');
    await bob.conn.inbox.wait('HUSH', 'whisper');
    assert.deepEqual(seen, ['message:alice>*:quiet please', 'whisper:alice>bob:hush']);
  });

  it('encode can answer the sender only', async () => {
    const { chat } = await withController({
      encode: (d) => (d.command === '/roll' ? { reply: `${d.from} rolled 4` } : d),
    });
    chat.createRoom('lobby');
    const alice = await join(chat, 'lobby', 'alice');
    const bob = await join(chat, 'lobby', 'bob');
    alice.conn.say('/roll');
    const reply = await alice.conn.inbox.wait('alice rolled 4', 'system');
    assert.equal(reply.to, 'alice');
    alice.conn.say('done');
    await bob.conn.inbox.wait('done');
    assert.equal(bob.conn.inbox.has('alice rolled 4'), false);
    assert.equal(bob.conn.inbox.has('/roll'), false);
  });

  it('a failing encode tells the sender and sends nothing', async () => {
    const { chat } = await withController({
      encode: () => {
        throw new HeraldError('forbidden', 'you are muted');
      },
    });
    chat.createRoom('lobby');
    const alice = await join(chat, 'lobby', 'alice');
    alice.conn.say('hello');
    await alice.conn.inbox.wait('not sent: you are muted', 'system');
    assert.equal(alice.conn.inbox.has('hello'), false);
  });

  it('custom onConnect and onDisconnect replace the announcements', async () => {
    const calls: string[] = [];
    const { chat } = await withController({
      onConnect: async (room, user) => {
        calls.push(`+${user}`);
        await room.whisper(user, `welcome to ${room.name}`);
      },
      onDisconnect: (_room, user, reason) => {
        calls.push(`-${user}:${reason}`);
      },
    });
    chat.createRoom('lobby');
    const alice = await join(chat, 'lobby', 'alice');
    await alice.conn.inbox.wait('welcome to lobby', 'system');
    const bob = await join(chat, 'lobby', 'bob');
    await bob.conn.inbox.wait('welcome to lobby');
    bob.conn.say('/quit');
    await bob.member.left;
    assert.deepEqual(calls, ['+alice', '+bob', '-bob:quit']);
    assert.equal(alice.conn.inbox.texts('system').some((t) => t.includes('joined') || t.includes('left')), false);
  });

  it('onDisconnect fires once per user on every way a connection ends', async () => {
    const calls: string[] = [];
    const { chat, hub } = await withController({
      onDisconnect: (room, user, reason) => {
        calls.push(`${room.name}/${user}:${reason}`);
      },
    });
    chat.createRoom('a');
    chat.createRoom('b');
    const quitter = await join(chat, 'a', 'quitter');
    const dropper = await join(chat, 'a', 'dropper');
    const removed = await join(chat, 'a', 'removed');
    const kicked = await join(chat, 'a', 'kicked');
    const deleted = await join(chat, 'b', 'deleted');
    const stayer = await join(chat, 'a', 'stayer');

    quitter.conn.say('/quit');
    quitter.conn.say('/quit');
    dropper.conn.drop();
    dropper.conn.drop();
    chat.room('a')!.remove('removed');
    removed.member.leave();
    assert.equal(hub.disconnectClient((kicked.member as unknown as { client: { id: string } }).client.id), true, 'a chat member is a hub session');
    await chat.closeRoom('b');
    await chat.closeRoom('b');
    await Promise.all([quitter, dropper, removed, kicked, deleted].map((u) => u.member.left));
    assert.deepEqual(kicked.conn.closedWith, { code: 4002, reason: 'disconnected by the server' });
    assert.deepEqual(deleted.conn.closedWith, { code: 1000, reason: 'room closed' });
    assert.ok(deleted.conn.inbox.has('the room "b" was closed', 'system'));
    await chat.close();
    await chat.close();
    assert.equal(await stayer.member.left, 'server_closed');
    assert.deepEqual(stayer.conn.closedWith, { code: 1001, reason: 'server shutting down' });
    await sleep(20);
    assert.deepEqual(calls.sort(), ['a/dropper:closed', 'a/kicked:removed', 'a/quitter:quit', 'a/removed:removed', 'a/stayer:server_closed', 'b/deleted:room_closed']);
    await rejects(chat.requestToken('a', 'late'), 'unavailable');
  });

  it('onDisconnect does not fire for a join that never completed', async () => {
    const calls: string[] = [];
    const { chat } = await withController({ onDisconnect: (_r, user) => void calls.push(user) });
    chat.createRoom('lobby');
    await join(chat, 'lobby', 'bob');
    const { token } = await chat.requestToken('lobby', 'alice');
    const conn = new MemoryConn();
    const joining = chat.connect(token, conn);
    conn.drop();
    await assert.rejects(joining);
    const second = new MemoryConn();
    const t2 = await chat.requestToken('lobby', 'bob').catch(() => undefined);
    assert.equal(t2, undefined, 'bob is still there');
    assert.equal(second.closedWith, undefined);
    await sleep(20);
    assert.deepEqual(calls, []);
    assert.deepEqual(chat.room('lobby')!.users(), ['bob']);
  });
});
