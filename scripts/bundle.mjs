#!/usr/bin/env node
// Bundles the browser client into dist/browser/herald.js (served at /herald.js as the global `Herald`)
// and an ES module build dist/browser/herald.mjs.
import { build } from 'esbuild';

const common = { entryPoints: ['src/client/index.ts'], bundle: true, platform: 'browser', target: 'es2020', sourcemap: true, logLevel: 'warning' };
await build({ ...common, format: 'iife', globalName: 'Herald', outfile: 'dist/browser/herald.js' });
await build({ ...common, format: 'esm', outfile: 'dist/browser/herald.mjs' });
