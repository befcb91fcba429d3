/** What the agent tells those who ask: agent-check's line and /healthz (src/agent/status.ts). */
import assert from "node:assert/strict";
import { test } from "node:test";
import { agentCheckPercent, agentMetrics, AgentStatus } from "../../src/agent/status.ts";

test("status: agent-check says ready up N% (free share, never 0 while free), drain, or down with the reason", () => {
  assert.deepEqual([
    agentCheckPercent({ ready: 30, busy: 10 }),
    agentCheckPercent({ ready: 1, busy: 999 }),
    agentCheckPercent({ ready: 0, busy: 5 }),
  ], [75, 1, 0]);
  let draining = false;
  let now = 0;
  const status = new AgentStatus({
    now: () => now,
    intervalMs: () => 1000,
    draining: () => draining,
  });
  assert.equal(status.agentCheckLine(), "down #no reading yet");
  status.read({ ready: 30, busy: 10 });
  assert.equal(status.agentCheckLine(), "ready up 75%");
  draining = true;
  assert.equal(status.agentCheckLine(), "drain");
  draining = false;
  status.sourceFailed("connection refused (ECONNREFUSED)\n#x");
  assert.equal(status.agentCheckLine(), "down #connection refused (ECONNREFUSED)  x");
  status.read({ ready: 5, busy: 0 });
  status.sent("239.0.0.1:27999", true);
  assert.deepEqual(status.health(), { healthy: true, reason: "ok" });
  now = 2500;
  assert.deepEqual(status.health(), {
    healthy: false,
    reason: "no heartbeat reached 239.0.0.1:27999 lately",
  });
  draining = true;
  assert.deepEqual(status.health(), { healthy: true, reason: "draining" });
});

test("status: /metrics has each source's own last reading, so the tight one shows", () => {
  const status = new AgentStatus({
    now: () => 0,
    intervalMs: () => 1000,
    draining: () => false,
    sources: () => [
      { name: "static", load: { ready: 40, busy: 10 }, share: 0.8 },
      { name: 'file:/run/lo"ad', load: { ready: 2, busy: 3 }, share: 0.4 },
      { name: "exec:load", load: { ready: 1, busy: 1 }, share: 0.5, problem: "exited" },
      { name: "apache" },
    ],
  });
  status.read({ ready: 20, busy: 30 });
  const lines = agentMetrics(status, {}).split("\n").filter((line) =>
    line.startsWith("heartbeat_source")
  );
  assert.deepEqual(lines, [
    "heartbeat_source_errors_total 0",
    'heartbeat_source_up{source="static"} 1',
    'heartbeat_source_up{source="file:/run/lo\\"ad"} 1',
    'heartbeat_source_up{source="exec:load"} 0',
    'heartbeat_source_ready{source="static"} 40',
    'heartbeat_source_ready{source="file:/run/lo\\"ad"} 2',
    'heartbeat_source_ready{source="exec:load"} 1',
    'heartbeat_source_busy{source="static"} 10',
    'heartbeat_source_busy{source="file:/run/lo\\"ad"} 3',
    'heartbeat_source_busy{source="exec:load"} 1',
    'heartbeat_source_free_ratio{source="static"} 0.8',
    'heartbeat_source_free_ratio{source="file:/run/lo\\"ad"} 0.4',
    'heartbeat_source_free_ratio{source="exec:load"} 0.5',
  ]);
});
