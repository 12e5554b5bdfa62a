/** herald/sockets: messages in and out in each mode, schemas, handler lifecycle, routing of upgrades. */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import WebSocket from 'ws';
import {
  SocketError,
  binarySocket,
  jsonSocket,
  resolveSocketOptions,
  textSocket,
  type CloseInfo,
  type Schema,
  type Socket,
} from '../../src/sockets/index.js';
import { Peer, deferred, recorder, serve, withTimeout, type Rig } from './helpers.js';

const rigs: Rig[] = [];
after(() => Promise.all(rigs.map((r) => r.stop())));
async function rig(...targets: Parameters<typeof serve>): Promise<Rig> {
  const r = await serve(...targets);
  rigs.push(r);
  return r;
}
const quiet = { logLevel: 'silent' as const };

describe('modes', () => {
  test('JSON: parsed values reach the handler and send writes JSON', async () => {
    const seen: unknown[] = [];
    const route = jsonSocket(quiet, async (socket) => {
      for await (const msg of socket) {
        seen.push(msg);
        await socket.send({ echo: msg });
      }
    });
    const r = await rig(route);
    const peer = await Peer.open(r.base);
    peer.ws.send(JSON.stringify({ a: 1 }));
    peer.ws.send('[1,"two",null]');
    peer.ws.send('"text"');
    assert.deepEqual(await peer.nextJson(), { echo: { a: 1 } });
    assert.deepEqual(await peer.nextJson(), { echo: [1, 'two', null] });
    assert.deepEqual(await peer.nextJson(), { echo: 'text' });
    assert.deepEqual(seen, [{ a: 1 }, [1, 'two', null], 'text']);
    peer.ws.close();
  });

  test('text: strings in and out, as text frames', async () => {
    const route = textSocket(quiet, async (socket) => {
      for await (const msg of socket) await socket.send(msg.split('').reverse().join(''));
    });
    const r = await rig(route);
    const peer = await Peer.open(r.base);
    peer.ws.send('héllo');
    assert.equal(await peer.next(), 'olléh');
    peer.ws.close();
  });

  test('binary: Buffers in, Buffer, Uint8Array and ArrayBuffer out, as binary frames', async () => {
    const route = binarySocket(quiet, async (socket) => {
      for await (const msg of socket) {
        assert.ok(Buffer.isBuffer(msg));
        await socket.send(msg);
        await socket.send(new Uint8Array([msg.length]));
        await socket.send(new Uint8Array([7, 8]).buffer);
      }
    });
    const r = await rig(route);
    const peer = await Peer.open(r.base);
    peer.ws.send(Buffer.from([0, 1, 2, 255]));
    assert.deepEqual(await peer.next(), Buffer.from([0, 1, 2, 255]));
    assert.deepEqual(await peer.next(), Buffer.from([4]));
    assert.deepEqual(await peer.next(), Buffer.from([7, 8]));
    peer.ws.close();
  });

  test('a frame of the wrong kind closes a text route or a binary route with 1003', async () => {
    const errors: string[] = [];
    const text = textSocket({ ...quiet, path: '/text', onError: (e) => errors.push(e.code) }, async (socket) => {
      for await (const _ of socket);
    });
    const binary = binarySocket({ ...quiet, path: '/binary', onError: (e) => errors.push(e.code) }, async (socket) => {
      for await (const _ of socket);
    });
    const r = await rig(text, binary);
    const a = await Peer.open(`${r.base}/text`);
    a.ws.send(Buffer.from([1]));
    assert.equal((await a.waitClosed()).code, 1003);
    const b = await Peer.open(`${r.base}/binary`);
    b.ws.send('text');
    assert.equal((await b.waitClosed()).code, 1003);
    assert.deepEqual(errors, ['ERR_UNSUPPORTED_DATA', 'ERR_UNSUPPORTED_DATA']);
  });

  test('JSON that does not parse, or a binary frame, gets a bad_request answer; the connection stays', async () => {
    const seen: unknown[] = [];
    const route = jsonSocket(quiet, async (socket) => {
      for await (const msg of socket) {
        seen.push(msg);
        await socket.send({ ok: msg });
      }
    });
    const r = await rig(route);
    const peer = await Peer.open(r.base);
    peer.ws.send('{nope');
    peer.ws.send(Buffer.from('{}'));
    peer.ws.send('1');
    assert.deepEqual(await peer.nextJson(), { error: { code: 'bad_request', message: 'message is not valid JSON' } });
    assert.deepEqual(await peer.nextJson(), { error: { code: 'bad_request', message: 'binary frames are not accepted; send JSON text' } });
    assert.deepEqual(await peer.nextJson(), { ok: 1 });
    assert.deepEqual(seen, [1]);
    peer.ws.close();
  });
});

describe('schemas', () => {
  interface Msg {
    text: string;
  }
  const isMsg = (v: unknown): v is Msg => typeof v === 'object' && v !== null && typeof (v as Msg).text === 'string';
  const ajvLike = Object.assign((v: unknown) => isMsg(v), { errors: [{ instancePath: '/text', message: 'must be string' }] });
  const schemas: [string, Schema<Msg>, string][] = [
    [
      'a validator function (value) => value | throws',
      (v) => {
        if (!isMsg(v)) throw new Error('text must be a string');
        return { text: v.text.toUpperCase() };
      },
      'text must be a string',
    ],
    [
      'an object with parse (zod-like)',
      {
        parse(v: unknown): Msg {
          if (!isMsg(v)) throw new Error('Expected string, received number');
          return { text: v.text.toUpperCase() };
        },
      },
      'Expected string, received number',
    ],
    [
      'an object with validate returning {value, error} (Joi-like)',
      { validate: (v: unknown) => (isMsg(v) ? { value: { text: v.text.toUpperCase() } } : { value: v, error: new Error('"text" must be a string') }) },
      '"text" must be a string',
    ],
    ['a function returning a boolean, with errors (Ajv-like)', ajvLike as unknown as Schema<Msg>, '/text must be string'],
    [
      'an async validate that rejects (yup-like)',
      { validate: async (v: unknown) => (isMsg(v) ? { text: v.text.toUpperCase() } : Promise.reject(new Error('text is a required field'))) },
      'text is a required field',
    ],
  ];

  for (const [name, schema, reason] of schemas) {
    test(`${name}: an invalid message is answered bad_request and never reaches the handler`, async () => {
      const seen: Msg[] = [];
      const errors: SocketError[] = [];
      const route = jsonSocket({ ...quiet, schema, onError: (e) => errors.push(e) }, async (socket) => {
        for await (const msg of socket) {
          seen.push(msg);
          await socket.send(msg);
        }
      });
      const r = await rig(route);
      const peer = await Peer.open(r.base);
      peer.ws.send(JSON.stringify({ text: 5 }));
      peer.ws.send(JSON.stringify({ text: 'ok' }));
      assert.deepEqual(await peer.nextJson(), { error: { code: 'bad_request', message: `invalid message: ${reason}` } });
      const echoed = await peer.nextJson();
      assert.equal(echoed.text.toLowerCase(), 'ok');
      assert.equal(seen.length, 1, 'only the valid message reached the handler');
      assert.equal(seen[0]!.text.toLowerCase(), 'ok');
      assert.deepEqual(
        errors.map((e) => e.code),
        ['ERR_SCHEMA'],
      );
      peer.ws.close();
    });
  }

  test('what the schema returns is what the handler gets (it may transform)', async () => {
    const got = deferred<unknown>();
    const route = jsonSocket({ ...quiet, schema: (v: unknown) => ({ wrapped: v }) }, async (socket) => {
      for await (const msg of socket) got.resolve(msg);
    });
    const r = await rig(route);
    const peer = await Peer.open(r.base);
    peer.ws.send('3');
    assert.deepEqual(await withTimeout(got.promise, 3000, 'message'), { wrapped: 3 });
    peer.ws.close();
  });

  test('a schema of the wrong shape, or on a text route, is refused at creation', () => {
    assert.throws(() => jsonSocket({ schema: {} as unknown as Schema<unknown> }, () => {}), /"schema"/);
    assert.throws(() => textSocket({ schema: (v: unknown) => v } as never, () => {}), /"schema"/);
  });
});

describe('handler lifecycle', () => {
  test('the handler returning closes 1000; throwing closes 1011 and is logged', async () => {
    const { logger, entries } = recorder();
    const done = jsonSocket({ logger, path: '/done' }, async (socket) => {
      await socket.send('bye');
    });
    const fails = jsonSocket({ logger, path: '/fails' }, async () => {
      throw new Error('boom');
    });
    const r = await rig(done, fails);
    const a = await Peer.open(`${r.base}/done`);
    assert.equal(await a.nextJson(), 'bye');
    assert.equal((await a.waitClosed()).code, 1000);
    const b = await Peer.open(`${r.base}/fails`);
    const closed = await b.waitClosed();
    assert.deepEqual(closed, { code: 1011, reason: 'internal error' });
    const logged = entries.find((e) => e[0] === 'error' && e[1] === 'socket handler failed');
    assert.ok(logged, 'the failure was logged at error level');
  });

  test('closed resolves, signal aborts, iteration ends and send rejects ERR_SOCKET_CLOSED when the peer goes', async () => {
    const result = deferred<{ info: CloseInfo; aborted: boolean; ended: boolean; send: unknown }>();
    const route = jsonSocket(quiet, async (socket) => {
      let ended = false;
      for await (const _ of socket);
      ended = true;
      const info = await socket.closed;
      const send = await socket.send('late').catch((err: unknown) => err);
      result.resolve({ info, aborted: socket.signal.aborted, ended, send });
    });
    const r = await rig(route);
    const peer = await Peer.open(r.base);
    peer.ws.close(4100, 'leaving');
    const { info, aborted, ended, send } = await withTimeout(result.promise, 3000, 'handler end');
    assert.equal(info.code, 4100);
    assert.equal(info.reason, 'leaving');
    assert.equal(info.error, undefined);
    assert.equal(aborted, true);
    assert.equal(ended, true);
    assert.ok(send instanceof SocketError && send.code === 'ERR_SOCKET_CLOSED');
  });

  test('a send of a value the mode cannot encode rejects ERR_INVALID_SEND and the connection stays', async () => {
    const codes: string[] = [];
    const route = jsonSocket(quiet, async (socket) => {
      await socket.send(undefined).catch((e: SocketError) => codes.push(e.code));
      await socket.send(10n).catch((e: SocketError) => codes.push(e.code));
      await socket.send({ fine: true });
      await socket.closed;
    });
    const r = await rig(route);
    const peer = await Peer.open(r.base);
    assert.deepEqual(await peer.nextJson(), { fine: true });
    assert.deepEqual(codes, ['ERR_INVALID_SEND', 'ERR_INVALID_SEND']);
    peer.ws.close();
  });

  test('the request of the upgrade is on the socket', async () => {
    const route = jsonSocket(quiet, async (socket) => {
      await socket.send({ url: socket.request.url, user: socket.request.headers['x-user'] });
    });
    const r = await rig(route);
    const peer = await Peer.open(`${r.base}/any?x=1`, { headers: { 'x-user': 'ann' } });
    assert.deepEqual(await peer.nextJson(), { url: '/any?x=1', user: 'ann' });
  });
});

describe('routes on a server', () => {
  test('upgrades go to the route whose path matches; others get 404', async () => {
    const a = textSocket({ ...quiet, path: '/a' }, (s) => s.send('a'));
    const b = textSocket({ ...quiet, path: '/b' }, (s) => s.send('b'));
    const r = await rig(a, b);
    const pa = await Peer.open(`${r.base}/a?q=1`);
    const pb = await Peer.open(`${r.base}/b`);
    assert.equal(await pa.next(), 'a');
    assert.equal(await pb.next(), 'b');
    const refused = new WebSocket(`${r.base}/c`);
    const status = await withTimeout(
      new Promise<number>((resolve) => {
        refused.once('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
        refused.once('error', () => {});
      }),
      3000,
      '404',
    );
    assert.equal(status, 404);
  });

  test('broadcast writes one encoding to every open socket but the sender', async () => {
    const joined = new Set<Socket<unknown, unknown>>();
    const allIn = deferred();
    const route = jsonSocket(quiet, async (socket) => {
      joined.add(socket);
      if (joined.size === 3) allIn.resolve();
      for await (const msg of socket) route.broadcast({ from: 'peer', msg }, socket);
    });
    const r = await rig(route);
    const peers = await Promise.all([Peer.open(r.base), Peer.open(r.base), Peer.open(r.base)]);
    await withTimeout(allIn.promise, 3000, 'three sockets');
    assert.equal(route.size, 3);
    peers[0]!.ws.send('"hi"');
    assert.deepEqual(await peers[1]!.nextJson(), { from: 'peer', msg: 'hi' });
    assert.deepEqual(await peers[2]!.nextJson(), { from: 'peer', msg: 'hi' });
    assert.equal(route.broadcast('all'), 3);
    assert.equal(await peers[0]!.nextJson(), 'all', 'the sender got only the second broadcast');
  });

  test('close() closes every socket 1001 and refuses new upgrades with 503', async () => {
    const route = jsonSocket(quiet, (s) => s.closed.then(() => {}));
    const r = await rig(route);
    const peer = await Peer.open(r.base);
    await route.close();
    assert.equal((await peer.waitClosed()).code, 1001);
    const again = new WebSocket(r.base);
    const status = await withTimeout(
      new Promise<number>((resolve) => {
        again.once('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
        again.once('error', () => {});
      }),
      3000,
      '503',
    );
    assert.equal(status, 503);
  });
});

describe('options', () => {
  test('are checked with the key in the message, defaulted, then frozen', () => {
    assert.throws(() => resolveSocketOptions({ pingPeriod: -1 }), /"pingPeriod"/);
    assert.throws(() => resolveSocketOptions({ pongWait: 0 }), /"pongWait"/);
    assert.throws(() => resolveSocketOptions({ maxMessageSize: 1.5 }), /"maxMessageSize"/);
    assert.throws(() => resolveSocketOptions({ receiveBuffer: 0 }), /"receiveBuffer"/);
    assert.throws(() => resolveSocketOptions({ sendBuffer: 10, maxBufferedBytes: 5 }), /"maxBufferedBytes"/);
    assert.throws(() => resolveSocketOptions({ logLevel: 'loud' as never }), /"logLevel"/);
    assert.throws(() => resolveSocketOptions({ path: 'echo' }), /"path"/);
    assert.throws(() => resolveSocketOptions({ allowedOrigins: 'x' as never }), /"allowedOrigins"/);
    const o = resolveSocketOptions({ pingPeriod: undefined });
    assert.deepEqual(
      { pingPeriod: o.pingPeriod, pongWait: o.pongWait, writeTimeout: o.writeTimeout, maxMessageSize: o.maxMessageSize, sendBuffer: o.sendBuffer, maxBufferedBytes: o.maxBufferedBytes, receiveBuffer: o.receiveBuffer, logLevel: o.logLevel },
      { pingPeriod: 25_000, pongWait: 20_000, writeTimeout: 10_000, maxMessageSize: 65_536, sendBuffer: 65_536, maxBufferedBytes: 1_048_576, receiveBuffer: 16, logLevel: 'warn' },
    );
    assert.ok(Object.isFrozen(o));
  });
});
