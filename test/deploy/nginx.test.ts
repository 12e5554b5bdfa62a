/**
 * deploy/nginx.conf, the configuration docs/deployment.md documents, run for real: rendered for a
 * temporary directory and put in front of a herald server, with nginx as a non-daemon child
 * process. Every transport goes through it: WebSocket (with the browser's Origin, so the Host
 * header must be forwarded), SSE streamed without buffering, long-poll, SSE resume with
 * Last-Event-ID (also with a cursor wider than nginx's default header buffers).
 *
 * The http block around it is a busy site's: gzip on for event streams and JSON, proxy buffering
 * on (nginx's default), so the config's own locations are what keep SSE streaming.
 *
 * nginx missing: skipped with "install nginx: apt-get install -y nginx", unless
 * HERALD_REQUIRE_BINARIES=1, which makes it fail instead. The timeout checks read the file only.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request, type IncomingMessage } from 'node:http';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import WebSocket from 'ws';
import { OPTIONS, startServer, type HeraldServer } from '../../src/server/index.js';
import { SSE_DEFAULTS } from '../../src/transports/sse.js';
import { requireBinary } from '../helpers/require-binary.js';

const nginx = requireBinary('nginx', '/usr/sbin/nginx', 'apt-get install -y nginx');
const CONFIG = new URL('../../deploy/nginx.conf', import.meta.url);
/** The longest an event may take to come out of nginx once herald wrote it. */
const PROMPT_MS = 500;

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Msg = Record<string, any>;

/** deploy/nginx.conf with its placeholders filled in. */
function renderSite(listen: string, herald: string): string {
  const text = readFileSync(CONFIG, 'utf8').replaceAll('{{LISTEN}}', listen).replaceAll('{{SERVER_NAME}}', '_').replaceAll('{{HERALD}}', herald);
  const left = text.split('\n').filter((line) => !line.trimStart().startsWith('#') && line.includes('{{'));
  assert.deepEqual(left, [], 'every placeholder is rendered');
  return text;
}

/** The `proxy_read_timeout` of each `location` block, in seconds. */
function readTimeouts(text: string): Map<string, number> {
  const out = new Map<string, number>();
  const body = text.replace(/#.*$/gm, '');
  for (const m of body.matchAll(/location\s+(=\s*)?(\S+)\s*\{([^}]*)\}/g)) {
    const t = /proxy_read_timeout\s+(\d+)s;/.exec(m[3]!);
    out.set(m[2]!, t ? Number(t[1]) : 60); // nginx's default: 60 s
  }
  return out;
}

async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const { port } = srv.address() as AddressInfo;
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  return port;
}

describe('deploy/nginx.conf: timeouts above herald\'s intervals', () => {
  const timeouts = readTimeouts(readFileSync(CONFIG, 'utf8'));

  it('long-poll locations outlast the largest poll (110 s); SSE outlasts the heartbeat; WebSocket the ping', () => {
    const pollMax = OPTIONS.pollTimeoutMax.default;
    assert.equal(pollMax, 110);
    for (const loc of ['/poll', '/golongpoll/', '/gpoll']) assert.ok(timeouts.get(loc)! > pollMax, `${loc}: ${timeouts.get(loc)} s > ${pollMax} s`);
    for (const loc of ['/sse', '/chat/sse']) assert.ok(timeouts.get(loc)! > SSE_DEFAULTS.heartbeatMs / 1000, `${loc}: ${timeouts.get(loc)} s > heartbeat`);
    for (const loc of ['/ws', '/chat']) assert.ok(timeouts.get(loc)! > OPTIONS.pingInterval.default, `${loc}: ${timeouts.get(loc)} s > ping ${OPTIONS.pingInterval.default} s`);
  });

  it('upstream keep-alive ends before Node\'s, so nginx never reuses a connection herald is closing', async () => {
    const m = /keepalive_timeout\s+(\d+)s;/.exec(readFileSync(CONFIG, 'utf8'));
    assert.ok(m, 'the upstream sets keepalive_timeout');
    const server = await startServer({ port: 0, host: '127.0.0.1' });
    try {
      assert.ok(Number(m[1]) * 1000 < server.http.keepAliveTimeout, `${m[1]} s < ${server.http.keepAliveTimeout} ms`);
    } finally {
      await server.close();
    }
  });
});

describe('deploy: herald behind nginx with deploy/nginx.conf', { skip: nginx.skip, timeout: 60_000 }, () => {
  let server: HeraldServer;
  let dir: string;
  let proxy: ChildProcess | undefined;
  let base: string;
  let port: number;
  let output = '';

  before(async () => {
    if (!nginx.available) throw new Error(nginx.failure);
    server = await startServer({ port: 0, host: '127.0.0.1' });
    dir = mkdtempSync(join(tmpdir(), 'herald-nginx-'));
    port = await freePort();
    base = `http://127.0.0.1:${port}`;
    writeFileSync(join(dir, 'herald.conf'), renderSite(`127.0.0.1:${port}`, `127.0.0.1:${server.port}`));
    const root = process.getuid?.() === 0;
    writeFileSync(
      join(dir, 'nginx.conf'),
      [
        root ? 'user root;' : '',
        'worker_processes 1;',
        'events { worker_connections 256; }',
        'http {',
        `  access_log ${dir}/access.log;`,
        ...['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((t) => `  ${t}_temp_path ${dir}/${t}_temp;`),
        '  gzip on; gzip_min_length 1; gzip_types text/event-stream application/json;',
        `  include ${dir}/herald.conf;`,
        '}',
      ].join('\n'),
    );
    proxy = spawn(nginx.path!, ['-c', join(dir, 'nginx.conf'), '-p', `${dir}/`, '-g', `daemon off; pid ${dir}/nginx.pid; error_log ${dir}/error.log;`], { stdio: ['ignore', 'pipe', 'pipe'] });
    proxy.stdout!.on('data', (b: Buffer) => (output += b.toString()));
    proxy.stderr!.on('data', (b: Buffer) => (output += b.toString()));
    const deadline = Date.now() + 10_000;
    for (;;) {
      if (proxy.exitCode !== null) throw new Error(`nginx exited (${proxy.exitCode}): ${output}${errorLog()}`);
      const ok = await fetch(`${base}/healthz`).then((r) => r.status === 200, () => false);
      if (ok) break;
      if (Date.now() > deadline) throw new Error(`nginx did not answer within 10 s: ${output}${errorLog()}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  });

  after(async () => {
    if (proxy && proxy.exitCode === null) {
      const exited = once(proxy, 'exit');
      proxy.kill('SIGTERM');
      await exited;
    }
    await server?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  function errorLog(): string {
    try {
      return readFileSync(join(dir, 'error.log'), 'utf8');
    } catch {
      return '';
    }
  }

  /** An SSE stream through nginx, as raw bytes with their arrival times. */
  async function openSse(path: string, headers: Record<string, string> = {}): Promise<SseReader> {
    const req = request(`${base}${path}`, { headers: { accept: 'text/event-stream', 'accept-encoding': 'gzip', ...headers }, signal: AbortSignal.timeout(10_000) });
    req.on('error', () => {});
    req.end();
    const [res] = (await once(req, 'response').catch((err: Error) => {
      throw new Error(`GET ${path.slice(0, 60)}…: no response through nginx (${err.message})`);
    })) as [IncomingMessage];
    return new SseReader(res, () => req.destroy());
  }

  it('WebSocket: a same-origin browser connects, subscribes, publishes and receives through nginx', async () => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/ws`, { origin: base });
    const inbox = new Inbox();
    ws.on('message', (data) => inbox.push(JSON.parse(String(data)) as Msg));
    await once(ws, 'open');
    try {
      const send = (msg: Msg): void => ws.send(JSON.stringify(msg));
      send({ id: 1, op: 'connect' });
      assert.equal(typeof (await inbox.next((m) => m.id === 1)).result.client, 'string');
      send({ id: 2, op: 'subscribe', channel: 'nginx-ws' });
      assert.equal((await inbox.next((m) => m.id === 2)).result.offset, 0);
      send({ id: 3, op: 'publish', channel: 'nginx-ws', data: { via: 'ws' } });
      assert.equal((await inbox.next((m) => m.id === 3)).result.offset, 1);
      const own = await inbox.next((m) => m.push === 'event');
      assert.deepEqual([own.event.offset, own.event.data], [1, { via: 'ws' }]);
      await server.hub.publish('nginx-ws', { via: 'server' });
      const other = await inbox.next((m) => m.push === 'event' && m.event.offset === 2);
      assert.deepEqual(other.event.data, { via: 'server' });
      send({ id: 4, op: 'ping' });
      assert.deepEqual((await inbox.next((m) => m.id === 4)).result, {});
    } finally {
      ws.close();
    }
  });

  it(`SSE: each event comes out of nginx within ${PROMPT_MS} ms of its publish, not buffered or compressed`, async () => {
    const sse = await openSse('/sse?channel=nginx-sse');
    try {
      assert.equal(sse.res.statusCode, 200);
      assert.match(String(sse.res.headers['content-type']), /^text\/event-stream/);
      assert.equal(sse.res.headers['content-encoding'], undefined, 'not gzipped (gzip would hold events back)');
      await sse.readyReceived();
      for (let n = 1; n <= 3; n++) {
        const published = Date.now();
        const ack = await server.hub.publish('nginx-sse', { n });
        assert.equal(ack.offset, n);
        // Nothing else is written to the stream after this event (the heartbeat is 15 s away):
        // a buffering proxy would sit on it.
        const arrived = await sse.until((text) => text.includes(`"offset":${n},`), 5_000);
        assert.ok(arrived - published < PROMPT_MS, `event ${n} took ${arrived - published} ms through nginx`);
      }
    } finally {
      sse.close();
    }
  });

  it('SSE resume: Last-Event-ID through nginx gets exactly the missed events', async () => {
    const channel = 'nginx-resume';
    const first = await openSse(`/sse?channel=${channel}`);
    await first.readyReceived();
    for (let n = 1; n <= 3; n++) await server.hub.publish(channel, { n });
    await first.until(() => first.events().length === 3);
    const lastId = first.events().at(-1)!.id;
    first.close();
    for (let n = 4; n <= 6; n++) await server.hub.publish(channel, { n });

    const again = await openSse(`/sse?channel=${channel}`, { 'last-event-id': lastId });
    try {
      await again.until(() => again.events().length >= 3);
      await server.hub.publish(channel, { n: 7 });
      await again.until(() => again.events().length >= 4);
      assert.deepEqual(again.ready(), { cursor: lastId, recovered: true });
      assert.deepEqual(again.events().map((e) => [e.event.offset, e.event.data.n]), [4, 5, 6, 7].map((n) => [n, n]));
    } finally {
      again.close();
    }
  });

  it('SSE resume of a wide stream (64 long channel names: a URL and a Last-Event-ID over 8 KiB) passes nginx', async () => {
    const channels = Array.from({ length: 64 }, (_, i) => `wide-${String(i).padStart(2, '0')}-${'x'.repeat(120)}`);
    const path = `/sse?${channels.map((c) => `channel=${c}`).join('&')}`;
    assert.ok(path.length > 8192, `the request line is ${path.length} bytes`);
    for (const c of channels) await server.hub.publish(c, { n: 1 });
    const first = await openSse(path);
    await first.readyReceived();
    const cursor = first.ready().cursor as string;
    assert.ok(cursor.length > 8192, `the cursor is ${cursor.length} bytes`);
    first.close();
    await server.hub.publish(channels[5]!, { n: 2 });
    await server.hub.publish(channels[63]!, { n: 2 });

    const again = await openSse(path, { 'last-event-id': cursor });
    try {
      assert.equal(again.res.statusCode, 200);
      await again.until(() => again.events().length >= 2);
      assert.equal(again.ready().recovered, true);
      assert.deepEqual(again.events().map((e) => [e.event.channel, e.event.offset]), [[channels[5], 2], [channels[63], 2]]);
    } finally {
      again.close();
    }
  });

  it('long-poll: answered empty at its timeout, and with an event as soon as one is published', async () => {
    const started = Date.now();
    const empty = await fetch(`${base}/poll?channel=nginx-poll&timeout=1`);
    assert.equal(empty.status, 200);
    const body = (await empty.json()) as { events: unknown[]; cursor: string };
    assert.deepEqual(body.events, []);
    assert.ok(Date.now() - started >= 900, 'it waited for the timeout');

    const waiting = fetch(`${base}/poll?channel=nginx-poll&timeout=20&cursor=${body.cursor}`);
    await waitFor(() => server.transports.poll.size > 0);
    const published = Date.now();
    await server.hub.publish('nginx-poll', { n: 1 });
    const res = await waiting;
    assert.ok(Date.now() - published < 2_000, 'answered right after the publish');
    assert.equal(res.status, 200);
    const got = (await res.json()) as { events: { offset: number; data: unknown }[]; recovered: boolean };
    assert.deepEqual(got.events.map((e) => [e.offset, e.data]), [[1, { n: 1 }]]);
    assert.equal(got.recovered, true);
  });
});

async function waitFor(check: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** JSON messages from a WebSocket, awaited by predicate. */
class Inbox {
  private readonly seen: Msg[] = [];
  private readonly waiters: { match: (m: Msg) => boolean; resolve: (m: Msg) => void }[] = [];

  push(msg: Msg): void {
    const i = this.waiters.findIndex((w) => w.match(msg));
    if (i >= 0) this.waiters.splice(i, 1)[0]!.resolve(msg);
    else this.seen.push(msg);
  }

  next(match: (m: Msg) => boolean, timeoutMs = 5_000): Promise<Msg> {
    const i = this.seen.findIndex(match);
    if (i >= 0) return Promise.resolve(this.seen.splice(i, 1)[0]!);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no matching WebSocket message within 5 s')), timeoutMs);
      this.waiters.push({ match, resolve: (m) => (clearTimeout(timer), resolve(m)) });
    });
  }
}

/** An SSE response read as it arrives: its text, the messages in it, when each byte came. */
class SseReader {
  text = '';
  private readonly listeners = new Set<() => void>();

  constructor(
    readonly res: IncomingMessage,
    readonly close: () => void,
  ) {
    res.setEncoding('utf8');
    res.on('data', (chunk: string) => {
      this.text += chunk;
      for (const l of [...this.listeners]) l();
    });
    res.on('error', () => {});
  }

  /** Resolves with the time (Date.now()) at which `check(text)` first held. */
  until(check: (text: string) => boolean, timeoutMs = 5_000): Promise<number> {
    if (check(this.text)) return Promise.resolve(Date.now());
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.listeners.delete(listener);
        reject(new Error(`SSE: condition not met within ${timeoutMs} ms; got ${JSON.stringify(this.text.slice(-300))}`));
      }, timeoutMs);
      const listener = (): void => {
        if (!check(this.text)) return;
        clearTimeout(timer);
        this.listeners.delete(listener);
        resolve(Date.now());
      };
      this.listeners.add(listener);
    });
  }

  /** Resolves once the whole `ready` message has arrived. */
  readyReceived(): Promise<number> {
    return this.until(() => this.messages().some((m) => m.event === 'ready'));
  }

  private messages(): { id: string | undefined; event: string | undefined; data: string }[] {
    const out: { id: string | undefined; event: string | undefined; data: string }[] = [];
    for (const block of this.text.split('\n\n').slice(0, -1)) {
      let id: string | undefined;
      let event: string | undefined;
      let data = '';
      for (const line of block.split('\n')) {
        if (line.startsWith('id: ')) id = line.slice(4);
        else if (line.startsWith('event: ')) event = line.slice(7);
        else if (line.startsWith('data: ')) data += line.slice(6);
      }
      if (event) out.push({ id, event, data });
    }
    return out;
  }

  ready(): Msg {
    const m = this.messages().find((x) => x.event === 'ready');
    assert.ok(m, 'a ready message');
    return JSON.parse(m.data) as Msg;
  }

  events(): { id: string; event: Msg }[] {
    return this.messages()
      .filter((m) => m.event === 'event')
      .map((m) => ({ id: m.id!, event: JSON.parse(m.data) as Msg }));
  }
}
