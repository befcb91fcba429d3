/** The agent's status page (src/agent/page.ts). */
import assert from "node:assert/strict";
import { test } from "node:test";
import { agentPage, agentPageStatus } from "../../src/agent/page.ts";
import { AgentStatus, HISTORY_HEARTBEATS } from "../../src/agent/status.ts";

test("agent page: last heartbeat, destinations reached or not, sources, drain, ramp and history", () => {
  let now = 10_000;
  let draining = false;
  const status = new AgentStatus({
    now: () => now,
    intervalMs: () => 1000,
    draining: () => draining,
    sources: () => [
      { name: "apache", load: { ready: 3, busy: 1 }, share: 0.75 },
      { name: `file:/run/<img src=x onerror=alert(1)>`, problem: `<script>alert(2)</script>` },
    ],
    ramp: () => 0.5,
  });
  for (let beat = 0; beat < HISTORY_HEARTBEATS + 20; beat++) {
    status.read({ ready: beat % 7, busy: 1 });
    status.sent("10.0.0.1:27999", true);
    status.sent("monitor.example:27999", beat < 5);
    now += 1000;
  }
  draining = true;
  const data = agentPageStatus(status, now);
  assert.equal(data.history.ready.length, HISTORY_HEARTBEATS);
  assert.equal(data.history.busy.length, HISTORY_HEARTBEATS);
  assert.deepEqual(data.advertised, { ready: (HISTORY_HEARTBEATS + 19) % 7, busy: 1 });
  assert.deepEqual(
    data.destinations.map(({ name, reached }) => [name, reached]),
    [["10.0.0.1:27999", true], ["monitor.example:27999", false]],
  );
  assert.equal(data.draining, true);
  assert.equal(data.ramp, 0.5);
  const page = agentPage("/", status);
  assert.doesNotMatch(page.body, /<script>|<img/);
  assert.match(page.body, /&#60;img src=x onerror=alert\(1\)&#62;/);
  assert.match(page.body, /draining: advertising ready=0/);
  assert.match(page.body, /ramping up: 50 % of ready/);
  assert.match(page.body, /<td class="bad">no<\/td>/);
  const points = /<polyline class="ready" points="([^"]*)"/.exec(page.body)![1];
  assert.equal(points.split(" ").length, HISTORY_HEARTBEATS);
});
