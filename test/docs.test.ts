import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { CLOSE_CODES, ERROR_CODES } from '../src/protocol/index.js';

const doc = readFileSync(new URL('../docs/errors.md', import.meta.url), 'utf8');

describe('docs/errors.md', () => {
  it('lists every error code with its HTTP status', () => {
    for (const [code, { status }] of Object.entries(ERROR_CODES)) {
      assert.match(doc, new RegExp(`\\| \`${code}\` \\| ${status} \\|`), `docs/errors.md misses ${code} (${status})`);
    }
    const documented = [...doc.matchAll(/^\| `([a-z_]+)` \| \d{3} \|/gm)].map((m) => m[1]);
    assert.deepEqual(documented.sort(), Object.keys(ERROR_CODES).sort());
  });
  it('lists every close code with its reconnect advice', () => {
    for (const [name, { code, reconnect }] of Object.entries(CLOSE_CODES)) {
      assert.match(doc, new RegExp(`\\| ${code} \\| ${name} \\| ${reconnect ? 'yes' : 'no'} \\|`), `docs/errors.md misses close ${code}`);
    }
  });
});

describe('docs/configuration.md', () => {
  it('lists every option of herald serve', async () => {
    const { OPTIONS, flagName, envName } = await import('../src/server/config.js');
    const config = readFileSync(new URL('../docs/configuration.md', import.meta.url), 'utf8');
    for (const key of Object.keys(OPTIONS) as (keyof typeof OPTIONS)[]) {
      assert.ok(config.includes(`\`--${flagName(key)}\` | \`${envName(key)}\` | \`${key}\``), `docs/configuration.md misses ${key}`);
    }
  });
});
