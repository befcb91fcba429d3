/** The monitor's status page (src/monitor/page.ts): its history, its data, its markup. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { createLogger } from "../../src/log.ts";
import { Monitor } from "../../src/monitor/monitor.ts";
import {
  HISTORY_SLOTS,
  HISTORY_STEP_MS,
  monitorPage,
  monitorStatus,
  ServerHistory,
} from "../../src/monitor/page.ts";
import type { ServerEntry } from "../../src/monitor/table.ts";
import { FakeClock, recordingLog } from "../support/fakes.ts";

const entry = (ip: string, ready: number, lastSeen = 0): ServerEntry => ({
  ip,
  ready,
  busy: 1,
  port: 80,
  portGiven: false,
  lastSeen,
});

test("monitor page: a server's history is one sample per step, HISTORY_SLOTS at most, and goes with the server", () => {
  const history = new ServerHistory();
  for (let second = 0; second < 12; second++) {
    history.update([entry("10.0.0.1", second)], second * 1000);
  }
  // Steps 0-4 s, 5-9 s, 10-11 s: the last ready heard in each.
  assert.deepEqual(history.of("10.0.0.1"), [4, 9, 11]);
  for (let step = 3; step < 1000; step++) {
    history.update([entry("10.0.0.1", step)], step * HISTORY_STEP_MS);
  }
  assert.equal(history.of("10.0.0.1").length, HISTORY_SLOTS);
  assert.equal(history.of("10.0.0.1").at(-1), 999);
  // Thousands of servers come and go: only those in the table are kept.
  for (let round = 0; round < 50; round++) {
    const many = Array.from({ length: 100 }, (_, i) => `10.${round}.0.${i}`);
    history.update(many.map((ip) => entry(ip, 1)), round * HISTORY_STEP_MS);
    assert.equal(history.size, 100);
  }
  history.update([], 0);
  assert.equal(history.size, 0);
  assert.deepEqual(history.of("10.0.0.1"), []);
});

test("monitor page: shares as mod_lbmethod_heartbeat draws, drain as ready=0, greyed from 10 s", () => {
  const history = new ServerHistory();
  const now = 100_000;
  const status = monitorStatus({
    entries: [
      entry("10.0.0.1", 8, now - 1000),
      entry("10.0.0.2", 0, now),
      entry("10.0.0.3", 5, now - 12_000),
    ],
    now,
    history,
    signed: true,
    accepted: { udp: 3, http: 0 },
    rejected: new Map([["forged", 2]]),
    outputs: { "storage file": "/run/hb.dat", "storage writes": 4, "storage failures": 1 },
  });
  assert.deepEqual(
    status.servers.map(({ ip, draining, up, share, lastSeenMs, signed, via }) => ({
      ip,
      draining,
      up,
      share,
      lastSeenMs,
      signed,
      via,
    })),
    [
      // weights 8 and 0; the last drawn gets one pick more: 8/9 and 1/9
      {
        ip: "10.0.0.1",
        draining: false,
        up: true,
        share: 8 / 9,
        lastSeenMs: 1000,
        signed: true,
        via: undefined,
      },
      {
        ip: "10.0.0.2",
        draining: true,
        up: true,
        share: 1 / 9,
        lastSeenMs: 0,
        signed: true,
        via: undefined,
      },
      {
        ip: "10.0.0.3",
        draining: false,
        up: false,
        share: 0,
        lastSeenMs: 12_000,
        signed: true,
        via: undefined,
      },
    ],
  );
  assert.deepEqual(status.rejected, { forged: 2 });
  assert.deepEqual(status.outputs, {
    "storage file": "/run/hb.dat",
    "storage writes": 4,
    "storage failures": 1,
  });
});

test("monitor page: the monitor's own page shows its servers, counters and history, and nothing a sender sent as markup", () => {
  const clock = new FakeClock();
  const monitor = new Monitor({
    maxServers: 100,
    allow: [],
    logger: createLogger({ level: "info", write: recordingLog().write }),
    clock,
  });
  assert.equal(
    monitor.accept(`v=1&ready=3&busy=1&x=<script>alert(1)</script>&port=8080`, "10.0.0.7", "http"),
    undefined,
  );
  monitor.accept("ready=x", "10.0.0.8", "udp");
  monitor.tick();
  const page = monitorPage("/", () => monitor.pageView());
  assert.equal(page.status, 200);
  assert.doesNotMatch(page.body, /<script>/);
  assert.match(
    page.body,
    /<tr class="" data-ip="10.0.0.7"><td class="address">10.0.0.7:8080<\/td>/,
  );
  assert.match(page.body, /<td class="via">http<\/td>/);
  assert.match(page.body, /<dt>rejected: [a-z-]+<\/dt><dd>1<\/dd>/);
  assert.match(page.body, /<polyline class="ready" points="0,0 120,0">/);
  const data = JSON.parse(monitorPage("/status.json", () => monitor.pageView()).body);
  assert.deepEqual(data.servers[0].history, [3]);
  assert.deepEqual(data.accepted, { udp: 0, http: 1 });
});
