/** `herald serve` and the command line as real child processes of bin/herald.js (SPEC §8). */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ROOT, TestWs, call, ensureBuilt, herald, type Child } from './helpers.js';

const LISTENING = /^listening on (http:\/\/127\.0\.0\.1:(\d+))$/;

let dir: string;
before(async () => {
  await ensureBuilt();
  dir = await mkdtemp(join(tmpdir(), 'herald-serve-'));
});
after(() => rm(dir, { recursive: true, force: true }));

/** Starts `herald serve --port 0 …`, resolves with the URL it printed. */
async function serve(args: string[] = [], env: Record<string, string> = {}): Promise<{ child: Child; url: string }> {
  const child = herald(['serve', '--port', '0', ...args], env);
  const m = await child.line(LISTENING);
  return { child, url: m[1]! };
}

async function stop(child: Child, signal: NodeJS.Signals = 'SIGTERM'): Promise<{ code: number | null; ms: number }> {
  const started = Date.now();
  child.proc.kill(signal);
  const { code } = await child.exited;
  return { code, ms: Date.now() - started };
}

describe('herald serve', () => {
  test('prints "listening on http://127.0.0.1:PORT" to stdout with --port 0, serves, and exits 0 on SIGTERM', async () => {
    const { child, url } = await serve();
    const port = Number(LISTENING.exec(child.stdout().trim())![2]);
    assert.ok(port > 0 && port < 65_536);
    assert.equal(child.stdout(), `listening on ${url}\n`, 'stdout holds only the listening line; logs go to stderr');
    assert.equal((await call(url, 'GET', '/healthz')).status, 200);
    assert.equal((await call(url, 'POST', '/api/publish', { json: { channel: 'news', data: 1 } })).json.offset, 1);
    const { code, ms } = await stop(child);
    assert.equal(code, 0);
    assert.ok(ms < 10_000, `exited in ${ms} ms`);
    assert.match(child.stderr(), /"msg":"shutting down"/);
  });

  test('SIGINT also shuts down with exit 0', async () => {
    const { child } = await serve();
    const { code } = await stop(child, 'SIGINT');
    assert.equal(code, 0);
  });

  test('the listening line is printed even with --log-level silent, and nothing else is', async () => {
    const { child, url } = await serve(['--log-level', 'silent']);
    assert.equal(child.stdout(), `listening on ${url}\n`);
    assert.equal((await stop(child)).code, 0);
    assert.equal(child.stderr(), '');
  });

  test('a WebSocket client gets disconnect then close 1001 on SIGTERM', async () => {
    const { child, url } = await serve();
    const { ws } = await TestWs.subscribed(url, 'news');
    const exit = stop(child);
    const push = await ws.next((f) => f.push === 'disconnect');
    assert.deepEqual({ code: push.code, reconnect: push.reconnect }, { code: 1001, reconnect: true });
    assert.equal((await ws.closed).code, 1001);
    assert.equal((await exit).code, 0);
  });

  test('--port abc exits non-zero with a message naming port', async () => {
    const child = herald(['serve', '--port', 'abc']);
    const { code } = await child.exited;
    assert.equal(code, 1);
    assert.match(child.stderr(), /invalid port \(--port\): must be an integer from 0 to 65535, got "abc"/);
    assert.equal(child.stdout(), '');
  });

  test('a bad HERALD_* variable exits non-zero naming the key and the variable', async () => {
    const child = herald(['serve'], { HERALD_MAX_MESSAGE_BYTES: 'lots' });
    assert.equal((await child.exited).code, 1);
    assert.match(child.stderr(), /maxMessageBytes \(HERALD_MAX_MESSAGE_BYTES\)/);
  });

  test('a JWT secret shorter than 32 bytes exits 1 naming the key, not the secret', async () => {
    const child = herald(['serve', '--jwt-secret', 'x']);
    assert.equal((await child.exited).code, 1);
    assert.match(child.stderr(), /jwtSecret \(--jwt-secret\): must be at least 32 bytes/);
  });

  test('with --jwt-secret a token minted by `herald token` opens only its channels; anonymous clients get nothing', async () => {
    const secret = 'a-secret-of-at-least-thirty-two-bytes!';
    const { child, url } = await serve(['--jwt-secret', secret]);
    try {
      const mint = herald(['token', '--secret', secret, '--sub', 'alice', '--subscribe', 'news', '--publish', 'news', '--ttl', '60']);
      assert.equal((await mint.exited).code, 0);
      const token = mint.stdout().trim();
      assert.match(token, /^[\w-]+\.[\w-]+\.[\w-]+$/);
      const alice = new TestWs(`${url.replace('http', 'ws')}/ws`);
      await alice.opened();
      assert.equal((await alice.request('connect', { token })).version, 1);
      await alice.request('subscribe', { channel: 'news' });
      const ack = await alice.request('publish', { channel: 'news', data: 'hi' });
      assert.equal(ack.offset, 1);
      await assert.rejects(alice.request('subscribe', { channel: 'secret' }), (e: { code?: string }) => e.code === 'forbidden');
      const anon = new TestWs(`${url.replace('http', 'ws')}/ws`);
      await anon.opened();
      await anon.request('connect');
      await assert.rejects(anon.request('subscribe', { channel: 'news' }), (e: { code?: string }) => e.code === 'forbidden');
      await assert.rejects(anon.request('publish', { channel: 'news', data: 1 }), (e: { code?: string }) => e.code === 'forbidden');
      const bad = new TestWs(`${url.replace('http', 'ws')}/ws`);
      await bad.opened();
      await assert.rejects(bad.request('connect', { token: token.slice(0, -2) + 'xx' }), (e: { code?: string }) => e.code === 'unauthorized');
      for (const c of [alice, anon, bad]) c.ws.terminate();
    } finally {
      child.proc.kill('SIGTERM');
      await child.exited;
    }
  });

  test('with --redis pointing at nothing it starts, answers 503 unavailable, and exits 0 on SIGTERM', async () => {
    const { child, url } = await serve(['--redis', 'redis://127.0.0.1:1', '--redis-prefix', `t${process.pid}`]);
    const ready = await fetch(`${url}/readyz`);
    assert.equal(ready.status, 503);
    const pub = await fetch(`${url}/api/publish`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"channel":"a","data":1}' });
    assert.equal(pub.status, 503);
    assert.equal(((await pub.json()) as { error: { code: string } }).error.code, 'unavailable');
    child.proc.kill('SIGTERM');
    assert.equal((await child.exited).code, 0);
  });

  test('with --journal the history, offsets and epoch survive a restart', async () => {
    const journal = join(dir, 'journal');
    const first = await serve(['--journal', journal]);
    let last: { epoch: string; offset: number } = { epoch: '', offset: 0 };
    for (let i = 1; i <= 3; i++) {
      const r = await fetch(`${first.url}/api/publish`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ channel: 'kept', data: i }) });
      last = (await r.json()) as { epoch: string; offset: number };
    }
    first.child.proc.kill('SIGTERM');
    assert.equal((await first.child.exited).code, 0);
    const second = await serve(['--journal', journal]);
    try {
      const h = (await (await fetch(`${second.url}/api/history?channel=kept&since_epoch=${last.epoch}&since_offset=1`)).json()) as { epoch: string; offset: number; recovered: boolean; events: { data: number }[] };
      assert.equal(h.epoch, last.epoch);
      assert.equal(h.offset, 3);
      assert.equal(h.recovered, true);
      assert.deepEqual(h.events.map((e) => e.data), [2, 3]);
    } finally {
      second.child.proc.kill('SIGTERM');
      await second.child.exited;
    }
  });

  test('flags beat the environment, which beats the config file, in a real process', async () => {
    const file = join(dir, 'herald.yaml');
    await writeFile(file, 'port: 1\nhost: 0.0.0.0\nlogLevel: warn\nmaxMessageBytes: 2048\n');
    const { child, url } = await serve(['--config', file], { HERALD_HOST: '127.0.0.1' });
    try {
      // port: the flag (0), not the file (1); host: the environment, not the file; the limit: the file.
      const answer = await call(url, 'POST', '/api/publish', { json: { channel: 'c', data: 'x'.repeat(3000) } });
      assert.equal(answer.status, 413);
      assert.doesNotMatch(child.stderr(), /"level":30/, 'info lines are off at logLevel warn');
    } finally {
      assert.equal((await stop(child)).code, 0);
    }
  });

  test('an unknown HERALD_* variable is logged as a warning and ignored', async () => {
    const { child } = await serve([], { HERALD_PROT: '1' });
    assert.equal((await stop(child)).code, 0);
    assert.match(child.stderr(), /"level":40[^\n]*ignoring unknown environment variable HERALD_PROT/);
  });

  test('a port already in use exits 1 with a message', async () => {
    const { child, url } = await serve();
    try {
      const busy = herald(['serve', '--port', new URL(url).port]);
      assert.equal((await busy.exited).code, 1);
      assert.match(busy.stderr(), /cannot listen: .*EADDRINUSE/);
    } finally {
      await stop(child);
    }
  });
});

describe('herald command line', () => {
  test('--version prints the package version', async () => {
    const child = herald(['--version']);
    assert.equal((await child.exited).code, 0);
    const { version } = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
    assert.equal(child.stdout(), `${version}\n`);
  });

  test('help and --help print the usage and exit 0', async () => {
    for (const args of [['help'], ['--help'], ['-h']]) {
      const child = herald(args);
      assert.equal((await child.exited).code, 0);
      assert.match(child.stdout(), /^Usage: herald <command>/);
    }
    const serveHelp = herald(['serve', '--help']);
    assert.equal((await serveHelp.exited).code, 0);
    assert.match(serveHelp.stdout(), /--max-message-bytes <bytes> +largest frame, request body or event \(default 65536\)/);
    assert.match(serveHelp.stdout(), /--api-key <key>/);
  });

  test('no command, an unknown command or an unknown option exits 2 with the usage', async () => {
    const none = herald([]);
    assert.equal((await none.exited).code, 2);
    assert.match(none.stderr(), /Usage: herald/);
    const unknown = herald(['frobnicate']);
    assert.equal((await unknown.exited).code, 2);
    assert.match(unknown.stderr(), /unknown command "frobnicate"[\s\S]*Usage: herald/);
    const badFlag = herald(['serve', '--bogus', '1']);
    assert.equal((await badFlag.exited).code, 2);
    assert.match(badFlag.stderr(), /unknown option --bogus/);
  });

  test('token prints an HS256 client JWT with the claims asked for; a short secret is a usage error', async () => {
    const secret = 'cli-test-secret-0123456789-abcdefghijkl';
    const child = herald(['token', '--secret', secret, '--sub', 'u', '--subscribe', 'news', 'user:u:*', '--publish', 'user:u:*', '--ttl', '60']);
    assert.equal((await child.exited).code, 0, child.stderr());
    const token = child.stdout().trim();
    const [header, payload] = token.split('.').slice(0, 2).map((p) => JSON.parse(Buffer.from(p, 'base64url').toString()));
    assert.deepEqual(header, { alg: 'HS256', typ: 'JWT' });
    assert.deepEqual({ ...payload, iat: 0, exp: payload.exp - payload.iat }, { sub: 'u', subscribe: ['news', 'user:u:*'], publish: ['user:u:*'], iat: 0, exp: 60 });
    const short = herald(['token', '--secret', 's', '--sub', 'u']);
    assert.equal((await short.exited).code, 2);
    assert.match(short.stderr(), /at least 32 bytes/);
  });
});
