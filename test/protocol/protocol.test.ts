import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  channelProblem,
  decodeCursor,
  encodeCursor,
  matchPattern,
  namespaceOf,
  parseCommand,
  shouldReconnect,
  uuidv7,
} from '../../src/protocol/index.js';

describe('parseCommand', () => {
  const bad = (text: string, id?: number) => {
    const r = parseCommand(text);
    assert.equal(r.ok, false, text);
    if (!r.ok) {
      assert.equal(r.error.code, 'bad_request');
      assert.equal(r.id, id);
    }
  };
  it('parses every op', () => {
    assert.deepEqual(parseCommand('{"id":1,"op":"connect","token":"t"}'), { ok: true, command: { id: 1, op: 'connect', token: 't' } });
    assert.deepEqual(parseCommand('{"id":2,"op":"subscribe","channel":"n","since":{"epoch":"e","offset":4}}'), {
      ok: true,
      command: { id: 2, op: 'subscribe', channel: 'n', since: { epoch: 'e', offset: 4 } },
    });
    assert.deepEqual(parseCommand('{"id":3,"op":"publish","channel":"n","data":null}'), { ok: true, command: { id: 3, op: 'publish', channel: 'n', data: null } });
    assert.deepEqual(parseCommand('{"id":4,"op":"history","channel":"n","limit":5}'), { ok: true, command: { id: 4, op: 'history', channel: 'n', limit: 5 } });
    assert.deepEqual(parseCommand('{"id":5,"op":"ping"}'), { ok: true, command: { id: 5, op: 'ping' } });
    assert.deepEqual(parseCommand('{"id":6,"op":"unsubscribe","channel":"n"}'), { ok: true, command: { id: 6, op: 'unsubscribe', channel: 'n' } });
    assert.deepEqual(parseCommand('{"id":7,"op":"presence","channel":"n"}'), { ok: true, command: { id: 7, op: 'presence', channel: 'n' } });
  });
  it('answers bad input without an id when there is no usable id', () => {
    bad('not json');
    bad('[1,2]');
    bad('"str"');
    bad('null');
    bad('{"op":"ping"}');
    bad('{"id":"1","op":"ping"}');
    bad('{"id":1.5,"op":"ping"}');
    bad('['.repeat(100) + ']'.repeat(100));
  });
  it('answers bad commands with their id', () => {
    bad('{"id":9,"op":"nope"}', 9);
    bad('{"id":9,"op":"publish","channel":"n"}', 9);
    bad('{"id":9,"op":"subscribe"}', 9);
    bad('{"id":9,"op":"subscribe","channel":""}', 9);
    bad('{"id":9,"op":"subscribe","channel":"a\\u0000"}', 9);
    bad('{"id":9,"op":"subscribe","channel":"n","since":{"epoch":"e"}}', 9);
    bad('{"id":9,"op":"subscribe","channel":"n","since":{"epoch":"e","offset":-1}}', 9);
    bad('{"id":9,"op":"history","channel":"n","limit":-1}', 9);
    bad('{"id":9,"op":"connect","token":5}', 9);
  });
  it('is not fooled by __proto__ keys', () => {
    const r = parseCommand('{"id":1,"op":"publish","channel":"n","data":{"__proto__":{"polluted":true}}}');
    assert.equal(r.ok, true);
    assert.equal(({} as Record<string, unknown>).polluted, undefined);
  });
});

describe('channels', () => {
  it('validates length and control characters in code points', () => {
    assert.equal(channelProblem('a'), null);
    assert.equal(channelProblem('😀'.repeat(1024)), null);
    assert.notEqual(channelProblem('😀'.repeat(1025)), null);
    assert.notEqual(channelProblem(''), null);
    assert.notEqual(channelProblem('a\u007f'), null);
    assert.notEqual(channelProblem(5), null);
  });
  it('derives the namespace', () => {
    assert.equal(namespaceOf('chat:lobby'), 'chat');
    assert.equal(namespaceOf('news'), '');
    assert.equal(namespaceOf('a:b:c'), 'a');
  });
  it('matches patterns with *', () => {
    assert.equal(matchPattern('*', 'anything'), true);
    assert.equal(matchPattern('news', 'news'), true);
    assert.equal(matchPattern('news', 'news2'), false);
    assert.equal(matchPattern('user:alice:*', 'user:alice:inbox'), true);
    assert.equal(matchPattern('user:alice:*', 'user:bob:inbox'), false);
    assert.equal(matchPattern('a*b*c', 'aXbYc'), true);
    assert.equal(matchPattern('a*b*c', 'acb'), false);
    assert.equal(matchPattern('*:x', 'chat:x'), true);
    assert.equal(matchPattern('ab*ba', 'aba'), false);
  });
});

describe('cursor', () => {
  it('round-trips positions of several channels, Unicode included', () => {
    const c = new Map([['news', { epoch: 'e1', offset: 4 }], ['chat:ö😀', { epoch: 'e2', offset: 0 }]]);
    assert.deepEqual(decodeCursor(encodeCursor(c)), c);
  });
  it('rejects anything that is not a cursor', () => {
    for (const bad of ['', '!!!', 'e30', encodeCursor(new Map()).slice(0, 3) + '$', btoa('[2,[]]'), btoa('[1,[["a","e",-1]]]'), btoa('[1,[["","e",1]]]')]) {
      assert.equal(decodeCursor(bad) === undefined || decodeCursor(bad)!.size === 0, true, bad);
    }
    assert.equal(decodeCursor('%%%'), undefined);
  });
});

describe('uuidv7', () => {
  it('makes unique, version-7, time-ordered ids', () => {
    const ids = Array.from({ length: 5000 }, () => uuidv7());
    assert.equal(new Set(ids).size, ids.length);
    for (const id of ids.slice(0, 50)) assert.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    assert.deepEqual([...ids].sort(), ids);
  });
});

describe('close codes', () => {
  it('tell the client whether to reconnect', () => {
    assert.equal(shouldReconnect(1001), true);
    assert.equal(shouldReconnect(4008), true);
    assert.equal(shouldReconnect(4001), false);
    assert.equal(shouldReconnect(4009), false);
    assert.equal(shouldReconnect(1006), true);
    assert.equal(shouldReconnect(1000), false);
  });
});
