/**
 * Smoke test of every example: each starts with `node --import tsx examples/<name>.ts` on
 * PORT=0, prints `listening on <url>`, answers a real request of what it demonstrates, and exits
 * 0 on SIGTERM.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import WebSocket from 'ws';
import { ROOT, TestWs, call } from '../server/helpers.js';

interface Running {
  url: string;
  stop(): Promise<number | null>;
}

async function run(name: string): Promise<Running> {
  const proc = spawn(process.execPath, ['--import', 'tsx', join('examples', `${name}.ts`)], {
    cwd: ROOT,
    env: { ...process.env, PORT: '0' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  proc.stderr.setEncoding('utf8').on('data', (c: string) => (err += c));
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${name} did not start within 20 s; stderr: ${err}`)), 20_000);
    proc.stdout.setEncoding('utf8').on('data', (c: string) => {
      out += c;
      const m = /listening on (http:\/\/\S+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]!);
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`${name} exited (${code}) before listening; stderr: ${err}`));
    });
  });
  return {
    url,
    stop: async () => {
      proc.kill('SIGTERM');
      const timer = setTimeout(() => proc.kill('SIGKILL'), 8_000);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
  };
}

/** Runs `check` against the started example, then stops it and expects exit code 0. */
async function smoke(name: string, check: (url: string) => Promise<void>): Promise<void> {
  const example = await run(name);
  try {
    await check(example.url);
  } finally {
    assert.equal(await example.stop(), 0, `${name} exits 0 on SIGTERM`);
  }
}

function ws(url: string, headers: Record<string, string> = {}): Promise<WebSocket & { nextJson(): Promise<unknown> }> {
  const socket = new WebSocket(url.replace(/^http/, 'ws'), { headers });
  const queue: unknown[] = [];
  const waiters: ((v: unknown) => void)[] = [];
  socket.on('message', (d) => {
    const v = JSON.parse(d.toString());
    const w = waiters.shift();
    if (w) w(v);
    else queue.push(v);
  });
  const nextJson = (): Promise<unknown> => (queue.length > 0 ? Promise.resolve(queue.shift()) : new Promise((resolve) => waiters.push(resolve)));
  return new Promise((resolve, reject) => {
    socket.once('open', () => resolve(Object.assign(socket, { nextJson })));
    socket.once('unexpected-response', (_req, res) => reject(new Error(`upgrade refused: ${res.statusCode}`)));
    socket.once('error', reject);
  });
}

async function upgradeRefusal(url: string): Promise<number> {
  return ws(url).then(
    (s) => {
      s.terminate();
      return 101;
    },
    (err: Error) => Number(/(\d{3})$/.exec(err.message)?.[1] ?? 0),
  );
}

const checks: Record<string, (url: string) => Promise<void>> = {
  'sockets-echo': async (url) => {
    const echo = await ws(`${url}/echo`);
    echo.send(JSON.stringify({ text: 'hi' }));
    assert.equal(((await echo.nextJson()) as { echo: string }).echo, 'hi');
    echo.send(JSON.stringify({ nope: 1 }));
    assert.equal(((await echo.nextJson()) as { error: { code: string } }).error.code, 'bad_request');
    echo.close();
  },
  'sockets-broadcast': async (url) => {
    const a = await ws(`${url}/room`);
    assert.deepEqual(await a.nextJson(), { you: 1, online: 1 });
    const b = await ws(`${url}/room`);
    assert.deepEqual(await b.nextJson(), { you: 2, online: 2 });
    assert.deepEqual(await a.nextJson(), { joined: 2 });
    a.send('"hello"');
    assert.deepEqual(await b.nextJson(), { from: 1, data: 'hello' });
    a.close();
    b.close();
  },
  'mount-http': async (url) => {
    assert.match((await call(url, 'GET', '/')).text, /herald is at \/realtime/);
    const { ws: client } = await TestWs.subscribed(`${url}/realtime`, 'news');
    assert.equal((await call(url, 'POST', '/realtime/api/publish', { json: { channel: 'news', data: 'hi' } })).status, 200);
    assert.equal((await client.next((f) => f.push === 'event')).event.data, 'hi');
    client.ws.close();
  },
  'mount-express': async (url) => appWithOrders(url),
  'mount-fastify': async (url) => appWithOrders(url),
  'mount-koa': async (url) => {
    assert.match((await call(url, 'GET', '/')).text, /my Koa app/);
    const { ws: client } = await TestWs.subscribed(`${url}/realtime`, 'news');
    assert.equal((await call(url, 'POST', '/realtime/api/publish', { json: { channel: 'news', data: 1 } })).status, 200);
    assert.equal((await client.next((f) => f.push === 'event')).event.data, 1);
    client.ws.close();
  },
  'auth-wrapper': async (url) => {
    const token = { authorization: 'Bearer secret-token' };
    assert.equal((await call(url, 'POST', '/publish', { json: { category: 'news', data: 'x' } })).status, 401);
    assert.deepEqual((await call(url, 'POST', '/publish', { json: { category: 'news', data: 'x' }, headers: token })).json, { success: true });
    assert.equal((await call(url, 'GET', '/events?category=news&timeout=1&since_time=1')).status, 401);
    const events = await call(url, 'GET', '/events?category=news&timeout=1&since_time=1', { headers: token });
    assert.deepEqual(
      events.json.events.map((e: { data: unknown }) => e.data),
      ['x'],
    );
    assert.equal((await call(url, 'GET', '/realtime/poll?channel=news&timeout=1')).status, 401);
    assert.equal(await upgradeRefusal(`${url}/realtime/ws`), 401);
    const allowed = await ws(`${url}/realtime/ws`, token);
    allowed.close();
  },
  microchat: async (url) => {
    assert.match((await call(url, 'GET', '/')).text, /<title>microchat<\/title>/);
    const sent = await call(url, 'POST', '/chat/send', { json: { category: 'chat', data: { name: 'ann', text: 'hello' } } });
    assert.deepEqual(sent.json, { success: true });
    const events = await call(url, 'GET', '/chat/events?category=chat&timeout=1&since_time=1');
    assert.deepEqual(
      events.json.events.map((e: { data: unknown }) => e.data),
      [{ name: 'ann', text: 'hello' }],
    );
  },
};

async function appWithOrders(url: string): Promise<void> {
  assert.match((await call(url, 'GET', '/')).text, /herald is at \/realtime/);
  const { ws: client } = await TestWs.subscribed(`${url}/realtime`, 'orders');
  const created = await call(url, 'POST', '/orders', { json: { item: 'tea' } });
  assert.deepEqual([created.status, created.json], [201, { offset: 1 }]);
  assert.deepEqual((await client.next((f) => f.push === 'event')).event.data, { item: 'tea' });
  client.ws.close();
}

describe('examples', () => {
  test('every example has a smoke check', () => {
    const examples = readdirSync(join(ROOT, 'examples'))
      .filter((f) => f.endsWith('.ts'))
      .map((f) => f.slice(0, -3))
      .sort();
    assert.deepEqual(examples, Object.keys(checks).sort());
  });

  for (const [name, check] of Object.entries(checks)) {
    test(`${name} starts, answers, and exits 0 on SIGTERM`, () => smoke(name, check));
  }
});
