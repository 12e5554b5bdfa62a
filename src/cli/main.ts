/**
 * The `herald` command (SPEC §8): serve, publish, subscribe, token, bench, help. `main` returns
 * the exit code: 0 done, 1 failed (bad configuration, an error answer), 2 wrong usage.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError, OPTIONS, OPTION_KEYS, envName, flagName } from '../server/config.js';
import { PACKAGE_ROOT } from '../server/static.js';
import { UsageError, parseArgs, type FlagKind, type ParsedArgs } from './args.js';
import { runPublish } from './publish.js';
import { DEFAULT_URL, RemoteError } from './remote.js';
import { runServe, serveFlagKind } from './serve.js';
import { runSubscribe } from './subscribe.js';
import { runToken } from './token.js';

const USAGE = `Usage: herald <command> [options]

Commands:
  serve                         run the server (default http://127.0.0.1:8080)
  publish <channel> <data>      publish an event; <data> is JSON, or else a string
  subscribe <channel…>          print events as JSON lines [--since <epoch>:<offset>]
  token                         print a client JWT (HS256) for a server with --jwt-secret
  bench                         run the benchmarks
  help [command]                show help for a command

Options:
  -h, --help                    show help
  --version                     print the version

Run "herald help <command>" for the options of a command.
`;

const CLIENT_OPTIONS = `  --url <url>                   the server (env HERALD_URL, default ${DEFAULT_URL})
  --api-key <key>               API key for /api/* (env HERALD_API_KEY)
  --token <jwt>                 client token (env HERALD_TOKEN)
`;

const PUBLISH_USAGE = `Usage: herald publish <channel> <data> [options]

Publishes one event and prints the result as JSON. <data> is parsed as JSON when it is
JSON ('{"a":1}', 42, '"text"', null), and sent as a string otherwise. Uses the HTTP API;
with only --token (no API key) it publishes over WebSocket as that client.

Options:
${CLIENT_OPTIONS}`;

const SUBSCRIBE_USAGE = `Usage: herald subscribe <channel…> [options]

Prints every event of the channels as one JSON line on stdout (status lines go to stderr).
Reconnects when the connection drops and resumes without loss. Ctrl-C exits 0.

Options:
  --since <epoch>:<offset>      start after this position (every channel given)
${CLIENT_OPTIONS}`;

const TOKEN_USAGE = `Usage: herald token --secret S --sub U --subscribe P… --publish P… --presence P… --ttl 3600

Prints a client JWT (HS256) for a server started with --jwt-secret S. Patterns are channel names
where * matches any characters; a list option takes every argument up to the next option and
may be repeated. The token allows only what its patterns name.

Options:
  --secret <secret>             the server's --jwt-secret, at least 32 bytes (env HERALD_JWT_SECRET)
  --sub <user>                  the user (the "sub" claim)
  --subscribe <pattern…>        channels the client may subscribe to (and read the history of)
  --publish <pattern…>          channels the client may publish to
  --presence <pattern…>         channels whose presence the client may read
  --ttl <seconds>               lifetime of the token (default 3600)
  --issuer <iss>                the "iss" claim (for a server with --jwt-issuer)
  --audience <aud>              the "aud" claim (for a server with --jwt-audience)
`;

const BENCH_USAGE = `Usage: herald bench [options]

Runs the benchmarks; "herald bench --help" lists their options.
`;

function serveUsage(): string {
  const keys = OPTION_KEYS.filter((k) => !OPTIONS[k].fileOnly);
  const flags = keys.map((key) => `  --${flagName(key)} ${OPTIONS[key].arg ?? ''}`);
  const width = Math.max(...flags.map((f) => f.length)) + 2;
  const lines = keys.map((key, i) => {
    const spec = OPTIONS[key];
    const flag = flags[i]!.padEnd(width);
    const def = spec.default === undefined || (Array.isArray(spec.default) && spec.default.length === 0) ? '' : ` (default ${String(spec.default)})`;
    return `${flag}${spec.doc}${def}`;
  });
  return `Usage: herald serve [options]

Runs the server. Options come from flags, then HERALD_* environment variables (e.g.
${envName('maxMessageBytes')}; lists comma-separated), then the --config file (JSON or YAML,
keys in camelCase, e.g. maxMessageBytes; "namespaces" only there), then the defaults.

Options:
${lines.join('\n')}
`;
}

const HELP: Record<string, () => string> = {
  serve: serveUsage,
  publish: () => PUBLISH_USAGE,
  subscribe: () => SUBSCRIBE_USAGE,
  token: () => TOKEN_USAGE,
  bench: () => BENCH_USAGE,
};

const clientFlagKind = (extra: Record<string, FlagKind> = {}) => (flag: string): FlagKind | undefined =>
  ({ help: 'boolean', url: 'value', 'api-key': 'value', token: 'value', ...extra })[flag] as FlagKind | undefined;

export function version(): string {
  const pkg = JSON.parse(readFileSync(join(PACKAGE_ROOT, 'package.json'), 'utf8')) as { version?: unknown };
  return String(pkg.version);
}

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined) {
    process.stderr.write(USAGE);
    return 2;
  }
  if (command === '--version' || command === '-V') {
    process.stdout.write(`${version()}\n`);
    return 0;
  }
  if (command === 'help' || command === '--help' || command === '-h') {
    const topic = rest[0];
    if (topic !== undefined && !HELP[topic]) {
      process.stderr.write(`herald: unknown command ${JSON.stringify(topic)}\n\n${USAGE}`);
      return 2;
    }
    process.stdout.write(topic ? HELP[topic]!() : USAGE);
    return 0;
  }

  try {
    switch (command) {
      case 'serve': {
        const args = parseArgs(rest, serveFlagKind);
        if (wantsHelp(args)) return help('serve');
        if (args.positionals.length > 0) throw new UsageError(`serve takes no arguments, got ${JSON.stringify(args.positionals[0])}`);
        return await runServe(args);
      }
      case 'publish': {
        const args = parseArgs(rest, clientFlagKind());
        if (wantsHelp(args)) return help('publish');
        return await runPublish(args);
      }
      case 'subscribe': {
        const args = parseArgs(rest, clientFlagKind({ since: 'value' }));
        if (wantsHelp(args)) return help('subscribe');
        return await runSubscribe(args);
      }
      case 'token': {
        if (rest.includes('--help') || rest.includes('-h')) return help('token');
        return await runToken(rest, process.env);
      }
      case 'bench':
        // The bench module parses its own options, --help included.
        return await runBench(rest);
      default:
        process.stderr.write(`herald: unknown command ${JSON.stringify(command)}\n\n${USAGE}`);
        return 2;
    }
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`herald ${command}: ${err.message}\nRun "herald help ${command}" for usage.\n`);
      return 2;
    }
    if (err instanceof ConfigError) {
      process.stderr.write(`herald: ${err.message}\n`);
      return 1;
    }
    if (err instanceof RemoteError) {
      process.stderr.write(`herald ${command}: ${err.code}: ${err.message}\n`);
      return 1;
    }
    const e = err as NodeJS.ErrnoException;
    if (command === 'serve' && (e.code === 'EADDRINUSE' || e.code === 'EACCES' || e.code === 'EADDRNOTAVAIL')) {
      process.stderr.write(`herald: cannot listen: ${e.message}\n`);
      return 1;
    }
    throw err;
  }
}

function wantsHelp(args: ParsedArgs): boolean {
  return args.flags.has('help');
}

function help(command: string): number {
  process.stdout.write(HELP[command]!());
  return 0;
}

/** The benchmark (src/cli/bench.ts), loaded only when asked for: it pulls in the load generator. */
async function runBench(argv: string[]): Promise<number> {
  const { runBench: bench } = await import('./bench.js');
  return bench(argv);
}
