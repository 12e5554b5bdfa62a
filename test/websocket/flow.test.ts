// Flow control over the WebSocket transport: slow consumers (4008) and keep-alive.
import assert from 'node:assert/strict';
import { afterEach, describe, test } from 'node:test';
import WebSocket from 'ws';
import { TestClient, startHarness, type Harness } from './helpers.js';

const harnesses: Harness[] = [];
afterEach(async () => {
  await Promise.all(harnesses.splice(0).map((h) => h.stop()));
});

describe('WebSocket flow control', () => {
  test('a client that stops reading is closed 4008 while a fast client receives every event of the burst; server buffering stays bounded', async () => {
    const maxBufferedBytes = 64 * 1024;
    const h = await startHarness({ transport: { maxBufferedBytes } });
    harnesses.push(h);
    const fast = await TestClient.connect(h.url);
    const slow = await TestClient.connect(h.url);
    await fast.request('subscribe', { channel: 'burst' });
    await slow.request('subscribe', { channel: 'burst' });
    slow.ws.pause(); // stops reading: its kernel buffers fill, then the server's

    const pad = 'p'.repeat(8 * 1024);
    let published = 0;
    let extraAfterClose = 20; // the burst goes on after the slow client is dropped
    let peak = 0;
    const slowDropped = () => h.logs.some(([level, msg]) => level === 'warn' && msg.includes('slow consumer'));
    while (published < 3000 && (!slowDropped() || extraAfterClose-- > 0)) {
      published++;
      await h.hub.publish('burst', { n: published, pad });
      peak = Math.max(peak, h.transport.bufferStats().max);
      // Pace the burst at the fast client's speed (4 events in flight), as a real reader would.
      if (published % 4 === 0) await fast.next((m) => m.push === 'event' && m.event.offset === published - 2);
    }
    assert.ok(slowDropped(), `slow consumer detected within ${published} events`);
    const [, , fields] = await h.logged('slow consumer');
    assert.equal((fields as { client: string }).client, slow.clientId);

    // The fast client got the whole burst, in order, and was never dropped.
    await fast.next((m) => m.push === 'event' && m.event.offset === published, 5000);
    assert.deepEqual(
      fast.events('burst').map((e) => e.offset),
      Array.from({ length: published }, (_, i) => i + 1),
    );
    assert.ok(fast.isOpen);

    // Bounded: never more than the limit (plus one event frame) waiting for the slow client.
    assert.ok(peak <= maxBufferedBytes + pad.length + 512, `peak bufferedAmount ${peak}`);

    // Once it reads again it gets what was queued, in order, then the 4008 close frame.
    slow.ws.resume();
    assert.deepEqual(await slow.waitClosed(), { code: 4008, reason: 'slow consumer' });
    const got = slow.events('burst').map((e) => e.offset);
    assert.ok(got.length > 0 && got.length < published, `slow client got ${got.length} of ${published}`);
    assert.deepEqual(
      got,
      Array.from({ length: got.length }, (_, i) => i + 1),
    );
    await h.released(slow.clientId);
    assert.equal(h.hub.stats().subscriptions, 1, 'the slow client was unsubscribed');
  });

  test('keep-alive drops a peer that stops answering pings within two intervals and keeps a normal one', async () => {
    const h = await startHarness({ transport: { pingInterval: 1 } });
    harnesses.push(h);
    const live = await TestClient.connect(h.url);
    const started = Date.now();
    const dead = await TestClient.connect(h.url, undefined, { autoPong: false });
    let pings = 0;
    dead.ws.on('ping', () => pings++);
    await h.released(dead.clientId);
    const took = Date.now() - started;
    assert.ok(took < 2 * 1000 + 500, `dropped after ${took} ms`);
    assert.ok(pings >= 1, 'it was pinged first');
    assert.equal((await dead.waitClosed()).code, 1006, 'terminated, no close handshake');
    // The answering peer went through the same sweeps and is still served.
    assert.equal(live.ws.readyState, WebSocket.OPEN);
    assert.deepEqual((await live.request('ping')).result, {});
    assert.equal(h.transport.connections, 1);
  });
});
