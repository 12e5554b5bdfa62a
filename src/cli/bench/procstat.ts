/**
 * CPU time and resident memory of another process, from Linux's /proc. The server under test
 * runs in its own process so that its cost is measured apart from the load generator's.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

let ticksPerSecond: number | undefined;

/** Clock ticks per second for /proc/<pid>/stat (`getconf CLK_TCK`, 100 almost everywhere). */
function clockTicks(): number {
  if (ticksPerSecond === undefined) {
    ticksPerSecond = 100;
    try {
      const n = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8', timeout: 2_000 }).trim());
      if (Number.isInteger(n) && n > 0) ticksPerSecond = n;
    } catch {
      // No getconf: keep the Linux default.
    }
  }
  return ticksPerSecond;
}

export interface ProcSample {
  /** user + system CPU time in microseconds. */
  cpuUs: number;
  /** Resident set size in bytes. */
  rssBytes: number;
}

/** Samples a process; undefined when /proc is not there or the process is gone. */
export function sampleProcess(pid: number): ProcSample | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may hold spaces and parentheses: count fields after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // fields[0] is field 3 (state); utime and stime are fields 14 and 15.
    const ticks = Number(fields[11]) + Number(fields[12]);
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const rss = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
    if (!Number.isFinite(ticks)) return undefined;
    return { cpuUs: (ticks * 1e6) / clockTicks(), rssBytes: rss ? Number(rss[1]) * 1024 : 0 };
  } catch {
    return undefined;
  }
}

/** Whether CPU and memory of other processes can be measured here. */
export function procAvailable(): boolean {
  return sampleProcess(process.pid) !== undefined;
}
