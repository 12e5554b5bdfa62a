import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Router, type RouteHandler } from './router.js';

const h = (): RouteHandler => () => {};

describe('Router', () => {
  test('an exact route matches its method; HEAD falls back to GET', () => {
    const get = h();
    const r = new Router().set('GET /a', get);
    assert.deepEqual(r.match('GET', '/a'), { kind: 'handler', handler: get });
    assert.deepEqual(r.match('HEAD', '/a'), { kind: 'handler', handler: get });
    assert.deepEqual(r.match('GET', '/a/'), { kind: 'none' });
  });

  test('a path known under other methods answers which methods are allowed', () => {
    const r = new Router().set('GET /a', h()).set('POST /a', h());
    assert.deepEqual(r.match('DELETE', '/a'), { kind: 'method', allowed: ['GET', 'HEAD', 'POST'] });
  });

  test('prefix routes match by prefix, the longest first; * takes every method', () => {
    const chat = h();
    const chatSse = h();
    const any = h();
    const r = new Router().set('GET /chat*', chat).set('GET /chat/sse*', chatSse).set('* /golongpoll/*', any);
    assert.equal((r.match('GET', '/chat') as { handler: RouteHandler }).handler, chat);
    assert.equal((r.match('GET', '/chat/sse') as { handler: RouteHandler }).handler, chatSse);
    assert.equal((r.match('OPTIONS', '/golongpoll/events') as { handler: RouteHandler }).handler, any);
    assert.deepEqual(r.match('POST', '/chat/x'), { kind: 'method', allowed: ['GET', 'HEAD'] });
    assert.deepEqual(r.match('GET', '/golongpoll'), { kind: 'none' });
  });

  test('setting a route again replaces it', () => {
    const first = h();
    const second = h();
    const r = new Router().set('GET /a', first).set('GET /a', second).set('GET /p*', first).set('GET /p*', second);
    assert.equal((r.match('GET', '/a') as { handler: RouteHandler }).handler, second);
    assert.equal((r.match('GET', '/px') as { handler: RouteHandler }).handler, second);
  });

  test('get returns the handler of exactly that route; delete removes it and says whether it was there', () => {
    const a = h();
    const p = h();
    const r = new Router().set('GET /a', a).set('POST /a', h()).set('* /p/*', p);
    assert.equal(r.get('GET /a'), a);
    assert.equal(r.get('* /p/*'), p);
    assert.equal(r.get('PUT /a'), undefined);
    assert.equal(r.delete('GET /a'), true);
    assert.equal(r.delete('GET /a'), false);
    assert.deepEqual(r.match('GET', '/a'), { kind: 'method', allowed: ['POST'] });
    assert.equal(r.delete('* /p/*'), true);
    assert.deepEqual(r.match('GET', '/p/x'), { kind: 'none' });
  });

  test('a malformed route is a TypeError', () => {
    assert.throws(() => new Router().set('/a', h()), TypeError);
    assert.throws(() => new Router().set('GET a', h()), TypeError);
  });
});
