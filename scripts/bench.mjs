#!/usr/bin/env node
// `npm run bench`: every benchmark, each printing its baseline measured in the same run.
//   1. herald bench --baseline        WebSocket fan-out to 1,000 subscribers vs a raw `ws` broadcast
//   2. bench/journal.ts               publish throughput and latency per fsync policy vs the memory engine
//   3. bench/cluster.ts               cross-node fan-out on Redis vs one memory-engine node (needs redis-server)
// Pass `--only ws|journal|cluster` to run one; anything after `--` goes to `herald bench`.
import { spawnSync } from 'node:child_process';

const argv = process.argv.slice(2);
const dash = argv.indexOf('--');
const own = dash < 0 ? argv : argv.slice(0, dash);
const benchArgs = dash < 0 ? [] : argv.slice(dash + 1);
const only = own[own.indexOf('--only') + 1];
const runs = [
  ['ws', [process.execPath, 'bin/herald.js', 'bench', '--baseline', ...benchArgs]],
  ['journal', [process.execPath, '--import', 'tsx', 'bench/journal.ts']],
  ['cluster', [process.execPath, '--import', 'tsx', 'bench/cluster.ts']],
];
let failed = 0;
for (const [name, [cmd, ...args]] of runs) {
  if (own.includes('--only') && name !== only) continue;
  console.log(`\n=== ${name}: ${[cmd.endsWith('node') ? 'node' : cmd, ...args].join(' ')}\n`);
  const r = spawnSync(cmd, args, { stdio: 'inherit' });
  if (r.status !== 0) {
    failed++;
    console.error(`=== ${name} failed (exit ${r.status ?? r.signal})`);
  }
}
process.exit(failed ? 1 : 0);
