/**
 * Helpers for the cluster suites: a real `redis-server` (test/helpers/redis-server.ts) and several
 * `herald serve --redis …` node processes (bin/herald.js, dist/), plus a raw WebSocket subscriber
 * that keeps every event it got across reconnects, so a suite can check "every offset exactly
 * once, in order" after a client moved between nodes.
 */
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import type { HeraldEvent, Position } from '../../src/protocol/index.js';
import { startRedisServer, type RedisServer } from '../helpers/redis-server.js';
import { call, ensureBuilt, herald, type Answer, type Child } from '../server/helpers.js';

export { redisBinary } from '../helpers/redis-server.js';

/** Seconds: every node runs with `--presence-ttl 2`, so crashed nodes vanish quickly. */
export const PRESENCE_TTL_S = 2;
/** docs/scaling.md: other nodes' subscriber counts are refreshed every presenceTtl / 3. */
export const REFRESH_MS = Math.floor((PRESENCE_TTL_S * 1000) / 3);

const LISTENING = /^listening on (http:\/\/127\.0\.0\.1:(\d+))$/;

export interface HeraldNode {
  readonly name: string;
  readonly child: Child;
  /** `http://127.0.0.1:PORT` */
  readonly url: string;
  readonly port: number;
}

export interface TestCluster {
  readonly redis: RedisServer;
  readonly prefix: string;
  readonly nodes: Record<string, HeraldNode>;
  /** Starts one more node process on the same prefix; `redisUrl` (default: the server's) may point at a proxy. */
  startNode(name: string, redisUrl?: string): Promise<HeraldNode>;
  /** SIGKILL, as a crash would; resolves once the process is gone. */
  crash(node: HeraldNode): Promise<void>;
  /** Stops every node (SIGTERM, SIGKILL after 5 s) and the redis-server. */
  stop(): Promise<void>;
}

const children = new Set<Child>();
process.once('exit', () => {
  // A suite that failed before its `after` must not leave node processes behind.
  for (const c of children) if (c.proc.exitCode === null && c.proc.signalCode === null) c.proc.kill('SIGKILL');
});

/** A redis-server of its own and one `herald serve` process per name, all on a unique key prefix. */
export async function startCluster(names: readonly string[]): Promise<TestCluster> {
  await ensureBuilt();
  const redis = await startRedisServer();
  const prefix = `cl${process.pid}x${Date.now().toString(36)}`;
  const nodes: Record<string, HeraldNode> = {};

  const startNode = async (name: string, redisUrl = redis.url): Promise<HeraldNode> => {
    const child = herald(['serve', '--port', '0', '--redis', redisUrl, '--redis-prefix', prefix, '--presence-ttl', String(PRESENCE_TTL_S), '--log-level', 'warn']);
    children.add(child);
    const m = await child.line(LISTENING);
    const node: HeraldNode = { name, child, url: m[1]!, port: Number(m[2]) };
    nodes[name] = node;
    return node;
  };

  const stopChild = async (child: Child, signal: NodeJS.Signals): Promise<void> => {
    if (child.proc.exitCode === null && child.proc.signalCode === null) {
      child.proc.kill(signal);
      const timer = setTimeout(() => child.proc.kill('SIGKILL'), 5000);
      await child.exited;
      clearTimeout(timer);
    }
    children.delete(child);
  };

  try {
    await Promise.all(names.map((name) => startNode(name)));
  } catch (err) {
    await Promise.all(Object.values(nodes).map((n) => stopChild(n.child, 'SIGKILL')));
    await redis.stop();
    throw err;
  }
  return {
    redis,
    prefix,
    nodes,
    startNode,
    crash: (node) => stopChild(node.child, 'SIGKILL'),
    async stop() {
      await Promise.all(Object.values(nodes).map((n) => stopChild(n.child, 'SIGTERM')));
      await redis.stop();
    },
  };
}

/** `POST /api/publish`; asserts 200 and returns the answer's position. */
export async function publish(node: HeraldNode, channel: string, data: unknown): Promise<{ epoch: string; offset: number }> {
  const a = await call(node.url, 'POST', '/api/publish', { json: { channel, data } });
  assert.equal(a.status, 200, `publish on ${node.name}: ${a.text}`);
  return { epoch: a.json.epoch as string, offset: a.json.offset as number };
}

export function get(node: HeraldNode, path: string): Promise<Answer> {
  return call(node.url, 'GET', path);
}

/** Polls `check` every 25 ms; fails with `what` after `timeoutMs`. Returns the elapsed ms. */
export async function eventually(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 5000): Promise<number> {
  const started = Date.now();
  while (!(await check())) {
    if (Date.now() - started > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(25);
  }
  return Date.now() - started;
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * Publishes on `channel` through `node()` one request at a time until `stop()`; each event's data
 * is `{p: tag, seq}`. Failed publishes are counted, not thrown, so a publisher can run through a
 * crash or an outage.
 */
export interface Publisher {
  readonly acked: { epoch: string; offset: number; seq: number }[];
  failures: number;
  stop(): Promise<void>;
}

export function publisher(node: () => HeraldNode, channel: string, tag: string, pauseMs = 2): Publisher {
  let running = true;
  let loop: Promise<void> = Promise.resolve();
  const p: Publisher = {
    acked: [],
    failures: 0,
    async stop() {
      running = false;
      await loop;
    },
  };
  loop = (async () => {
    for (let seq = 1; running; seq++) {
      try {
        const a = await call(node().url, 'POST', '/api/publish', { json: { channel, data: { p: tag, seq } } });
        if (a.status === 200) p.acked.push({ epoch: a.json.epoch as string, offset: a.json.offset as number, seq });
        else p.failures++;
      } catch {
        p.failures++;
      }
      if (pauseMs > 0) await sleep(pauseMs);
    }
  })();
  return p;
}

/** Asserts `events` are offsets `from..to` of one epoch, each exactly once, in order. */
export function assertContiguous(events: readonly HeraldEvent[], epoch: string, from: number, to: number, who: string): void {
  const offsets = events.map((e) => e.offset);
  const expected: number[] = [];
  for (let i = from; i <= to; i++) expected.push(i);
  if (offsets.length !== expected.length || offsets.some((o, i) => o !== expected[i])) {
    const dup = offsets.filter((o, i) => offsets.indexOf(o) !== i);
    const missing = expected.filter((o) => !offsets.includes(o));
    assert.fail(`${who}: expected offsets ${from}..${to} once each in order; got ${offsets.length} events, missing [${missing.slice(0, 20).join(',')}], duplicated [${dup.slice(0, 20).join(',')}]`);
  }
  for (const e of events) assert.equal(e.epoch, epoch, `${who}: epoch of offset ${e.offset}`);
}

// ---- a raw WebSocket subscriber that survives moves between nodes ------------------------------

// Test code reads arbitrary JSON frames.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Frame = any;

/**
 * One channel over the raw protocol of SPEC §2. `events` holds, in arrival order, the events of
 * every subscribe answer and every live push, over all the connections it has had; `moveTo`
 * opens a new connection (on any node) and subscribes with `since` = the last position seen.
 */
export class RawSubscriber {
  readonly events: HeraldEvent[] = [];
  /** Every subscribe answer, in order. */
  readonly answers: { epoch: string; offset: number; recovered: boolean; events: HeraldEvent[] }[] = [];
  clientId = '';
  ws: WebSocket | undefined;
  closed: Promise<number> = Promise.resolve(0);
  private position: Position | undefined;
  private nextId = 1;
  private readonly pending = new Map<number, (frame: Frame) => void>();

  /** `since`: resume from there on the first connection too. */
  constructor(
    readonly channel: string,
    since?: Position,
  ) {
    if (since) this.position = { epoch: since.epoch, offset: since.offset };
  }

  get last(): Position | undefined {
    return this.position && { ...this.position };
  }

  static async on(node: HeraldNode, channel: string): Promise<RawSubscriber> {
    const s = new RawSubscriber(channel);
    await s.moveTo(node);
    return s;
  }

  /** Drops the current connection (if any), connects to `node` and resumes from the last position. */
  async moveTo(node: HeraldNode): Promise<void> {
    this.close();
    const ws = new WebSocket(`${node.url.replace(/^http/, 'ws')}/ws`);
    this.ws = ws;
    this.closed = new Promise((resolve) => ws.once('close', (code) => resolve(code)));
    ws.on('message', (data) => this.onFrame(JSON.parse(data.toString()) as Frame));
    ws.on('error', () => {}); // a crashed node: 'close' follows
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    this.clientId = (await this.request('connect')).client as string;
    await this.request('subscribe', this.position ? { channel: this.channel, since: this.position } : { channel: this.channel });
  }

  close(): void {
    const ws = this.ws;
    this.ws = undefined;
    if (ws && ws.readyState !== WebSocket.CLOSED) ws.terminate();
    for (const reject of this.pending.values()) reject({ error: { code: 'disconnected', message: 'closed by the test' } });
    this.pending.clear();
  }

  async request(op: string, fields: Record<string, unknown> = {}): Promise<Frame> {
    const ws = this.ws;
    if (!ws) throw new Error('not connected');
    const id = this.nextId++;
    const answer = await new Promise<Frame>((resolve) => {
      this.pending.set(id, resolve);
      ws.send(JSON.stringify({ id, op, ...fields }));
    });
    if (answer.error) throw Object.assign(new Error(`${op}: ${answer.error.code}: ${answer.error.message}`), { code: answer.error.code });
    return answer.result;
  }

  /** Frames in arrival order: a subscribe answer's events come before the live pushes after it. */
  private onFrame(frame: Frame): void {
    if (frame.push === 'event') {
      if (frame.event.channel === this.channel) this.take(frame.event as HeraldEvent);
      return;
    }
    if (typeof frame.id !== 'number') return;
    const resolve = this.pending.get(frame.id);
    this.pending.delete(frame.id);
    const r = frame.result;
    if (r && r.channel === this.channel && Array.isArray(r.events)) {
      this.answers.push({ epoch: r.epoch, offset: r.offset, recovered: r.recovered, events: r.events });
      for (const e of r.events as HeraldEvent[]) this.take(e);
      const p = this.position;
      if (!p || p.epoch !== r.epoch || p.offset < r.offset) this.position = { epoch: r.epoch, offset: r.offset };
    }
    resolve?.(frame);
  }

  private take(event: HeraldEvent): void {
    this.events.push(event);
    this.position = { epoch: event.epoch, offset: event.offset };
  }
}
