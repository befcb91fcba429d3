import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { parseHeartbeat } from "../src/codec.ts";
import { createLogger } from "../src/log.ts";
import { monitorMetrics } from "../src/monitor/metrics.ts";
import { Monitor } from "../src/monitor/monitor.ts";
import { MAX_KEY_FILE_BYTES, readKeyFile, sign, SignatureCheck } from "../src/signing.ts";
import { FakeClock, recordingLog } from "./support/fakes.ts";

const scratch = mkdtempSync(join(tmpdir(), "heartbeat-signing-"));
after(() => rmSync(scratch, { recursive: true, force: true }));
const key = Buffer.from("0123456789abcdef0123456789abcdef");
const NOW = 1_800_000_000;

test("signing: ts and sig appended; Apache's rules still read the heartbeat", () => {
  const signed = sign("v=1&ready=5&busy=2&port=80", key, NOW);
  assert.match(signed, /^v=1&ready=5&busy=2&port=80&ts=1800000000&sig=[0-9a-f]{64}$/);
  const parsed = parseHeartbeat(signed);
  assert.ok(parsed.ok);
  assert.deepEqual([parsed.heartbeat.ready, parsed.heartbeat.busy, parsed.heartbeat.port], [
    5,
    2,
    80,
  ]);
});

test("signing: genuine and fresh is accepted; unsigned, forged, replayed and future are not", () => {
  const check = new SignatureCheck(key, 30, NOW - 60);
  const good = sign("v=1&ready=5&busy=2", key, NOW);
  assert.equal(check.check(good, "10.0.0.1", NOW + 3), undefined);
  const cases: [string, string, number, string, RegExp][] = [
    ["unsigned", "v=1&ready=5&busy=2", NOW, "unsigned", /no ts and sig/],
    ["sig without ts", "v=1&ready=5&busy=2&sig=00", NOW, "unsigned", /no ts and sig/],
    ["numbers changed", good.replace("ready=5", "ready=9"), NOW, "forged", /does not match/],
    ["ts changed", good.replace(`ts=${NOW}`, `ts=${NOW + 1}`), NOW, "forged", /does not match/],
    [
      "another key",
      sign("v=1&ready=5&busy=2", Buffer.from("another key, long enough"), NOW),
      NOW,
      "forged",
      /does not match/,
    ],
    ["truncated sig", good.slice(0, -2), NOW, "forged", /does not match/],
    [
      "old",
      sign("v=1&ready=5&busy=2", key, NOW - 31),
      NOW,
      "replayed",
      /31 s old, more than the 30 s window/,
    ],
    ["ahead", sign("v=1&ready=5&busy=2", key, NOW + 31), NOW, "future", /31 s ahead/],
  ];
  for (const [what, message, now, reason, detail] of cases) {
    const problem = check.check(message, "10.0.0.2", now);
    assert.equal(problem?.reason, reason, what);
    assert.match(problem!.detail, detail, what);
  }
});

test("signing: a heartbeat older than the last one accepted from its sender is a replay", () => {
  const check = new SignatureCheck(key, 30, NOW - 60);
  const first = sign("v=1&ready=5&busy=2", key, NOW);
  const second = sign("v=1&ready=6&busy=2", key, NOW + 1);
  assert.equal(check.check(first, "10.0.0.1", NOW + 1), undefined);
  assert.equal(check.check(second, "10.0.0.1", NOW + 1), undefined);
  assert.equal(check.check(first, "10.0.0.1", NOW + 2)?.reason, "replayed");
  // Sent again from another address, it is the same heartbeat: taken once only (#17: it was
  // taken, and registered a server that did not exist).
  assert.equal(
    check.check(first, "10.0.0.9", NOW + 2)?.reason,
    "replayed",
    "taken once, from anywhere",
  );
  check.forget(NOW + 100);
  assert.equal(
    check.check(sign("v=1&ready=1&busy=1", key, NOW + 100), "10.0.0.1", NOW + 100),
    undefined,
  );
});

test("signing: the monitor rejects, counts and logs without ever logging the key", () => {
  const log = recordingLog();
  let unix = NOW;
  const monitor = new Monitor({
    maxServers: 10,
    allow: [],
    signatures: new SignatureCheck(key, 30, NOW - 60),
    unixNow: () => unix,
    logger: createLogger({ level: "debug", write: log.write }),
    clock: new FakeClock(),
  });
  assert.equal(monitor.accept(sign("v=1&ready=5&busy=2", key, NOW), "10.0.0.1", "udp"), undefined);
  assert.equal(monitor.accept("v=1&ready=5&busy=2", "10.0.0.2", "udp")?.reason, "unsigned");
  assert.equal(
    monitor.accept(
      sign("v=1&ready=5&busy=2", key, NOW).replace("ready=5", "ready=50"),
      "10.0.0.3",
      "udp",
    )?.reason,
    "forged",
  );
  unix = NOW + 60;
  assert.equal(
    monitor.accept(sign("v=1&ready=5&busy=2", key, NOW), "10.0.0.4", "http")?.reason,
    "replayed",
  );
  assert.deepEqual(monitor.table.entries().map((entry) => entry.ip), ["10.0.0.1"]);
  assert.match(
    monitorMetrics(monitor),
    /^heartbeat_messages_rejected_total\{reason="forged"\} 1$/m,
  );
  assert.ok(!log.lines.join("\n").includes(key.toString()), "the key is never logged");
});

test("signing: key files that are missing, short or readable by others", () => {
  assert.throws(
    () => readKeyFile(join(scratch, "none")),
    /cannot read the key file .*none: no such file or directory \(ENOENT\)/,
  );
  const short = join(scratch, "short");
  writeFileSync(short, "secret\n");
  assert.throws(
    () => readKeyFile(short),
    (error: Error) =>
      /shorter than 16 bytes/.test(error.message) && !error.message.includes("secret"),
  );
  const open = join(scratch, "open");
  writeFileSync(open, `${key}\n`);
  chmodSync(open, 0o644);
  assert.match(readKeyFile(open).warning ?? "", /can be read by other users: chmod 600/);
  chmodSync(open, 0o600);
  assert.deepEqual(readKeyFile(open), { key, warning: undefined });
});

test("signing: only a regular key file of at most 4 KiB is read, so a FIFO or /dev/zero cannot hang -t, a start or a reload", () => {
  const fifo = join(scratch, "fifo.key");
  execFileSync("mkfifo", [fifo]);
  const big = join(scratch, "big.key");
  writeFileSync(big, "k".repeat(MAX_KEY_FILE_BYTES + 1));
  for (
    const [path, why] of [[fifo, "not a regular file"], ["/dev/zero", "not a regular file"], [
      big,
      `larger than ${MAX_KEY_FILE_BYTES} bytes`,
    ]]
  ) {
    assert.throws(() => readKeyFile(path), { message: `cannot read the key file ${path}: ${why}` });
  }
});

test("signing: a heartbeat signed at or before the monitor's start is refused, as what it took before is forgotten", () => {
  // A monitor restarted at NOW: a heartbeat captured a moment before is within the 5 s window.
  const check = new SignatureCheck(key, 5, NOW);
  const signer = { from: "10.0.0.1", seq: 7 };
  for (const ts of [NOW - 3, NOW]) {
    assert.deepEqual(check.check(sign("v=1&ready=0&busy=2", key, ts, signer), "10.0.0.1", NOW), {
      reason: "replayed",
      detail: "signed before this monitor started, which cannot know whether it was taken",
    });
  }
  const after = sign("v=1&ready=5&busy=2", key, NOW + 1, { ...signer, seq: 8 });
  assert.equal(check.check(after, "10.0.0.1", NOW + 1), undefined);
});

test("signing: a heartbeat is bound to the address it names, numbered, and taken once within a few seconds", () => {
  const check = new SignatureCheck(key, 5, NOW - 60);
  const signer = { from: "10.0.0.1", seq: 41 };
  const drained = sign("v=1&ready=0&busy=2", key, NOW, { ...signer, seq: 42 });
  assert.match(
    drained,
    /^v=1&ready=0&busy=2&from=10\.0\.0\.1&seq=42&ts=1800000000&sig=[0-9a-f]{64}$/,
  );
  const earlier = sign("v=1&ready=100&busy=2", key, NOW, signer);
  // From another address: refused, whatever the address (an attacker's, or a made-up server's).
  assert.deepEqual(check.check(earlier, "10.0.0.66", NOW), {
    reason: "wrong-sender",
    detail: "signed by 10.0.0.1, sent from 10.0.0.66",
  });
  // Two heartbeats in one second are both taken, in order; the earlier one, replayed after the
  // drain, would undo it: it is refused.
  assert.equal(check.check(earlier, "10.0.0.1", NOW), undefined);
  assert.equal(check.check(drained, "10.0.0.1", NOW), undefined);
  assert.equal(check.check(earlier, "10.0.0.1", NOW)?.reason, "replayed");
  assert.equal(check.check(drained, "10.0.0.1", NOW)?.reason, "replayed");
  // Past the window (5 s by default), nothing old is taken; memory is let go.
  assert.match(
    check.check(sign("v=1&ready=1&busy=1", key, NOW - 6, signer), "10.0.0.1", NOW)!.detail,
    /6 s old, more than the 5 s window/,
  );
  check.forget(NOW + 100);
  assert.equal(
    check.check(
      sign("v=1&ready=1&busy=1", key, NOW + 100, { ...signer, seq: 1 }),
      "10.0.0.1",
      NOW + 100,
    ),
    undefined,
  );
});
