/**
 * Prometheus metrics (SPEC §5 `/metrics`) in a private Registry, so two servers in one process
 * (or an application's own prom-client) never collide. Values are read from `hub.stats()` at
 * scrape time: nothing is counted per delivery.
 */
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import type { Hub } from '../core/index.js';

export interface Metrics {
  readonly registry: Registry;
  readonly contentType: string;
  /** The exposition text. */
  render(): Promise<string>;
  /** Drops every metric (at shutdown). */
  clear(): void;
}

type CounterStat = 'published' | 'delivered';
type GaugeStat = 'connections' | 'subscriptions' | 'channels' | 'uptime';

/** Further readings, taken at scrape time too. */
export interface MetricSources {
  /** Unsent WebSocket bytes: in total and for the worst connection. */
  websocketBuffers?(): { total: number; max: number };
  /** The long-poll pace now (ms; 0 while the server is not busy). */
  pollPaceMs?(): number;
}

/**
 * Process metrics (CPU, memory, event loop lag): collected once per process, in a registry of
 * their own (never prom-client's global one), and exposed by every server of the process.
 */
let processRegistry: Registry | undefined;
function processMetrics(): Registry {
  if (!processRegistry) {
    processRegistry = new Registry();
    // The event-loop lag monitor samples every 100 ms, not prom-client's default 10 ms: at 10 ms
    // it cost 6.5 ms of CPU per second on an idle process (0.8 ms at 100), which was 7% of the
    // whole server's CPU at 10 msg/s to 1,000 WebSocket subscribers.
    collectDefaultMetrics({ register: processRegistry, eventLoopMonitoringPrecision: 100 });
  }
  return processRegistry;
}

export function createMetrics(hub: Hub, sources: MetricSources = {}): Metrics {
  const own = new Registry();

  /** A gauge read at scrape time. */
  const reading = (name: string, help: string, read: () => number): void => {
    new Gauge({
      name,
      help,
      registers: [own],
      collect() {
        this.set(read());
      },
    });
  };
  const gauge = (name: string, help: string, stat: GaugeStat): void => reading(name, help, () => hub.stats()[stat]);
  const counter = (name: string, help: string, stat: CounterStat): void => {
    // A Counter only goes up: add what the hub counted since the last scrape.
    let seen = 0;
    new Counter({
      name,
      help,
      registers: [own],
      collect() {
        const now = hub.stats()[stat];
        if (now > seen) {
          this.inc(now - seen);
          seen = now;
        }
      },
    });
  };

  gauge('herald_connections', 'Open connections, SSE streams and polls.', 'connections');
  gauge('herald_subscriptions', 'Active subscriptions on this node.', 'subscriptions');
  gauge('herald_channels', 'Channels with a subscriber on this node.', 'channels');
  gauge('herald_uptime_seconds', 'Seconds since the hub started.', 'uptime');
  counter('herald_published_total', 'Events published through this node.', 'published');
  counter('herald_delivered_total', 'Events delivered to subscribers on this node.', 'delivered');
  const buffers = sources.websocketBuffers;
  if (buffers) {
    reading('herald_websocket_buffered_bytes', 'Bytes queued for WebSocket clients, not yet sent (sum over connections).', () => buffers().total);
    reading('herald_websocket_buffered_bytes_max', 'Bytes queued for the most backed-up WebSocket client.', () => buffers().max);
  }
  const pace = sources.pollPaceMs;
  if (pace) reading('herald_poll_pace_ms', 'How long a long-poll client answered a moment ago waits for its next answer (0 while the server is not busy).', pace);

  const registry = Registry.merge([own, processMetrics()]);
  return {
    registry,
    contentType: registry.contentType,
    render: () => registry.metrics(),
    clear: () => registry.clear(),
  };
}
