import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { runBench } from '../../src/cli/bench.js';
import { Histogram } from '../../src/cli/bench/histogram.js';
import { parseBenchArgs } from '../../src/cli/bench/options.js';
import { formatTable, ratios, type BenchReport, type ScenarioResult } from '../../src/cli/bench/report.js';
import { SubState, Verifier, epochMatches, scanEvent, scanned } from '../../src/cli/bench/verify.js';

const root = fileURLToPath(new URL('../../', import.meta.url));

/** Runs src/cli/bench.ts in its own process (it installs signal handlers and forks). */
function bench(args: string[], timeoutMs: number): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const script = `const { runBench } = await import(${JSON.stringify(new URL('../../src/cli/bench.ts', import.meta.url).href)});
process.exitCode = await runBench(JSON.parse(process.argv[1]));`;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script, JSON.stringify(args)], { cwd: root });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      if (child.pid !== undefined) process.kill(child.pid, 'SIGINT');
      reject(new Error(`bench did not finish within ${timeoutMs} ms\n${stderr}`));
    }, timeoutMs);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

describe('herald bench', () => {
  it('verifies every delivery on herald and on the baseline and reports sane figures', { timeout: 40_000 }, async () => {
    assert.ok(existsSync(`${root}dist/cli/main.js`), 'run `npm run build` first: the benchmark starts bin/herald.js');
    const run = await bench(['--subscribers', '20', '--rate', '50', '--repeat', '2', '--duration', '1', '--warmup', '0', '--json', '--baseline', '--quiet'], 35_000);
    assert.equal(run.code, 0, `exit ${run.code}\n${run.stderr}\n${run.stdout}`);
    const report = JSON.parse(run.stdout) as BenchReport;
    assert.equal(report.ok, true);
    // Two rounds; the second lets the baseline go first.
    assert.deepEqual(report.results.map((r) => r.server), ['herald', 'baseline', 'baseline', 'herald']);
    for (const r of report.results) {
      assert.equal(r.transport, 'ws');
      assert.equal(r.subscribers, 20);
      assert.equal(r.published, 50);
      assert.equal(r.expected, 1000);
      assert.equal(r.delivered, 1000, `${r.server} delivered`);
      assert.deepEqual(r.integrity, { lost: 0, duplicates: 0, reordered: 0, late: 0, invalid: 0 });
      assert.deepEqual(r.disconnects, {});
      assert.ok(r.deliveriesPerSec > 500 && r.deliveriesPerSec <= 1000, `${r.server} deliveries/s ${r.deliveriesPerSec}`);
      assert.ok(r.latencyMs.p50 > 0 && r.latencyMs.p50 <= r.latencyMs.p99 && r.latencyMs.p99 <= r.latencyMs.max && r.latencyMs.max < 5_000, `${r.server} latency ${JSON.stringify(r.latencyMs)}`);
      assert.ok(r.serverCpuUsPerDelivery !== null && r.serverCpuUsPerDelivery >= 0 && r.serverCpuUsPerDelivery < 10_000, `${r.server} CPU/delivery ${r.serverCpuUsPerDelivery}`);
      assert.ok(r.serverRssMiB !== null && r.serverRssMiB > 10 && r.serverRssMiB < 2_000, `${r.server} RSS ${r.serverRssMiB}`);
      // At least one event per socket read, and no more than a subscriber was sent.
      assert.ok(r.eventsPerBatch !== null && r.eventsPerBatch >= 1 && r.eventsPerBatch <= 50, `${r.server} events per batch ${r.eventsPerBatch}`);
    }
    assert.match(formatTable(report), /Events per batch at the subscribers[^\n]*herald@50 \d+\.\d/);
    assert.equal(report.ratios.length, 1);
    assert.equal(report.ratios[0]!.rate, 50);
    assert.equal(report.ratios[0]!.rounds, 2);
    assert.deepEqual(report.idle.map((i) => [i.server, i.connections]), [['herald', 20], ['baseline', 20]]);
    for (const i of report.idle) assert.ok(i.rssIdleMiB > 10 && Number.isInteger(i.bytesPerConnection), JSON.stringify(i));
    assert.ok(report.ratios[0]!.deliveriesPerSec! > 0.5 && report.ratios[0]!.deliveriesPerSec! < 2);
  });

  it('pools the rounds of a rate: CPU per delivery is total CPU over total deliveries', () => {
    const round = (server: 'herald' | 'baseline', scenario: number, cpu: number, delivered: number, dps: number, p50: number): ScenarioResult =>
      ({ server, scenario, rate: 50, serverCpuUsPerDelivery: cpu, delivered, deliveriesPerSec: dps, latencyMs: { p50, p99: p50 * 2 }, serverRssMiB: 10 + scenario }) as unknown as ScenarioResult;
    const [q] = ratios([
      round('herald', 0, 10, 1000, 100, 1), round('baseline', 0, 10, 2000, 100, 2),
      round('baseline', 1, 10, 2000, 300, 4), round('herald', 1, 20, 3000, 300, 3),
      round('herald', 2, 10, 1000, 200, 5), round('baseline', 2, 10, 2000, 200, 6),
    ]);
    assert.equal(q!.rounds, 3);
    assert.equal(q!.scenario, 2);
    assert.equal(q!.cpuUsPerDelivery, Math.round((80_000 / 5_000 / 10) * 100) / 100);
    assert.equal(q!.deliveriesPerSec, 1);
    assert.equal(q!.p50, Math.round((3 / 4) * 100) / 100);
  });

  it('answers usage errors with exit status 2 and starts nothing', async () => {
    assert.equal(await runBench(['--rate', '0']), 2);
    assert.equal(await runBench(['--transport', 'carrier-pigeon']), 2);
    assert.equal(await runBench(['--url', 'http://example.com:8080']), 2);
    assert.equal(await runBench(['--subscribers']), 2);
    assert.equal(await runBench(['--repeat', '0']), 2);
  });

  it('reads flags with their defaults and refuses remote targets unless allowed', () => {
    const d = parseBenchArgs([]);
    assert.equal(d.subscribers, 1000);
    assert.deepEqual(d.rates, [10, 50, 200, 1000]);
    assert.equal(d.transport, 'ws');
    const o = parseBenchArgs(['--rate=5,7.5', '--url', 'http://[::1]:9000/', '--pid', '42', '--json']);
    assert.deepEqual(o.rates, [5, 7.5]);
    assert.equal(o.url, 'http://[::1]:9000');
    assert.equal(o.pid, 42);
    assert.throws(() => parseBenchArgs(['--url', 'http://10.0.0.1:8080']), /--allow-remote/);
    assert.equal(parseBenchArgs(['--url', 'http://10.0.0.1:8080', '--allow-remote']).url, 'http://10.0.0.1:8080');
    assert.deepEqual(parseBenchArgs(['--', '--config', 'x.yaml']).serverArgs, ['--config', 'x.yaml']);
    assert.equal(parseBenchArgs(['--transport', 'sse']).baselineTransport, 'sse');
    const mixed = parseBenchArgs(['--transport', 'poll', '--baseline-transport', 'ws']);
    assert.deepEqual([mixed.transport, mixed.baselineTransport, mixed.baseline], ['poll', 'ws', true]);
    assert.throws(() => parseBenchArgs(['--baseline-transport', 'smoke']), /--baseline-transport must be ws, sse or poll/);
  });

  it('--baseline-transport: herald on long-poll against the WebSocket baseline, in one run', { timeout: 40_000 }, async () => {
    const run = await bench(['--subscribers', '20', '--rate', '50', '--duration', '1', '--warmup', '0', '--transport', 'poll', '--baseline-transport', 'ws', '--json', '--quiet'], 35_000);
    assert.equal(run.code, 0, `exit ${run.code}\n${run.stderr}\n${run.stdout}`);
    const report = JSON.parse(run.stdout) as BenchReport;
    assert.equal(report.ok, true);
    const text = formatTable(report);
    assert.match(text, /herald bench: poll \(baseline: ws\)/);
    assert.match(text, /Its subscribers use ws, herald's poll/);
    assert.match(text, /herald\/baseline\s+50/);
    assert.match(text, /Idle subscribers \(herald poll, baseline ws\)/);
    assert.doesNotMatch(text, /Idle subscribers[^\n]*herald\/baseline/, 'no idle-bytes ratio across two transports');
    assert.deepEqual(report.results.map((r) => [r.server, r.transport, r.delivered]), [['herald', 'poll', 1000], ['baseline', 'ws', 1000]]);
    const poll = report.results[0]!;
    assert.ok(poll.eventsPerBatch !== null && poll.eventsPerBatch >= 1, `events per poll answer ${poll.eventsPerBatch}`);
  });
});

describe('bench verification', () => {
  const event = (offset: number, epoch = 'e1', t = 1000, m = 0): Buffer =>
    Buffer.from(JSON.stringify({ push: 'event', event: { channel: 'bench', offset, epoch, id: 'x', timestamp: 1, data: { t, m, pad: 'xx' } } }));

  function feed(v: Verifier, sub: SubState, offsets: number[]): void {
    for (const o of offsets) {
      const buf = event(o);
      assert.ok(scanEvent(buf, 0, buf.length));
      v.event(sub, scanned.offset, epochMatches(buf, sub), scanned.t, scanned.m, 2000);
    }
  }

  it('counts loss, duplicates and reorders per subscriber', () => {
    const v = new Verifier('bench');
    const sub = new SubState(0);
    sub.start('e1', 10);
    feed(v, sub, [11, 12, 14, 13, 13, 16]);
    assert.deepEqual(v.takeIntegrity(), { lost: 1, duplicates: 1, reordered: 1, late: 0, invalid: 0 });
    assert.equal(sub.position, 16);
    const s = v.takeScenario(0);
    assert.equal(s.delivered, 5);
    assert.equal(s.batches, 0, 'no batch was begun');
    assert.equal(s.latency.count, 5);
    assert.equal(s.latency.max, 1000);
  });

  it('counts a batch once, for the scenario of its first counted delivery', () => {
    const v = new Verifier('bench');
    const sub = new SubState(0);
    sub.start('e1', 0);
    v.beginBatch();
    feed(v, sub, [1, 2, 3]);
    v.beginBatch();
    feed(v, sub, [3, 4]); // a duplicate first: the batch counts at 4
    v.beginBatch();
    feed(v, sub, [5]);
    const s = v.takeScenario(0);
    assert.deepEqual([s.delivered, s.batches], [5, 3]);
  });

  it('reads the fields of an event wherever they are and flags another epoch', () => {
    const buf = Buffer.from('xx{"data":{"pad":"x","m":3,"t":77},"epoch":"e2","offset":5}yy');
    assert.ok(scanEvent(buf, 2, buf.length - 2));
    assert.deepEqual({ offset: scanned.offset, t: scanned.t, m: scanned.m }, { offset: 5, t: 77, m: 3 });
    const sub = new SubState(1);
    sub.start('e1', 4);
    assert.equal(epochMatches(buf, sub), false);
    assert.equal(scanEvent(Buffer.from('{"push":"join","channel":"bench"}'), 0, 33), false);
  });

  it('keeps percentiles within the histogram precision', () => {
    const h = new Histogram();
    for (let v = 1; v <= 10_000; v++) h.record(v);
    const s = h.summary();
    assert.ok(Math.abs(s.p50 - 5) / 5 < 0.02, `p50 ${s.p50}`);
    assert.ok(Math.abs(s.p99 - 9.9) / 9.9 < 0.02, `p99 ${s.p99}`);
    assert.equal(s.max, 10);
    const merged = new Histogram();
    merged.merge(h.toJSON());
    assert.deepEqual(merged.summary(), s);
  });
});
