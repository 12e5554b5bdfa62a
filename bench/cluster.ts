/**
 * Cross-node fan-out with real processes: `herald serve --redis` node A takes the publishes
 * (`POST /api/publish`), N WebSocket subscribers sit on node B. Measured in the same run against
 * one `herald serve` process on the memory engine (publishes and subscribers on the same node),
 * and, for reference, one Redis node doing both.
 *
 *   node --import tsx bench/cluster.ts [--subscribers 500] [--duration 4] [--window 16] [--workers 2]
 *
 * Uses HERALD_BENCH_REDIS_URL when set, otherwise starts a redis-server of its own. Everything
 * listens on 127.0.0.1. Needs dist/ (built if older than src/, as the CLI tests do).
 *
 * - Subscribers live in `--workers` worker threads (raw protocol: connect, subscribe), each with
 *   its share of the N sockets; each checks that every socket gets every offset once, in order.
 * - Closed loop: at most `--window` events are published but not yet delivered to all N
 *   subscribers, so no queue grows without bound and the figure is what the nodes sustain.
 * - deliveries/s = deliveries in the measured window ÷ (last delivery − first publish).
 * - latency = publish request sent (main thread) → frame read by the subscriber's thread, over
 *   every delivery; one clock (`performance.timeOrigin + performance.now()`) in every thread.
 * - idle: one event at a time (`--idle` events), so the latency is not queueing.
 *
 * Reading the table: the WebSocket transport corks each socket until the end of the tick. Over
 * Redis, one read of the pub/sub socket often carries several events, fanned out in one tick, so
 * each subscriber gets them in one write; on the memory engine each HTTP publish is its own tick
 * and its own write per subscriber. With events in flight that batching, not the engine, makes
 * most of the difference; the idle rows (one event at a time) compare the paths themselves.
 */
import { Agent, request } from 'node:http';
import { parseArgs } from 'node:util';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import WebSocket from 'ws';

/** Worker threads do not get tsx from `--import` on Node 20: each one registers it, then loads this file. */
const WORKER_BOOT = `import('tsx/esm/api').then(({ register }) => { register(); return import(${JSON.stringify(import.meta.url)}); })`;

const now = (): number => performance.timeOrigin + performance.now();

/** Latency histogram: 10 µs buckets below 100 ms, then 1 ms buckets up to 60 s. */
const FINE = 10_000;
const BUCKETS = FINE + 60_000;
function bucketOf(ms: number): number {
  if (ms < 0) return 0;
  if (ms < 100) return Math.floor(ms * 100);
  return Math.min(BUCKETS - 1, FINE + Math.floor(ms - 100));
}
function valueOf(bucket: number): number {
  return bucket < FINE ? (bucket + 0.5) / 100 : 100 + (bucket - FINE) + 0.5;
}

type ToWorker = { type: 'reset' } | { type: 'report' } | { type: 'close' };
type FromWorker =
  | { type: 'ready' }
  | { type: 'done'; offsets: number[] }
  | { type: 'report'; hist: Uint32Array; deliveries: number; violations: number; closed: number }
  | { type: 'error'; message: string };

// ---- worker: a share of the subscribers ------------------------------------------------------

async function worker(): Promise<void> {
  const { url, channel, count } = workerData as { url: string; channel: string; count: number };
  const port = parentPort!;
  let hist = new Uint32Array(BUCKETS);
  let deliveries = 0;
  let violations = 0;
  let closed = 0;
  /** offset → sockets of this worker that still have to get it */
  const missing = new Map<number, number>();
  let done: number[] = [];
  let flush: ReturnType<typeof setImmediate> | undefined;
  const sockets: WebSocket[] = [];
  let stopping = false;

  const open = (): Promise<void> =>
    new Promise((resolve, reject) => {
      const ws = new WebSocket(`${url.replace(/^http/, 'ws')}/ws`, { perMessageDeflate: false });
      sockets.push(ws);
      let last = -1;
      ws.once('error', reject);
      ws.on('close', () => {
        if (!stopping) closed++;
      });
      ws.once('open', () => ws.send(JSON.stringify({ id: 1, op: 'connect' })));
      ws.on('message', (data: Buffer) => {
        const received = now();
        // eslint-disable-next-line @typescript-eslint/no-explicit-any
        const m: any = JSON.parse(data.toString());
        if (m.push === 'event') {
          const e = m.event as { offset: number; data: { t: number } };
          if (e.offset !== last + 1) violations++;
          last = e.offset;
          deliveries++;
          hist[bucketOf(received - e.data.t)]!++;
          const left = (missing.get(e.offset) ?? count) - 1;
          if (left > 0) missing.set(e.offset, left);
          else {
            missing.delete(e.offset);
            done.push(e.offset);
            flush ??= setImmediate(() => {
              flush = undefined;
              port.postMessage({ type: 'done', offsets: done } satisfies FromWorker);
              done = [];
            });
          }
        } else if (m.id === 1) ws.send(JSON.stringify({ id: 2, op: 'subscribe', channel }));
        else if (m.id === 2) {
          if (m.error) reject(new Error(`subscribe: ${m.error.code}`));
          last = m.result.offset as number;
          resolve();
        }
      });
    });

  try {
    for (let i = 0; i < count; i += 50) await Promise.all(Array.from({ length: Math.min(50, count - i) }, open));
  } catch (err) {
    port.postMessage({ type: 'error', message: String(err) } satisfies FromWorker);
    return;
  }
  port.postMessage({ type: 'ready' } satisfies FromWorker);
  port.on('message', (msg: ToWorker) => {
    if (msg.type === 'reset') {
      hist = new Uint32Array(BUCKETS);
      deliveries = 0;
    } else if (msg.type === 'report') {
      port.postMessage({ type: 'report', hist, deliveries, violations, closed } satisfies FromWorker);
    } else {
      stopping = true;
      for (const ws of sockets) ws.terminate();
      port.close();
    }
  });
}

// ---- main: nodes, publisher, report ----------------------------------------------------------

interface Row {
  setup: string;
  deliveriesPerSec: number;
  events: number;
  p50: number;
  p99: number;
  idleP50: number;
  idleP99: number;
  check: string;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      subscribers: { type: 'string', default: '500' },
      duration: { type: 'string', default: '4' },
      warmup: { type: 'string', default: '1' },
      window: { type: 'string', default: '16' },
      workers: { type: 'string', default: '2' },
      idle: { type: 'string', default: '200' },
    },
  });
  const N = Number(values.subscribers);
  const DURATION_MS = Number(values.duration) * 1000;
  const WARMUP_MS = Number(values.warmup) * 1000;
  const WINDOW = Number(values.window);
  const WORKERS = Math.max(1, Math.min(Number(values.workers), N));
  const IDLE = Number(values.idle);

  // Test helpers: a redis-server on a free port and `herald serve` child processes from dist/.
  const { startRedisServer } = await import('../test/helpers/redis-server.js');
  const { ensureBuilt, herald } = await import('../test/server/helpers.js');
  type Child = ReturnType<typeof herald>;
  await ensureBuilt();

  const children = new Set<Child>();
  const serve = async (args: string[]): Promise<{ url: string; child: Child }> => {
    const child = herald(['serve', '--host', '127.0.0.1', '--port', '0', '--log-level', 'warn', ...args]);
    children.add(child);
    const m = await child.line(/^listening on (http:\/\/127\.0\.0\.1:\d+)$/);
    return { url: m[1]!, child };
  };
  const stopAll = async (): Promise<void> => {
    await Promise.all(
      [...children].map(async (c) => {
        c.proc.kill('SIGTERM');
        const t = setTimeout(() => c.proc.kill('SIGKILL'), 5000);
        await c.exited;
        clearTimeout(t);
      }),
    );
    children.clear();
  };

  const agent = new Agent({ keepAlive: true, maxSockets: WINDOW });
  const publish = (base: string, channel: string): Promise<number> =>
    new Promise((resolve, reject) => {
      const body = JSON.stringify({ channel, data: { t: now() } });
      const req = request(new URL('/api/publish', base), { method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => (res.statusCode === 200 ? resolve((JSON.parse(text) as { offset: number }).offset) : reject(new Error(`publish: ${res.statusCode} ${text}`))));
      });
      req.on('error', reject);
      req.end(body);
    });

  const measure = async (setup: string, pubUrl: string, subUrl: string): Promise<Row> => {
    const channel = `bench-${Date.now().toString(36)}`;
    const workers: Worker[] = [];
    const reports: Extract<FromWorker, { type: 'report' }>[] = [];
    /** offset → workers that reported it complete */
    const complete = new Map<number, number>();
    const waiters = new Map<number, () => void>();
    let lastDelivery = 0;
    let ready = 0;
    let onReady: () => void = () => {};
    let onFailure: (err: Error) => void = () => {};
    let onReports: () => void = () => {};
    const readyOrFailed = new Promise<void>((resolve, reject) => {
      onReady = resolve;
      onFailure = reject;
    });
    for (let i = 0; i < WORKERS; i++) {
      const count = Math.floor(N / WORKERS) + (i < N % WORKERS ? 1 : 0);
      const w = new Worker(WORKER_BOOT, { eval: true, workerData: { url: subUrl, channel, count } });
      w.on('error', (err) => onFailure(err));
      w.on('message', (msg: FromWorker) => {
        if (msg.type === 'ready') {
          if (++ready === WORKERS) onReady();
        } else if (msg.type === 'done') {
          for (const o of msg.offsets) {
            const n = (complete.get(o) ?? 0) + 1;
            if (n < WORKERS) complete.set(o, n);
            else {
              complete.delete(o);
              lastDelivery = now();
              const resolve = waiters.get(o);
              if (resolve) {
                waiters.delete(o);
                resolve();
              } else complete.set(o, -1); // complete before its publish was answered
            }
          }
        } else if (msg.type === 'report') {
          reports.push(msg);
          if (reports.length === WORKERS) onReports();
        } else onFailure(new Error(msg.message));
      });
      workers.push(w);
    }
    await readyOrFailed;

    const delivered = (offset: number): Promise<void> => {
      if (complete.get(offset) === -1) {
        complete.delete(offset);
        return Promise.resolve();
      }
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`${setup}: event ${offset} not delivered to every subscriber within 10 s`)), 10_000);
        waiters.set(offset, () => {
          clearTimeout(timer);
          resolve();
        });
      });
    };
    const all = <T>(msg: ToWorker, collect: () => T): Promise<T> =>
      new Promise((resolve) => {
        reports.length = 0;
        onReports = () => resolve(collect());
        for (const w of workers) w.postMessage(msg);
      });
    const reset = (): void => {
      for (const w of workers) w.postMessage({ type: 'reset' } satisfies ToWorker);
    };
    const report = (): Promise<{ hist: Uint32Array; deliveries: number; violations: number; closed: number }> =>
      all({ type: 'report' }, () => {
        const hist = new Uint32Array(BUCKETS);
        let deliveries = 0;
        let violations = 0;
        let closed = 0;
        for (const r of reports) {
          for (let i = 0; i < BUCKETS; i++) hist[i]! += r.hist[i]!;
          deliveries += r.deliveries;
          violations += r.violations;
          closed += r.closed;
        }
        return { hist, deliveries, violations, closed };
      });
    /** Publishes with `window` events undelivered at most, for `ms` or `events`, whichever ends first. */
    const phase = async (window: number, ms: number, events = Infinity): Promise<{ started: number; events: number }> => {
      const started = now();
      const end = started + ms;
      let sent = 0;
      const slot = async (): Promise<void> => {
        while (now() < end && sent < events) {
          sent++;
          await delivered(await publish(pubUrl, channel));
        }
      };
      await Promise.all(Array.from({ length: window }, slot));
      return { started, events: sent };
    };
    const quantile = (hist: Uint32Array, total: number, q: number): number => {
      let seen = 0;
      const target = Math.ceil(q * total);
      for (let i = 0; i < BUCKETS; i++) if ((seen += hist[i]!) >= target) return valueOf(i);
      return NaN;
    };

    try {
      await phase(WINDOW, WARMUP_MS);
      reset();
      // Let the reset reach the workers before the first measured publish.
      await new Promise((r) => setTimeout(r, 20));
      const loaded = await phase(WINDOW, DURATION_MS);
      const elapsed = lastDelivery - loaded.started;
      const l = await report();
      reset();
      await new Promise((r) => setTimeout(r, 20));
      await phase(1, 10_000, IDLE);
      const idle = await report();
      // Violations and closes are counted from the start (warm-up included), never reset.
      const check = idle.violations === 0 && idle.closed === 0 ? 'ok' : `no: ${idle.violations} out of order, ${idle.closed} sockets closed`;
      return {
        setup,
        deliveriesPerSec: l.deliveries / (elapsed / 1000),
        events: loaded.events,
        p50: quantile(l.hist, l.deliveries, 0.5),
        p99: quantile(l.hist, l.deliveries, 0.99),
        idleP50: quantile(idle.hist, idle.deliveries, 0.5),
        idleP99: quantile(idle.hist, idle.deliveries, 0.99),
        check,
      };
    } finally {
      await Promise.all(workers.map((w) => (w.postMessage({ type: 'close' } satisfies ToWorker), w.terminate())));
    }
  };

  let redis: Awaited<ReturnType<typeof startRedisServer>> | undefined;
  let redisUrl = process.env.HERALD_BENCH_REDIS_URL;
  const rows: Row[] = [];
  // A hard bound, whatever goes wrong.
  const bound = setTimeout(() => {
    console.error('bench/cluster.ts: over 3 minutes, giving up');
    for (const c of children) c.proc.kill('SIGKILL');
    process.exit(1);
  }, 180_000);
  try {
    if (!redisUrl) {
      redis = await startRedisServer();
      redisUrl = redis.url;
    }
    const memory = await serve([]);
    rows.push(await measure('memory, 1 node (baseline)', memory.url, memory.url));
    await stopAll();

    const prefix = `benchcl${process.pid}`;
    const [a, b] = await Promise.all([serve(['--redis', redisUrl, '--redis-prefix', prefix]), serve(['--redis', redisUrl, '--redis-prefix', prefix])]);
    rows.push(await measure('redis, same node', a.url, a.url));
    rows.push(await measure('redis, node A → node B', a.url, b.url));
  } finally {
    agent.destroy();
    await stopAll();
    await redis?.stop();
    clearTimeout(bound);
  }

  const f = (n: number): string => n.toFixed(2);
  console.log(`\n${N} WebSocket subscribers (raw protocol, ${WORKERS} worker threads), publishes over HTTP; ${WINDOW} events in flight for ${DURATION_MS / 1000} s after ${WARMUP_MS / 1000} s of warm-up; idle = ${IDLE} events one at a time (Node ${process.version})\n`);
  console.log('| setup | events | deliveries/s | p50 (ms) | p99 (ms) | idle p50 (ms) | idle p99 (ms) | every offset once, in order |');
  console.log('|---|---:|---:|---:|---:|---:|---:|---|');
  for (const r of rows) {
    console.log(`| ${r.setup} | ${r.events.toLocaleString('en-US')} | ${Math.round(r.deliveriesPerSec).toLocaleString('en-US')} | ${f(r.p50)} | ${f(r.p99)} | ${f(r.idleP50)} | ${f(r.idleP99)} | ${r.check} |`);
  }
}

if (isMainThread) await main();
else await worker();
