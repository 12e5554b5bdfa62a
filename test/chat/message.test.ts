/** The chat wire, pure: names, text cleaning, channel names, and which hub events become messages. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { HeraldEvent } from '../../src/protocol/index.js';
import { cleanText, encodeMessage, messageFromEvent, parseChatChannel, roomProblem, truncateUtf8, userProblem } from '../../src/chat/message.js';

function event(channel: string, data: unknown, from?: { client: string; user?: string }): HeraldEvent {
  const e: HeraldEvent = { channel, offset: 1, epoch: 'e', id: '0190c3a5-7d2e-7c3b-9a41-3f0b6c2d1e00', timestamp: 1_763_812_345_678, data };
  if (from) e.from = from;
  return e;
}

describe('chat wire', () => {
  it('room names are [A-Za-z0-9_-]{1,64}; user names are letters, digits, _ . - up to 32', () => {
    for (const ok of ['a', 'Lobby_2', 'x-y', 'z'.repeat(64)]) assert.equal(roomProblem(ok), undefined, ok);
    for (const bad of ['', 'a b', 'a:b', 'é', 'z'.repeat(65), 5]) assert.ok(roomProblem(bad), String(bad));
    for (const ok of ['alice', 'Zoë', '李雷', 'a.b-c_d', 'u'.repeat(32)]) assert.equal(userProblem(ok), undefined, ok);
    for (const bad of ['', 'a b', 'a*', 'a:b', '<img>', 'u'.repeat(33), null]) assert.ok(userProblem(bad), String(bad));
  });

  it('cleans control characters, keeps newlines and tabs, and cuts on code points', () => {
    assert.equal(cleanText(' a\r\nb\rc\td\u0000\u0085\u009b\u007f\u2066e '), 'a\nb\nc\tde');
    assert.equal(truncateUtf8('aé😀', 3), 'aé');
    assert.equal(truncateUtf8('aé😀', 6), 'aé');
    assert.equal(truncateUtf8('aé😀', 7), 'aé😀');
  });

  it('parses room and user channels', () => {
    assert.deepEqual(parseChatChannel('chat:lobby'), { room: 'lobby' });
    assert.deepEqual(parseChatChannel('chat:lobby:@bob'), { room: 'lobby', user: 'bob' });
    assert.equal(parseChatChannel('news'), undefined);
    assert.equal(parseChatChannel('chat:lob by'), undefined);
    assert.equal(parseChatChannel('chat:lobby:@b b'), undefined);
  });

  it('encodes the SPEC shape in order, without absent fields', () => {
    assert.equal(
      encodeMessage({ type: 'whisper', room: 'r', from: 'a', to: 'b', text: '<b>hi</b>', timestamp: 1, id: 'i' }),
      '{"type":"whisper","room":"r","from":"a","to":"b","text":"<b>hi</b>","timestamp":1,"id":"i"}',
    );
    assert.equal(encodeMessage({ type: 'system', room: 'r', text: 't', timestamp: 1, id: 'i' }), '{"type":"system","room":"r","text":"t","timestamp":1,"id":"i"}');
  });

  it("turns the chat's own events into messages", () => {
    assert.deepEqual(messageFromEvent(event('chat:lobby', { type: 'message', from: 'alice', text: 'hi' }), 4096), {
      type: 'message',
      room: 'lobby',
      from: 'alice',
      text: 'hi',
      timestamp: 1_763_812_345_678,
      id: '0190c3a5-7d2e-7c3b-9a41-3f0b6c2d1e00',
    });
    assert.equal(messageFromEvent(event('chat:lobby', { type: 'system', text: 'x joined' }), 4096)?.type, 'system');
    const w = messageFromEvent(event('chat:lobby:@bob', { type: 'whisper', from: 'alice', to: 'bob', text: 'psst' }), 4096);
    assert.equal(w?.type, 'whisper');
    assert.equal(w?.to, 'bob');
  });

  it('server API publishes are trusted: a string is a system announcement', () => {
    const m = messageFromEvent(event('chat:lobby', 'maintenance at noon'), 4096);
    assert.equal(m?.type, 'system');
    assert.equal(m?.text, 'maintenance at noon');
    assert.equal(messageFromEvent(event('chat:lobby', { text: 'x'.repeat(10) }), 4)?.text, 'xxxx');
  });

  it('a client publishing over a generic transport cannot pose as another user or the system', () => {
    const forged = messageFromEvent(event('chat:lobby', { type: 'system', from: 'alice', text: 'hi' }, { client: 'c1', user: 'mallory' }), 4096);
    assert.equal(forged?.type, 'message');
    assert.equal(forged?.from, 'mallory');
    assert.equal(messageFromEvent(event('chat:lobby', { text: 'hi' }, { client: 'c1' }), 4096), undefined, 'anonymous clients are not shown');
    assert.equal(messageFromEvent(event('chat:lobby:@bob', { type: 'whisper', from: 'alice', text: 'hi' }, { client: 'c1', user: 'alice' }), 4096), undefined);
  });

  it('ignores what is not a chat message', () => {
    assert.equal(messageFromEvent(event('news', { text: 'hi' }), 4096), undefined);
    assert.equal(messageFromEvent(event('chat:lobby', { nope: 1 }), 4096), undefined);
    assert.equal(messageFromEvent(event('chat:lobby', null), 4096), undefined);
    assert.equal(messageFromEvent(event('chat:lobby', { text: '\u0000 ' }), 4096), undefined);
    assert.equal(messageFromEvent(event('chat:lobby', { type: 'whisper', from: 'a', to: 'b', text: 'leak' }), 4096), undefined, 'no whispers on the room channel');
  });
});
