/**
 * Cross-node fan-out over Redis, against the memory engine measured in the same run.
 *
 *   node --import tsx bench/redis.ts [--subscribers 200] [--events 2000] [--window 64] [--rounds 5]
 *
 * Uses HERALD_BENCH_REDIS_URL when set, otherwise starts a redis-server of its own (no
 * persistence). Two hubs in this process play two herald nodes: the publisher is on hub A, every
 * subscriber on hub B, so each event goes A → Redis (Lua: offset, stream, PUBLISH) → B → fan-out.
 *
 * - throughput: `--window` publishes in flight at a time; deliveries/s = subscribers × events / time
 *   from the first publish to the last delivery; latency = publish call → delivery to the last
 *   subscriber of that event (the fan-out loop's end).
 * - idle latency: one publish at a time, so the figure is not queueing.
 */
import { parseArgs } from 'node:util';
import { Hub, type Subscriber } from '../src/core/hub.js';
import type { OutgoingEvent } from '../src/core/outgoing.js';
import type { Engine } from '../src/core/engine.js';
import { MemoryEngine } from '../src/engines/memory.js';
import { createRedisEngine } from '../src/engines/redis/index.js';
import { startRedisServer, type RedisServer } from '../test/helpers/redis-server.js';

const { values } = parseArgs({
  options: {
    subscribers: { type: 'string', default: '200' },
    events: { type: 'string', default: '2000' },
    window: { type: 'string', default: '64' },
    rounds: { type: 'string', default: '5' },
  },
});
const SUBSCRIBERS = Number(values.subscribers);
const EVENTS = Number(values.events);
const WINDOW = Number(values.window);
const IDLE_EVENTS = 300;
const ROUNDS = Number(values.rounds);

interface Row {
  setup: string;
  deliveriesPerSec: number;
  p50: number;
  p99: number;
  idleP50: number;
  idleP99: number;
}

function quantile(sorted: number[], q: number): number {
  return sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

async function measure(setup: string, publisher: Hub, receiver: Hub): Promise<Row> {
  const channel = `bench-${setup.replace(/\W+/g, '-')}-${Date.now()}`;
  let delivered = 0;
  const latencies: number[] = [];
  let onLast: (() => void) | undefined;
  let expected = 0;
  const deliver = (): void => {
    delivered++;
    if (delivered === expected) onLast?.();
  };
  const subs: Subscriber[] = [];
  for (let i = 0; i < SUBSCRIBERS - 1; i++) subs.push({ client: { id: `s${i}`, transport: 'bench' }, deliver });
  // The last subscriber in fan-out order timestamps the end of each event's fan-out.
  subs.push({
    client: { id: 'last', transport: 'bench' },
    deliver(out: OutgoingEvent) {
      latencies.push(performance.now() - (out.event.data as { t: number }).t);
      deliver();
    },
  });
  for (const s of subs) await receiver.subscribe(s, channel);

  const run = async (events: number, window: number): Promise<number> => {
    delivered = 0;
    latencies.length = 0;
    expected = events * SUBSCRIBERS;
    const done = new Promise<void>((resolve) => (onLast = resolve));
    const started = performance.now();
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < events) {
        next++;
        await publisher.publish(channel, { t: performance.now() });
      }
    };
    await Promise.all(Array.from({ length: window }, worker));
    await done;
    return performance.now() - started;
  };

  await run(Math.min(1000, EVENTS), WINDOW); // warm-up
  // The median of ROUNDS rounds (by throughput), all figures from that round: the machine is
  // shared and the JIT keeps warming up, so one round can be far off either way.
  const rounds: Omit<Row, 'setup'>[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    const ms = await run(EVENTS, WINDOW);
    const loaded = [...latencies].sort((a, b) => a - b);
    await run(IDLE_EVENTS, 1);
    const idle = [...latencies].sort((a, b) => a - b);
    rounds.push({
      deliveriesPerSec: (EVENTS * SUBSCRIBERS) / (ms / 1000),
      p50: quantile(loaded, 0.5),
      p99: quantile(loaded, 0.99),
      idleP50: quantile(idle, 0.5),
      idleP99: quantile(idle, 0.99),
    });
  }
  rounds.sort((x, y) => x.deliveriesPerSec - y.deliveriesPerSec);
  for (const s of subs) await receiver.unsubscribe(s, channel);
  return { setup, ...rounds[Math.floor(rounds.length / 2)]! };
}

async function hubOf(engine: Engine): Promise<Hub> {
  // No presence: the figure is fan-out, not presence bookkeeping.
  const hub = new Hub({ engine, namespaces: { '': { presence: false } } });
  await hub.start();
  return hub;
}

let server: RedisServer | undefined;
let url = process.env.HERALD_BENCH_REDIS_URL;
if (!url) {
  server = await startRedisServer();
  url = server.url;
}
const prefix = `bench${process.pid}`;
const rows: Row[] = [];
try {
  const memory = await hubOf(new MemoryEngine());
  rows.push(await measure('memory (baseline, 1 node)', memory, memory));
  await memory.close();

  const a = await hubOf(createRedisEngine({ url, prefix }));
  const b = await hubOf(createRedisEngine({ url, prefix }));
  rows.push(await measure('redis, same node', a, a));
  rows.push(await measure('redis, node A → node B', a, b));
  await Promise.all([a.close(), b.close()]);
} finally {
  await server?.stop();
}

const f = (n: number, d = 2): string => n.toFixed(d);
console.log(`\n${SUBSCRIBERS} subscribers, ${EVENTS} events, ${WINDOW} publishes in flight; idle latency over ${IDLE_EVENTS} events one at a time; median of ${ROUNDS} rounds (Node ${process.version})\n`);
console.log('| setup | deliveries/s | latency p50 (ms) | p99 (ms) | idle p50 (ms) | idle p99 (ms) |');
console.log('|---|---:|---:|---:|---:|---:|');
for (const r of rows) {
  console.log(`| ${r.setup} | ${Math.round(r.deliveriesPerSec).toLocaleString('en-US')} | ${f(r.p50)} | ${f(r.p99)} | ${f(r.idleP50)} | ${f(r.idleP99)} |`);
}
