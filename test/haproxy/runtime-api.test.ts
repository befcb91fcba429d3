/** Heartbeats as HAProxy weights, and HAProxy's own state read back (src/haproxy/runtime-api.ts). */
import assert from "node:assert/strict";
import { test } from "node:test";
import { haproxyWeights, parseServersState } from "../../src/haproxy/runtime-api.ts";
import type { ServerEntry } from "../../src/monitor/table.ts";

const entry = (ip: string, ready: number, busy: number, lastSeen = 0): ServerEntry => ({
  ip,
  ready,
  busy,
  port: 80,
  portGiven: false,
  lastSeen,
});

test("haproxy weights: as mod_lbmethod_heartbeat weighs, scaled to 1..256; 0 at ready=0 and after 10 s of silence", () => {
  const entries = [
    entry("10.0.0.1", 30, 10),
    entry("10.0.0.2", 10, 30),
    entry("10.0.0.3", 40, 0), // busy 0: ready / 4, as the balancer does
    entry("10.0.0.4", 0, 9),
    entry("10.0.0.5", 1, 500),
    entry("10.0.0.6", 50, 1, -10_000), // silent for 10 s
  ];
  const weights = haproxyWeights(entries, 0);
  assert.deepEqual(entries.map((server) => weights.get(server)), [256, 85, 85, 0, 9, 0]);
  assert.deepEqual([...haproxyWeights([entry("10.0.0.1", 0, 1)], 0).values()], [0]);
});

test("haproxy weights: show servers state read by its header", () => {
  const state = [
    "1",
    "# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port srv_check_addr srv_agent_addr srv_agent_port",
    "4 pushed 1 o1 10.99.19.11 2 0 256 1 12 1 0 1 0 0 0 0 - 80 - 0 0 - - 0",
    "4 pushed 2 o2 10.99.19.12 2 0 85 1 12 1 0 1 0 0 0 0 - 8080 - 0 0 - - 0",
    "",
  ].join("\n");
  assert.deepEqual(parseServersState(state), [
    { backend: "pushed", name: "o1", address: "10.99.19.11", port: 80, weight: 256 },
    { backend: "pushed", name: "o2", address: "10.99.19.12", port: 8080, weight: 85 },
  ]);
  assert.deepEqual(parseServersState("Can't find backend.\n"), []);
});
