/** Reads a V8 `.cpuprofile` (written by `node --cpu-prof`) and lists where the time went. */
import { readFileSync } from 'node:fs';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}

interface CpuProfile {
  /** CLOCK_MONOTONIC microseconds on Linux, the clock of `nowUs()`. */
  startTime: number;
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/** Shortens a script URL to something readable: package-relative or node-internal. */
function where(url: string, line: number, root: string): string {
  if (!url) return '';
  let u = url.replace(/^file:\/\//, '');
  const nm = u.lastIndexOf('/node_modules/');
  if (nm >= 0) u = u.slice(nm + '/node_modules/'.length);
  else if (u.startsWith(root)) u = u.slice(root.length);
  return `${u}:${line + 1}`;
}

/**
 * Self time per function as a percentage of non-idle time, highest first. With `windows`
 * ([start, end] in monotonic µs), only samples inside them count: start-up and idle gaps
 * between scenarios are left out.
 */
export function summarizeProfile(file: string, root: string, limit = 15, windows: [number, number][] = []): { percent: number; name: string; where: string }[] {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map<number, ProfileNode>();
  for (const n of profile.nodes) byId.set(n.id, n);
  const self = new Map<string, { name: string; where: string; us: number }>();
  let total = 0;
  let at = profile.startTime;
  for (let i = 0; i < profile.samples.length; i++) {
    const node = byId.get(profile.samples[i]!);
    const dt = profile.timeDeltas[i] ?? 0;
    at += dt;
    if (!node || dt <= 0) continue;
    if (windows.length > 0 && !windows.some(([a, b]) => at >= a && at <= b)) continue;
    const name = node.callFrame.functionName || '(anonymous)';
    if (name === '(idle)') continue;
    total += dt;
    const place = where(node.callFrame.url, node.callFrame.lineNumber, root);
    const key = `${name}\u0000${place}`;
    const entry = self.get(key) ?? { name, where: place, us: 0 };
    entry.us += dt;
    self.set(key, entry);
  }
  if (total === 0) return [];
  return [...self.values()]
    .sort((a, b) => b.us - a.us)
    .slice(0, limit)
    .map((e) => ({ percent: Math.round((e.us / total) * 1000) / 10, name: e.name, where: e.where }));
}
