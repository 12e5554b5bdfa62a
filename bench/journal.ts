/**
 * Journal throughput and acknowledgement latency per fsync policy, against the plain memory engine
 * in the same run (the baseline). Run: node --import tsx bench/journal.ts [publishes] [concurrency]
 *
 * Two workloads per engine: `concurrent` keeps N publishes in flight over 16 channels (group
 * commit at work), `sequential` awaits each publish before the next (one client's latency).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ChannelOptions, Engine } from '../src/core/engine.js';
import { createJournalEngine, type FsyncPolicy } from '../src/engines/journal/index.js';
import { MemoryEngine } from '../src/engines/memory.js';

const total = Number(process.argv[2] ?? 50_000);
const concurrency = Number(process.argv[3] ?? 64);
const sequentialTotal = Math.max(500, Math.floor(total / 20));
const options: ChannelOptions = { historySize: 250, historyTtlMs: 0, deleteAfterRead: false };
const channels = Array.from({ length: 16 }, (_, i) => `bench:${i}`);
const data = { text: 'x'.repeat(100), n: 0 };
const dataJson = JSON.stringify(data);

interface Result {
  perSecond: number;
  p50: number;
  p99: number;
}

async function run(engine: Engine, n: number, inFlight: number): Promise<Result> {
  const latencies = new Float64Array(n);
  let next = 0;
  const started = process.hrtime.bigint();
  async function worker(): Promise<void> {
    while (next < n) {
      const i = next++;
      const t = process.hrtime.bigint();
      await engine.publish({ channel: channels[i % channels.length]!, data, dataJson, options });
      latencies[i] = Number(process.hrtime.bigint() - t) / 1e6;
    }
  }
  await Promise.all(Array.from({ length: inFlight }, worker));
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  latencies.sort();
  return { perSecond: n / seconds, p50: latencies[Math.floor(n * 0.5)]!, p99: latencies[Math.floor(n * 0.99)]! };
}

interface Config {
  name: string;
  fsync: string;
  create(dir: string): Engine;
}

const configs: Config[] = [
  { name: 'memory', fsync: '—', create: () => new MemoryEngine() },
  ...(['always', 10, 'never'] as FsyncPolicy[]).map((fsync) => ({
    name: 'journal',
    fsync: typeof fsync === 'number' ? `${fsync} ms` : fsync,
    create: (dir: string) => createJournalEngine({ dir, fsync, channelOptions: () => options }),
  })),
];

async function measure(config: Config, n: number, inFlight: number): Promise<Result> {
  const dir = mkdtempSync(join(tmpdir(), 'herald-bench-'));
  try {
    const engine = config.create(dir);
    await engine.start({ onEvent() {} });
    await run(engine, Math.min(2000, n), Math.min(inFlight, 16)); // warm-up
    const result = await run(engine, n, inFlight);
    await engine.close();
    return result;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const rows: string[][] = [];
for (const [workload, n, inFlight] of [
  [`concurrent (${concurrency} in flight)`, total, concurrency],
  ['sequential (1 in flight)', sequentialTotal, 1],
] as const) {
  let baseline: Result | undefined;
  for (const config of configs) {
    const r = await measure(config, n, inFlight);
    baseline ??= r;
    rows.push([
      workload,
      config.name,
      config.fsync,
      Math.round(r.perSecond).toLocaleString('en-US'),
      (r.perSecond / baseline.perSecond).toFixed(2) + '×',
      r.p50.toFixed(3),
      r.p99.toFixed(3),
      (r.p99 / baseline.p99).toFixed(1) + '×',
    ]);
  }
}

const header = ['workload', 'engine', 'fsync', 'publishes/s', 'vs memory', 'p50 ack ms', 'p99 ack ms', 'p99 vs memory'];
const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
const line = (cells: string[]): string => '| ' + cells.map((c, i) => (i >= 3 ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join(' | ') + ' |';
console.log(`node ${process.version}, ${total} publishes (concurrent) / ${sequentialTotal} (sequential), 16 channels, ~190-byte events, ${tmpdir()}`);
console.log(line(header));
console.log('|' + widths.map((w, i) => (i >= 3 ? '-'.repeat(w + 1) + ':' : '-'.repeat(w + 2))).join('|') + '|');
for (const r of rows) console.log(line(r));
