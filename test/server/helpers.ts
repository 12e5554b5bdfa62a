/** Helpers for the server and CLI tests: HTTP calls, raw sockets, WebSocket clients, child processes. */
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, rmSync, statSync } from 'node:fs';
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { connect, createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const BIN = join(ROOT, 'bin', 'herald.js');

export interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  text: string;
  // Test code reads arbitrary JSON shapes.
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  json: any;
}

export interface CallOptions {
  /** Sent as JSON with content-type application/json. */
  json?: unknown;
  /** Sent as is. */
  body?: string | Buffer;
  headers?: Record<string, string>;
}

/** One HTTP request on a fresh connection (no keep-alive), with node:http: nothing hidden. */
export function call(base: string, method: string, path: string, options: CallOptions = {}): Promise<Answer> {
  const headers: Record<string, string | number> = { connection: 'close', ...options.headers };
  let body: Buffer | undefined;
  if (options.json !== undefined) {
    body = Buffer.from(JSON.stringify(options.json));
    headers['content-type'] ??= 'application/json';
  } else if (options.body !== undefined) body = Buffer.from(options.body);
  if (body) headers['content-length'] = body.length;
  return new Promise((resolve, reject) => {
    const req = httpRequest(new URL(path, base), { method, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json: unknown;
        try {
          json = JSON.parse(text);
        } catch {
          json = undefined;
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** Asserts an error answer: exact status, `{"error":{"code","message"}}` and nothing else. */
export function assertError(answer: Answer, status: number, code: string): void {
  assert.equal(answer.status, status, `status (body: ${answer.text})`);
  assert.match(String(answer.headers['content-type']), /^application\/json/);
  assert.deepEqual(Object.keys(answer.json as object), ['error']);
  assert.deepEqual(Object.keys(answer.json.error as object).sort(), ['code', 'message']);
  assert.equal(answer.json.error.code, code);
  assert.equal(typeof answer.json.error.message, 'string');
  assert.ok(!/\n\s+at /.test(answer.text), 'no stack trace');
}

/** Raw bytes to the server; resolves with everything it sent back until it closed the connection. */
export function raw(base: string, write: (socket: Socket) => void): Promise<string> {
  const url = new URL(base);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(url.port), url.hostname);
    const chunks: Buffer[] = [];
    socket.on('data', (c) => chunks.push(c));
    socket.on('error', (err: NodeJS.ErrnoException) => (err.code === 'ECONNRESET' || err.code === 'EPIPE' ? undefined : reject(err)));
    socket.on('close', () => resolve(Buffer.concat(chunks).toString('latin1')));
    socket.on('connect', () => write(socket));
  });
}

// ---- WebSocket -------------------------------------------------------------------------------

/** A protocol client for tests: every frame it receives is kept, in order. */
export class TestWs {
  readonly ws: WebSocket;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  readonly frames: any[] = [];
  readonly closed: Promise<{ code: number; reason: string }>;
  private nextId = 1;
  private waiters: (() => void)[] = [];

  constructor(url: string) {
    this.ws = new WebSocket(url.replace(/^http/, 'ws'));
    this.ws.on('message', (data) => {
      this.frames.push(JSON.parse(data.toString()));
      for (const w of this.waiters.splice(0)) w();
    });
    this.closed = new Promise((resolve) => this.ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() })));
  }

  opened(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.ws.once('open', () => resolve());
      this.ws.once('error', reject);
    });
  }

  /** Waits for the first frame (from index `from`) matching `predicate`. */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  async next(predicate: (frame: any) => boolean, from = 0): Promise<any> {
    for (;;) {
      const found = this.frames.slice(from).find(predicate);
      if (found !== undefined) return found;
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
  }

  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  async request(op: string, fields: Record<string, unknown> = {}): Promise<any> {
    const id = this.nextId++;
    this.ws.send(JSON.stringify({ id, op, ...fields }));
    const answer = await this.next((f) => f.id === id);
    if (answer.error) throw Object.assign(new Error(answer.error.message), { code: answer.error.code });
    return answer.result;
  }

  /** Opens, connects and subscribes to `channels`; returns the client id. */
  static async subscribed(base: string, ...channels: string[]): Promise<{ ws: TestWs; client: string }> {
    const ws = new TestWs(`${base}/ws`);
    await ws.opened();
    const { client } = await ws.request('connect');
    for (const channel of channels) await ws.request('subscribe', { channel });
    return { ws, client };
  }
}

// ---- build and child processes ---------------------------------------------------------------

function newestMtime(dir: string): number {
  let newest = 0;
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    const info = statSync(path);
    if (info.isDirectory()) newest = Math.max(newest, newestMtime(path));
    else if (name.endsWith('.ts') && !name.endsWith('.test.ts')) newest = Math.max(newest, info.mtimeMs);
  }
  return newest;
}

/**
 * The CLI tests run bin/herald.js, which loads dist/. `npm test` builds first; run alone, these
 * tests compile dist/ themselves when it is missing or older than src/ (one test file at a time:
 * a lock directory keeps concurrent test files from compiling over each other).
 */
export async function ensureBuilt(): Promise<void> {
  const marker = join(ROOT, 'dist', 'cli', 'main.js');
  const fresh = (): boolean => existsSync(marker) && statSync(marker).mtimeMs >= newestMtime(join(ROOT, 'src'));
  if (fresh()) return;
  const lock = join(ROOT, 'dist', '.test-build-lock');
  mkdirSync(join(ROOT, 'dist'), { recursive: true });
  const deadline = Date.now() + 120_000;
  for (;;) {
    try {
      mkdirSync(lock);
      break;
    } catch {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${lock}`);
      await new Promise((r) => setTimeout(r, 200));
      if (fresh()) return;
    }
  }
  try {
    if (fresh()) return;
    // tsc emits even when another module of the tree has type errors; the CLI's files are what we need.
    spawnSync(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(ROOT, 'tsconfig.build.json')], { cwd: ROOT, stdio: 'ignore' });
    assert.ok(existsSync(marker), 'dist/cli/main.js was not built');
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
}

export interface Child {
  proc: ChildProcessWithoutNullStreams;
  stdout(): string;
  stderr(): string;
  /** Resolves with the first stdout/stderr line matching `re` (rejects if the process exits first). */
  line(re: RegExp, stream?: 'stdout' | 'stderr'): Promise<RegExpExecArray>;
  /** Resolves once the complete lines of `stream` satisfy `done` (rejects if the process exits first). */
  until(stream: 'stdout' | 'stderr', done: (lines: string[]) => boolean): Promise<string[]>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Runs `herald …args` from dist/ with `env` added to (a copy of) the environment, minus inherited HERALD_* variables. */
export function herald(args: string[], env: Record<string, string | undefined> = {}): Child {
  const inherited = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('HERALD_')));
  const fullEnv: Record<string, string | undefined> = { ...inherited, ...env };
  for (const key of Object.keys(fullEnv)) if (fullEnv[key] === undefined) delete fullEnv[key];
  const proc = spawn(process.execPath, [BIN, ...args], { cwd: ROOT, env: fullEnv as NodeJS.ProcessEnv });
  let out = '';
  let err = '';
  const listeners = new Set<() => void>();
  proc.stdout.setEncoding('utf8').on('data', (c: string) => {
    out += c;
    for (const l of listeners) l();
  });
  proc.stderr.setEncoding('utf8').on('data', (c: string) => {
    err += c;
    for (const l of listeners) l();
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => proc.on('close', (code, signal) => resolve({ code, signal })));
  let done = false;
  void exited.then(() => {
    done = true;
    for (const l of listeners) l();
  });
  const until = (stream: 'stdout' | 'stderr', satisfied: (lines: string[]) => boolean): Promise<string[]> =>
    new Promise((resolve, reject) => {
      const check = (): void => {
        const lines = (stream === 'stdout' ? out : err).split('\n').slice(0, -1);
        if (satisfied(lines)) {
          listeners.delete(check);
          resolve(lines);
        } else if (done) {
          listeners.delete(check);
          reject(new Error(`process exited first; stdout: ${out}\nstderr: ${err}`));
        }
      };
      listeners.add(check);
      check();
    });
  return {
    proc,
    stdout: () => out,
    stderr: () => err,
    exited,
    until,
    async line(re, stream = 'stdout') {
      const lines = await until(stream, (ls) => ls.some((l) => re.test(l)));
      return re.exec(lines.find((l) => re.test(l))!)!;
    },
  };
}

/** A port that was free a moment ago (for tests that must know the port before the server says it). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}
