import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ConfigError, assertAvailable, defaultConfig, envName, flagName, namespaceBase, optionForFlag, resolveConfig, securityWarnings, transportLimitsFromConfig, validateConfig } from './config.js';

const SECRET = 'a-jwt-secret-of-at-least-32-bytes-0123';

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'herald-config-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function file(name: string, body: string): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, body);
  return path;
}

async function rejectsWith(promise: Promise<unknown>, code: string, key: string, messageIncludes: string[] = [key]): Promise<ConfigError> {
  const err = await promise.then(
    () => assert.fail('expected a ConfigError'),
    (e: unknown) => e,
  );
  assert.ok(err instanceof ConfigError, `expected a ConfigError, got ${String(err)}`);
  assert.equal(err.code, code);
  assert.equal(err.key, key);
  for (const part of messageIncludes) assert.ok(err.message.includes(part), `"${err.message}" should include "${part}"`);
  return err;
}

describe('config defaults', () => {
  test('without flags, environment or file every option has its documented default', async () => {
    const { config, warnings } = await resolveConfig({});
    assert.deepEqual(warnings, []);
    assert.deepEqual(
      { ...config },
      {
        host: '127.0.0.1',
        port: 8080,
        config: undefined,
        redis: undefined,
        redisPrefix: 'herald',
        presenceTtl: 30,
        journal: undefined,
        fsync: 'always',
        apiKey: [],
        jwtSecret: undefined,
        jwksUrl: undefined,
        jwtIssuer: undefined,
        jwtAudience: undefined,
        allowedOrigins: [],
        logLevel: 'info',
        chatTokenTtl: 30,
        coalesceMs: 0,
        pollPaceMs: 250,
        pollPaceLoad: 50,
        chatIdleTimeout: 300,
        pingInterval: 25,
        maxMessageBytes: 65_536,
        maxChannelsPerClient: 128,
        maxBufferedBytes: 1_048_576,
        pollTimeoutMax: 110,
        commandRate: 100,
        publishRate: 50,
        ipCommandRate: 1000,
        ipPublishRate: 500,
        maxConnectionsPerIp: 1000,
        namespaces: {},
      },
    );
  });

  test('the resolved configuration is frozen, lists and namespaces included', async () => {
    const path = await file('frozen.json', JSON.stringify({ namespaces: { chat: { historySize: 5 } }, apiKey: ['k1'] }));
    const { config } = await resolveConfig({ flags: { config: [path] } });
    assert.ok(Object.isFrozen(config));
    assert.ok(Object.isFrozen(config.apiKey));
    assert.ok(Object.isFrozen(config.namespaces));
    assert.ok(Object.isFrozen(config.namespaces.chat));
    assert.throws(() => {
      (config as { port: number }).port = 1;
    }, TypeError);
    assert.throws(() => (config.apiKey as string[]).push('x'), TypeError);
  });

  test('names: camelCase key, kebab-case flag, HERALD_ upper snake case variable', () => {
    assert.equal(flagName('maxMessageBytes'), 'max-message-bytes');
    assert.equal(envName('maxMessageBytes'), 'HERALD_MAX_MESSAGE_BYTES');
    assert.equal(optionForFlag('api-key'), 'apiKey');
    assert.equal(optionForFlag('apiKey'), undefined);
    assert.equal(optionForFlag('namespaces'), undefined, 'file-only options have no flag');
    assert.equal(optionForFlag('nope'), undefined);
  });
});

describe('config precedence', () => {
  test('flags beat environment variables, which beat a JSON file, which beats the defaults', async () => {
    const path = await file('prec.json', JSON.stringify({ port: 1001, host: '0.0.0.0', logLevel: 'debug', pingInterval: 7 }));
    const env = { HERALD_PORT: '1002', HERALD_HOST: '::1', HERALD_CONFIG: path };
    const { config } = await resolveConfig({ flags: { port: ['1003'] }, env });
    assert.equal(config.port, 1003, 'flag');
    assert.equal(config.host, '::1', 'environment over file');
    assert.equal(config.logLevel, 'debug', 'file over default');
    assert.equal(config.pingInterval, 7, 'file over default');
    assert.equal(config.maxChannelsPerClient, 128, 'default');
    assert.equal(config.config, path);
    const fileOnly = await resolveConfig({ env: { HERALD_CONFIG: path } });
    assert.equal(fileOnly.config.port, 1001);
  });

  test('a YAML file is read with its lists and namespaces', async () => {
    const path = await file(
      'herald.yaml',
      ['port: 9001', 'apiKey:', '  - alpha', '  - beta', 'allowedOrigins: https://a.example, https://b.example', 'fsync: always', 'namespaces:', '  "":', '    historySize: 10', '  chat:', '    joinLeave: true', '    historyTtl: 60', ''].join('\n'),
    );
    const { config } = await resolveConfig({ flags: { config: [path] } });
    assert.equal(config.port, 9001);
    assert.deepEqual(config.apiKey, ['alpha', 'beta']);
    assert.deepEqual(config.allowedOrigins, ['https://a.example', 'https://b.example']);
    assert.equal(config.fsync, 'always');
    assert.deepEqual(config.namespaces, { '': { historySize: 10 }, chat: { joinLeave: true, historyTtl: 60 } });
  });

  test('a relative --config path is resolved from the working directory', async () => {
    await file('rel.yml', 'port: 4242\n');
    const { config } = await resolveConfig({ flags: { config: ['rel.yml'] }, cwd: dir });
    assert.equal(config.port, 4242);
    assert.equal(config.config, join(dir, 'rel.yml'));
  });

  test('lists: comma-separated in the environment, repeatable and comma-separated as flags', async () => {
    const fromEnv = await resolveConfig({ env: { HERALD_API_KEY: 'one, two,,three', HERALD_ALLOWED_ORIGINS: '*' } });
    assert.deepEqual(fromEnv.config.apiKey, ['one', 'two', 'three']);
    assert.deepEqual(fromEnv.config.allowedOrigins, ['*']);
    const fromFlags = await resolveConfig({ flags: { 'api-key': ['a', 'b,c'] }, env: { HERALD_API_KEY: 'ignored' } });
    assert.deepEqual(fromFlags.config.apiKey, ['a', 'b', 'c'], 'flags replace the environment list, they do not merge');
  });

  test('a repeated single-value flag takes its last value', async () => {
    const { config } = await resolveConfig({ flags: { port: ['1', '2'] } });
    assert.equal(config.port, 2);
  });

  test('numbers, fsync policies and log levels are parsed from strings', async () => {
    const { config } = await resolveConfig({ env: { HERALD_FSYNC: '250', HERALD_LOG_LEVEL: 'WARN', HERALD_PORT: '0', HERALD_MAX_MESSAGE_BYTES: '131072' } });
    assert.equal(config.fsync, 250);
    assert.equal(config.logLevel, 'warn');
    assert.equal(config.port, 0);
    assert.equal(config.maxMessageBytes, 131_072);
    assert.equal((await resolveConfig({ flags: { fsync: ['never'] } })).config.fsync, 'never');
  });

  test('an empty environment variable counts as unset', async () => {
    const { config } = await resolveConfig({ env: { HERALD_PORT: '', HERALD_REDIS: '' } });
    assert.equal(config.port, 8080);
    assert.equal(config.redis, undefined);
  });

  test('unknown HERALD_* variables are ignored with a warning naming them; client variables are not', async () => {
    const { config, warnings } = await resolveConfig({ env: { HERALD_PORTT: '1', HERALD_NAMESPACES: '{}', HERALD_URL: 'http://x', HERALD_TOKEN: 't', PATH: '/bin', HERALD_PORT: '3000' } });
    assert.equal(config.port, 3000);
    assert.deepEqual(warnings, ['ignoring unknown environment variable HERALD_PORTT', 'ignoring unknown environment variable HERALD_NAMESPACES']);
  });
});

describe('config validation', () => {
  const cases: [flag: string, value: string, key: string][] = [
    ['port', 'abc', 'port'],
    ['port', '70000', 'port'],
    ['port', '-1', 'port'],
    ['port', '80.5', 'port'],
    ['host', 'a b', 'host'],
    ['fsync', 'sometimes', 'fsync'],
    ['fsync', '0', 'fsync'],
    ['log-level', 'loud', 'logLevel'],
    ['max-message-bytes', '10', 'maxMessageBytes'],
    ['max-channels-per-client', '0', 'maxChannelsPerClient'],
    ['max-buffered-bytes', 'lots', 'maxBufferedBytes'],
    ['ping-interval', '0', 'pingInterval'],
    ['poll-timeout-max', '0', 'pollTimeoutMax'],
    ['poll-pace-ms', '1001', 'pollPaceMs'],
    ['poll-pace-load', '101', 'pollPaceLoad'],
    ['chat-token-ttl', 'x', 'chatTokenTtl'],
    ['chat-idle-timeout', '-5', 'chatIdleTimeout'],
    ['redis', 'http://localhost:6379', 'redis'],
    ['redis-prefix', 'a b', 'redisPrefix'],
    ['jwks-url', 'ftp://keys.example', 'jwksUrl'],
    ['allowed-origins', 'example.com', 'allowedOrigins'],
    ['api-key', 'has space', 'apiKey'],
    ['journal', '   ', 'journal'],
  ];
  for (const [flag, value, key] of cases) {
    test(`--${flag} ${JSON.stringify(value)} is refused with a message naming ${key}`, async () => {
      await rejectsWith(resolveConfig({ flags: { [flag]: [value] } }), 'invalid_option', key, [key, `--${flag}`]);
    });
  }

  test('a bad environment value names the key and the variable', async () => {
    await rejectsWith(resolveConfig({ env: { HERALD_PORT: 'eighty' } }), 'invalid_option', 'port', ['port', 'HERALD_PORT', '"eighty"']);
  });

  test('a bad file value names the key', async () => {
    const path = await file('bad-value.json', JSON.stringify({ maxMessageBytes: 'big' }));
    await rejectsWith(resolveConfig({ flags: { config: [path] } }), 'invalid_option', 'maxMessageBytes');
  });

  test('secrets are never echoed in an error message', async () => {
    const err = await rejectsWith(resolveConfig({ flags: { 'api-key': ['good', 'bad key'] } }), 'invalid_option', 'apiKey');
    assert.ok(!err.message.includes('bad key'));
    const path = await file('secret.json', JSON.stringify({ jwtSecret: 12345 }));
    const err2 = await rejectsWith(resolveConfig({ flags: { config: [path] } }), 'invalid_option', 'jwtSecret');
    assert.ok(!err2.message.includes('12345'));
  });

  test('an unknown flag is refused', async () => {
    await rejectsWith(resolveConfig({ flags: { prot: ['1'] } }), 'unknown_option', 'prot', ['--prot']);
  });

  test('an unknown key in the file is refused, naming it', async () => {
    const path = await file('unknown-key.yaml', 'port: 1\nmaxMesageBytes: 5\n');
    await rejectsWith(resolveConfig({ flags: { config: [path] } }), 'unknown_option', 'maxMesageBytes');
  });

  test('a missing or malformed file is a config_file error naming the path', async () => {
    const missing = join(dir, 'missing.json');
    await rejectsWith(resolveConfig({ flags: { config: [missing] } }), 'config_file', 'config', [missing, 'ENOENT']);
    const broken = await file('broken.json', '{"port": 1,');
    await rejectsWith(resolveConfig({ flags: { config: [broken] } }), 'config_file', 'config', [broken]);
    const notObject = await file('list.yaml', '- 1\n- 2\n');
    await rejectsWith(resolveConfig({ flags: { config: [notObject] } }), 'config_file', 'config', [notObject]);
  });

  test('programmatic options are validated the same way', () => {
    assert.equal(validateConfig({ port: 0, apiKey: ['k'] }).port, 0);
    assert.throws(() => validateConfig({ port: -1 }), (e: unknown) => e instanceof ConfigError && e.key === 'port' && e.code === 'invalid_option');
    assert.throws(() => validateConfig({ logLevel: 'chatty' as never }), (e: unknown) => e instanceof ConfigError && e.key === 'logLevel');
    assert.ok(Object.isFrozen(validateConfig({})));
  });
});

describe('namespaces', () => {
  async function withNamespaces(namespaces: unknown): Promise<unknown> {
    const path = await file(`ns-${Math.random().toString(36).slice(2)}.json`, JSON.stringify({ namespaces }));
    return (await resolveConfig({ flags: { config: [path] } })).config.namespaces;
  }

  test('every namespace key with its type is accepted', async () => {
    const ns = { '': { historySize: 0, historyTtl: 30, deleteAfterRead: true, presence: false, joinLeave: true, anonymousSubscribe: false, anonymousPublish: false } };
    assert.deepEqual(await withNamespaces(ns), ns);
  });

  test('an unknown namespace key is refused, naming the namespace and key', async () => {
    await rejectsWith(withNamespaces({ chat: { historySise: 5 } }), 'invalid_option', 'namespaces', ['namespaces."chat".historySise']);
  });

  test('a value of the wrong type is refused', async () => {
    await rejectsWith(withNamespaces({ chat: { historySize: '10' } }), 'invalid_option', 'namespaces', ['namespaces."chat".historySize']);
    await rejectsWith(withNamespaces({ chat: { historySize: -1 } }), 'invalid_option', 'namespaces', ['historySize']);
    await rejectsWith(withNamespaces({ '': { presence: 'yes' } }), 'invalid_option', 'namespaces', ['namespaces."".presence']);
  });

  test('a namespace name with a colon, or options that are not an object, are refused', async () => {
    await rejectsWith(withNamespaces({ 'a:b': {} }), 'invalid_option', 'namespaces', ['"a:b"']);
    await rejectsWith(withNamespaces({ chat: 5 }), 'invalid_option', 'namespaces', ['namespaces."chat"']);
    await rejectsWith(withNamespaces(['chat']), 'invalid_option', 'namespaces');
  });
});

describe('features and authentication', () => {
  test('redis, journal and JWT options are all available', async () => {
    const { config } = await resolveConfig({ flags: { redis: ['redis://localhost:6379'] } });
    assert.equal(config.redis, 'redis://localhost:6379');
    assert.doesNotThrow(() => assertAvailable(config));
    assert.doesNotThrow(() => assertAvailable(validateConfig({ journal: '/tmp/j' })));
    assert.doesNotThrow(() => assertAvailable(validateConfig({ jwtSecret: SECRET, jwksUrl: 'https://keys.example/jwks.json', jwtIssuer: 'i', jwtAudience: 'a' })));
    assert.doesNotThrow(() => assertAvailable(defaultConfig()));
  });

  test('an HS256 secret shorter than 32 bytes is refused, naming the key but not the secret', async () => {
    const err = await rejectsWith(resolveConfig({ flags: { 'jwt-secret': ['short-secret'] } }), 'invalid_option', 'jwtSecret', ['at least 32 bytes']);
    assert.ok(!err.message.includes('short-secret'));
    assert.equal((await resolveConfig({ env: { HERALD_JWT_SECRET: SECRET } })).config.jwtSecret, SECRET);
  });

  test('rate and connection limits: integers >= 0 (0 = off), from flags, environment or file', async () => {
    const { config } = await resolveConfig({ flags: { 'command-rate': ['0'], 'max-connections-per-ip': ['5'] }, env: { HERALD_IP_PUBLISH_RATE: '7' } });
    assert.deepEqual([config.commandRate, config.maxConnectionsPerIp, config.ipPublishRate, config.publishRate, config.ipCommandRate], [0, 5, 7, 50, 1000]);
    await rejectsWith(resolveConfig({ flags: { 'publish-rate': ['-1'] } }), 'invalid_option', 'publishRate');
    await rejectsWith(resolveConfig({ env: { HERALD_IP_COMMAND_RATE: 'lots' } }), 'invalid_option', 'ipCommandRate', ['HERALD_IP_COMMAND_RATE']);
    const limits = transportLimitsFromConfig(config);
    assert.deepEqual({ ...limits.options, rateLimitGraceMs: 0 }, { commandRate: 0, publishRate: 50, ipCommandRate: 1000, ipPublishRate: 7, maxConnectionsPerIp: 5, rateLimitGraceMs: 0 });
  });

  test('security warnings: JWT without an API key leaves the HTTP API open', () => {
    assert.deepEqual(securityWarnings(defaultConfig()), []);
    assert.match(securityWarnings(validateConfig({ jwtSecret: SECRET })).join('\n'), /no --api-key is set/);
    assert.deepEqual(securityWarnings(validateConfig({ jwtSecret: SECRET, apiKey: ['k'] })), []);
  });

  test('anonymous subscribe and publish are on without JWT configuration, off with it', () => {
    assert.deepEqual(namespaceBase(defaultConfig()), { anonymousSubscribe: true, anonymousPublish: true });
    assert.deepEqual(namespaceBase(validateConfig({ jwtSecret: SECRET })), { anonymousSubscribe: false, anonymousPublish: false });
    assert.deepEqual(namespaceBase(validateConfig({ jwksUrl: 'https://k.example/jwks' })), { anonymousSubscribe: false, anonymousPublish: false });
  });
});
