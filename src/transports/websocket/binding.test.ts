import assert from 'node:assert/strict';
import type { EventEmitter } from 'node:events';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Writable } from 'node:stream';
import { after, describe, test } from 'node:test';
import * as wsModule from 'ws';
import WebSocket from 'ws';
import { SocketBinding, keepAliveSteps, resolveBindingOptions, type SocketBindingOptions, type SocketConnection } from './binding.js';
import { closeReason, framePayload, textFrame } from './frame.js';

// ---- a binding on a real HTTP server, with a handler that records what happens ----------------

interface Ctx {
  conn: SocketConnection<Ctx>;
  received: string[];
  closed?: { code: number };
}

interface Rig {
  url: string;
  binding: SocketBinding<Ctx>;
  server: Server;
  opened: Ctx[];
  /** Resolves with the next server-side connection. */
  nextOpen(): Promise<Ctx>;
  /** Resolves when `ctx` has been released by the binding. */
  released(ctx: Ctx): Promise<void>;
  stop(): Promise<void>;
}

const rigs: Rig[] = [];
after(async () => {
  await Promise.all(rigs.map((r) => r.stop()));
});

/** A client connection whose TCP reads (chunk sizes) and first three messages are recorded. */
async function watchedConnection(r: Rig): Promise<{ ws: WebSocket; server: Ctx; chunks: number[]; messages: string[]; three: Promise<void> }> {
  const opening = r.nextOpen();
  const ws = await open(r.url);
  const server = await opening;
  const raw = (ws as unknown as { _socket: NodeJS.ReadableStream })._socket;
  const chunks: number[] = [];
  raw.on('data', (chunk: Buffer) => chunks.push(chunk.length));
  const messages: string[] = [];
  const three = new Promise<void>((resolve) =>
    ws.on('message', (d) => {
      messages.push(d.toString());
      if (messages.length === 3) resolve();
    }),
  );
  return { ws, server, chunks, messages, three };
}

async function rig(options: Partial<SocketBindingOptions> = {}): Promise<Rig> {
  const opened: Ctx[] = [];
  const openWaiters: ((c: Ctx) => void)[] = [];
  const closeWaiters = new Map<Ctx, () => void>();
  const binding = new SocketBinding<Ctx>(
    {
      open(conn) {
        const ctx: Ctx = { conn, received: [] };
        opened.push(ctx);
        openWaiters.shift()?.(ctx);
        return ctx;
      },
      message(ctx, data, isBinary) {
        const text = isBinary ? `<binary ${data.length}>` : data.toString('utf8');
        ctx.received.push(text);
        if (text.startsWith('echo:')) ctx.conn.send(text.slice(5));
      },
      close(ctx, code) {
        ctx.closed = { code };
        closeWaiters.get(ctx)?.();
      },
    },
    options,
  );
  const server = createServer((_req, res) => res.writeHead(404).end());
  server.on('upgrade', (req: IncomingMessage, socket, head) => binding.handleUpgrade(req, socket, head));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  let stopped: Promise<void> | undefined;
  const r: Rig = {
    url: `ws://127.0.0.1:${port}/`,
    binding,
    server,
    opened,
    nextOpen: () => new Promise((resolve) => openWaiters.push(resolve)),
    released: (ctx) =>
      ctx.closed ? Promise.resolve() : withTimeout(new Promise<void>((resolve) => closeWaiters.set(ctx, resolve)), 8000, 'server-side release'),
    stop: () =>
      (stopped ??= (async () => {
        await binding.close();
        server.closeAllConnections();
        await new Promise<void>((resolve) => server.close(() => resolve()));
      })()),
  };
  rigs.push(r);
  return r;
}

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
    }),
  ]);
}

function open(url: string, options: WebSocket.ClientOptions = {}): Promise<WebSocket> {
  const ws = new WebSocket(url, options);
  return withTimeout(
    new Promise((resolve, reject) => {
      ws.once('open', () => resolve(ws));
      ws.once('error', reject);
    }),
    3000,
    'open',
  );
}

function closeOf(ws: WebSocket): Promise<{ code: number; reason: string }> {
  return withTimeout(
    new Promise((resolve) => ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() }))),
    8000,
    'client close',
  );
}

/** Status of an upgrade the server refused. */
function refusedStatus(url: string, headers: Record<string, string>): Promise<number> {
  const ws = new WebSocket(url, { headers });
  return withTimeout(
    new Promise((resolve, reject) => {
      ws.once('unexpected-response', (_req, res) => {
        resolve(res.statusCode ?? 0);
        res.resume();
        ws.terminate();
      });
      ws.once('open', () => reject(new Error('upgrade was accepted')));
      ws.once('error', () => {});
    }),
    3000,
    'refusal',
  );
}

const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

// ---- framing: pure, checked against ws's own parser ------------------------------------------

type ReceiverLike = Writable & EventEmitter;
// ws's Receiver is public (`import { Receiver } from 'ws'`) but missing from @types/ws.
const Receiver = (wsModule as unknown as { Receiver: new (options: object) => ReceiverLike }).Receiver;

describe('textFrame', () => {
  test('builds frames that ws parses back to the same text, for every length encoding', async () => {
    const texts = ['', 'a', 'x'.repeat(125), 'x'.repeat(126), 'é'.repeat(40_000), 'y'.repeat(65_535), 'z'.repeat(65_536), '€'.repeat(30_000)];
    const receiver = new Receiver({ isServer: false, maxPayload: 0 });
    const got: string[] = [];
    receiver.on('message', (data: Buffer, isBinary: boolean) => {
      assert.equal(isBinary, false);
      got.push(data.toString('utf8'));
    });
    for (const text of texts) {
      const frame = textFrame(text);
      assert.equal(frame[0], 0x81, 'FIN + text opcode');
      assert.equal(framePayload(frame).toString('utf8'), text);
      receiver.write(frame);
    }
    await tick();
    assert.deepEqual(got, texts);
  });

  test('closeReason keeps reasons up to 123 bytes and cuts longer ones on a character boundary', () => {
    assert.equal(closeReason('slow consumer'), 'slow consumer');
    assert.equal(closeReason('a'.repeat(123)), 'a'.repeat(123));
    assert.equal(closeReason('a'.repeat(200)), 'a'.repeat(123));
    const cut = closeReason('€'.repeat(100)); // 3 bytes each
    assert.equal(cut, '€'.repeat(41));
    assert.ok(Buffer.byteLength(cut) <= 123);
  });
});

// ---- options -----------------------------------------------------------------------------------

describe('binding options', () => {
  test('are validated with the key in the message, then frozen', () => {
    assert.throws(() => resolveBindingOptions({ maxBufferedBytes: 0 }), /"maxBufferedBytes"/);
    assert.throws(() => resolveBindingOptions({ pingInterval: -1 }), /"pingInterval"/);
    assert.throws(() => resolveBindingOptions({ maxMessageBytes: 1.5 }), /"maxMessageBytes"/);
    assert.throws(() => resolveBindingOptions({ slowConsumerCode: 99 }), /"slowConsumerCode"/);
    assert.throws(() => resolveBindingOptions({ allowedOrigins: 'x' as unknown as string[] }), /"allowedOrigins"/);
    const o = resolveBindingOptions({ pingInterval: undefined as unknown as number });
    assert.equal(o.pingInterval, 25);
    assert.equal(o.maxBufferedBytes, 1_048_576);
    assert.ok(Object.isFrozen(o));
  });
});

describe('keep-alive steps', () => {
  test('one timer step divides both periods when they share a reasonable divisor, else an eighth of the shorter', () => {
    assert.deepEqual(keepAliveSteps(25, 25), { stepMs: 25_000, pingSteps: 1, pongSteps: 1 });
    assert.deepEqual(keepAliveSteps(25, 20), { stepMs: 5_000, pingSteps: 5, pongSteps: 4 });
    assert.deepEqual(keepAliveSteps(0.3, 0.2), { stepMs: 100, pingSteps: 3, pongSteps: 2 });
    // 1000 and 999 ms share only 1 ms: step at 999/8, the pong wait rounded up to whole steps.
    assert.deepEqual(keepAliveSteps(1, 0.999), { stepMs: 125, pingSteps: 8, pongSteps: 8 });
    assert.equal(keepAliveSteps(0, 10), undefined);
  });
});

// ---- the binding on real sockets ---------------------------------------------------------------

describe('SocketBinding', () => {
  test('refuses a cross-origin upgrade with HTTP 403 by default; same origin and no Origin pass', async () => {
    const r = await rig();
    const host = new URL(r.url).host;
    assert.equal(await refusedStatus(r.url, { origin: 'http://evil.example' }), 403);
    const same = await open(r.url, { origin: `http://${host}` });
    const none = await open(r.url);
    same.close();
    none.close();
    assert.equal(r.opened.length, 2, 'the refused upgrade never reached the handler');
  });

  test('with an allow-list, lets only the listed origins upgrade', async () => {
    const r = await rig({ allowedOrigins: ['https://app.example'] });
    const host = new URL(r.url).host;
    assert.equal(await refusedStatus(r.url, { origin: 'https://other.example' }), 403);
    assert.equal(await refusedStatus(r.url, { origin: `http://${host}` }), 403, 'same origin is not implied by a list');
    const ok = await open(r.url, { origin: 'https://app.example' });
    ok.close();
  });

  test('closes with 1009 a message over maxMessageBytes while other connections keep working', async () => {
    const r = await rig({ maxMessageBytes: 1024 });
    const other = await open(r.url);
    const big = await open(r.url);
    const closed = closeOf(big);
    big.send('x'.repeat(1025));
    assert.equal((await closed).code, 1009);
    const echoed = new Promise<string>((resolve) => other.once('message', (d) => resolve(d.toString())));
    other.send('echo:still here');
    assert.equal(await withTimeout(echoed, 2000, 'echo'), 'still here');
    other.close();
  });

  test('cork holds several frames until the end of the tick, then they leave in one write', async () => {
    const { ws, server, chunks, messages, three } = await watchedConnection(await rig());
    server.conn.cork();
    const frame = textFrame('shared');
    assert.equal(server.conn.sendFrame(frame), true);
    assert.equal(server.conn.send('two'), true);
    assert.equal(server.conn.sendFrame(frame), true);
    assert.ok(server.conn.bufferedAmount > 0, 'held by the cork during the tick');
    await withTimeout(three, 2000, 'three messages');
    assert.deepEqual(messages, ['shared', 'two', 'shared']);
    assert.deepEqual(chunks, [textFrame('shared').length * 2 + textFrame('two').length], 'one write, one TCP read');
    assert.equal(server.conn.bufferedAmount, 0);
    ws.close();
  });

  test('one corked frame is held until the end of the tick, counted as buffered, then written as it is', async () => {
    const { ws, server, chunks, messages, three } = await watchedConnection(await rig());
    const frame = textFrame('alone');
    server.conn.cork();
    assert.equal(server.conn.sendFrame(frame), true);
    assert.equal(server.conn.bufferedAmount, frame.length, 'held during the tick, and counted');
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(server.conn.bufferedAmount, 0, 'written at the end of the tick');
    // The next turns: one frame each, and a binary message and a ping behind a held frame keep their order.
    server.conn.cork();
    server.conn.sendFrame(textFrame('second'));
    const pinged = new Promise<void>((resolve) => ws.once('ping', () => resolve()));
    server.conn.ping();
    server.conn.sendBinary(Buffer.from('bin'));
    await withTimeout(three, 2000, 'three messages');
    await withTimeout(pinged, 2000, 'the ping');
    assert.deepEqual(messages, ['alone', 'second', 'bin']);
    assert.equal(chunks[0], frame.length, 'the held frame alone, in one write');
    ws.close();
  });

  test('close() writes a held frame before the close frame', async () => {
    const { ws, server, messages } = await watchedConnection(await rig());
    const closed = closeOf(ws);
    server.conn.cork();
    assert.equal(server.conn.send('last words'), true);
    server.conn.close(4321, 'bye');
    assert.equal((await withTimeout(closed, 2000, 'close')).code, 4321);
    assert.deepEqual(messages, ['last words']);
  });

  test('coalesceMs: frames corked in different event-loop turns within the window leave in one write', async () => {
    const { ws, server, chunks, messages, three } = await watchedConnection(await rig({ coalesceMs: 300 }));
    for (const text of ['one', 'two', 'three']) {
      server.conn.cork();
      assert.equal(server.conn.send(text), true);
      await new Promise((resolve) => setImmediate(resolve)); // the next event-loop turn
    }
    assert.ok(server.conn.bufferedAmount > 0, 'still held after three turns');
    await withTimeout(three, 2000, 'three messages');
    assert.deepEqual(messages, ['one', 'two', 'three']);
    assert.deepEqual(chunks, [textFrame('one').length + textFrame('two').length + textFrame('three').length], 'one write, one TCP read');
    ws.close();
  });

  test('coalesceMs must be an integer from 0 to 1000', () => {
    assert.throws(() => new SocketBinding<unknown>({ open: () => undefined, message: () => {}, close: () => {} }, { coalesceMs: 1001 }), /coalesceMs/);
    assert.throws(() => new SocketBinding<unknown>({ open: () => undefined, message: () => {}, close: () => {} }, { coalesceMs: -1 }), /coalesceMs/);
  });

  test('closes a consumer that stops reading with the configured code after what is queued, with bounded buffering', async () => {
    const maxBufferedBytes = 64 * 1024;
    const r = await rig({ maxBufferedBytes, slowConsumerCode: 4555, slowConsumerReason: 'too slow' });
    const opening = r.nextOpen();
    const ws = await open(r.url);
    const server = await opening;
    ws.pause(); // stop reading: the kernel buffers fill, then the server's
    const received: number[] = [];
    ws.on('message', (d) => received.push(JSON.parse(d.toString()).n));
    const closed = closeOf(ws);

    const pad = 'p'.repeat(16 * 1024);
    let accepted = 0;
    let maxBuffered = 0;
    for (let n = 0; server.conn.open && n < 4000; n++) {
      if (server.conn.send(JSON.stringify({ n, pad }))) accepted = n + 1;
      maxBuffered = Math.max(maxBuffered, server.conn.bufferedAmount);
      if (n % 8 === 7) await tick(); // let the socket drain into the kernel, like real traffic
    }
    assert.equal(server.conn.open, false, 'the slow consumer was closed');
    assert.ok(maxBuffered + pad.length + 64 > maxBufferedBytes, `closed at the bound (peak ${maxBuffered})`);
    assert.ok(maxBuffered <= maxBufferedBytes + 64, `bufferedAmount peaked at ${maxBuffered}`);
    ws.resume();
    const { code, reason } = await closed;
    assert.equal(code, 4555);
    assert.equal(reason, 'too slow');
    assert.deepEqual(received, Array.from({ length: accepted }, (_, i) => i), 'everything queued before the close arrived, in order');
    await r.released(server);
  });

  test('destroys a closed connection whose peer never answers the close frame, closeGraceMs later', async () => {
    const r = await rig({ closeGraceMs: 200 });
    const opening = r.nextOpen();
    const ws = await open(r.url);
    const server = await opening;
    ws.pause(); // never reads the close frame
    const started = Date.now();
    server.conn.close(4002, 'bye');
    await r.released(server);
    const took = Date.now() - started;
    assert.ok(took >= 150 && took < 3000, `released after ${took} ms`);
    ws.terminate();
  });

  test('keep-alive terminates a peer that does not answer pings and keeps one that does', async () => {
    const r = await rig({ pingInterval: 0.25 });
    const deadOpening = r.nextOpen();
    const dead = await open(r.url, { autoPong: false });
    const deadServer = await deadOpening;
    const live = await open(r.url);
    const started = Date.now();
    await r.released(deadServer);
    const took = Date.now() - started;
    assert.ok(took < 2 * 250 + 500, `terminated after ${took} ms`);
    // Two more pings answered: the answering peer is still there.
    await new Promise<void>((resolve) => {
      let pings = 0;
      live.on('ping', () => {
        if (++pings === 2) resolve();
      });
    });
    assert.equal(live.readyState, WebSocket.OPEN);
    assert.equal(r.binding.size, 1);
    dead.terminate();
    live.close();
  });

  test('keep-alive with pongWait shorter than the interval terminates a silent peer pongWait after the ping', async () => {
    const r = await rig({ pingInterval: 0.3, pongWait: 0.1 });
    const deadOpening = r.nextOpen();
    const dead = await open(r.url, { autoPong: false });
    const deadServer = await deadOpening;
    const pinged = new Promise<number>((resolve) => dead.once('ping', () => resolve(Date.now())));
    const at = await withTimeout(pinged, 3000, 'a ping');
    await r.released(deadServer);
    const waited = Date.now() - at;
    assert.ok(waited >= 50 && waited < 300, `terminated ${waited} ms after the ping`);
    dead.terminate();
  });

  test('a connection the application paused is never terminated for pongs it cannot read', async () => {
    const r = await rig({ pingInterval: 0.05 });
    const opening = r.nextOpen();
    const ws = await open(r.url);
    const server = await opening;
    server.conn.pause();
    let pings = 0;
    await withTimeout(
      new Promise<void>((resolve) =>
        ws.on('ping', () => {
          if (++pings === 6) resolve();
        }),
      ),
      3000,
      'six pings',
    );
    assert.equal(server.conn.open, true, 'still open after six unread pongs');
    server.conn.resume();
    ws.send('echo:alive');
    const echoed = await withTimeout(new Promise<string>((resolve) => ws.once('message', (d) => resolve(d.toString()))), 2000, 'echo');
    assert.equal(echoed, 'alive');
    ws.close();
  });

  test('close() sends the close code to every connection and resolves once they are gone', async () => {
    const r = await rig();
    const a = await open(r.url);
    const b = await open(r.url);
    const closes = Promise.all([closeOf(a), closeOf(b)]);
    await r.binding.close(1001, 'going away');
    assert.equal(r.binding.size, 0);
    assert.deepEqual(
      (await closes).map((c) => c.code),
      [1001, 1001],
    );
    assert.equal(await refusedStatus(r.url, {}), 503, 'no upgrade after close');
  });
});
