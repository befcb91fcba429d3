/** What the agent tells those who ask: agent-check's line and /healthz (src/status.ts). */
import assert from "node:assert/strict";
import { test } from "node:test";
import { agentCheckPercent, AgentStatus } from "../src/status.ts";

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
