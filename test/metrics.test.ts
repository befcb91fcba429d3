/** The agent's /metrics, as Prometheus' own promtool reads it. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { agentMetrics, AgentStatus } from "../src/agent/status.ts";
import { promtool, skipWithoutPromtool as skip } from "./support/promtool.ts";

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
