/** The agent's and the monitor's /metrics, as Prometheus' own promtool reads them. */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { test } from "node:test";
import { createLogger } from "../src/log.ts";
import { Monitor } from "../src/monitor/monitor.ts";
import { HAProxyPush } from "../src/haproxy/runtime-api.ts";
import { agentMetrics, AgentStatus } from "../src/agent/status.ts";
import { requiredOrSkipped } from "./support/lab.ts";
import { FakeClock } from "./support/fakes.ts";

/** promtool: $PROMTOOL, else where .ci/run puts it (from Debian's prometheus package). */
const PROMTOOL = process.env.PROMTOOL ?? "/opt/promtool/promtool";
const skip = requiredOrSkipped(
  existsSync(PROMTOOL)
    ? undefined
    : `no promtool at ${PROMTOOL} (.ci/run extracts it from Debian's prometheus package)`,
);

function promtool(text: string): { status: number | null; output: string } {
  const run = spawnSync(PROMTOOL, ["check", "metrics"], { input: text, encoding: "utf8" });
  return { status: run.status, output: `${run.stdout}${run.stderr}` };
}

test("metrics: the agent's /metrics passes promtool check metrics", { skip }, () => {
  const status = new AgentStatus({
    now: () => 5000,
    intervalMs: () => 1000,
    draining: () => false,
    sources: () => [
      { name: "static", load: { ready: 7, busy: 2 }, share: 7 / 9 },
      { name: 'file:/run/"load"', load: { ready: 0, busy: 0 }, share: 0 },
      { name: "exec:load", problem: "exited" },
    ],
  });
  status.read({ ready: 7, busy: 2 });
  status.sent("239.0.0.1:27999", true);
  status.sent('http://proxy/heart"beat', false);
  status.sourceFailed("connection refused");
  const text = agentMetrics(status, { version: "0.2.0", commit: "abc1234", runtime: "bun 1.4.5" });
  assert.match(text, /^heartbeat_heartbeats_sent_total\{destination="239\.0\.0\.1:27999"\} 1$/m);
  assert.match(text, /^heartbeat_source_free_ratio\{source="static"\} 0\.7777777777777778$/m);
  assert.match(text, /^heartbeat_source_up\{source="exec:load"\} 0$/m);
  assert.match(
    text,
    /^heartbeat_build_info\{version="0\.2\.0",commit="abc1234",runtime="bun 1\.4\.5"\} 1$/m,
  );
  assert.deepEqual(promtool(text), { status: 0, output: "" });
});

test("metrics: the monitor's /metrics passes promtool check metrics", { skip }, () => {
  const clock = new FakeClock();
  const logger = createLogger({ level: "error", write: () => {} });
  const monitor = new Monitor({
    maxServers: 10,
    allow: [],
    logger,
    clock,
    haproxy: new HAProxyPush({
      sockets: ["/nonexistent"],
      backends: ["web"],
      logger,
      now: () => 0,
    }),
  });
  monitor.accept("v=1&ready=5&busy=2", "10.0.0.1", "udp");
  monitor.accept("junk", "10.0.0.2", "udp");
  assert.deepEqual(promtool(monitor.metrics()), { status: 0, output: "" });
});
