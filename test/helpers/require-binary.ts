/**
 * Suites that need an outside binary (Chromium, redis-server) call this once at module level:
 *
 *   const chromium = requireBinary('Chromium', '/usr/bin/chromium', 'apt-get install -y chromium', { env: 'HERALD_REQUIRE_BROWSER' });
 *   describe('…', { skip: chromium.skip }, () => {
 *     before(() => { if (!chromium.available) throw new Error(chromium.failure); });
 *
 * Missing binary: the suite is skipped with `install <name>: <installCmd>`, unless the binary is
 * required, by `HERALD_REQUIRE_BINARIES=1` (every binary) or by the suite's own variable
 * (`options.env`, e.g. `HERALD_REQUIRE_BROWSER=1`): then `skip` is unset and `failure` says why,
 * so the suite fails instead of passing as skipped (CI sets these so a missing binary cannot hide).
 */
import { accessSync, constants, statSync } from 'node:fs';
import { delimiter, join } from 'node:path';

export interface BinaryCheck {
  available: boolean;
  /** The skip message when the binary is missing and not required. */
  skip?: string;
  /** The failure message when the binary is missing and required. */
  failure?: string;
  /** Where the binary was found. */
  path?: string;
}

export interface RequireBinaryOptions {
  /** An environment variable that, set to 1, makes this binary required. */
  env?: string;
}

/** `path` is a file path (contains a `/`) or a command name looked up on PATH. */
export function requireBinary(name: string, path: string, installCmd: string, options: RequireBinaryOptions = {}): BinaryCheck {
  const found = locate(path);
  if (found) return { available: true, path: found };
  const install = `install ${name}: ${installCmd}`;
  const requiredBy = process.env.HERALD_REQUIRE_BINARIES === '1' ? 'HERALD_REQUIRE_BINARIES=1' : options.env && process.env[options.env] === '1' ? `${options.env}=1` : undefined;
  if (requiredBy) return { available: false, failure: `${name} is required (${requiredBy}) but ${path} was not found: ${install}` };
  return { available: false, skip: install };
}

function locate(path: string): string | undefined {
  if (path.includes('/')) return isExecutableFile(path) ? path : undefined;
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (!dir) continue;
    const candidate = join(dir, path);
    if (isExecutableFile(candidate)) return candidate;
  }
  return undefined;
}

function isExecutableFile(path: string): boolean {
  try {
    if (!statSync(path).isFile()) return false;
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}
