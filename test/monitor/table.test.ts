/** The monitor's server table (src/monitor/table.ts). */
import assert from "node:assert/strict";
import { test } from "node:test";
import { SEEN_TIMEOUT_MS, ServerTable } from "../../src/monitor/table.ts";

test("monitor table: one entry per sender, port 80 unless given, in address order, with how its last heartbeat came", () => {
  const table = new ServerTable(10);
  assert.equal(table.record("10.0.0.10", { ready: 1, busy: 2 }, 0, "udp"), "added");
  assert.equal(table.record("10.0.0.9", { ready: 3, busy: 4, port: 8080 }, 0, "http"), "added");
  assert.equal(table.record("10.0.0.10", { ready: 5, busy: 6, port: 81 }, 500, "http"), "updated");
  assert.deepEqual(table.entries(), [
    { ip: "10.0.0.9", ready: 3, busy: 4, port: 8080, portGiven: true, lastSeen: 0, via: "http" },
    { ip: "10.0.0.10", ready: 5, busy: 6, port: 81, portGiven: true, lastSeen: 500, via: "http" },
  ]);
  table.record("10.0.0.11", { ready: 1, busy: 1 }, 0, "udp");
  assert.deepEqual(table.entries()[2], {
    ip: "10.0.0.11",
    ready: 1,
    busy: 1,
    port: 80,
    portGiven: false,
    lastSeen: 0,
    via: "udp",
  });
});

test("monitor table: at the bound, known servers update and new ones are turned away", () => {
  const table = new ServerTable(2);
  table.record("10.0.0.1", { ready: 1, busy: 1 }, 0);
  table.record("10.0.0.2", { ready: 1, busy: 1 }, 0);
  assert.equal(table.record("10.0.0.3", { ready: 1, busy: 1 }, 0), "full");
  assert.equal(table.record("10.0.0.1", { ready: 9, busy: 1 }, 1), "updated");
  assert.equal(table.size, 2);
  table.expire(SEEN_TIMEOUT_MS + 1);
  assert.equal(table.record("10.0.0.3", { ready: 1, busy: 1 }, SEEN_TIMEOUT_MS + 1), "added");
});

test("monitor table: servers silent for more than 30 s leave", () => {
  const table = new ServerTable(10);
  table.record("10.0.0.1", { ready: 1, busy: 1 }, 0);
  table.record("10.0.0.2", { ready: 1, busy: 1 }, 10_000);
  assert.deepEqual(table.expire(SEEN_TIMEOUT_MS), []);
  assert.deepEqual(table.expire(SEEN_TIMEOUT_MS + 1).map((entry) => entry.ip), ["10.0.0.1"]);
  assert.deepEqual(table.entries().map((entry) => entry.ip), ["10.0.0.2"]);
});
