/**
 * The client against a scripted server (the `ws` package speaking SPEC §2 by hand), for what a
 * real herald server cannot be made to do on demand: skip an offset, leave a command unanswered,
 * drop the connection between a command and its answer. Everything else runs against the real
 * server in client.test.ts.
 */
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { after, describe, it } from 'node:test';
import WebSocket, { WebSocketServer } from 'ws';
import { HeraldClient, type HeraldEvent } from '../../src/client/index.js';
import { next, waitFor } from './util.js';

type Cmd = { id: number; op: string; channel?: string; since?: { epoch: string; offset: number }; data?: unknown };

/** A server whose answers a test decides; connects are answered unless `onConnect` says otherwise. */
class ScriptedServer {
  readonly wss: WebSocketServer;
  readonly url: string;
  readonly sockets: WebSocket[] = [];
  readonly commands: { conn: number; cmd: Cmd }[] = [];
  onCommand: (ws: WebSocket, cmd: Cmd, conn: number) => void = () => {};
  answerConnect = true;

  private constructor(wss: WebSocketServer) {
    this.wss = wss;
    this.url = `http://127.0.0.1:${(wss.address() as AddressInfo).port}`;
    wss.on('connection', (ws) => {
      const conn = this.sockets.push(ws) - 1;
      ws.on('message', (data) => {
        const cmd = JSON.parse(String(data)) as Cmd;
        this.commands.push({ conn, cmd });
        if (cmd.op === 'connect') {
          if (this.answerConnect) ws.send(JSON.stringify({ id: cmd.id, result: { client: `c${conn}`, version: 1, ping: 0 } }));
          return;
        }
        this.onCommand(ws, cmd, conn);
      });
    });
  }

  static async start(): Promise<ScriptedServer> {
    const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, path: '/ws' });
    await new Promise<void>((resolve) => wss.once('listening', resolve));
    return new ScriptedServer(wss);
  }

  ops(op: string): Cmd[] {
    return this.commands.filter((c) => c.cmd.op === op).map((c) => c.cmd);
  }

  close(): Promise<void> {
    for (const ws of this.sockets) ws.terminate();
    return new Promise((resolve) => this.wss.close(() => resolve()));
  }
}

function event(offset: number, channel = 'c', epoch = 'E'): HeraldEvent {
  return { channel, offset, epoch, id: `id${offset}`, timestamp: 1, data: { n: offset } };
}

const send = (ws: WebSocket, msg: unknown): void => ws.send(JSON.stringify(msg));
const fast = { minDelay: 5, maxDelay: 20 };

describe('client protocol handling (scripted server)', () => {
  const servers: ScriptedServer[] = [];
  const clients: HeraldClient[] = [];
  const setup = async (timeout = 2_000): Promise<{ server: ScriptedServer; client: HeraldClient }> => {
    const server = await ScriptedServer.start();
    const client = new HeraldClient({ url: server.url, WebSocket, reconnect: fast, timeout });
    servers.push(server);
    clients.push(client);
    return { server, client };
  };
  after(async () => {
    for (const c of clients) c.close();
    await Promise.all(servers.map((s) => s.close()));
  });

  it('a live event that skips offsets makes the client resubscribe from its position: every event once, in order', async () => {
    const { server, client } = await setup();
    server.onCommand = (ws, cmd) => {
      if (cmd.op === 'subscribe' && !cmd.since) {
        send(ws, { id: cmd.id, result: { channel: 'c', epoch: 'E', offset: 0, recovered: true, events: [] } });
        for (const n of [1, 2, 5]) send(ws, { push: 'event', event: event(n) });
      } else if (cmd.op === 'unsubscribe') send(ws, { id: cmd.id, result: {} });
      else if (cmd.op === 'subscribe') {
        // Resumed after offset 2: 3..5 missed, then 6 live.
        send(ws, { id: cmd.id, result: { channel: 'c', epoch: 'E', offset: 5, recovered: true, events: [event(3), event(4), event(5)] } });
        send(ws, { push: 'event', event: event(5) });
        send(ws, { push: 'event', event: event(6) });
      }
    };
    const sub = client.subscribe('c');
    const seen: number[] = [];
    sub.on('event', (e) => seen.push(e.offset));
    await client.connect();
    await waitFor('offset 6', () => seen.length >= 6);
    assert.deepEqual(seen, [1, 2, 3, 4, 5, 6]);
    const ops = server.commands.filter((c) => c.cmd.op !== 'connect').map((c) => [c.cmd.op, c.cmd.since ?? null]);
    assert.deepEqual(ops, [['subscribe', null], ['unsubscribe', null], ['subscribe', { epoch: 'E', offset: 2 }]]);
    assert.deepEqual(sub.position, { epoch: 'E', offset: 6 });
  });

  it('a publish sent before the connection dropped is rejected with `disconnected` and not sent again', async () => {
    const { server, client } = await setup();
    server.onCommand = (ws, cmd) => {
      if (cmd.op === 'publish') ws.terminate(); // no answer: the publish's fate is unknown to the client
    };
    await client.connect();
    const err = await client.publish('c', { x: 1 }).then(() => assert.fail('resolved'), (e: unknown) => e);
    assert.equal((err as { code?: string }).code, 'disconnected');
    await waitFor('reconnected', () => client.state === 'connected');
    assert.equal(server.ops('publish').length, 1, 'the client did not retry the publish');
    assert.equal(server.ops('connect').length, 2);
  });

  it('a command left unanswered is rejected with `timeout`; the connection stays up', async () => {
    const { server, client } = await setup(150);
    await client.connect();
    const started = Date.now();
    await assert.rejects(client.history('c'), { code: 'timeout' });
    assert.ok(Date.now() - started >= 140);
    assert.equal(client.state, 'connected');
    assert.equal(server.ops('connect').length, 1);
  });

  it('a subscribe left unanswered makes the client reconnect and subscribe again', async () => {
    const { server, client } = await setup(150);
    server.onCommand = (ws, cmd, conn) => {
      if (cmd.op === 'subscribe' && conn > 0) send(ws, { id: cmd.id, result: { channel: 'c', epoch: 'E', offset: 0, recovered: true, events: [] } });
    };
    const sub = client.subscribe('c');
    const errors: string[] = [];
    sub.on('error', (e) => errors.push(e.code));
    await client.connect();
    const info = await next(sub, 'subscribed');
    assert.equal(info.recovered, true);
    assert.deepEqual(errors, ['timeout']);
    assert.equal(server.ops('connect').length, 2);
  });

  it('an unanswered connect is given up after `timeout` and tried again', async () => {
    const { server, client } = await setup(100);
    server.answerConnect = false;
    const connectErrors: string[] = [];
    client.on('error', (e) => connectErrors.push(e.message));
    void client.connect().catch(() => {});
    await waitFor('two attempts', () => server.ops('connect').length >= 2);
    assert.match(connectErrors[0] ?? '', /connect timeout/);
    assert.notEqual(client.state, 'connected');
  });

  it('`disconnect` with reconnect:false closes the client for good, whatever the close code', async () => {
    const { server, client } = await setup();
    server.onCommand = (ws, cmd) => {
      if (cmd.op === 'subscribe') send(ws, { id: cmd.id, result: { channel: 'c', epoch: 'E', offset: 0, recovered: true, events: [] } });
    };
    const sub = client.subscribe('c');
    await client.connect();
    await next(sub, 'subscribed');
    const ended = next(sub, 'unsubscribed');
    const subError = next(sub, 'error');
    const disconnected = next(client, 'disconnected');
    const ws = server.sockets[0]!;
    send(ws, { push: 'disconnect', code: 4002, reason: 'go away', reconnect: false });
    ws.close(4002, 'go away'); // 4002 alone would mean "reconnect"
    assert.deepEqual(await disconnected, { code: 4002, reason: 'go away', reconnect: false });
    assert.equal((await subError).code, 'closed');
    assert.equal((await ended).reason, 'go away');
    assert.equal(client.state, 'closed');
    await new Promise((r) => setTimeout(r, 60));
    assert.equal(server.ops('connect').length, 1, 'no reconnect');
    await assert.rejects(client.publish('c', 1), { code: 'closed' });
  });

  it('close codes decide without a push: 4000 closes, an abrupt drop reconnects', async () => {
    const a = await setup();
    await a.client.connect();
    const closed = next(a.client, 'state');
    a.server.sockets[0]!.close(4000, 'protocol violation');
    assert.equal(await closed, 'closed');
    const b = await setup();
    await b.client.connect();
    b.server.sockets[0]!.terminate();
    await waitFor('reconnected', () => b.server.ops('connect').length === 2 && b.client.state === 'connected');
  });

  it('a token callback that throws or hangs is retried with backoff; the token it finally gives is sent', async () => {
    const server = await ScriptedServer.start();
    servers.push(server);
    let calls = 0;
    const client = new HeraldClient({
      url: server.url,
      WebSocket,
      reconnect: fast,
      timeout: 100,
      token: () => {
        calls++;
        if (calls === 1) throw new Error('auth service down');
        if (calls === 2) return new Promise<string>(() => {}); // never settles
        return Promise.resolve('fresh-token');
      },
    });
    clients.push(client);
    const errors: string[] = [];
    client.on('error', (e) => errors.push(`${e.code}: ${e.message}`));
    await client.connect();
    assert.equal(calls, 3);
    assert.deepEqual(errors, ['unauthorized: the token callback failed: auth service down', 'unauthorized: the token callback failed: no token within 100 ms']);
    assert.deepEqual(server.ops('connect').map((c) => (c as { token?: string }).token), ['fresh-token']);
  });

  it('a subscribe refused with a transient code is retried with growing delays; a refusal ends it', async () => {
    const server = await ScriptedServer.start();
    servers.push(server);
    const client = new HeraldClient({ url: server.url, WebSocket, reconnect: { minDelay: 20, maxDelay: 1_000, jitter: 0 } });
    clients.push(client);
    const at: number[] = [];
    server.onCommand = (ws, cmd) => {
      if (cmd.op !== 'subscribe') return;
      if (cmd.channel === 'busy') {
        at.push(Date.now());
        if (at.length <= 3) send(ws, { id: cmd.id, error: { code: 'unavailable', message: 'engine down' } });
        else send(ws, { id: cmd.id, result: { channel: 'busy', epoch: 'E', offset: 0, recovered: true, events: [] } });
      } else send(ws, { id: cmd.id, error: { code: 'forbidden', message: 'no' } });
    };
    const busy = client.subscribe('busy');
    const errors: string[] = [];
    busy.on('error', (e) => errors.push(e.code));
    const denied = client.subscribe('denied');
    const deniedEnd = next(denied, 'unsubscribed');
    await client.connect();
    await next(busy, 'subscribed');
    assert.deepEqual(errors, ['unavailable', 'unavailable', 'unavailable']);
    const gaps = at.slice(1).map((t, i) => t - at[i]!);
    [20, 40, 80].forEach((d, i) => assert.ok(gaps[i]! >= d - 2 && gaps[i]! < d + 200, `retry ${i}: ${gaps[i]} ms, expected ~${d}`));
    assert.equal((await deniedEnd).reason, 'subscribe refused: forbidden');
    assert.equal(busy.state, 'subscribed');
    assert.equal(client.state, 'connected');
  });

  it('server pushes: join/leave reach the subscription; `unsubscribe` ends it', async () => {
    const { server, client } = await setup();
    server.onCommand = (ws, cmd) => {
      if (cmd.op === 'subscribe') send(ws, { id: cmd.id, result: { channel: 'c', epoch: 'E', offset: 0, recovered: true, events: [] } });
    };
    const sub = client.subscribe('c');
    await client.connect();
    await next(sub, 'subscribed');
    const joined = next(sub, 'join');
    send(server.sockets[0]!, { push: 'join', channel: 'c', client: 'x', user: 'alice' });
    assert.deepEqual(await joined, { client: 'x', user: 'alice' });
    const ended = next(sub, 'unsubscribed');
    send(server.sockets[0]!, { push: 'unsubscribe', channel: 'c', reason: 'room deleted' });
    assert.deepEqual(await ended, { channel: 'c', reason: 'room deleted' });
    assert.equal(client.subscription('c'), undefined);
  });
});
