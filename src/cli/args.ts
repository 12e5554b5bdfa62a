/** Command-line parsing for the subcommands: `--flag value`, `--flag=value`, boolean flags, `--`. */

/** A mistake in the command line: the CLI prints it with the usage hint and exits 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

export type FlagKind = 'value' | 'boolean';

export interface ParsedArgs {
  positionals: string[];
  /** Values by flag name (no dashes), each occurrence in order; a boolean flag holds `['true']`. */
  flags: Map<string, string[]>;
}

const ALIASES: Record<string, string> = { h: 'help' };

/** Parses `argv`; `kindOf` says whether a flag takes a value (undefined = unknown flag). */
export function parseArgs(argv: readonly string[], kindOf: (flag: string) => FlagKind | undefined): ParsedArgs {
  const positionals: string[] = [];
  const flags = new Map<string, string[]>();
  const add = (name: string, value: string): void => {
    const list = flags.get(name);
    if (list) list.push(value);
    else flags.set(name, [value]);
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') {
      positionals.push(...argv.slice(i + 1));
      break;
    }
    let name: string;
    let inline: string | undefined;
    if (arg.startsWith('--')) {
      const m = /^--([A-Za-z][A-Za-z0-9-]*)(?:=([\s\S]*))?$/.exec(arg);
      if (!m) throw new UsageError(`malformed option ${arg}`);
      name = m[1]!;
      inline = m[2];
    } else if (arg.length > 1 && arg.startsWith('-') && !/^-\d/.test(arg)) {
      const alias = ALIASES[arg.slice(1)];
      if (!alias) throw new UsageError(`unknown option ${arg}`);
      name = alias;
    } else {
      positionals.push(arg);
      continue;
    }
    const kind = kindOf(name);
    if (!kind) throw new UsageError(`unknown option --${name}`);
    if (kind === 'boolean') {
      if (inline !== undefined) throw new UsageError(`option --${name} takes no value`);
      add(name, 'true');
    } else if (inline !== undefined) add(name, inline);
    else {
      const next = argv[i + 1];
      if (next === undefined) throw new UsageError(`option --${name} needs a value`);
      add(name, next);
      i++;
    }
  }
  return { positionals, flags };
}

/** The last value of a flag, if given. */
export function lastValue(args: ParsedArgs, name: string): string | undefined {
  const values = args.flags.get(name);
  return values?.[values.length - 1];
}
