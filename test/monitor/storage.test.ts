/** mod_heartmonitor's storage file, written and read (src/monitor/storage.ts). */
import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import {
  balancerShares,
  formatStorage,
  parseStorage,
  writeFileAtomic,
} from "../../src/monitor/storage.ts";

const scratch = mkdtempSync(join(tmpdir(), "heartbeat-storage-"));
after(() => rmSync(scratch, { recursive: true, force: true }));

test("monitor storage: mod_heartmonitor's exact line format", () => {
  const entries = [
    { ip: "10.0.0.1", ready: 5, busy: 2, port: 80, lastSeen: 1000 },
    { ip: "10.0.0.2", ready: 0, busy: 9, port: 8080, lastSeen: 4500 },
  ];
  assert.equal(
    formatStorage(entries, 7000),
    "10.0.0.1 &ready=5&busy=2&lastseen=6&port=80\n10.0.0.2 &ready=0&busy=9&lastseen=2&port=8080\n",
  );
  assert.equal(formatStorage([], 0), "");
});

test("monitor storage: replaced atomically, readable by all, no temporary files left", () => {
  const path = join(scratch, "hb.dat");
  writeFileAtomic(path, "first\n");
  writeFileAtomic(path, "10.0.0.1 &ready=1&busy=1&lastseen=0&port=80\n");
  assert.equal(readFileSync(path, "utf8"), "10.0.0.1 &ready=1&busy=1&lastseen=0&port=80\n");
  assert.equal(statSync(path).mode & 0o777, 0o644);
  assert.deepEqual(readdirSync(scratch).filter((name) => name.startsWith("hb.dat")), ["hb.dat"]);
  assert.throws(() => writeFileAtomic(join(scratch, "no-such-dir", "hb.dat"), "x"), /ENOENT/);
});

test("monitor storage: read back as mod_lbmethod_heartbeat reads it", () => {
  const text =
    "# comment\n10.0.0.1 &ready=8&busy=0&lastseen=1&port=80\nno-space-line\n10.0.0.2 &ready=12abc&busy=3\n10.0.0.3 &ready=5&busy=1&lastseen=12&port=81\n";
  assert.deepEqual(parseStorage(text), [
    { ip: "10.0.0.1", ready: 8, busy: 0, lastseen: 1, port: 80 },
    { ip: "10.0.0.2", ready: 12, busy: 3, lastseen: -1, port: 80 },
    { ip: "10.0.0.3", ready: 5, busy: 1, lastseen: 12, port: 81 },
  ]);
});

test("monitor storage: shares by the balancer's rules (ready/4 when busy is 0, too old ignored)", () => {
  const shares = balancerShares(parseStorage([
    "10.0.0.1 &ready=40&busy=0&lastseen=1&port=80", // just started: weight 10
    "10.0.0.2 &ready=30&busy=2&lastseen=2&port=80", // weight 30
    "10.0.0.3 &ready=50&busy=5&lastseen=10&port=80", // too old: weight 0
    "10.0.0.4 &ready=0&busy=0&lastseen=0&port=80", // weight 0
  ].join("\n")));
  assert.deepEqual(shares.map((server) => [server.ip, server.weight, server.share]), [
    ["10.0.0.1", 10, 0.25],
    ["10.0.0.2", 30, 0.75],
    ["10.0.0.3", 0, 0],
    ["10.0.0.4", 0, 0],
  ]);
  assert.deepEqual(balancerShares([]), []);
});
