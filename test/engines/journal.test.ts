import assert from 'node:assert/strict';
import { cpSync, existsSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { Hub, type Subscriber } from '../../src/core/hub.js';
import type { OutgoingEvent } from '../../src/core/outgoing.js';
import { createJournalEngine, parseFsync, type JournalEngine, type JournalEngineOptions } from '../../src/engines/journal/index.js';
import { RecordType } from '../../src/engines/journal/record.js';
import { segmentName } from '../../src/engines/journal/writer.js';
import { HeraldError, type HeraldEvent } from '../../src/protocol/index.js';
import { engineContract } from '../contract/engine.js';
import { channelOptions, flipBit, recordingLogger, records, removeCloseMarker, removeTempDirs, req, segmentFiles, tempDir } from '../fixtures/journal.js';

after(removeTempDirs);

engineContract('journal (fsync always)', () => createJournalEngine({ dir: tempDir(), fsync: 'always' }));
engineContract('journal (fsync never)', () => createJournalEngine({ dir: tempDir(), fsync: 'never' }));
engineContract('journal (fsync every 5 ms)', () => createJournalEngine({ dir: tempDir(), fsync: 5 }));

async function open(options: JournalEngineOptions): Promise<JournalEngine> {
  const engine = createJournalEngine(options);
  await engine.start({ onEvent() {} });
  return engine;
}

const opts = channelOptions();

async function publishMany(engine: JournalEngine, channel: string, n: number, options = opts): Promise<HeraldEvent[]> {
  const out: HeraldEvent[] = [];
  for (let i = 1; i <= n; i++) out.push((await engine.publish(req(channel, { i }, options))).event);
  return out;
}

function collector(): Subscriber & { events: HeraldEvent[] } {
  const events: HeraldEvent[] = [];
  return { client: { id: 'c' + Math.random().toString(36).slice(2), transport: 'test' }, events, deliver: (out: OutgoingEvent) => void events.push(JSON.parse(out.json) as HeraldEvent) };
}

describe('journal restarts', () => {
  it('after a clean restart history, offsets and epoch are the same, and a subscriber resumes with exactly the missed events', async () => {
    const dir = tempDir();
    const namespaces = { '': { historySize: 50 } };
    let hub!: Hub;
    const engine = () => createJournalEngine({ dir, fsync: 'always', channelOptions: (ch) => hub.namespaces.forChannel(ch).channel });
    hub = new Hub({ engine: engine(), namespaces });
    await hub.start();
    const sub = collector();
    await hub.subscribe(sub, 'news');
    for (let i = 1; i <= 5; i++) await hub.publish('news', { i });
    assert.deepEqual(sub.events.map((e) => e.offset), [1, 2, 3, 4, 5]);
    const seen = sub.events.at(-1)!;
    await hub.unsubscribe(sub, 'news');
    for (let i = 6; i <= 8; i++) await hub.publish('news', { i });
    const emptyBefore = await hub.history('quiet', {});
    const before = await hub.history('news', {});
    await hub.close();

    hub = new Hub({ engine: engine(), namespaces });
    await hub.start();
    assert.deepEqual(await hub.history('news', {}), before);
    assert.deepEqual(await hub.history('quiet', {}), emptyBefore); // a channel at offset 0 keeps its epoch too
    const again = collector();
    const resumed = await hub.subscribe(again, 'news', { epoch: seen.epoch, offset: seen.offset });
    assert.equal(resumed.recovered, true);
    assert.equal(resumed.epoch, seen.epoch);
    assert.deepEqual(resumed.events.map((e) => [e.offset, e.data]), [[6, { i: 6 }], [7, { i: 7 }], [8, { i: 8 }]]);
    assert.deepEqual(resumed.events, before.events.slice(5));
    const next = await hub.publish('news', { i: 9 });
    assert.deepEqual([next.offset, next.epoch], [9, seen.epoch]);
    assert.deepEqual(again.events.map((e) => e.offset), [9]);
    await hub.close();
  });

  it('close drains publishes in flight, fsyncs and marks the journal clean', async () => {
    const dir = tempDir();
    const a = await open({ dir, fsync: 'never', channelOptions: () => opts });
    const pending = Array.from({ length: 300 }, (_, i) => a.publish(req('drain', i)));
    const closing = a.close();
    const results = await Promise.all(pending);
    await closing;
    assert.deepEqual(results.map((r) => r.event.offset), Array.from({ length: 300 }, (_, i) => i + 1));
    assert.equal(records(segmentFiles(dir).at(-1)!).at(-1)!.type, RecordType.close);
    await assert.rejects(a.publish(req('drain', 'late')), { code: 'unavailable' });
    const b = await open({ dir, fsync: 'never', channelOptions: () => opts });
    assert.deepEqual(b.journal.startInfo && [b.journal.startInfo.clean, b.journal.startInfo.lossy], [true, false]);
    const h = await b.history('drain', {}, opts);
    assert.equal(h.offset, 300);
    assert.equal(h.events.length, 300);
    await b.close();
  });

  it('events up to the 64 KiB message size survive a restart byte for byte', async () => {
    const dir = tempDir();
    const a = await open({ dir, segmentBytes: 4096, channelOptions: () => opts });
    const big = { text: 'é'.repeat(32_000), lines: 'a\nb\r\n'.repeat(50) }; // ~64 KB of UTF-8, newlines included
    const r = await a.publish(req('big', big));
    const small = await a.publish(req('big', 'after'));
    await a.close();
    const b = await open({ dir, segmentBytes: 4096, channelOptions: () => opts });
    const h = await b.history('big', {}, opts);
    assert.deepEqual(h.events, [r.event, small.event]);
    assert.ok(Buffer.byteLength(r.json) > 64_000);
    await b.close();
  });

  it('a channel with history size 0 keeps its offset and epoch across restarts', async () => {
    const dir = tempDir();
    const none = channelOptions({ historySize: 0 });
    const a = await open({ dir, channelOptions: () => none, segmentBytes: 4096 });
    const first = (await a.publish(req('counter', 1, none))).event;
    for (let i = 2; i <= 200; i++) await a.publish(req('counter', i, none));
    await a.close();
    const b = await open({ dir, channelOptions: () => none, segmentBytes: 4096 });
    const h = await b.history('counter', {}, none);
    assert.deepEqual([h.epoch, h.offset, h.events.length], [first.epoch, 200, 0]);
    assert.equal((await b.publish(req('counter', 201, none))).event.offset, 201);
    await b.close();
  });

  it('replay drops events past their time-to-live but keeps the offset', async () => {
    const dir = tempDir();
    let now = 1_000_000;
    const ttl = channelOptions({ historyTtlMs: 1000 });
    const a = await open({ dir, now: () => now, channelOptions: () => ttl });
    await a.publish(req('ttl', 1, ttl));
    now += 600;
    await a.publish(req('ttl', 2, ttl));
    await a.close();
    now += 600; // event 1 is 1200 ms old, event 2 600 ms
    const b = await open({ dir, now: () => now, channelOptions: () => ttl });
    const h = await b.history('ttl', {}, ttl);
    assert.deepEqual([h.offset, h.events.map((e) => e.data)], [2, [2]]);
    await b.close();
  });
});

describe('journal crash rules', () => {
  it('an unclean stop with fsync never keeps the epoch on the same boot, and starts a new epoch after a reboot', async () => {
    const dir = tempDir();
    const a = await open({ dir, fsync: 'never', bootId: 'boot-1' });
    const events = await publishMany(a, 'feed', 5);
    await a.close();
    removeCloseMarker(dir); // as if the process died right after its last write
    const copy = tempDir();
    cpSync(dir, copy, { recursive: true });
    const old = events[0]!.epoch;

    const sameBoot = await open({ dir, fsync: 'never', bootId: 'boot-1' });
    assert.deepEqual([sameBoot.journal.startInfo!.clean, sameBoot.journal.startInfo!.lossy], [false, false]);
    const kept = await sameBoot.history('feed', { since: { epoch: old, offset: 2 } }, opts);
    assert.deepEqual([kept.recovered, kept.epoch, kept.events.map((e) => e.offset)], [true, old, [3, 4, 5]]);
    await sameBoot.close();

    const log = recordingLogger();
    const rebooted = await open({ dir: copy, fsync: 'never', bootId: 'boot-2', logger: log });
    assert.equal(rebooted.journal.startInfo!.lossy, true);
    assert.ok(log.lines.some((l) => l.level === 'warn' && /new epoch/.test(l.msg)));
    const fresh = await rebooted.history('feed', { since: { epoch: old, offset: 2 } }, opts);
    assert.equal(fresh.recovered, false);
    assert.notEqual(fresh.epoch, old);
    assert.deepEqual(fresh.events.map((e) => [e.offset, e.epoch, e.data]), events.map((e) => [e.offset, fresh.epoch, e.data]));
    const next = (await rebooted.publish(req('feed', 6))).event;
    assert.deepEqual([next.offset, next.epoch], [6, fresh.epoch]);
    assert.equal((await rebooted.history('never-published', {}, opts)).epoch, fresh.epoch);
    await rebooted.close();
    // The new epoch is itself durable.
    const later = await open({ dir: copy, fsync: 'never', bootId: 'boot-2' });
    const h = await later.history('feed', {}, opts);
    assert.deepEqual([h.epoch, h.offset, h.events.length, later.journal.startInfo!.lossy], [fresh.epoch, 6, 6, false]);
    await later.close();
  });

  it('an unclean stop with fsync always keeps the epoch even after a reboot', async () => {
    const dir = tempDir();
    const a = await open({ dir, fsync: 'always', bootId: 'boot-1' });
    const events = await publishMany(a, 'feed', 3);
    await a.close();
    removeCloseMarker(dir);
    const b = await open({ dir, fsync: 'always', bootId: 'boot-2' });
    const h = await b.history('feed', {}, opts);
    assert.deepEqual([b.journal.startInfo!.lossy, h.epoch, h.offset], [false, events[0]!.epoch, 3]);
    await b.close();
  });

  for (const damage of ['truncated', 'flipped bit'] as const) {
    it(`a last record with a ${damage} is dropped, every good record kept and the next publish continues`, async () => {
      const dir = tempDir();
      const a = await open({ dir, fsync: 'always' });
      const events = await publishMany(a, 'tail', 10);
      await a.close();
      const file = removeCloseMarker(dir);
      const last = records(file).at(-1)!;
      assert.equal(last.type, RecordType.event);
      if (damage === 'truncated') truncateSync(file, last.start + 20);
      else flipBit(file, last.start + 12 + 5);

      const log = recordingLogger();
      const b = await open({ dir, fsync: 'always', logger: log });
      assert.ok(log.lines.some((l) => l.level === 'warn' && /torn tail truncated/.test(l.msg) && l.obj.at === last.start));
      assert.equal(log.lines.filter((l) => l.level === 'error').length, 0);
      assert.equal(statSync(file).size, last.start);
      const h = await b.history('tail', {}, opts);
      assert.deepEqual(h.events, events.slice(0, 9));
      assert.deepEqual([h.epoch, h.offset, b.journal.startInfo!.lossy], [events[0]!.epoch, 9, false]);
      const next = (await b.publish(req('tail', 'again'))).event;
      assert.deepEqual([next.offset, next.epoch], [10, events[0]!.epoch]);
      await b.close();
    });
  }

  it('corruption inside an older segment stops that segment, is logged as an error, and the channel continues in a new epoch without a gap', async () => {
    const dir = tempDir();
    const a = await open({ dir, fsync: 'never', segmentBytes: 4096 });
    const events = await publishMany(a, 'long', 100);
    await a.close();
    const files = segmentFiles(dir);
    assert.ok(files.length >= 3, `expected several segments, got ${files.length}`);
    const firstRecords = records(files[0]!);
    const inFirst = firstRecords.filter((r) => r.type === RecordType.event).length;
    flipBit(files[0]!, firstRecords[5]!.start + 14);

    const log = recordingLogger();
    const b = await open({ dir, fsync: 'never', segmentBytes: 4096, logger: log });
    assert.ok(log.lines.some((l) => l.level === 'error' && /corrupt record/.test(l.msg)));
    assert.deepEqual([b.journal.startInfo!.damaged, b.journal.startInfo!.lossy], [true, true]);
    const h = await b.history('long', { since: { epoch: events[0]!.epoch, offset: 50 } }, opts);
    assert.equal(h.recovered, false);
    assert.notEqual(h.epoch, events[0]!.epoch);
    assert.deepEqual(h.events.map((e) => e.offset), Array.from({ length: 100 - inFirst }, (_, i) => inFirst + 1 + i));
    assert.equal((await b.publish(req('long', 101))).event.offset, 101);
    await b.close();
    assert.equal(existsSync(files[0]!), false, 'the damaged segment is no longer replayed');
    assert.equal(existsSync(files[0]! + '.damaged'), true, 'it is kept aside for inspection');
  });

  it('a damaged segment still holding retained events of another channel is rewritten, so the next start keeps the epoch', async () => {
    const dir = tempDir();
    const a = await open({ dir, fsync: 'always', segmentBytes: 4096, channelOptions: () => opts });
    const quiet = await publishMany(a, 'quiet', 3);
    const loud = await publishMany(a, 'loud', 100);
    await a.close();
    const [first] = segmentFiles(dir);
    const loudRecord = records(first!).find((r) => r.type === RecordType.event && r.payload.includes('"loud"'))!;
    flipBit(first!, loudRecord.start + 14);

    const b = await open({ dir, fsync: 'always', segmentBytes: 4096, channelOptions: () => opts });
    const epoch = b.journal.startInfo!.epoch;
    assert.deepEqual([b.journal.startInfo!.damaged, b.journal.startInfo!.lossy], [true, true]);
    const q = await b.history('quiet', {}, opts);
    assert.deepEqual(q.events.map((e) => [e.offset, e.epoch, e.id, e.data]), quiet.map((e) => [e.offset, epoch, e.id, e.data]));
    assert.equal((await b.history('loud', {}, opts)).offset, 100);
    await b.close();
    assert.equal(existsSync(first!), false);
    assert.equal(existsSync(first! + '.damaged'), true);

    const log = recordingLogger();
    const c = await open({ dir, fsync: 'always', segmentBytes: 4096, channelOptions: () => opts, logger: log });
    assert.deepEqual([c.journal.startInfo!.clean, c.journal.startInfo!.lossy, c.journal.startInfo!.epoch], [true, false, epoch]);
    assert.equal(log.lines.filter((l) => l.level === 'error').length, 0);
    assert.deepEqual((await c.history('quiet', {}, opts)).events, q.events);
    assert.equal(loud.length, 100);
    await c.close();
  });
});

describe('journal write failures', () => {
  it('a failed write makes the engine unavailable without consuming an offset, and a restart continues from the last good record', async () => {
    const dir = tempDir();
    const availability: boolean[] = [];
    const log = recordingLogger();
    const engine = createJournalEngine({ dir, fsync: 'always', segmentBytes: 4096, logger: log, channelOptions: () => opts });
    await engine.start({ onEvent() {}, onAvailability: (up) => void availability.push(up) });
    // Occupy the next segment's name: the rotation's exclusive create fails (EEXIST), a real I/O error.
    writeFileSync(join(dir, segmentName(2)), '');
    const acked: number[] = [];
    let failure: unknown;
    for (let i = 1; i <= 200 && failure === undefined; i++) {
      await engine.publish(req('w', { i, pad: 'x'.repeat(100) })).then(
        (r) => void acked.push(r.event.offset),
        (err: unknown) => void (failure = err),
      );
    }
    assert.ok(failure instanceof HeraldError && failure.code === 'unavailable', 'a publish failed with unavailable');
    assert.equal(((failure as HeraldError).cause as NodeJS.ErrnoException).code, 'EEXIST');
    assert.deepEqual(acked, Array.from({ length: acked.length }, (_, i) => i + 1));
    assert.deepEqual([engine.available(), availability], [false, [false]]);
    assert.equal((await engine.history('w', {}, opts)).offset, acked.length, 'no offset consumed by the failed publish');
    await assert.rejects(engine.publish(req('w', 'later')), { code: 'unavailable' });
    assert.ok(log.lines.some((l) => l.level === 'error' && /add-on failed/.test(l.msg)));
    await engine.close();

    const restarted = await open({ dir, fsync: 'always', segmentBytes: 4096, channelOptions: () => opts });
    const h = await restarted.history('w', {}, opts);
    // The failed batch may have reached the disk before the failure: never less than what was acknowledged.
    assert.ok(h.offset >= acked.length);
    assert.deepEqual(h.events.map((e) => e.offset), Array.from({ length: h.offset }, (_, i) => i + 1));
    assert.equal((await restarted.publish(req('w', 'next'))).event.offset, h.offset + 1);
    await restarted.close();
  });
});

describe('journal options', () => {
  it('parses --fsync values and refuses others naming the key', () => {
    assert.equal(parseFsync('always'), 'always');
    assert.equal(parseFsync('never'), 'never');
    assert.equal(parseFsync('10'), 10);
    for (const bad of ['0', '-1', '1.5', 'sometimes', '60001', '']) assert.throws(() => parseFsync(bad), /^Error: fsync: /);
    assert.throws(() => createJournalEngine({ dir: '' }), /"dir"/);
    assert.throws(() => createJournalEngine({ dir: tempDir(), segmentBytes: 10 }), /"segmentBytes"/);
  });
});
