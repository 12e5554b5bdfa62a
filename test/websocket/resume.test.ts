// Gap-free resume (SPEC §1 guarantee) over the WebSocket transport under churn.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import WebSocket from 'ws';
import { startHarness, withTimeout, type Harness } from './helpers.js';

const SUBSCRIBERS = 100;
const EVENTS = 1000;
const CHANNEL = 'stream';

interface Outcome {
  offsets: number[];
  reconnects: number;
  recovered: boolean[];
  /** The channel's offset in each subscribe answer: below EVENTS = resumed while publishing went on. */
  answeredAt: number[];
}

/**
 * A subscriber that terminates its own socket once, after seeing offset `killAt`, and resumes on a
 * new connection with `since` = the last position it saw. Resolves once it has seen offset EVENTS.
 */
function subscriber(url: string, killAt: number, ready: () => void): Promise<Outcome> {
  return new Promise((resolve, reject) => {
    const out: Outcome = { offsets: [], reconnects: 0, recovered: [], answeredAt: [] };
    let epoch = '';
    let killed = false;

    const attach = (): void => {
      const ws = new WebSocket(url);
      let active = true; // frames already parsed after terminate() are not ours any more
      const take = (event: { offset: number; epoch: string }): void => {
        if (!active) return;
        out.offsets.push(event.offset);
        epoch = event.epoch;
        if (event.offset >= EVENTS) {
          active = false;
          ws.close();
          resolve(out);
        } else if (!killed && event.offset >= killAt) {
          killed = true;
          active = false;
          ws.terminate();
          out.reconnects++;
          attach();
        }
      };
      ws.on('open', () => {
        ws.send(JSON.stringify({ id: 1, op: 'connect' }));
        const last = out.offsets.at(-1);
        const since = last === undefined ? undefined : { epoch, offset: last };
        ws.send(JSON.stringify({ id: 2, op: 'subscribe', channel: CHANNEL, ...(since ? { since } : {}) }));
      });
      ws.on('message', (data) => {
        if (!active) return;
        const m = JSON.parse(data.toString()) as { id?: number; error?: unknown; result?: Record<string, unknown>; push?: string; event?: { offset: number; epoch: string } };
        if (m.error) reject(new Error(`answer ${m.id}: ${JSON.stringify(m.error)}`));
        else if (m.id === 2 && m.result) {
          epoch = m.result.epoch as string;
          out.recovered.push(m.result.recovered as boolean);
          out.answeredAt.push(m.result.offset as number);
          for (const e of m.result.events as { offset: number; epoch: string }[]) take(e);
          if (out.reconnects === 0) ready();
        } else if (m.push === 'event' && m.event) take(m.event);
      });
      ws.on('error', (err) => {
        if (active) reject(err);
      });
    };
    attach();
  });
}

describe('WebSocket resume', () => {
  let h: Harness;
  before(async () => {
    // History holds the whole stream, so every resume position is inside it.
    h = await startHarness({ hub: { namespaces: { '': { historySize: 2 * EVENTS } } } });
  });
  after(() => h.stop());

  test(`${SUBSCRIBERS} subscribers each dropped once mid-stream resume with since and see offsets 1..${EVENTS} exactly once, in order`, async () => {
    let readyCount = 0;
    let allReady: () => void = () => {};
    const subscribed = new Promise<void>((resolve) => (allReady = resolve));
    const onReady = (): void => {
      if (++readyCount === SUBSCRIBERS) allReady();
    };
    const runs = Array.from({ length: SUBSCRIBERS }, (_, i) => subscriber(h.url, 50 + ((i * 97) % 900), onReady));
    await withTimeout(subscribed, 10_000, 'all subscriptions');

    // Publish while the subscribers are being dropped and are resuming.
    for (let n = 1; n <= EVENTS; n++) {
      await h.hub.publish(CHANNEL, { n });
      if (n % 10 === 0) await new Promise((resolve) => setImmediate(resolve));
    }
    const outcomes = await withTimeout(Promise.all(runs), 15_000, 'every subscriber to see the last event');

    const midStream = outcomes.filter((o) => o.answeredAt[1]! < EVENTS).length;
    assert.ok(midStream >= SUBSCRIBERS / 2, `only ${midStream} resumed while events were still being published`);
    const expected = Array.from({ length: EVENTS }, (_, i) => i + 1);
    outcomes.forEach((o, i) => {
      assert.equal(o.reconnects, 1, `subscriber ${i} was dropped once`);
      assert.deepEqual(o.recovered, [true, true], `subscriber ${i} resumed inside history`);
      assert.deepEqual(o.offsets, expected, `subscriber ${i} saw every offset once, in order`);
    });
  });
});
