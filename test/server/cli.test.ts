/** `herald publish` and `herald subscribe` as child processes against a real server. */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startServer, type HeraldServer } from '../../src/server/index.js';
import { call, ensureBuilt, herald } from './helpers.js';

let srv: HeraldServer;
let guarded: HeraldServer;
before(async () => {
  await ensureBuilt();
  srv = await startServer({ port: 0 });
  guarded = await startServer({ port: 0, apiKey: ['sesame'] });
});
after(async () => {
  await srv.close();
  await guarded.close();
});

const publishOver = (data: unknown, channel: string) => call(srv.url, 'POST', '/api/publish', { json: { channel, data } });

describe('herald publish', () => {
  test('publishes JSON data and prints the result as one JSON line', async () => {
    const child = herald(['publish', 'cli:news', '{"a":1}', '--url', srv.url]);
    assert.equal((await child.exited).code, 0, child.stderr());
    const lines = child.stdout().split('\n');
    assert.equal(lines.length, 2);
    const result = JSON.parse(lines[0]!);
    assert.deepEqual(Object.keys(result), ['channel', 'epoch', 'offset', 'id', 'timestamp']);
    assert.equal(result.channel, 'cli:news');
    assert.equal(result.offset, 1);
    const history = await call(srv.url, 'GET', '/api/history?channel=cli:news');
    assert.deepEqual(history.json.events[0].data, { a: 1 });
  });

  test('data that is not JSON is sent as a string; HERALD_URL names the server', async () => {
    const child = herald(['publish', 'cli:text', 'hello world'], { HERALD_URL: srv.url });
    assert.equal((await child.exited).code, 0, child.stderr());
    const history = await call(srv.url, 'GET', '/api/history?channel=cli:text');
    assert.equal(history.json.events[0].data, 'hello world');
  });

  test('an error answer exits 1 and prints its code', async () => {
    const child = herald(['publish', 'bad\u0001channel', '1', '--url', srv.url]);
    assert.equal((await child.exited).code, 1);
    assert.match(child.stderr(), /^herald publish: bad_request: /);
    assert.equal(child.stdout(), '');
  });

  test('the API key comes from --api-key or HERALD_API_KEY; without it: unauthorized, exit 1', async () => {
    const without = herald(['publish', 'k', '1', '--url', guarded.url]);
    assert.equal((await without.exited).code, 1);
    assert.match(without.stderr(), /unauthorized/);
    const withFlag = herald(['publish', 'k', '2', '--url', guarded.url, '--api-key', 'sesame']);
    assert.equal((await withFlag.exited).code, 0, withFlag.stderr());
    const withEnv = herald(['publish', 'k', '3', '--url', guarded.url], { HERALD_API_KEY: 'sesame' });
    assert.equal((await withEnv.exited).code, 0, withEnv.stderr());
  });

  test('with only --token it publishes over WebSocket, as a connected client', async () => {
    const child = herald(['publish', 'cli:ws', '[1,2]', '--url', srv.url, '--token', 'anything']);
    assert.equal((await child.exited).code, 0, child.stderr());
    const result = JSON.parse(child.stdout());
    assert.deepEqual(Object.keys(result), ['channel', 'epoch', 'offset', 'id', 'timestamp']);
    const history = await call(srv.url, 'GET', '/api/history?channel=cli:ws');
    assert.deepEqual(history.json.events[0].data, [1, 2]);
    assert.equal(typeof history.json.events[0].from.client, 'string', 'an event has `from` only when a connected client published it');
  });

  test('an unreachable server exits 1 saying so', async () => {
    const closed = await startServer({ port: 0 });
    const url = closed.url;
    await closed.close();
    const child = herald(['publish', 'c', '1', '--url', url]);
    assert.equal((await child.exited).code, 1);
    assert.match(child.stderr(), /unreachable: cannot reach .*ECONNREFUSED/);
  });

  test('a wrong number of arguments exits 2', async () => {
    const child = herald(['publish', 'only-channel']);
    assert.equal((await child.exited).code, 2);
    assert.match(child.stderr(), /publish needs <channel> and <data>/);
  });
});

describe('herald subscribe', () => {
  test('prints an event published over the HTTP API as one JSON line, and exits 0 on SIGINT', async () => {
    const child = herald(['subscribe', 'cli:live', '--url', srv.url]);
    await child.line(/^herald: subscribed to "cli:live" at \S+:0$/, 'stderr');
    const published = await publishOver({ hello: 'world' }, 'cli:live');
    const [line] = await child.until('stdout', (lines) => lines.length >= 1);
    const event = JSON.parse(line!);
    assert.deepEqual(event.data, { hello: 'world' });
    assert.equal(event.channel, 'cli:live');
    assert.equal(event.offset, 1);
    assert.equal(event.id, published.json.id);
    child.proc.kill('SIGINT');
    assert.equal((await child.exited).code, 0);
  });

  test('--since replays the events after that position, then follows live ones', async () => {
    const first = await publishOver('one', 'cli:replay');
    await publishOver('two', 'cli:replay');
    const child = herald(['subscribe', 'cli:replay', '--since', `${first.json.epoch}:0`, '--url', srv.url]);
    await child.line(/subscribed to "cli:replay" at \S+:2$/, 'stderr');
    await publishOver('three', 'cli:replay');
    const lines = await child.until('stdout', (ls) => ls.length >= 3);
    assert.deepEqual(lines.map((l) => JSON.parse(l).data), ['one', 'two', 'three']);
    child.proc.kill('SIGTERM');
    assert.equal((await child.exited).code, 0);
  });

  test('after a server-side disconnect it reconnects and resumes: every event exactly once, in order', async () => {
    const child = herald(['subscribe', 'cli:resume', '--url', srv.url]);
    await child.line(/subscribed to "cli:resume"/, 'stderr');
    await publishOver(1, 'cli:resume');
    await child.until('stdout', (ls) => ls.length >= 1);
    const { json: presence } = await call(srv.url, 'GET', '/api/presence?channel=cli:resume');
    assert.equal(presence.clients.length, 1);
    assert.equal((await call(srv.url, 'POST', '/api/disconnect', { json: { client: presence.clients[0].client } })).status, 200);
    // Published while the subscriber is away (or just back): it must arrive once either way.
    await publishOver(2, 'cli:resume');
    await child.until('stderr', (ls) => ls.filter((l) => l.includes('subscribed to "cli:resume"')).length >= 2);
    await publishOver(3, 'cli:resume');
    const lines = await child.until('stdout', (ls) => ls.length >= 3);
    await publishOver(4, 'cli:resume');
    const all = await child.until('stdout', (ls) => ls.length >= 4);
    assert.deepEqual(all.map((l) => JSON.parse(l).offset), [1, 2, 3, 4]);
    assert.deepEqual(lines.slice(0, 3).map((l) => JSON.parse(l).data), [1, 2, 3]);
    assert.match(child.stderr(), /disconnected by the server: 4002/);
    child.proc.kill('SIGINT');
    assert.equal((await child.exited).code, 0);
  });

  test('several channels in one subscription', async () => {
    const child = herald(['subscribe', 'cli:a', 'cli:b', '--url', srv.url]);
    await child.line(/subscribed to "cli:b"/, 'stderr');
    await publishOver('to a', 'cli:a');
    await publishOver('to b', 'cli:b');
    const lines = await child.until('stdout', (ls) => ls.length >= 2);
    assert.deepEqual(lines.map((l) => [JSON.parse(l).channel, JSON.parse(l).data]), [['cli:a', 'to a'], ['cli:b', 'to b']]);
    child.proc.kill('SIGINT');
    assert.equal((await child.exited).code, 0);
  });

  test('no channel, or a bad --since, exits 2', async () => {
    const none = herald(['subscribe', '--url', srv.url]);
    assert.equal((await none.exited).code, 2);
    const badSince = herald(['subscribe', 'c', '--since', 'nope', '--url', srv.url]);
    assert.equal((await badSince.exited).code, 2);
    assert.match(badSince.stderr(), /--since must be <epoch>:<offset>/);
  });
});
