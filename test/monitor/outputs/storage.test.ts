/** The storage file as the monitor's output: each tick, at start, for /healthz (src/monitor/outputs/storage.ts). */
import assert from "node:assert/strict";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { createLogger } from "../../../src/log.ts";
import { Monitor, runMonitor } from "../../../src/monitor/monitor.ts";
import { monitorOutputs } from "../../../src/monitor/outputs/index.ts";
import type { MonitorOutput } from "../../../src/monitor/outputs/output.ts";
import { StorageOutput } from "../../../src/monitor/outputs/storage.ts";
import { SEEN_TIMEOUT_MS } from "../../../src/monitor/table.ts";
import { FLAG_NAMES, resolveSettings } from "../../../src/settings.ts";
import { FakeClock, recordingLog } from "../../support/fakes.ts";
import { monitorWith } from "../../support/monitor.ts";

const scratch = mkdtempSync(join(tmpdir(), "heartbeat-storage-output-"));
after(() => rmSync(scratch, { recursive: true, force: true }));

test("storage output: the storage file is written every tick, a new server at the next one, and loses silent servers after 30 s", () => {
  const storage = join(scratch, "tick.dat");
  const { monitor, clock, log } = monitorWith({ storage });
  monitor.accept("v=1&ready=4&busy=1", "10.0.0.1", "udp");
  monitor.tick();
  assert.equal(readFileSync(storage, "utf8"), "10.0.0.1 &ready=4&busy=1&lastseen=0&port=80\n");
  clock.advance(5_000);
  monitor.accept("v=1&ready=6&busy=0&port=81", "10.0.0.2", "http");
  clock.advance(2_000);
  monitor.tick();
  assert.equal(
    readFileSync(storage, "utf8"),
    "10.0.0.1 &ready=4&busy=1&lastseen=7&port=80\n10.0.0.2 &ready=6&busy=0&lastseen=2&port=81\n",
  );
  clock.advance(SEEN_TIMEOUT_MS - 7_000 + 1);
  monitor.tick();
  assert.equal(readFileSync(storage, "utf8"), "10.0.0.2 &ready=6&busy=0&lastseen=25&port=81\n");
  assert.ok(log.some((line) => line.endsWith("info  server 10.0.0.1 silent for 30 s: removed")));
});

test("storage output: an unwritable storage file is logged once, and the monitor goes on", () => {
  const { monitor, log } = monitorWith({ storage: join(scratch, "missing-dir", "hb.dat") });
  monitor.accept("v=1&ready=1&busy=1", "10.0.0.1", "udp");
  monitor.tick();
  monitor.tick();
  assert.equal(log.filter((line) => line.includes("cannot write")).length, 1);
  assert.equal(monitor.table.size, 1);
});

test("storage output: a restart keeps the servers in the storage file, aged, and removes a killed run's temporary file", async () => {
  const storage = join(scratch, "restart.dat");
  writeFileSync(
    storage,
    [
      "10.0.0.1 &ready=5&busy=1&lastseen=3&port=80",
      "10.0.0.2 &ready=7&busy=0&lastseen=31&port=80", // too old: mod_heartmonitor would drop it
      " &ready=5&busy=1&lastseen=0&port=80", // no address
      "",
    ].join("\n"),
  );
  // A temporary file of a process that is gone: pid 2^22+1 is above Linux's pid_max.
  const stale = `${storage}.tmp.4194305.abc`;
  writeFileSync(stale, "half a file");
  const log = recordingLog();
  const stop = new AbortController();
  const clock = new FakeClock();
  clock.time = 100_000;
  const logger = createLogger({ level: "info", write: log.write });
  const { outputs, restore } = monitorOutputs(
    resolveSettings({ flags: { storage }, env: {} }).settings,
    FLAG_NAMES,
    logger,
    clock,
  );
  const running = runMonitor({
    openUdpListener: () => Promise.reject(new Error("not used")),
    outputs,
    restore,
    maxServers: 10,
    allow: [],
    logger,
    clock,
    signal: stop.signal,
    onListening: (monitor) => {
      assert.deepEqual(monitor.servers(), [{
        ip: "10.0.0.1",
        ready: 5,
        busy: 1,
        port: 80,
        lastSeenSeconds: 3,
      }]);
      stop.abort();
    },
  });
  await running;
  assert.ok(!existsSync(stale), "the stale temporary file is gone");
  assert.ok(log.lines.some((line) => line.includes(`removed ${stale}`)));
  assert.ok(log.lines.some((line) => line.includes(`kept 1 of the 3 servers in ${storage}`)));
});

test("storage output: while the file cannot be written, /healthz says why; the first output's problem is the one named", () => {
  const folder = join(scratch, "later");
  const path = join(folder, "hb.dat");
  const { monitor, log } = monitorWith({ storage: path });
  const never: MonitorOutput = {
    name: "never",
    update: () => {},
    problem: () => "never works",
    counters: () => ({}),
    metrics: () => [],
    close: () => Promise.resolve(),
  };
  const both = new Monitor({
    maxServers: 10,
    allow: [],
    outputs: [
      new StorageOutput({
        path,
        logger: createLogger({ level: "error", write: () => {} }),
        now: () => 0,
      }),
      never,
    ],
    logger: createLogger({ level: "error", write: () => {} }),
    clock: new FakeClock(),
  });
  assert.deepEqual(monitor.health(), { healthy: true, reason: "ok: 0 servers" });
  monitor.accept("v=1&ready=1&busy=1", "10.0.0.1", "udp");
  monitor.tick();
  both.tick();
  const problem = `cannot write ${path}: no such file or directory (ENOENT)`;
  assert.deepEqual(monitor.health(), { healthy: false, reason: problem });
  assert.deepEqual(both.health(), { healthy: false, reason: problem });
  mkdirSync(folder);
  monitor.tick();
  both.tick();
  assert.deepEqual(monitor.health(), { healthy: true, reason: "ok: 1 servers" });
  assert.deepEqual(both.health(), { healthy: false, reason: "never works" });
  assert.match(log.join("\n"), /writing .*hb\.dat works again \(after 1 failures/);
});
