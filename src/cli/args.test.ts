import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { UsageError, parseArgs, type FlagKind } from './args.js';
import { parseData } from './publish.js';
import { parseSince } from './subscribe.js';

const kinds: Record<string, FlagKind> = { help: 'boolean', port: 'value', 'api-key': 'value' };
const kindOf = (flag: string): FlagKind | undefined => kinds[flag];

describe('command-line parsing', () => {
  test('--flag value, --flag=value, repeated flags, booleans, -h and positionals', () => {
    const args = parseArgs(['a', '--port', '1', '--api-key=x=y', '--api-key', 'z', '-h', 'b', '-5'], kindOf);
    assert.deepEqual(args.positionals, ['a', 'b', '-5']);
    assert.deepEqual([...args.flags], [['port', ['1']], ['api-key', ['x=y', 'z']], ['help', ['true']]]);
  });

  test('everything after -- is positional', () => {
    assert.deepEqual(parseArgs(['--', '--port', '-x'], kindOf).positionals, ['--port', '-x']);
  });

  test('unknown flags, a missing value and a value on a boolean are usage errors', () => {
    assert.throws(() => parseArgs(['--nope'], kindOf), (e: unknown) => e instanceof UsageError && /--nope/.test(e.message));
    assert.throws(() => parseArgs(['-x'], kindOf), UsageError);
    assert.throws(() => parseArgs(['--port'], kindOf), (e: unknown) => e instanceof UsageError && /--port needs a value/.test(e.message));
    assert.throws(() => parseArgs(['--help=yes'], kindOf), UsageError);
  });
});

describe('publish data and subscribe positions', () => {
  test('data is JSON when it parses, a string otherwise', () => {
    assert.deepEqual(parseData('{"a":1}'), { a: 1 });
    assert.equal(parseData('42'), 42);
    assert.equal(parseData('null'), null);
    assert.equal(parseData('"42"'), '42');
    assert.equal(parseData('hello world'), 'hello world');
    assert.equal(parseData('{broken'), '{broken');
  });

  test('--since is <epoch>:<offset>; the epoch may itself hold a colon', () => {
    assert.deepEqual(parseSince('abc:12'), { epoch: 'abc', offset: 12 });
    assert.deepEqual(parseSince('a:b:0'), { epoch: 'a:b', offset: 0 });
    assert.equal(parseSince(undefined), undefined);
    for (const bad of ['abc', ':1', 'abc:', 'abc:-1', 'abc:1.5', `${'e'.repeat(65)}:1`]) assert.throws(() => parseSince(bad), UsageError, bad);
  });
});
