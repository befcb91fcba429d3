/** The monitor's /metrics (src/monitor/metrics.ts), and as Prometheus' own promtool reads it. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { createLogger } from "../../src/log.ts";
import { monitorMetrics } from "../../src/monitor/metrics.ts";
import { Monitor } from "../../src/monitor/monitor.ts";
import { HAProxyPush } from "../../src/monitor/outputs/haproxy.ts";
import { FakeClock } from "../support/fakes.ts";
import { monitorWith } from "../support/monitor.ts";
import { promtool, skipWithoutPromtool as skip } from "../support/promtool.ts";

test("monitor: /metrics in Prometheus' text format", () => {
  const { monitor, clock } = monitorWith();
  monitor.accept("v=1&ready=5&busy=2", "10.0.0.1", "udp");
  monitor.accept("v=1&busy=2", "10.0.0.2", "udp");
  clock.advance(1500);
  const metrics = monitorMetrics(monitor);
  for (
    const line of [
      "# TYPE heartbeat_server_ready gauge",
      'heartbeat_server_ready{ip="10.0.0.1",port="80"} 5',
      'heartbeat_server_busy{ip="10.0.0.1",port="80"} 2',
      'heartbeat_server_last_seen_seconds{ip="10.0.0.1",port="80"} 1.500',
      "heartbeat_servers 1",
      'heartbeat_messages_accepted_total{via="udp"} 1',
      'heartbeat_messages_rejected_total{reason="missing-field"} 1',
      'heartbeat_messages_rejected_total{reason="full"} 0',
    ]
  ) assert.ok(metrics.split("\n").includes(line), line);
});

test("metrics: the monitor's /metrics passes promtool check metrics", { skip }, () => {
  const clock = new FakeClock();
  const logger = createLogger({ level: "error", write: () => {} });
  const monitor = new Monitor({
    maxServers: 10,
    allow: [],
    logger,
    clock,
    outputs: [
      new HAProxyPush({
        sockets: ["/nonexistent"],
        backends: ["web"],
        backendsName: "--haproxy-backend",
        logger,
        now: () => 0,
      }),
    ],
  });
  monitor.accept("v=1&ready=5&busy=2", "10.0.0.1", "udp");
  monitor.accept("junk", "10.0.0.2", "udp");
  assert.deepEqual(promtool(monitorMetrics(monitor)), { status: 0, output: "" });
});
