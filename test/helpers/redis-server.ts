/**
 * A real `redis-server` for tests: a child process on a free port, no persistence
 * (`--save '' --appendonly no`), stopped by PID. Suites check `redisBinary` first:
 *
 *   const redis = redisBinary;
 *   describe('…', { skip: redis.skip }, () => {
 *     before(async () => { server = await startRedisServer(); });
 *     after(() => server.stop());
 *
 * Missing binary: skipped with `install redis: apt-get install -y redis-server`, unless
 * `HERALD_REQUIRE_BINARIES=1` (then `startRedisServer` throws and the suite fails).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer, Socket } from 'node:net';
import { rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { requireBinary } from './require-binary.js';

export const redisBinary = requireBinary('redis', 'redis-server', 'apt-get install -y redis-server');

export interface RedisServer {
  readonly port: number;
  readonly url: string;
  /** PID of the running server, undefined while stopped. */
  readonly pid: number | undefined;
  /** Starts it again on the same port (after `stop` or `kill`): empty, since nothing is saved. */
  start(): Promise<void>;
  /** SIGKILL, as a crash would: clients see the connection drop. */
  kill(): Promise<void>;
  /** Stops it for good (the suite's `after`). */
  stop(): Promise<void>;
  /** SIGSTOP / SIGCONT: a server that hangs without closing its connections. */
  pause(): void;
  resume(): void;
  /** Runs one command on a fresh connection (e.g. FLUSHALL), returns the raw reply. */
  command(...args: string[]): Promise<string>;
}

const running = new Set<ChildProcess>();
process.once('exit', () => {
  // A suite that failed before its `after` must not leave servers behind.
  for (const child of running) if (child.pid !== undefined) try { process.kill(child.pid, 'SIGKILL'); } catch { /* gone */ }
});

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });
}

export interface RedisServerOptions {
  /** Extra redis-server arguments, e.g. `['--cluster-enabled', 'yes']`. */
  args?: readonly string[];
}

export async function startRedisServer(options: RedisServerOptions = {}): Promise<RedisServer> {
  if (!redisBinary.available) throw new Error(redisBinary.failure ?? redisBinary.skip ?? 'redis-server not found');
  const binary = redisBinary.path!;
  const port = await freePort();
  let child: ChildProcess | undefined;

  const launch = async (): Promise<void> => {
    const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--protected-mode', 'no', '--daemonize', 'no', '--dir', tmpdir(), ...(options.args ?? [])];
    const proc = spawn(binary, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    running.add(proc);
    child = proc;
    let output = '';
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => fail(new Error(`redis-server did not start on port ${port} within 5 s:\n${output}`)), 5000);
      const onData = (chunk: Buffer): void => {
        output += chunk.toString();
        if (output.includes('Ready to accept connections')) {
          clearTimeout(timer);
          proc.stdout!.off('data', onData);
          proc.stdout!.resume(); // keep draining so the pipe never fills
          resolve();
        }
      };
      const fail = (err: Error): void => {
        clearTimeout(timer);
        if (proc.pid !== undefined) try { process.kill(proc.pid, 'SIGKILL'); } catch { /* gone */ }
        reject(err);
      };
      proc.stdout!.on('data', onData);
      proc.stderr!.on('data', (c: Buffer) => (output += c.toString()));
      proc.once('error', fail);
      proc.once('exit', (code) => fail(new Error(`redis-server exited with ${code}:\n${output}`)));
    });
  };

  const killChild = async (): Promise<void> => {
    const proc = child;
    child = undefined;
    if (!proc || proc.pid === undefined || proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
    process.kill(proc.pid, 'SIGKILL'); // also ends a paused (SIGSTOPped) server
    await exited;
    running.delete(proc);
  };

  await launch();
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    get pid() {
      return child?.pid;
    },
    start: launch,
    kill: killChild,
    stop: killChild,
    pause: () => {
      if (child?.pid !== undefined) process.kill(child.pid, 'SIGSTOP');
    },
    resume: () => {
      if (child?.pid !== undefined) process.kill(child.pid, 'SIGCONT');
    },
    command: (...args) => rawCommand(port, args),
  };
}

/** A whole simple reply: a line, or a bulk string with all its bytes. */
function complete(reply: string): boolean {
  if (!reply.endsWith('\r\n')) return false;
  if (!reply.startsWith('$')) return true;
  const header = reply.indexOf('\r\n');
  const length = Number(reply.slice(1, header));
  return length < 0 || Buffer.byteLength(reply) >= header + 2 + length + 2;
}

/** One RESP command on a throwaway connection: enough for FLUSHALL/CONFIG in tests, no client library. */
function rawCommand(port: number, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = new Socket();
    let reply = '';
    socket.setTimeout(3000, () => socket.destroy(new Error('redis command timed out')));
    socket.once('error', reject);
    socket.on('data', (c: Buffer) => {
      reply += c.toString();
      if (complete(reply)) {
        socket.end();
        resolve(reply.trimEnd());
      }
    });
    socket.connect(port, '127.0.0.1', () => {
      let msg = `*${args.length}\r\n`;
      for (const a of args) msg += `$${Buffer.byteLength(a)}\r\n${a}\r\n`;
      socket.write(msg);
    });
  });
}

/**
 * A Redis Cluster of `size` masters (no replicas) on free ports, slots spread by
 * `redis-cli --cluster create`. Resolves once every node reports `cluster_state:ok`.
 */
export async function startRedisCluster(size = 3): Promise<{ nodes: RedisServer[]; urls: string[]; stop(): Promise<void> }> {
  const nodes: RedisServer[] = [];
  const confs: string[] = [];
  const stop = async (): Promise<void> => {
    await Promise.all(nodes.map((n) => n.stop()));
    for (const conf of confs) rmSync(join(tmpdir(), conf), { force: true });
  };
  try {
    for (let i = 0; i < size; i++) {
      const conf = `herald-test-nodes-${process.pid}-${Date.now()}-${i}.conf`;
      confs.push(conf);
      nodes.push(await startRedisServer({ args: ['--cluster-enabled', 'yes', '--cluster-config-file', conf, '--cluster-node-timeout', '2000'] }));
    }
    const cli = redisBinary.path!.replace(/redis-server$/, 'redis-cli');
    const addresses = nodes.map((n) => `127.0.0.1:${n.port}`);
    await new Promise<void>((resolve, reject) => {
      const proc = spawn(cli, ['--cluster', 'create', ...addresses, '--cluster-replicas', '0', '--cluster-yes'], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      proc.stdout!.on('data', (c: Buffer) => (out += c.toString()));
      proc.stderr!.on('data', (c: Buffer) => (out += c.toString()));
      proc.once('error', reject);
      proc.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`redis-cli --cluster create exited with ${code}:\n${out}`))));
    });
    const deadline = Date.now() + 10_000;
    for (const node of nodes) {
      while (!(await node.command('CLUSTER', 'INFO')).includes('cluster_state:ok')) {
        if (Date.now() > deadline) throw new Error('the cluster did not become ready within 10 s');
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    return { nodes, urls: nodes.map((n) => n.url), stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
