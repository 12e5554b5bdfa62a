/**
 * `herald bench`: fan-out benchmark with every delivery verified.
 *
 * Processes: this one publishes and reports; each server under test (herald, and with
 * --baseline the raw `ws` broadcast server) runs in its own child so /proc gives its CPU and
 * RSS alone; subscribers run in one or more forked children (src/cli/bench/load.ts).
 *
 * Per rate, per server: warm-up publishes (not counted), then --duration seconds of publishes
 * tagged with the scenario, then a drain until every connected subscriber has every offset.
 * Server CPU is read from /proc at the first measured publish and at the end of the drain.
 */
import { mkdirSync, readdirSync } from 'node:fs';
import type { ChildProcess } from 'node:child_process';
import { join, resolve } from 'node:path';
import { baselineServerSpec, forkLoad, heraldServerSpec, packageRoot, type ServerChild, type ServerSpec, startServer, stopAll, stopChild } from './bench/children.js';
import { summarizeProfile } from './bench/cpuprofile.js';
import { Histogram } from './bench/histogram.js';
import type { LoadReply, LoadRequest, LoadStatus, Transport } from './bench/load.js';
import { BENCH_HELP, type BenchOptions, isLoopbackHost, parseBenchArgs, UsageError } from './bench/options.js';
import { procAvailable, sampleProcess } from './bench/procstat.js';
import { Publisher } from './bench/publisher.js';
import { type BenchReport, formatTable, type IdleFigure, machine, type ProfileSummary, Progress, ratios, type ScenarioResult, type ServerName } from './bench/report.js';
import { type Integrity, nowUs, padFor } from './bench/verify.js';
import type { Endpoint } from './bench/ws-subscriber.js';

const MIB = 1024 * 1024;
const IPC_TIMEOUT_MS = 30_000;

/** One subscriber process, with request/answer over IPC. */
class LoadHandle {
  private waiters = new Map<string, { resolve: (r: LoadReply) => void; reject: (e: Error) => void }>();
  private exitError: Error | undefined;

  constructor(readonly child: ChildProcess) {
    child.on('message', (msg: LoadReply) => {
      const w = this.waiters.get(msg.type);
      if (w) {
        this.waiters.delete(msg.type);
        w.resolve(msg);
      }
    });
    child.on('exit', (code, signal) => {
      this.exitError = new Error(`a subscriber process exited (${signal ?? code})`);
      for (const w of this.waiters.values()) w.reject(this.exitError);
      this.waiters.clear();
    });
  }

  ask<T extends LoadReply['type']>(req: LoadRequest, answer: T, timeoutMs = IPC_TIMEOUT_MS): Promise<Extract<LoadReply, { type: T }>> {
    if (this.exitError) return Promise.reject(this.exitError);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters.delete(answer);
        reject(new Error(`a subscriber process did not answer "${req.type}" within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiters.set(answer, {
        resolve: (r) => {
          clearTimeout(timer);
          resolve(r as Extract<LoadReply, { type: T }>);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
      this.child.send(req);
    });
  }
}

interface Target {
  name: ServerName;
  /** The transport its subscribers use (the baseline's may differ: --baseline-transport). */
  transport: Transport;
  url: string;
  endpoint: Endpoint;
  /** The process measured for CPU and RSS, if any. */
  pid: number | undefined;
  server: ServerChild | undefined;
  loads: LoadHandle[];
  publisher: Publisher;
  /** Subscribers connected at the start. */
  subscribers: number;
  profileName: string | undefined;
  /** Measured windows, monotonic µs, to read the CPU profile over. */
  windows: [number, number][];
  /** RSS before and after the subscribers opened (undefined when the server is not measured). */
  idle: IdleFigure | undefined;
}

function endpointOf(url: string, apiKey: string | undefined): Endpoint {
  const u = new URL(url);
  return {
    host: u.hostname.replace(/^\[|\]$/g, ''),
    port: Number(u.port || 80),
    base: u.pathname.replace(/\/$/, ''),
    headers: apiKey ? { Authorization: `Bearer ${apiKey}` } : {},
  };
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) {
      reject(new Error('interrupted'));
      return;
    }
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(new Error('interrupted'));
    };
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

async function loadStatus(t: Target): Promise<LoadStatus> {
  const all = await Promise.all(t.loads.map((l) => l.ask({ type: 'status' }, 'status')));
  let min: number | null = null;
  const sum = { open: 0, closed: 0, total: 0, cpuUs: 0 };
  for (const s of all) {
    if (s.minPosition !== null && (min === null || s.minPosition < min)) min = s.minPosition;
    sum.open += s.open;
    sum.closed += s.closed;
    sum.total += s.total;
    sum.cpuUs += s.cpuUs;
  }
  return { minPosition: min, ...sum };
}

function sources(opts: BenchOptions): string[] {
  if (opts.sources <= 1) return [];
  return Array.from({ length: opts.sources }, (_, i) => `127.0.0.${i + 1}`);
}

async function openTarget(name: ServerName, opts: BenchOptions, progress: Progress, signal: AbortSignal): Promise<Target> {
  let server: ServerChild | undefined;
  let url: string;
  let pid: number | undefined;
  let profileName: string | undefined;
  if (name === 'herald' && opts.url) {
    url = opts.url;
    pid = opts.pid;
  } else {
    const spec: ServerSpec = name === 'herald' ? heraldServerSpec(opts.serverArgs) : baselineServerSpec();
    if (opts.serverCpuProf) {
      profileName = `${name}-${process.pid}-${Date.now()}.cpuprofile`;
      spec.execArgv = ['--cpu-prof', `--cpu-prof-dir=${opts.serverCpuProf}`, `--cpu-prof-name=${profileName}`];
    }
    progress.line(`starting the ${name} server…`);
    server = await startServer(spec);
    url = server.url;
    pid = server.pid;
  }
  const endpoint = endpointOf(url, name === 'herald' ? opts.apiKey : undefined);
  if (opts.sources > 1 && !/^127\./.test(endpoint.host)) {
    throw new UsageError(`--sources needs an IPv4 loopback server address (the server is at ${endpoint.host})`);
  }
  const transport = name === 'baseline' ? opts.baselineTransport : opts.transport;
  const target: Target = { name, transport, url, endpoint, pid, server, loads: [], publisher: new Publisher(endpoint, opts.channel), subscribers: 0, profileName, windows: [], idle: undefined };
  const rssBefore = pid ? sampleProcess(pid)?.rssBytes : undefined;
  progress.line(`${name} at ${url}${pid ? ` (pid ${pid})` : ''}: opening ${opts.subscribers.toLocaleString('en-US')} ${transport} subscribers…`);
  const per = Math.ceil(opts.subscribers / opts.clients);
  const timeoutMs = transport === 'poll' ? 20_000 : 15_000;
  const opened = await Promise.all(Array.from({ length: opts.clients }, async (_, i) => {
    const count = Math.max(0, Math.min(per, opts.subscribers - i * per));
    if (count === 0) return 0;
    const load = new LoadHandle(forkLoad());
    target.loads.push(load);
    // Opening many connections takes a while: allow about 10 ms each on top of the timeout.
    const reply = await load.ask({
      type: 'open', endpoint, transport, channel: opts.channel, count, firstIndex: i * per, sources: sources(opts), timeoutMs,
    }, 'opened', timeoutMs + count * 10 + IPC_TIMEOUT_MS);
    if (reply.error) throw new Error(`${name}: ${reply.error}`);
    return reply.opened;
  }));
  if (signal.aborted) throw new Error('interrupted');
  target.subscribers = opened.reduce((a, b) => a + b, 0);
  if (pid && rssBefore !== undefined && target.subscribers > 0) {
    // A second of idleness, so what the opening allocated and dropped is not counted.
    await sleep(1_000, signal);
    const rssIdle = sampleProcess(pid)?.rssBytes;
    if (rssIdle !== undefined) {
      target.idle = {
        server: name,
        connections: target.subscribers,
        rssBeforeMiB: Math.round((rssBefore / MIB) * 10) / 10,
        rssIdleMiB: Math.round((rssIdle / MIB) * 10) / 10,
        bytesPerConnection: Math.round((rssIdle - rssBefore) / target.subscribers),
      };
    }
  }
  return target;
}

function checkAlive(t: Target): void {
  const child = t.server?.child;
  if (child && (child.exitCode !== null || child.signalCode !== null)) {
    const tail = t.server!.stderrTail();
    throw new Error(`the ${t.name} server exited (${child.signalCode ?? child.exitCode}) during the run${tail ? `:\n${tail}` : ''}`);
  }
}

async function runScenario(t: Target, index: number, rate: number, opts: BenchOptions, progress: Progress, signal: AbortSignal): Promise<ScenarioResult> {
  checkAlive(t);
  const pad = padFor(opts.size);
  const label = `${t.name.padEnd(8)} ${String(rate).padStart(6)} msg/s`;
  if (opts.warmup > 0) {
    progress.update(label, 0, 'warm-up');
    await t.publisher.run(rate, opts.warmup, -1, pad, signal);
  }
  const before = await loadStatus(t);
  const connectedAtStart = before.open;
  const cpu0 = t.pid ? sampleProcess(t.pid) : undefined;
  const t0 = nowUs();
  let rssMax = cpu0?.rssBytes ?? 0;
  let lastProgress = 0;
  let asking = false;
  let delivered = 0;
  const publishErrorsBefore = t.publisher.failed;
  const shedBefore = t.publisher.shed;
  const total = Math.round(rate * opts.duration);
  const sent = await t.publisher.run(rate, opts.duration, index, pad, signal, (n) => {
    const now = Date.now();
    if (now - lastProgress < 250) return;
    lastProgress = now;
    if (t.pid) {
      const s = sampleProcess(t.pid);
      if (s && s.rssBytes > rssMax) rssMax = s.rssBytes;
    }
    if (!asking) {
      asking = true;
      loadStatus(t).then((s) => {
        delivered = s.total - before.total;
        asking = false;
      }, () => {
        asking = false;
      });
    }
    const elapsed = (nowUs() - t0) / 1e6;
    progress.update(label, n / total, `${elapsed.toFixed(1)}/${opts.duration} s  ${delivered.toLocaleString('en-US')} deliveries`);
  });
  progress.update(label, 1, 'waiting for publish answers');
  await t.publisher.settled();
  const lastOffset = t.publisher.maxOffset;

  // Drain: until every connected subscriber has every offset, or the time is up.
  const drainMs = Math.min(30_000, Math.max(5_000, opts.duration * 1000));
  const drainStart = Date.now();
  let after = await loadStatus(t);
  while (after.minPosition !== null && after.minPosition < lastOffset && Date.now() - drainStart < drainMs) {
    progress.update(label, 1, `draining: ${(lastOffset - after.minPosition).toLocaleString('en-US')} events behind`);
    await sleep(50, signal);
    if (t.pid) {
      const s = sampleProcess(t.pid);
      if (s && s.rssBytes > rssMax) rssMax = s.rssBytes;
    }
    after = await loadStatus(t);
  }
  const t1 = nowUs();
  const cpu1 = t.pid ? sampleProcess(t.pid) : undefined;
  t.windows.push([t0, t1]);
  checkAlive(t);
  if (cpu1 && cpu1.rssBytes > rssMax) rssMax = cpu1.rssBytes;

  const collected = await Promise.all(t.loads.map((l) => l.ask({ type: 'collect', scenario: index, lastOffset }, 'collected')));
  const latency = new Histogram();
  const integrity: Integrity = { lost: 0, duplicates: 0, reordered: 0, late: 0, invalid: 0 };
  const disconnects: Record<string, number> = {};
  const problems: string[] = [];
  let deliveredTotal = 0;
  let batches = 0;
  let firstUs = Infinity;
  let lastUs = 0;
  for (const c of collected) {
    latency.merge(c.scenario.latency);
    deliveredTotal += c.scenario.delivered;
    batches += c.scenario.batches;
    if (c.scenario.delivered > 0 && c.scenario.firstUs < firstUs) firstUs = c.scenario.firstUs;
    if (c.scenario.lastUs > lastUs) lastUs = c.scenario.lastUs;
    for (const k of Object.keys(integrity) as (keyof Integrity)[]) integrity[k] += c.integrity[k];
    for (const [k, n] of Object.entries(c.closes)) disconnects[k] = (disconnects[k] ?? 0) + n;
    problems.push(...c.problems);
  }
  const publishErrors = t.publisher.failed - publishErrorsBefore;
  if (!t.publisher.contiguous) problems.push(`publish answers skipped offsets (${t.publisher.ok} answers for offsets ${t.publisher.minOffset}..${t.publisher.maxOffset})`);
  problems.push(...t.publisher.errors.splice(0));

  // The deliveries' own span: publishes span duration - 1/rate, so a server that keeps up scores
  // rate × subscribers; one that falls behind stretches the span.
  const seconds = deliveredTotal > 0 ? Math.max(opts.duration, (lastUs - firstUs) / 1e6 + 1 / rate) : opts.duration;
  const cpuUs = cpu0 && cpu1 ? cpu1.cpuUs - cpu0.cpuUs : undefined;
  const windowS = (t1 - t0) / 1e6;
  const expected = sent * connectedAtStart;
  const shed = t.publisher.shed - shedBefore;
  const deliveriesPerSec = Math.round(deliveredTotal / seconds);
  const disconnected = Object.values(disconnects).reduce((a, b) => a + b, 0);
  if (sent === 0) problems.push('nothing was published in the window: the server stayed over a second behind answering publishes');
  const ok = integrity.lost === 0 && integrity.duplicates === 0 && integrity.reordered === 0 && integrity.invalid === 0
    && disconnected === 0 && publishErrors === 0 && t.publisher.contiguous && deliveredTotal === expected && problems.length === 0;
  const result: ScenarioResult = {
    scenario: index,
    server: t.name,
    transport: t.transport,
    rate,
    subscribers: t.subscribers,
    connected: after.open,
    published: sent,
    expected,
    delivered: deliveredTotal,
    eventsPerBatch: batches > 0 ? Math.round((deliveredTotal / batches) * 100) / 100 : null,
    seconds: Math.round(seconds * 1000) / 1000,
    deliveriesPerSec,
    shed,
    saturated: shed > 0 || deliveriesPerSec < 0.95 * rate * connectedAtStart,
    latencyMs: latency.summary(),
    serverCpuUsPerDelivery: cpuUs !== undefined && deliveredTotal > 0 ? Math.round((cpuUs / deliveredTotal) * 1000) / 1000 : null,
    serverCpuPercent: cpuUs !== undefined ? Math.round((cpuUs / 1e6 / windowS) * 1000) / 10 : null,
    serverRssMiB: cpu1 ? Math.round((cpu1.rssBytes / MIB) * 10) / 10 : null,
    serverRssMaxMiB: t.pid && rssMax > 0 ? Math.round((rssMax / MIB) * 10) / 10 : null,
    loadCpuPercent: Math.round(((after.cpuUs - before.cpuUs) / 1e6 / windowS) * 1000) / 10,
    integrity,
    disconnects,
    publishErrors,
    ok,
    problems: problems.slice(0, 10),
  };
  const l = result.latencyMs;
  progress.line(`${label}: ${result.deliveriesPerSec.toLocaleString('en-US')} deliveries/s, p50 ${l.p50} ms, p99 ${l.p99} ms`
    + `${result.serverCpuUsPerDelivery !== null ? `, ${result.serverCpuUsPerDelivery} µs CPU/delivery` : ''}, ${ok ? 'all verified' : 'NOT VERIFIED'}`);
  if (disconnected > 0 && index < opts.rates.length * opts.repeat - 1) {
    // Every scenario starts with every subscriber: replace those that were closed.
    progress.line(`${label}: reconnecting ${disconnected.toLocaleString('en-US')} subscribers for the next rate…`);
    const timeoutMs = t.transport === 'poll' ? 20_000 : 15_000;
    const replies = await Promise.all(t.loads.map((load) => load.ask({ type: 'refill', timeoutMs }, 'opened', timeoutMs + opts.subscribers * 10 + IPC_TIMEOUT_MS)));
    const failed = replies.find((r) => r.error);
    if (failed) throw new Error(`${t.name}: reconnecting subscribers: ${failed.error}`);
  }
  return result;
}

async function closeTarget(t: Target): Promise<void> {
  await Promise.all(t.loads.map(async (l) => {
    let asked = false;
    try {
      await l.ask({ type: 'close' }, 'closed', 5_000);
      asked = true;
    } catch {
      // Ended below anyway.
    }
    await stopChild(l.child, 3_000, asked);
  }));
  t.publisher.close();
  if (t.server) await stopChild(t.server.child, 12_000);
}

function profiles(targets: Target[], opts: BenchOptions): ProfileSummary[] {
  const out: ProfileSummary[] = [];
  if (!opts.serverCpuProf) return out;
  for (const t of targets) {
    if (!t.profileName) continue;
    const file = join(opts.serverCpuProf, t.profileName);
    try {
      if (!readdirSync(opts.serverCpuProf).includes(t.profileName)) continue;
      out.push({ server: t.name, file, top: summarizeProfile(file, packageRoot, 15, t.windows) });
    } catch {
      // A server killed before it could write its profile has none.
    }
  }
  return out;
}

/** Entry point of `herald bench`; resolves to the exit status. */
export async function runBench(argv: string[]): Promise<number> {
  let opts: Readonly<BenchOptions>;
  try {
    opts = parseBenchArgs(argv);
  } catch (err) {
    if (err instanceof UsageError) {
      console.error(`herald bench: ${err.message}`);
      return 2;
    }
    throw err;
  }
  if (opts.help) {
    console.log(BENCH_HELP);
    return 0;
  }
  if (opts.serverCpuProf) {
    const dir = resolve(opts.serverCpuProf);
    mkdirSync(dir, { recursive: true });
    opts = Object.freeze({ ...opts, serverCpuProf: dir });
  }
  const progress = new Progress(opts.quiet);
  if (!procAvailable()) progress.line('note: /proc is not readable here, so server CPU and RSS are not measured');
  if (opts.url && opts.pid === undefined) progress.line('note: --url without --pid: the server\'s CPU and RSS are not measured');
  if (opts.url && !isLoopbackHost(new URL(opts.url).hostname)) progress.line(`note: benchmarking a remote server (${opts.url})`);

  const controller = new AbortController();
  const onSignal = (): void => {
    if (!controller.signal.aborted) {
      progress.line('interrupted: stopping…');
      controller.abort();
    }
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const report: BenchReport = {
    version: 1,
    config: {
      subscribers: opts.subscribers, rates: opts.rates, repeat: opts.repeat, duration: opts.duration, warmup: opts.warmup, size: opts.size,
      transport: opts.transport, sources: opts.sources, clients: opts.clients, channel: opts.channel, baseline: opts.baseline,
      baselineTransport: opts.baselineTransport, url: opts.url, pid: opts.pid, allowRemote: opts.allowRemote, serverCpuProf: opts.serverCpuProf, serverArgs: opts.serverArgs,
    },
    machine: machine(),
    results: [],
    ratios: [],
    idle: [],
    profiles: [],
    ok: false,
  };
  const targets: Target[] = [];
  let failure: unknown;
  try {
    targets.push(await openTarget('herald', opts, progress, controller.signal));
    if (opts.baseline) targets.push(await openTarget('baseline', opts, progress, controller.signal));
    // Rates in the outer loop, servers in the inner one: both see the same machine conditions.
    // With --repeat, rounds alternate which server goes first, so neither always runs warmer.
    let scenario = 0;
    for (let k = 0; k < opts.rates.length; k++) {
      for (let round = 0; round < opts.repeat; round++) {
        const order = round % 2 === 0 ? targets : [...targets].reverse();
        for (const t of order) report.results.push(await runScenario(t, scenario, opts.rates[k]!, opts, progress, controller.signal));
        scenario++;
      }
    }
  } catch (err) {
    failure = err;
  } finally {
    progress.clear();
    if (controller.signal.aborted) await stopAll(2_000);
    else await Promise.all(targets.map((t) => closeTarget(t)));
    await stopAll(2_000);
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
  if (controller.signal.aborted) {
    console.error('herald bench: interrupted');
    return 130;
  }
  report.ratios = ratios(report.results);
  report.idle = targets.flatMap((t) => (t.idle ? [t.idle] : []));
  report.profiles = profiles(targets, opts);
  report.ok = failure === undefined && report.results.length > 0 && report.results.every((r) => r.ok);
  if (failure !== undefined) report.error = failure instanceof Error ? failure.message : String(failure);
  // What was measured before a failure is still worth printing.
  if (report.results.length > 0) console.log(opts.json ? JSON.stringify(report, null, 2) : formatTable(report));
  if (failure !== undefined) {
    console.error(`herald bench: ${failure instanceof Error ? failure.message : String(failure)}`);
    return failure instanceof UsageError ? 2 : 1;
  }
  return report.ok ? 0 : 1;
}

export { BENCH_HELP };
