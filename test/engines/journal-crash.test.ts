import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { cpSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { after, describe, it } from 'node:test';
import { createJournalEngine, type JournalEngine } from '../../src/engines/journal/index.js';
import { channelOptions, removeTempDirs, req, tempDir } from '../fixtures/journal.js';

after(removeTempDirs);

const root = fileURLToPath(new URL('../../', import.meta.url));
const fixture = fileURLToPath(new URL('../fixtures/journal-publisher.ts', import.meta.url));
const opts = channelOptions({ historySize: 1_000_000 });

interface Acked {
  /** channel → acknowledged offsets */
  offsets: Map<string, Set<number>>;
  epochs: Set<string>;
  count: number;
}

/** Runs the publisher until it has acknowledged `atLeast` events, then SIGKILLs it. */
async function publishThenKill(dir: string, fsync: string, bootId: string, atLeast: number): Promise<Acked> {
  const child = spawn(process.execPath, ['--import', 'tsx', fixture, dir, fsync, bootId], { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] });
  const acked: Acked = { offsets: new Map(), epochs: new Set(), count: 0 };
  let buffered = '';
  let killed = false;
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (chunk: string) => {
    buffered += chunk;
    const lines = buffered.split('\n');
    buffered = lines.pop()!; // a line cut by the kill was not fully printed: not counted
    for (const line of lines) {
      const [kind, channel, offset, epoch] = line.split(' ');
      if (kind !== 'ack') continue;
      let set = acked.offsets.get(channel!);
      if (!set) acked.offsets.set(channel!, (set = new Set()));
      set.add(Number(offset));
      acked.epochs.add(epoch!);
      acked.count++;
    }
    if (!killed && acked.count >= atLeast) {
      killed = true;
      child.kill('SIGKILL');
    }
  });
  const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve) => child.on('close', (c, s) => resolve([c, s])));
  assert.equal(signal, 'SIGKILL', `publisher exited on its own (code ${code})`);
  return acked;
}

async function open(dir: string, fsync: 'always' | 'never', bootId: string): Promise<JournalEngine> {
  const engine = createJournalEngine({ dir, fsync, bootId, channelOptions: () => opts, segmentBytes: 64 * 1024 });
  await engine.start({ onEvent() {} });
  return engine;
}

/** Every acknowledged offset is in history, history is 1..offset without a hole, all in `epoch`. */
async function assertEverythingAcknowledgedIsThere(engine: JournalEngine, acked: Acked, epoch: string): Promise<void> {
  for (const [channel, offsets] of acked.offsets) {
    const h = await engine.history(channel, {}, opts);
    assert.equal(h.epoch, epoch);
    const stored = h.events.map((e) => e.offset);
    assert.deepEqual(stored, Array.from({ length: h.offset }, (_, i) => i + 1), `${channel}: history is 1..${h.offset}`);
    const missing = [...offsets].filter((o) => o > h.offset);
    assert.deepEqual(missing, [], `${channel}: acknowledged events missing after the crash`);
    assert.ok(h.events.every((e) => e.epoch === epoch && e.channel === channel));
    const next = (await engine.publish(req(channel, 'after the crash', opts))).event;
    assert.deepEqual([next.offset, next.epoch], [h.offset + 1, epoch]);
  }
}

describe('journal crash recovery (real processes, SIGKILL)', () => {
  it('with fsync always, every acknowledged event survives a SIGKILL mid-stream, in the same epoch', async () => {
    const dir = tempDir();
    const acked = await publishThenKill(dir, 'always', 'boot-1', 1500);
    assert.equal(acked.epochs.size, 1);
    const [epoch] = acked.epochs;
    // A different boot id: with `always` even a power cut loses nothing acknowledged.
    const engine = await open(dir, 'always', 'boot-2');
    assert.deepEqual([engine.journal.startInfo!.clean, engine.journal.startInfo!.lossy], [false, false]);
    await assertEverythingAcknowledgedIsThere(engine, acked, epoch!);
    await engine.close();
  });

  it('with fsync never, a process crash on the same boot loses nothing; after a reboot the channels get a new epoch', async () => {
    const dir = tempDir();
    const acked = await publishThenKill(dir, 'never', 'boot-1', 3000);
    const [epoch] = acked.epochs;
    const rebootCopy = tempDir();
    cpSync(dir, rebootCopy, { recursive: true });

    const same = await open(dir, 'never', 'boot-1');
    assert.equal(same.journal.startInfo!.lossy, false);
    await assertEverythingAcknowledgedIsThere(same, acked, epoch!);
    await same.close();

    const rebooted = await open(rebootCopy, 'never', 'boot-2');
    assert.equal(rebooted.journal.startInfo!.lossy, true);
    const fresh = rebooted.journal.startInfo!.epoch;
    assert.notEqual(fresh, epoch);
    for (const channel of acked.offsets.keys()) {
      const h = await rebooted.history(channel, { since: { epoch: epoch!, offset: 1 } }, opts);
      assert.equal(h.recovered, false, 'an old position is never silently continued');
    }
    await assertEverythingAcknowledgedIsThere(rebooted, acked, fresh);
    await rebooted.close();
  });
});
