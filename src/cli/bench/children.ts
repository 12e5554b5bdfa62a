/**
 * Child processes of a benchmark run: the servers under test and the subscriber processes.
 * Every child is tracked here and ended by its PID, at the end of the run, on an error and on
 * SIGINT; a synchronous last resort runs at process exit.
 */
import { type ChildProcess, fork, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const children = new Set<ChildProcess>();

function track(child: ChildProcess): ChildProcess {
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

let exitHookInstalled = false;
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const child of children) {
      if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) {
        try {
          process.kill(child.pid, 'SIGKILL');
        } catch {
          // Already gone.
        }
      }
    }
  });
}

/** The package root: this file is src/cli/bench/children.ts or dist/cli/bench/children.js. */
export const packageRoot = fileURLToPath(new URL('../../../', import.meta.url));
/** Whether this code runs from TypeScript sources (through tsx), e.g. in the tests. */
const fromSource = import.meta.url.endsWith('.ts');

export interface ServerChild {
  child: ChildProcess;
  pid: number;
  url: string;
  /** The last lines the child wrote to stderr, for error messages. */
  stderrTail(): string;
}

export interface ServerSpec {
  name: string;
  /** Arguments after `node`. */
  args: string[];
  execArgv?: string[];
}

export function heraldServerSpec(extra: string[]): ServerSpec {
  const bin = `${packageRoot}bin/herald.js`;
  if (!existsSync(`${packageRoot}dist/cli/main.js`)) {
    throw new Error('dist/ is missing: run `npm run build` before starting a herald server for the benchmark');
  }
  // Every virtual subscriber comes from loopback: per-address limits would throttle the load
  // itself, so they are off (flags after `--` still win: the last occurrence counts).
  const unlimited = ['--max-connections-per-ip', '0', '--ip-command-rate', '0', '--ip-publish-rate', '0'];
  return { name: 'herald', args: [bin, 'serve', '--host', '127.0.0.1', '--port', '0', '--log-level', 'warn', ...unlimited, ...extra] };
}

export function baselineServerSpec(): ServerSpec {
  const script = `${packageRoot}bench/baseline-ws-server.mjs`;
  if (!existsSync(script)) throw new Error(`the baseline server is missing (${script})`);
  return { name: 'baseline', args: [script, '--host', '127.0.0.1', '--port', '0'] };
}

/** Starts a server and waits for its `listening on http://HOST:PORT` line. */
export function startServer(spec: ServerSpec, timeoutMs = 20_000): Promise<ServerChild> {
  installExitHook();
  return new Promise((resolve, reject) => {
    const child = track(spawn(process.execPath, [...(spec.execArgv ?? []), ...spec.args], {
      stdio: ['ignore', 'pipe', 'pipe'],
    }));
    let stderr = '';
    let stdout = '';
    const tail = (): string => stderr.trim().split('\n').slice(-8).join('\n');
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (s: string) => {
      stderr = (stderr + s).slice(-8_000);
    });
    let settled = false;
    const timer = setTimeout(() => finish(new Error(`${spec.name} server did not print "listening on" within ${timeoutMs} ms${tail() ? `:\n${tail()}` : ''}`)), timeoutMs);
    const finish = (err?: Error, url?: string): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (err) {
        void stopChild(child, 0);
        reject(err);
      } else {
        resolve({ child, pid: child.pid!, url: url!, stderrTail: tail });
      }
    };
    child.stdout!.setEncoding('utf8');
    child.stdout!.on('data', (s: string) => {
      if (settled) return;
      stdout = (stdout + s).slice(-8_000);
      const m = /listening on (http:\/\/\S+)/.exec(stdout);
      if (m) finish(undefined, m[1]!.replace(/\/$/, ''));
    });
    child.on('error', (err) => finish(new Error(`${spec.name} server could not start: ${err.message}`)));
    child.on('exit', (code, signal) => finish(new Error(`${spec.name} server exited (${signal ?? code}) before listening${tail() ? `:\n${tail()}` : ''}`)));
  });
}

/** Forks a subscriber process (src/cli/bench/load.ts or its build). */
export function forkLoad(): ChildProcess {
  installExitHook();
  const file = fileURLToPath(new URL(`./load.${fromSource ? 'ts' : 'js'}`, import.meta.url));
  return track(fork(file, [], {
    execArgv: fromSource ? ['--import', 'tsx'] : [],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  }));
}

/**
 * Ends a child: SIGTERM (unless `askedAlready`, when it was told over IPC and exits by itself),
 * then SIGKILL after `graceMs`; resolves when it has exited.
 */
export function stopChild(child: ChildProcess, graceMs = 12_000, askedAlready = false): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return Promise.resolve();
  const pid = child.pid;
  return new Promise((resolve) => {
    const kill = setTimeout(() => {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // Already gone.
      }
    }, graceMs);
    child.once('exit', () => {
      clearTimeout(kill);
      resolve();
    });
    if (askedAlready) return;
    try {
      process.kill(pid, graceMs > 0 ? 'SIGTERM' : 'SIGKILL');
    } catch {
      clearTimeout(kill);
      resolve();
    }
  });
}

/** Ends every child still running (used on errors and SIGINT). */
export async function stopAll(graceMs = 3_000): Promise<void> {
  await Promise.all([...children].map((c) => stopChild(c, graceMs)));
}
