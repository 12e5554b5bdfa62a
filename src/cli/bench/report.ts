/** What `herald bench` prints: the progress line, the result table and the JSON document. */
import { cpus, loadavg } from 'node:os';
import type { LatencySummary } from './histogram.js';
import type { Integrity } from './verify.js';
import type { BenchOptions } from './options.js';

export type ServerName = 'herald' | 'baseline';

export interface ScenarioResult {
  /** Position of the rate in --rate (herald's and the baseline's results of one rate share it). */
  scenario: number;
  server: ServerName;
  transport: string;
  /** Messages per second asked for. */
  rate: number;
  subscribers: number;
  /** Subscribers still connected at the end of the scenario. */
  connected: number;
  /** Messages published in the measured window. */
  published: number;
  /** Messages due in the window but not sent: the server was over a second behind answering publishes. */
  shed: number;
  /**
   * The rate was more than this machine could carry (publishes shed, or under 95% of
   * rate × subscribers delivered per second): deliveries/s is then the capacity, and latency
   * mostly the queue that built up.
   */
  saturated: boolean;
  /** published × subscribers connected at the start. */
  expected: number;
  delivered: number;
  /**
   * Deliveries ÷ batches the subscribers received them in: per poll answer for long-poll, per
   * socket read for WebSocket and SSE (a read can join several writes when the subscriber lags).
   * The server's write coalescing at work; null when nothing was delivered.
   */
  eventsPerBatch: number | null;
  /** Seconds from the first to the last delivery of the window, plus one publish interval (at least --duration). */
  seconds: number;
  deliveriesPerSec: number;
  latencyMs: LatencySummary;
  /** Server CPU (user + system) per delivery; null when the server's process cannot be read. */
  serverCpuUsPerDelivery: number | null;
  /** Server CPU as a percentage of one core over the window. */
  serverCpuPercent: number | null;
  serverRssMiB: number | null;
  serverRssMaxMiB: number | null;
  /** CPU of the subscriber processes as a percentage of one core (the load generator's own cost). */
  loadCpuPercent: number;
  integrity: Integrity;
  /** Close codes and reasons of subscribers the server disconnected, with counts. */
  disconnects: Record<string, number>;
  publishErrors: number;
  /** Whether every delivery was verified. */
  ok: boolean;
  problems: string[];
}

export interface Ratio {
  /** The last scenario of this rate (the table prints the ratio after it). */
  scenario: number;
  rate: number;
  /** Rounds pooled (--repeat). */
  rounds: number;
  /** herald ÷ baseline; null when the baseline figure is zero or missing. */
  deliveriesPerSec: number | null;
  p50: number | null;
  p99: number | null;
  cpuUsPerDelivery: number | null;
  rssMiB: number | null;
}

export interface ProfileSummary {
  server: ServerName;
  file: string;
  /** Self time by function, highest first, as a percentage of non-idle samples. */
  top: { percent: number; name: string; where: string }[];
}

export interface IdleFigure {
  server: ServerName;
  /** Subscribers open at once (every one connected and subscribed). */
  connections: number;
  /** Server RSS before the first subscriber, and with all of them open and idle for a second. */
  rssBeforeMiB: number;
  rssIdleMiB: number;
  /** (RSS idle - RSS before) ÷ connections. */
  bytesPerConnection: number;
}

export interface BenchReport {
  version: 1;
  config: Omit<BenchOptions, 'help' | 'json' | 'quiet' | 'apiKey'>;
  machine: { node: string; platform: string; arch: string; cpus: number; cpuModel: string; loadAverage: number[] };
  results: ScenarioResult[];
  ratios: Ratio[];
  /** What the open, idle subscribers cost each server, measured before the first rate. */
  idle: IdleFigure[];
  profiles: ProfileSummary[];
  ok: boolean;
  /** Why the run stopped before its last scenario, if it did. */
  error?: string;
}

function ratio(a: number | null | undefined, b: number | null | undefined): number | null {
  if (a === null || a === undefined || b === null || b === undefined || b === 0) return null;
  return Math.round((a / b) * 100) / 100;
}

/**
 * herald ÷ baseline per rate. With several rounds of a rate the figures are pooled: deliveries/s
 * as the ratio of the means, CPU per delivery as total CPU ÷ total deliveries of each server,
 * latency and RSS from the medians and maxima of the rounds.
 */
export function ratios(results: ScenarioResult[]): Ratio[] {
  const out: Ratio[] = [];
  const rates = [...new Set(results.map((r) => r.rate))];
  for (const rate of rates) {
    const h = results.filter((r) => r.rate === rate && r.server === 'herald');
    const b = results.filter((r) => r.rate === rate && r.server === 'baseline');
    if (h.length === 0 || b.length === 0) continue;
    out.push({
      scenario: Math.max(...h.map((r) => r.scenario), ...b.map((r) => r.scenario)),
      rate,
      rounds: Math.min(h.length, b.length),
      deliveriesPerSec: ratio(mean(h.map((r) => r.deliveriesPerSec)), mean(b.map((r) => r.deliveriesPerSec))),
      p50: ratio(median(h.map((r) => r.latencyMs.p50)), median(b.map((r) => r.latencyMs.p50))),
      p99: ratio(median(h.map((r) => r.latencyMs.p99)), median(b.map((r) => r.latencyMs.p99))),
      cpuUsPerDelivery: ratio(pooledCpu(h), pooledCpu(b)),
      rssMiB: ratio(maxOf(h.map((r) => r.serverRssMiB)), maxOf(b.map((r) => r.serverRssMiB))),
    });
  }
  return out;
}

function mean(values: number[]): number {
  return values.reduce((a, v) => a + v, 0) / values.length;
}

function median(values: (number | null)[]): number | null {
  const v = values.filter((x): x is number => x !== null).sort((a, b) => a - b);
  if (v.length === 0) return null;
  const m = v.length >> 1;
  return v.length % 2 === 1 ? v[m]! : (v[m - 1]! + v[m]!) / 2;
}

function maxOf(values: (number | null)[]): number | null {
  const v = values.filter((x): x is number => x !== null);
  return v.length === 0 ? null : Math.max(...v);
}

/** Total server CPU ÷ total deliveries over the rounds (µs). */
function pooledCpu(rounds: ScenarioResult[]): number | null {
  let cpu = 0;
  let delivered = 0;
  for (const r of rounds) {
    if (r.serverCpuUsPerDelivery === null) return null;
    cpu += r.serverCpuUsPerDelivery * r.delivered;
    delivered += r.delivered;
  }
  return delivered > 0 ? cpu / delivered : null;
}

export function machine(): BenchReport['machine'] {
  const list = cpus();
  return {
    node: process.version,
    platform: process.platform,
    arch: process.arch,
    cpus: list.length,
    cpuModel: list[0]?.model.trim() ?? 'unknown',
    loadAverage: loadavg().map((x) => Math.round(x * 100) / 100),
  };
}

const int = (n: number): string => Math.round(n).toLocaleString('en-US');
const fixed = (n: number | null, digits: number): string => (n === null ? '–' : n.toFixed(digits));
const times = (n: number | null): string => (n === null ? '–' : `${n.toFixed(2)}×`);

function verdict(r: ScenarioResult): string {
  if (r.ok) return 'ok';
  const parts: string[] = [];
  const i = r.integrity;
  if (i.lost) parts.push(`lost ${int(i.lost)}`);
  if (i.duplicates) parts.push(`dup ${int(i.duplicates)}`);
  if (i.reordered) parts.push(`reordered ${int(i.reordered)}`);
  if (i.invalid) parts.push(`invalid ${int(i.invalid)}`);
  const gone = Object.values(r.disconnects).reduce((a, b) => a + b, 0);
  if (gone) parts.push(`disconnected ${int(gone)}`);
  if (r.publishErrors) parts.push(`publish errors ${int(r.publishErrors)}`);
  return parts.join(', ') || 'FAILED';
}

function table(rows: string[][], rightAlign: boolean[]): string {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => (r[c] ?? '').length)));
  return rows
    .map((r) => r.map((cell, c) => (rightAlign[c] ? cell.padStart(widths[c]!) : cell.padEnd(widths[c]!))).join('  ').trimEnd())
    .join('\n');
}

export function formatTable(report: BenchReport): string {
  const c = report.config;
  const m = report.machine;
  const lines: string[] = [];
  const baselineTransport = c.baselineTransport ?? c.transport;
  const mixed = c.baseline && baselineTransport !== c.transport;
  lines.push(`herald bench: ${c.transport}${mixed ? ` (baseline: ${baselineTransport})` : ''}, ${int(c.subscribers)} subscribers, ${c.size}-byte messages, ${c.duration} s per rate after ${c.warmup} s warm-up`
    + `${c.repeat > 1 ? `, ${c.repeat} rounds per rate` : ''}`
    + `${c.sources > 1 ? `, ${c.sources} source addresses` : ''}${c.url ? `, target ${c.url}` : ''}`);
  lines.push(`${m.cpuModel}, ${m.cpus} CPUs, node ${m.node}, ${m.platform}/${m.arch}; load average before the run ${m.loadAverage.map((x) => x.toFixed(2)).join(' ')}`);
  lines.push('');
  const rows: string[][] = [[
    'server', 'rate/s', 'deliveries/s', 'p50 ms', 'p90 ms', 'p99 ms', 'max ms', 'CPU µs/deliv', 'server CPU', 'RSS MiB', 'load-gen CPU', 'verified',
  ]];
  const rightAlign = [false, true, true, true, true, true, true, true, true, true, true, false];
  const scenarios = [...new Set(report.results.map((r) => r.scenario))];
  for (const scenario of scenarios) {
    for (const r of report.results.filter((x) => x.scenario === scenario)) {
      rows.push([
        r.server, int(r.rate), int(r.deliveriesPerSec),
        fixed(r.latencyMs.p50, 2), fixed(r.latencyMs.p90, 2), fixed(r.latencyMs.p99, 2), fixed(r.latencyMs.max, 2),
        fixed(r.serverCpuUsPerDelivery, 2), r.serverCpuPercent === null ? '–' : `${r.serverCpuPercent.toFixed(0)}%`,
        fixed(r.serverRssMiB, 1), `${r.loadCpuPercent.toFixed(0)}%`, verdict(r),
      ]);
    }
    const q = report.ratios.find((x) => x.scenario === scenario);
    if (q) {
      rows.push([q.rounds > 1 ? `herald/baseline (${q.rounds} rounds)` : 'herald/baseline', int(q.rate), times(q.deliveriesPerSec), times(q.p50), '', times(q.p99), '', times(q.cpuUsPerDelivery), '', times(q.rssMiB), '', '']);
    }
  }
  lines.push(table(rows, rightAlign));
  lines.push('');
  lines.push('Latency: from the publish request to the frame read by the subscriber (one monotonic clock). CPU µs/deliv: server user+system CPU in the window ÷ deliveries.');
  if (report.config.baseline) {
    lines.push((baselineTransport === 'ws'
      ? 'Baseline: bench/baseline-ws-server.mjs, a raw `ws` server that frames each message once and writes the same bytes to every socket.'
      : `Baseline: bench/baseline-ws-server.mjs, its plain-http ${baselineTransport === 'sse' ? 'SSE' : 'long-poll'} endpoint: each message serialised once, the same string written to every ${baselineTransport === 'sse' ? 'stream' : 'waiting poll'}.`)
      + (mixed ? ` Its subscribers use ${baselineTransport}, herald's ${c.transport}: the ratios compare the two transports.` : ''));
  }
  if (report.idle.length > 0) {
    const parts = report.idle.map((i) => `${i.server} ${int(i.connections)} held, ${int(i.bytesPerConnection)} bytes each (RSS ${i.rssBeforeMiB.toFixed(1)} → ${i.rssIdleMiB.toFixed(1)} MiB)`);
    const h = report.idle.find((i) => i.server === 'herald');
    const b = report.idle.find((i) => i.server === 'baseline');
    const q = h && b && !mixed ? ratio(h.bytesPerConnection, b.bytesPerConnection) : null;
    lines.push(`Idle ${mixed ? `subscribers (herald ${c.transport}, baseline ${baselineTransport})` : `${c.transport} subscribers`}, before the first rate: ${parts.join('; ')}${q !== null ? `; herald/baseline ${times(q)}` : ''}.`);
  }
  const batched = report.results.filter((r) => r.eventsPerBatch !== null);
  if (batched.length > 0) {
    lines.push('Events per batch at the subscribers (the server\'s write coalescing: per poll answer; for ws and sse per socket read, which can join writes when the subscriber lags): '
      + batched.map((r) => `${r.server}@${r.rate} ${r.eventsPerBatch!.toFixed(1)}`).join(', ') + '.');
  }
  const saturated = report.results.filter((r) => r.saturated);
  if (saturated.length > 0) {
    lines.push(`Saturated: ${saturated.map((r) => `${r.server}@${r.rate}${r.shed > 0 ? ` (${int(r.shed)} publishes shed)` : ''}`).join(', ')}. The rate was more than this`
      + ' machine could carry: deliveries/s is the capacity, latency mostly queueing; compare CPU µs/deliv.');
  }
  const loadBound = report.results.filter((r) => r.loadCpuPercent >= 90 * Math.max(1, c.clients));
  if (loadBound.length > 0) lines.push(`The load generator used a full core in ${loadBound.map((r) => `${r.server}@${r.rate}`).join(', ')}: those figures are bounded by the load generator too, not only by the server.`);
  const problems = report.results.flatMap((r) => r.problems.map((p) => `${r.server}@${r.rate}: ${p}`));
  if (problems.length > 0) lines.push('', 'Problems:', ...problems.slice(0, 20).map((p) => `  ${p}`));
  for (const p of report.profiles) {
    lines.push('', `CPU profile of ${p.server} during the measured windows (${p.file}), self time:`);
    for (const f of p.top) lines.push(`  ${f.percent.toFixed(1).padStart(5)}%  ${f.name}  ${f.where}`);
  }
  if (report.error) lines.push('', `The run stopped early: ${report.error}`);
  else lines.push('', report.ok ? 'Every delivery verified: no loss, duplicate or reorder.' : 'NOT every delivery was verified (see "verified").');
  return lines.join('\n');
}

/** A progress bar on a terminal, an occasional line otherwise. */
export class Progress {
  private readonly tty: boolean;
  private lastLine = 0;
  private shown = false;

  constructor(private readonly quiet: boolean) {
    this.tty = !!process.stderr.isTTY;
  }

  update(label: string, fraction: number, detail: string): void {
    if (this.quiet) return;
    const now = Date.now();
    if (this.tty) {
      const width = 24;
      const filled = Math.max(0, Math.min(width, Math.round(fraction * width)));
      const line = `${label} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${detail}`;
      const columns = process.stderr.columns || 100;
      process.stderr.write(`\r\x1b[2K${line.slice(0, columns - 1)}`);
      this.shown = true;
    } else if (now - this.lastLine >= 5_000) {
      this.lastLine = now;
      process.stderr.write(`${label} ${Math.round(fraction * 100)}% ${detail}\n`);
    }
  }

  /** A line that stays (the end of a scenario, a start-up step). */
  line(text: string): void {
    if (this.quiet) return;
    this.clear();
    process.stderr.write(`${text}\n`);
    this.lastLine = Date.now();
  }

  clear(): void {
    if (this.tty && this.shown) process.stderr.write('\r\x1b[2K');
    this.shown = false;
  }
}
