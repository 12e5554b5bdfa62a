/**
 * herald/sockets under pressure: origins, oversized messages, silent peers, slow readers and
 * fast writers. Real sockets on 127.0.0.1; each wait is for an event, with a bounded timeout
 * that only turns a hang into a failure.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { SocketError, binarySocket, textSocket, type CloseInfo, type Socket } from '../../src/sockets/index.js';
import { Peer, deferred, refusedStatus, serve, withTimeout, type Rig } from './helpers.js';

const rigs: Rig[] = [];
after(() => Promise.all(rigs.map((r) => r.stop())));
async function rig(...targets: Parameters<typeof serve>): Promise<Rig> {
  const r = await serve(...targets);
  rigs.push(r);
  return r;
}
const quiet = { logLevel: 'silent' as const };

/** Resolves once `condition()` holds, checking after each turn of the event loop (I/O included). */
async function until(condition: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((resolve) => setImmediate(resolve));
  }
}

describe('origins', () => {
  test('by default a cross-origin upgrade is refused with 403; same origin and no Origin pass', async () => {
    let opened = 0;
    const route = textSocket(quiet, async (s) => {
      opened++;
      await s.closed;
    });
    const r = await rig(route);
    const host = new URL(r.base).host;
    assert.equal(await refusedStatus(r.base, { origin: 'http://evil.example' }), 403);
    (await Peer.open(r.base, { origin: `http://${host}` })).ws.close();
    (await Peer.open(r.base)).ws.close();
    await until(() => opened === 2, 3000, 'two connections');
  });

  test('an allow-list with a {{host}} pattern admits the listed origins and the request host', async () => {
    const route = textSocket({ ...quiet, allowedOrigins: ['https://app.example', 'http://{{host}}'] }, (s) => s.closed.then(() => {}));
    const r = await rig(route);
    const host = new URL(r.base).host;
    assert.equal(await refusedStatus(r.base, { origin: 'https://evil.example' }), 403);
    assert.equal(await refusedStatus(r.base, { origin: `https://${host}` }), 403, 'the scheme is part of the pattern');
    (await Peer.open(r.base, { origin: 'https://app.example' })).ws.close();
    (await Peer.open(r.base, { origin: `http://${host}` })).ws.close();
  });
});

describe('message size', () => {
  test('a 66 KiB message closes the connection 1009, never reaches the handler, and other connections keep working', async () => {
    const seen: number[] = [];
    const closes: CloseInfo[] = [];
    const route = textSocket(quiet, async (socket) => {
      for await (const msg of socket) {
        seen.push(msg.length);
        await socket.send(`got ${msg.length}`);
      }
      closes.push(await socket.closed);
    });
    const r = await rig(route);
    const big = await Peer.open(r.base);
    const other = await Peer.open(r.base);
    big.ws.send('x'.repeat(66 * 1024));
    assert.equal((await big.waitClosed()).code, 1009);
    other.ws.send('small');
    assert.equal(await other.next(), 'got 5');
    await until(() => closes.length === 1, 3000, 'the handler to see the close');
    assert.equal(closes[0]!.error?.code, 'ERR_MESSAGE_TOO_LARGE');
    assert.equal(closes[0]!.error?.closeCode, 1009);
    assert.deepEqual(seen, [5]);
    other.ws.close();
  });

  test('maxMessageSize sets the bound: at it passes, one byte over closes 1009', async () => {
    const route = binarySocket({ ...quiet, maxMessageSize: 1000 }, async (socket) => {
      for await (const msg of socket) await socket.send(Buffer.from(String(msg.length)));
    });
    const r = await rig(route);
    const peer = await Peer.open(r.base);
    peer.ws.send(Buffer.alloc(1000));
    assert.equal(String(await peer.next()), '1000');
    peer.ws.send(Buffer.alloc(1001));
    assert.equal((await peer.waitClosed()).code, 1009);
  });
});

describe('keep-alive', () => {
  test('a peer that stops answering pings is closed within pongWait of the unanswered ping; an answering peer stays', async () => {
    const pingPeriod = 300;
    const pongWait = 200;
    const closes: CloseInfo[] = [];
    const route = textSocket({ ...quiet, pingPeriod, pongWait }, async (socket) => {
      closes.push(await socket.closed);
    });
    const r = await rig(route);
    const live = await Peer.open(r.base);
    let livePings = 0;
    const threePings = deferred();
    live.ws.on('ping', () => {
      if (++livePings === 3) threePings.resolve();
    });
    const dead = await Peer.open(r.base, { autoPong: false });
    const firstPing = deferred<number>();
    dead.ws.once('ping', () => firstPing.resolve(Date.now()));
    const pingedAt = await withTimeout(firstPing.promise, 3000, 'a ping');
    const closed = await dead.waitClosed(3000);
    const waited = Date.now() - pingedAt;
    assert.equal(closed.code, 1006, 'destroyed without a close handshake');
    assert.ok(waited >= pongWait - 60 && waited <= pongWait + 150, `closed ${waited} ms after the ping (pongWait ${pongWait})`);
    await until(() => closes.length === 1, 3000, 'the handler to see the close');
    assert.equal(closes[0]!.error?.code, 'ERR_PONG_TIMEOUT');
    await withTimeout(threePings.promise, 3000, 'three pings to the answering peer');
    assert.equal(live.ws.readyState, live.ws.OPEN, 'the answering peer is still connected');
    live.ws.close();
  });
});

describe('send buffer', () => {
  test('a slow reader makes send wait: unsent bytes stay within sendBuffer plus one message, and everything arrives in order once it reads', async () => {
    const sendBuffer = 64 * 1024;
    const size = 64 * 1024;
    const total = 512; // 32 MiB: far more than the kernel's socket buffers hold
    let maxBuffered = 0;
    let sent = 0;
    let waiting = false;
    let server: Socket<Buffer, unknown> | undefined;
    const finished = deferred();
    const route = binarySocket({ ...quiet, sendBuffer, writeTimeout: 20_000 }, async (socket) => {
      server = socket;
      for (let i = 0; i < total; i++) {
        const payload = Buffer.alloc(size, i % 256);
        payload.writeUInt32BE(i, 0);
        const pending = socket.send(payload);
        maxBuffered = Math.max(maxBuffered, socket.bufferedAmount);
        waiting = socket.bufferedAmount > sendBuffer;
        await pending;
        waiting = false;
        sent = i + 1;
      }
      finished.resolve();
      await socket.closed;
    });
    const r = await rig(route);
    const peer = new Peer(r.base);
    peer.ws.once('open', () => peer.ws.pause()); // reads nothing
    // Client and server share this process: once the kernel buffers are full nothing moves, so a
    // send still pending after many turns of the event loop is waiting for the reader, for good.
    let still = 0;
    let last = -1;
    await until(
      () => {
        if (waiting && server !== undefined && server.bufferedAmount > sendBuffer && sent === last) still++;
        else still = 0;
        last = sent;
        return still >= 50;
      },
      10_000,
      'send to wait for the reader',
    );
    assert.ok(sent < total, `held at message ${sent} of ${total}`);
    assert.ok(maxBuffered <= sendBuffer + size + 64, `unsent bytes peaked at ${maxBuffered}`);

    peer.ws.resume();
    await withTimeout(finished.promise, 20_000, 'every send to complete');
    await until(() => peer.received.length === total, 20_000, 'every message');
    peer.received.forEach((m, i) => assert.equal((m as Buffer).readUInt32BE(0), i, `message ${i} in order`));
    assert.ok(maxBuffered <= sendBuffer + size + 64, `unsent bytes peaked at ${maxBuffered}`);
    peer.ws.close();
  });

  test('a send waiting longer than writeTimeout rejects ERR_WRITE_TIMEOUT and the connection is closed 4008', async () => {
    const outcome = deferred<{ err: unknown; info: CloseInfo }>();
    const route = binarySocket({ ...quiet, sendBuffer: 16 * 1024, writeTimeout: 300, closeGrace: 200 }, async (socket) => {
      try {
        for (;;) await socket.send(Buffer.alloc(64 * 1024));
      } catch (err) {
        outcome.resolve({ err, info: await socket.closed });
      }
    });
    const r = await rig(route);
    const peer = new Peer(r.base);
    peer.ws.once('open', () => peer.ws.pause());
    const started = Date.now();
    const { err, info } = await withTimeout(outcome.promise, 10_000, 'the write timeout');
    assert.ok(err instanceof SocketError && err.code === 'ERR_WRITE_TIMEOUT', String(err));
    assert.equal(err.closeCode, 4008);
    assert.equal(info.error?.code, 'ERR_WRITE_TIMEOUT');
    assert.ok(Date.now() - started >= 300);
    peer.ws.terminate();
  });

  test('sends that are not awaited stop at maxBufferedBytes: the connection is closed 4008 after what was queued', async () => {
    const maxBufferedBytes = 256 * 1024;
    let accepted = 0;
    let maxBuffered = 0;
    const overflowed = deferred<CloseInfo>();
    const route = textSocket({ ...quiet, sendBuffer: 0, maxBufferedBytes }, async (socket: Socket<string, string>) => {
      const pad = 'p'.repeat(16 * 1024);
      for (let n = 0; n < 100_000 && socket.trySend(`${n} ${pad}`); n++) {
        accepted = n + 1;
        maxBuffered = Math.max(maxBuffered, socket.bufferedAmount);
        if (n % 8 === 7) await new Promise((resolve) => setImmediate(resolve));
      }
      overflowed.resolve(await socket.closed);
    });
    const r = await rig(route);
    const peer = new Peer(r.base);
    peer.ws.once('open', () => peer.ws.pause());
    await until(() => accepted > 0 && maxBuffered > maxBufferedBytes - 32 * 1024, 10_000, 'the buffer to fill');
    peer.ws.resume();
    const closed = await peer.waitClosed(10_000);
    assert.deepEqual(closed, { code: 4008, reason: 'slow consumer' });
    assert.ok(maxBuffered <= maxBufferedBytes + 17 * 1024, `unsent bytes peaked at ${maxBuffered}`);
    assert.equal(peer.received.length, accepted, 'every accepted message arrived before the close');
    assert.equal((await withTimeout(overflowed.promise, 3000, 'handler')).error?.code, 'ERR_SLOW_CONSUMER');
  });
});

describe('receive buffer', () => {
  test('a handler that falls receiveBuffer messages behind stops the socket reading (TCP pushes back); all arrive in order once it reads', async () => {
    const receiveBuffer = 4;
    const size = 16 * 1024;
    const total = 1000; // 16 MiB from the peer
    const gate = deferred();
    const got: number[] = [];
    let maxQueued = 0;
    let server: Socket<Buffer, unknown> | undefined;
    const route = binarySocket({ ...quiet, receiveBuffer }, async (socket) => {
      server = socket;
      await gate.promise;
      for await (const msg of socket) {
        maxQueued = Math.max(maxQueued, socket.queued);
        got.push(msg.readUInt32BE(0));
        if (got.length === total) break;
      }
    });
    const r = await rig(route);
    const peer = await Peer.open(r.base);
    for (let i = 0; i < total; i++) {
      const payload = Buffer.alloc(size);
      payload.writeUInt32BE(i, 0);
      peer.ws.send(payload);
    }
    // The server stops reading once 4 messages wait: what the peer still holds proves the push-back.
    await until(() => server !== undefined && server.queued >= receiveBuffer, 10_000, 'the queue to fill');
    await until(() => peer.ws.bufferedAmount > 0, 10_000, 'the peer to be held back');
    const held = peer.ws.bufferedAmount;
    // One TCP read (up to 64 KiB) may hold a few more messages than the bound.
    assert.ok(server!.queued <= receiveBuffer + 5, `queued ${server!.queued}`);
    assert.ok(held > 0, `the peer holds ${held} unsent bytes`);

    gate.resolve();
    await until(() => got.length === total, 20_000, 'every message');
    assert.deepEqual(got, Array.from({ length: total }, (_, i) => i));
    assert.ok(maxQueued <= receiveBuffer + 5, `queued at most ${maxQueued}`);
    peer.ws.close();
  });
});
