import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { after, describe, it } from 'node:test';
import { createJournalEngine } from '../../src/engines/journal/index.js';
import { channelOptions, dirBytes, removeTempDirs, req, segmentFiles, tempDir } from '../fixtures/journal.js';

after(removeTempDirs);

describe('journal retention', () => {
  it('disk use stays bounded over 100,000 publishes with history size 100, and a restart keeps the last 100 per channel', async () => {
    const dir = tempDir();
    const segmentBytes = 256 * 1024;
    const opts = channelOptions({ historySize: 100 });
    const channels = Array.from({ length: 10 }, (_, i) => `metrics:${i}`);
    const engine = createJournalEngine({ dir, fsync: 'never', segmentBytes, channelOptions: () => opts });
    await engine.start({ onEvent() {} });
    let largest = 0;
    let written = 0;
    for (let round = 0; round < 100; round++) {
      const batch = [];
      for (let i = 0; i < 1000; i++) {
        const data = { round, i, value: 'v'.repeat(100) };
        batch.push(engine.publish(req(channels[i % channels.length]!, data, opts)));
      }
      for (const r of await Promise.all(batch)) written += Buffer.byteLength(r.json);
      largest = Math.max(largest, dirBytes(dir));
    }
    await engine.flush();
    assert.ok(written > 15 * 1024 * 1024, `wrote ${written} bytes of events`);
    // Live data (10 × 100 events ≈ 180 KB) spans up to two segments, plus the one being written and
    // one waiting for the fsync that makes its deletion safe.
    assert.ok(largest <= 5 * segmentBytes, `disk peaked at ${largest} bytes, over 5 segments (${5 * segmentBytes})`);
    await engine.close();

    const restarted = createJournalEngine({ dir, fsync: 'never', segmentBytes, channelOptions: () => opts });
    await restarted.start({ onEvent() {} });
    for (const channel of channels) {
      const h = await restarted.history(channel, {}, opts);
      assert.equal(h.offset, 10_000);
      assert.deepEqual(h.events.map((e) => e.offset), Array.from({ length: 100 }, (_, i) => 9_901 + i));
    }
    await restarted.close();
    assert.ok(segmentFiles(dir).length <= 3, `segments left: ${segmentFiles(dir).length}`);
  });

  it('an idle channel does not pin old segments: it is compacted forward', async () => {
    const dir = tempDir();
    const segmentBytes = 16 * 1024;
    const opts = channelOptions({ historySize: 100 });
    const engine = createJournalEngine({ dir, fsync: 'never', segmentBytes, channelOptions: () => opts });
    await engine.start({ onEvent() {} });
    const idle = [];
    for (let i = 0; i < 5; i++) idle.push((await engine.publish(req('idle', i, opts))).event);
    const [firstSegment] = segmentFiles(dir);
    for (let round = 0; round < 10; round++) {
      await Promise.all(Array.from({ length: 500 }, (_, i) => engine.publish(req('busy', { round, i, pad: 'p'.repeat(80) }, opts))));
    }
    await engine.flush();
    assert.ok(dirBytes(dir) <= 5 * segmentBytes, `disk ${dirBytes(dir)} bytes`);
    assert.equal(existsSync(firstSegment!), false, 'the segment holding the idle channel was compacted away');
    await engine.close();
    const restarted = createJournalEngine({ dir, fsync: 'never', segmentBytes, channelOptions: () => opts });
    await restarted.start({ onEvent() {} });
    assert.deepEqual((await restarted.history('idle', {}, opts)).events, idle);
    await restarted.close();
  });
});
