// Lint rules, including the layer rule: imports point inward
// (protocol <- core <- engines/transports <- server <- cli; client sees only protocol).
import tseslint from 'typescript-eslint';

// Tests beside the code may wire real parts of other layers (a hub with a memory engine).
const layer = (files, forbidden, message) => ({
  files,
  ignores: ['**/*.test.ts'],
  rules: {
    'no-restricted-imports': ['error', { patterns: forbidden.map((group) => ({ group: [group], message })) }],
  },
});

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'public/**', 'examples/**/node_modules/**', 'coverage/**'] },
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/no-explicit-any': 'error',
      'no-console': 'off',
      eqeqeq: ['error', 'smart'],
    },
  },
  layer(['src/protocol/**/*.ts'], ['**/core/**', '**/engines/**', '**/transports/**', '**/server/**', '**/cli/**', '**/client/**', 'node:*', 'ws', 'ioredis', 'pino'], 'protocol/ is pure: no I/O and no other layer'),
  layer(['src/core/**/*.ts'], ['**/engines/**', '**/transports/**', '**/server/**', '**/cli/**', '**/client/**', 'node:http', 'node:net', 'ws', 'ioredis'], 'core/ knows nothing of HTTP, sockets or engines'),
  layer(['src/engines/**/*.ts'], ['**/transports/**', '**/server/**', '**/cli/**', '**/client/**', 'ws', 'node:http'], 'engines/ depend on core and protocol only'),
  layer(['src/transports/**/*.ts'], ['**/engines/**', '**/server/**', '**/cli/**', '**/client/**', 'ioredis'], 'transports/ know nothing of engines or Redis'),
  layer(['src/client/**/*.ts'], ['**/core/**', '**/engines/**', '**/transports/**', '**/server/**', '**/cli/**', 'node:*', 'ws', 'ioredis', 'pino'], 'client/ imports only protocol/ and no Node built-ins'),
  layer(['src/chat/**/*.ts'], ['**/engines/**', '**/server/**', '**/cli/**', '**/client/**', 'ioredis'], "chat/ uses the hub's public API only"),
  layer(['src/sockets/**/*.ts'], ['**/engines/**', '**/server/**', '**/cli/**', '**/client/**', '**/chat/**', 'ioredis'], 'sockets/ is a transport-level layer'),
  layer(['src/mount/**/*.ts'], ['**/cli/**'], 'mount/ must not import cli/'),
  layer(['src/server/**/*.ts'], ['**/cli/**'], 'server/ must not import cli/'),
);
