/** The monitor's domain: what it takes, what it turns away, its table and tick (src/monitor/monitor.ts). */
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { monitorMetrics } from "../../src/monitor/metrics.ts";
import { SEEN_TIMEOUT_MS } from "../../src/monitor/table.ts";
import type { MonitorOutput } from "../../src/monitor/outputs/output.ts";
import { monitorWith } from "../support/monitor.ts";

const scratch = mkdtempSync(join(tmpdir(), "heartbeat-monitor-"));
after(() => rmSync(scratch, { recursive: true, force: true }));

test("monitor: mod_heartmonitor's input rules; everything else rejected, counted and logged once per reason", () => {
  const { monitor, log, printed } = monitorWith();
  assert.equal(
    monitor.accept("v=1&ready=5&busy=2&port=8080&zone=eu", "10.0.0.1", "udp"),
    undefined,
  );
  const junk: [string | Uint8Array, string][] = [
    ["", "missing-field"],
    [new Uint8Array([0, 1, 2, 255]), "missing-field"],
    ["v=1&ready=5", "missing-field"],
    ["v=1&ready=x&busy=1", "bad-number"],
    ["v=1&ready=-3&busy=1", "bad-number"],
    [`v=1&ready=1&busy=1&pad=${"x".repeat(1000)}`, "oversize"],
    ["ready=1&busy=1", "missing-field"],
  ];
  for (const [message, reason] of junk) {
    assert.equal(
      monitor.accept(message, "10.0.0.66", "udp")?.reason,
      reason,
      JSON.stringify(message),
    );
  }
  assert.deepEqual(monitor.servers().map((server) => server.ip), ["10.0.0.1"]);
  assert.deepEqual(Object.fromEntries(monitor.rejected), {
    "missing-field": 4,
    "bad-number": 2,
    oversize: 1,
  });
  const warnings = log.filter((line) => line.includes(" warn "));
  assert.equal(warnings.length, 3, warnings.join("\n"));
  assert.match(
    warnings[0],
    /rejected a heartbeat from 10\.0\.0\.66 \(udp\): missing-field: no v, ready, busy/,
  );
  assert.match(
    warnings[1],
    /bad-number: ready must be a whole number from 0 to 4294967295, got 'x'/,
  );
  assert.equal(printed.length, 1);
  assert.match(printed[0], / 10\.0\.0\.1 ready=5 busy=2 port=8080 \(udp\)$/);
});

test("monitor: --allow turns away other senders; --max-servers turns away new ones", () => {
  const allowed = monitorWith({ allow: ["10.99.0.0/16"] });
  assert.equal(allowed.monitor.accept("v=1&ready=1&busy=1", "10.99.1.1", "udp"), undefined);
  assert.deepEqual(allowed.monitor.accept("v=1&ready=1&busy=1", "10.1.1.1", "http"), {
    reason: "not-allowed",
    detail: "not in --allow",
  });
  const small = monitorWith({ maxServers: 1 });
  small.monitor.accept("v=1&ready=1&busy=1", "10.0.0.1", "udp");
  assert.equal(small.monitor.accept("v=1&ready=1&busy=1", "10.0.0.2", "udp")?.reason, "full");
  assert.match(
    small.log.find((line) => line.includes("full"))!,
    /rejected a heartbeat from 10\.0\.0\.2 \(udp\): full: already 1 servers \(--max-servers\)/,
  );
});

test("monitor: a heartbeat without a sender address is refused, never stored as a line the balancer cannot match", () => {
  const storage = join(scratch, "no-address.dat");
  const { monitor } = monitorWith({ storage });
  for (const from of ["", "?", "undefined"]) {
    assert.equal(monitor.accept("v=1&ready=5&busy=1", from, "http")?.reason, "no-address");
  }
  monitor.tick();
  assert.equal(readFileSync(storage, "utf8"), "");
  assert.match(
    monitorMetrics(monitor),
    /^heartbeat_messages_rejected_total\{reason="no-address"\} 3$/m,
  );
});

test("monitor: new servers wait for the next tick's rewrite, and a storm of them is logged in a few lines", () => {
  const storage = join(scratch, "storm.dat");
  const { monitor, log } = monitorWith({ storage, maxServers: 1000 });
  for (let i = 1; i <= 200; i++) {
    monitor.accept("v=1&ready=1&busy=1", `10.1.${i >> 8}.${i & 255}`, "udp");
  }
  assert.throws(() => readFileSync(storage), /ENOENT/, "no rewrite per new sender");
  monitor.tick();
  assert.equal(readFileSync(storage, "utf8").split("\n").filter(Boolean).length, 200);
  assert.equal(log.filter((line) => /new server \S+ \(udp\)$/.test(line)).length, 10);
  assert.ok(log.some((line) => line.includes("and 190 more new servers")));
});

test("monitor: a storm of servers falling silent is logged in a few lines", () => {
  const { monitor, clock, log } = monitorWith({
    storage: join(scratch, "silent-storm.dat"),
    maxServers: 1000,
  });
  for (let i = 1; i <= 200; i++) {
    monitor.accept("v=1&ready=1&busy=1", `10.2.${i >> 8}.${i & 255}`, "udp");
  }
  monitor.tick();
  clock.advance(SEEN_TIMEOUT_MS + 1);
  log.length = 0;
  monitor.tick();
  assert.equal(log.filter((line) => /server \S+ silent for 30 s: removed$/.test(line)).length, 10);
  assert.equal(log.length, 11, log.join("\n"));
  assert.match(log[10], /info {2}and 190 more servers silent: removed$/);
});

test("monitor: what a datagram says reaches the log escaped; a signed-only monitor checks the signature first", () => {
  const { monitor, log } = monitorWith();
  monitor.accept(
    "v=1&ready=\n2026-01-01T00:00:00Z info  new server 6.6.6.6\u001b[2J&busy=1",
    "10.0.0.1",
    "udp",
  );
  assert.equal(log.length, 1);
  assert.ok(!log[0].includes("\n") && !log[0].includes("\u001b"), log[0]);
});

test("monitor: a datagram ending in a line end is taken, as the same body POSTed is and as Apache takes it", () => {
  const { monitor } = monitorWith();
  const encode = (text: string) => new TextEncoder().encode(text);
  // `echo 'v=1&ready=5&busy=0' | socat - UDP:...` sends the \n.
  assert.equal(monitor.accept(encode("v=1&ready=5&busy=0\n"), "10.0.0.1", "udp"), undefined);
  assert.equal(monitor.accept(encode("v=1&ready=6&busy=1\r\n"), "10.0.0.2", "udp"), undefined);
  assert.equal(
    monitor.accept(encode("v=1&ready=7&busy=2&port=8080\n"), "10.0.0.3", "udp"),
    undefined,
  );
  // The limit counts the heartbeat, not the line end after it.
  const base = "v=1&ready=3&busy=2&pad=";
  const full = base + "x".repeat(1000 - base.length);
  assert.equal(monitor.accept(encode(`${full}\n`), "10.0.0.4", "udp"), undefined);
  assert.deepEqual(
    monitor.table.entries().map(({ ip, ready, busy, port }) => [ip, ready, busy, port]),
    [
      ["10.0.0.1", 5, 0, 80],
      ["10.0.0.2", 6, 1, 80],
      ["10.0.0.3", 7, 2, 8080],
      ["10.0.0.4", 3, 2, 80],
    ],
  );
  // Over the limit it is refused, where Apache would parse the first 1000 bytes: the cut may
  // fall inside a number.
  assert.equal(
    monitor.accept(encode(`${full}&ready=12345`), "10.0.0.5", "udp")?.reason,
    "oversize",
  );
});

test("monitor: a bad port= alone costs the port, not the server: taken at port 80, counted and logged", () => {
  const { monitor, log, clock } = monitorWith();
  for (const [port, ip] of [["0", "10.0.0.1"], ["65536", "10.0.0.2"], ["8080x", "10.0.0.3"]]) {
    assert.equal(
      monitor.accept(new TextEncoder().encode(`v=1&ready=4&busy=1&port=${port}`), ip, "udp"),
      undefined,
      port,
    );
  }
  assert.equal(monitor.accept("v=1&ready=4&busy=1&port=-1", "10.0.0.4", "http"), undefined);
  assert.deepEqual(
    monitor.table.entries().map(({ ip, ready, busy, port }) => [ip, ready, busy, port]),
    [
      ["10.0.0.1", 4, 1, 80],
      ["10.0.0.2", 4, 1, 80],
      ["10.0.0.3", 4, 1, 80],
      ["10.0.0.4", 4, 1, 80],
    ],
  );
  assert.equal(monitor.rejected.size, 0, "nothing rejected");
  clock.advance(1000);
  assert.match(monitorMetrics(monitor), /^heartbeat_ports_ignored_total 4$/m);
  const warnings = log.filter((line) => line.includes("without its port"));
  assert.equal(warnings.length, 1, "logged once, not per heartbeat");
  assert.match(warnings[0], /10\.0\.0\.1 \(udp\) without its port: port="0" is no port from 1/);
});

test("monitor: an output that throws costs its own update, logged, and not the tick: the next output is still updated", () => {
  const updated: number[] = [];
  const output = (name: string, update: () => void): MonitorOutput => ({
    name,
    update,
    problem: () => undefined,
    counters: () => ({}),
    metrics: () => [],
    close: () => Promise.resolve(),
  });
  const { monitor, log } = monitorWith({
    outputs: [
      output("broken", () => {
        throw new Error("a bug");
      }),
      output("next", () => updated.push(monitor.table.size)),
    ],
  });
  monitor.accept("v=1&ready=4&busy=1", "10.0.0.1", "udp");
  monitor.tick();
  assert.deepEqual(updated, [1]);
  assert.ok(log.some((line) => line.endsWith("the broken output failed: a bug")), log.join("\n"));
});
