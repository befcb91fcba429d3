/** The monitor's /metrics, in Prometheus' text format: its table, its counters, its outputs'. */
import { family, label } from "../prometheus.ts";
import type { Monitor } from "./monitor.ts";
import { HTTP_REFUSALS, type HttpRefusal, REJECTIONS } from "./rejections.ts";
import { SEEN_TIMEOUT_MS, type ServerEntry } from "./table.ts";

/** Everything the monitor counts; `httpRefused` from its HTTP side, when it has one (else 0s). */
export function monitorMetrics(
  monitor: Monitor,
  httpRefused?: ReadonlyMap<HttpRefusal, number>,
): string {
  const now = monitor.now();
  const entries = monitor.table.entries();
  const labels = (entry: ServerEntry) => `{ip="${label(entry.ip)}",port="${entry.port}"}`;
  return [
    family(
      "heartbeat_servers",
      `Servers heard from in the last ${SEEN_TIMEOUT_MS / 1000} seconds.`,
      "gauge",
      [`heartbeat_servers ${entries.length}`],
    ),
    family(
      "heartbeat_server_ready",
      "Idle worker slots the server last reported.",
      "gauge",
      entries.map((entry) => `heartbeat_server_ready${labels(entry)} ${entry.ready}`),
    ),
    family(
      "heartbeat_server_busy",
      "Busy worker slots the server last reported.",
      "gauge",
      entries.map((entry) => `heartbeat_server_busy${labels(entry)} ${entry.busy}`),
    ),
    family(
      "heartbeat_server_last_seen_seconds",
      "Seconds since the server's last heartbeat.",
      "gauge",
      entries.map((entry) =>
        `heartbeat_server_last_seen_seconds${labels(entry)} ${
          ((now - entry.lastSeen) / 1000).toFixed(3)
        }`
      ),
    ),
    family(
      "heartbeat_messages_accepted_total",
      "Heartbeats accepted, by transport.",
      "counter",
      Object.entries(monitor.accepted).map(([via, count]) =>
        `heartbeat_messages_accepted_total{via="${via}"} ${count}`
      ),
    ),
    family(
      "heartbeat_messages_rejected_total",
      "Messages rejected, by reason.",
      "counter",
      REJECTIONS.map((reason) =>
        `heartbeat_messages_rejected_total{reason="${reason}"} ${monitor.rejected.get(reason) ?? 0}`
      ),
    ),
    family(
      "heartbeat_ports_ignored_total",
      "Heartbeats taken without their port=, which was no port from 1 to 65535.",
      "counter",
      [`heartbeat_ports_ignored_total ${monitor.portsIgnored}`],
    ),
    family(
      "heartbeat_http_requests_refused_total",
      "HTTP requests refused that were not heartbeats, by reason.",
      "counter",
      HTTP_REFUSALS.map((reason) =>
        `heartbeat_http_requests_refused_total{reason="${reason}"} ${httpRefused?.get(reason) ?? 0}`
      ),
    ),
    ...monitor.outputs.flatMap((output) => output.metrics()),
  ].join("\n") + "\n";
}
