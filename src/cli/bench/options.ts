/** Flags of `herald bench`: defaults next to their description, validated once, then frozen. */
import type { Transport } from './load.js';

export const BENCH_HELP = `herald bench — fan-out benchmark: N subscribers, fixed publish rates, every delivery verified

Usage: herald bench [flags] [-- flags for \`herald serve\`]

Starts \`herald serve\` on a free loopback port (or targets --url), opens the subscribers in a
separate process, publishes over POST /api/publish at each rate for --duration seconds after a
warm-up, and checks that every subscriber gets every event once, in order. Reports deliveries/s,
latency p50/p90/p99/max (publish request -> frame received), server CPU µs per delivery and RSS.

Flags:
  --subscribers N      virtual subscribers (default 1000; at most 100000)
  --rate R[,R…]        messages per second; one scenario per rate (default 10,50,200,1000)
  --duration S         measured seconds per scenario (default 10)
  --warmup S           seconds published before each measurement, not counted (default 2)
  --size B             bytes of JSON data per message (default 100)
  --transport T        ws | sse | poll (default ws)
  --sources K          spread connections over loopback source addresses 127.0.0.1..127.0.0.K,
                       for more connections than one address has ports (default 1)
  --clients K          subscriber processes (default 1)
  --channel NAME       channel to publish on (default bench)
  --baseline           also run every scenario against a raw \`ws\` prepared-frame broadcast
                       server (bench/baseline-ws-server.mjs) and print herald/baseline ratios
  --baseline-transport T  the baseline's subscribers use T instead of --transport (implies
                       --baseline): \`--transport poll --baseline-transport ws\` compares
                       herald's long-poll with the WebSocket baseline
  --repeat N           run each rate N times, herald and baseline alternating which goes first,
                       and pool the rounds into one ratio per rate (default 1): on a shared,
                       noisy machine this is steadier than any single round
  --url URL            benchmark a running server instead of starting one (loopback only
                       unless --allow-remote); its CPU and RSS need --pid
  --pid PID            the process to measure CPU and RSS of, with --url
  --api-key KEY        sent as "Authorization: Bearer KEY" (with --url)
  --allow-remote       allow a --url that is not on 127.0.0.0/8 or ::1
  --server-cpu-prof D  run the servers under \`node --cpu-prof\`, write the profiles to D and
                       print where they spent their time
  --json               print one JSON document instead of the table
  --quiet              no progress on stderr
  --help               this text

Exit status: 0 when every delivery was verified (no loss, duplicate, reorder or bad payload),
1 when one was not, 2 on a usage error.`;

export interface BenchOptions {
  subscribers: number;
  rates: number[];
  /** Rounds per rate (ratios pooled over them). */
  repeat: number;
  duration: number;
  warmup: number;
  size: number;
  transport: Transport;
  sources: number;
  clients: number;
  channel: string;
  baseline: boolean;
  /** The transport of the baseline's subscribers (default: `transport`). */
  baselineTransport: Transport;
  url: string | undefined;
  pid: number | undefined;
  apiKey: string | undefined;
  allowRemote: boolean;
  serverCpuProf: string | undefined;
  json: boolean;
  quiet: boolean;
  help: boolean;
  /** Arguments after `--`, passed to `herald serve`. */
  serverArgs: string[];
}

export class UsageError extends Error {
  override name = 'UsageError';
}

const VALUE_FLAGS = new Set(['subscribers', 'rate', 'repeat', 'duration', 'warmup', 'size', 'transport', 'sources', 'clients', 'channel', 'url', 'pid', 'api-key', 'server-cpu-prof', 'baseline-transport']);
const BOOLEAN_FLAGS = new Set(['baseline', 'allow-remote', 'json', 'quiet', 'help']);

function number(flag: string, text: string, min: number, max: number, integer: boolean): number {
  const n = Number(text);
  if (text.trim() === '' || !Number.isFinite(n) || (integer && !Number.isInteger(n)) || n < min || n > max) {
    throw new UsageError(`--${flag} must be ${integer ? 'an integer' : 'a number'} from ${min} to ${max} (got "${text}")`);
  }
  return n;
}

/** Whether a URL's host is on this machine's loopback. */
export function isLoopbackHost(hostname: string): boolean {
  const h = hostname.replace(/^\[|\]$/g, '').toLowerCase();
  return h === 'localhost' || h === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h);
}

function transportFlag(flag: string, value: string): Transport {
  if (value !== 'ws' && value !== 'sse' && value !== 'poll') throw new UsageError(`--${flag} must be ws, sse or poll (got "${value}")`);
  return value;
}

export function parseBenchArgs(argv: readonly string[]): Readonly<BenchOptions> {
  const values = new Map<string, string>();
  const flags = new Set<string>();
  let serverArgs: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') {
      serverArgs = argv.slice(i + 1);
      break;
    }
    if (arg === '-h') {
      flags.add('help');
      continue;
    }
    if (!arg.startsWith('--')) throw new UsageError(`unexpected argument "${arg}" (see herald bench --help)`);
    const eq = arg.indexOf('=');
    const name = arg.slice(2, eq < 0 ? undefined : eq);
    if (BOOLEAN_FLAGS.has(name)) {
      if (eq >= 0) throw new UsageError(`--${name} takes no value`);
      flags.add(name);
    } else if (VALUE_FLAGS.has(name)) {
      const value = eq >= 0 ? arg.slice(eq + 1) : argv[++i];
      if (value === undefined) throw new UsageError(`--${name} needs a value`);
      values.set(name, value);
    } else {
      throw new UsageError(`unknown flag --${name} (see herald bench --help)`);
    }
  }
  const get = (name: string, fallback: string): string => values.get(name) ?? fallback;

  const rates = get('rate', '10,50,200,1000').split(',').map((r) => number('rate', r, 1, 100_000, false));
  if (rates.length > 16) throw new UsageError('--rate takes at most 16 rates');
  const transport = transportFlag('transport', get('transport', 'ws'));
  const baselineTransport = transportFlag('baseline-transport', get('baseline-transport', transport));
  const channel = get('channel', 'bench');
  if (channel.length === 0 || channel.length > 200 || /[\u0000-\u001f\u007f]/.test(channel)) throw new UsageError('--channel must be 1 to 200 characters, no control characters');

  let url: string | undefined;
  if (values.has('url')) {
    let parsed: URL;
    try {
      parsed = new URL(values.get('url')!);
    } catch {
      throw new UsageError(`--url is not a URL: "${values.get('url')}"`);
    }
    if (parsed.protocol !== 'http:') throw new UsageError('--url must be an http:// URL');
    if (!flags.has('allow-remote') && !isLoopbackHost(parsed.hostname)) {
      throw new UsageError(`--url ${parsed.host} is not a loopback address; add --allow-remote to benchmark another machine`);
    }
    url = parsed.href.replace(/\/$/, '');
  }
  const pid = values.has('pid') ? number('pid', values.get('pid')!, 1, 2 ** 31, true) : undefined;
  if (pid !== undefined && url === undefined) throw new UsageError('--pid goes with --url (a server the benchmark starts is measured anyway)');
  if (serverArgs.length > 0 && url !== undefined) throw new UsageError('arguments after -- are for the herald server the benchmark starts, not for --url');

  const sources = number('sources', get('sources', '1'), 1, 254, true);
  return Object.freeze({
    subscribers: number('subscribers', get('subscribers', '1000'), 1, 100_000, true),
    rates,
    repeat: number('repeat', get('repeat', '1'), 1, 20, true),
    duration: number('duration', get('duration', '10'), 0.5, 600, false),
    warmup: number('warmup', get('warmup', '2'), 0, 60, false),
    size: number('size', get('size', '100'), 34, 60_000, true),
    transport,
    sources,
    clients: number('clients', get('clients', '1'), 1, 16, true),
    channel,
    baseline: flags.has('baseline') || values.has('baseline-transport'),
    baselineTransport,
    url,
    pid,
    apiKey: values.get('api-key'),
    allowRemote: flags.has('allow-remote'),
    serverCpuProf: values.get('server-cpu-prof'),
    json: flags.has('json'),
    quiet: flags.has('quiet'),
    help: flags.has('help'),
    serverArgs,
  });
}
