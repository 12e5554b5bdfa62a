/**
 * `herald serve`: resolves the configuration (flags > HERALD_* > --config file > defaults), logs
 * JSON to stderr with pino, prints `listening on http://HOST:PORT` to stdout whatever the log
 * level, and shuts down gracefully on SIGINT/SIGTERM (exit 0).
 */
import { pino } from 'pino';
import { resolveConfig, startServer, type HeraldServer } from '../server/index.js';
import { optionForFlag } from '../server/config.js';
import type { ParsedArgs } from './args.js';

/** Kind of a serve flag: every server option takes a value. */
export function serveFlagKind(flag: string): 'value' | 'boolean' | undefined {
  if (flag === 'help') return 'boolean';
  return optionForFlag(flag) ? 'value' : undefined;
}

export async function runServe(args: ParsedArgs): Promise<number> {
  // Signals first: one arriving while we start still ends in a clean exit 0.
  let signalled: string | undefined;
  let onStop: (() => void) | undefined;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (signalled) {
      process.stderr.write(`herald: ${signal} again: exiting now\n`);
      process.exit(1);
    }
    signalled = signal;
    onStop?.();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  try {
    const flags: Record<string, string[]> = {};
    for (const [name, values] of args.flags) if (name !== 'help') flags[name] = values;
    const { config, warnings } = await resolveConfig({ flags, env: process.env });
    const logger = pino({ level: config.logLevel, name: 'herald' }, pino.destination({ dest: 2, sync: true }));
    for (const warning of warnings) logger.warn(warning);

    const server: HeraldServer = await startServer({ ...config, logger });
    process.stdout.write(`listening on ${server.url}\n`);
    logger.info({ url: server.url, config: config.config }, 'listening');

    if (!signalled) await new Promise<void>((resolve) => (onStop = resolve));
    logger.info({ signal: signalled }, 'shutting down');
    const started = Date.now();
    await server.close();
    logger.info({ ms: Date.now() - started }, 'closed');
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
  // Everything is closed; should a stray handle remain, it must not hold the exit.
  setTimeout(() => process.exit(0), 500).unref();
  return 0;
}
