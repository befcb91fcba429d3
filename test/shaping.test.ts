import assert from "node:assert/strict";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { createLogger } from "../src/log.ts";
import { Drain, shapeLoad, type Shaping } from "../src/shaping.ts";
import { recordingLog } from "./support/fakes.ts";

const scratch = mkdtempSync(join(tmpdir(), "heartbeat-shaping-"));
after(() => rmSync(scratch, { recursive: true, force: true }));

const plain: Shaping = { draining: () => false, startedAt: 0, now: () => 0 };

test("shaping: nothing changes unless asked", () => {
  assert.deepEqual(shapeLoad({ ready: 10, busy: 0 }, plain), { ready: 10, busy: 0 });
});

test("shaping: draining advertises ready=0 and keeps the real busy count", () => {
  assert.deepEqual(shapeLoad({ ready: 10, busy: 3 }, { ...plain, draining: () => true }), {
    ready: 0,
    busy: 3,
  });
});

test("shaping: --min-busy keeps lbmethod_heartbeat from dividing ready by 4", () => {
  assert.deepEqual(shapeLoad({ ready: 40, busy: 0 }, { ...plain, minBusy: 1 }), {
    ready: 40,
    busy: 1,
  });
  assert.deepEqual(shapeLoad({ ready: 40, busy: 5 }, { ...plain, minBusy: 1 }), {
    ready: 40,
    busy: 5,
  });
});

test("shaping: --ramp-up grows ready linearly from 0 after start", () => {
  const at = (ms: number) =>
    shapeLoad({ ready: 40, busy: 2 }, {
      ...plain,
      rampUpSeconds: 10,
      startedAt: 1000,
      now: () => 1000 + ms,
    }).ready;
  assert.deepEqual([at(0), at(2500), at(5000), at(9999), at(10_000), at(60_000)], [
    0,
    10,
    20,
    39,
    40,
    40,
  ]);
});

test("shaping: a drain by signal or by file, each change logged once", () => {
  const log = recordingLog();
  const drain = new Drain(
    createLogger({ level: "info", write: log.write, now: () => new Date(0) }),
  );
  const file = join(scratch, "drain");
  assert.equal(drain.draining(file), false);
  writeFileSync(file, "");
  assert.equal(drain.draining(file), true);
  assert.equal(drain.draining(file), true);
  rmSync(file);
  assert.equal(drain.draining(file), false);
  drain.set(true, "SIGUSR1");
  assert.equal(drain.draining(undefined), true);
  drain.set(false, "SIGUSR2");
  assert.equal(drain.draining(undefined), false);
  assert.ok(!existsSync(file));
  assert.deepEqual(log.lines.map((line) => line.slice(25)), [
    `info  draining: advertising ready=0 (${file} exists)`,
    "info  drain over: advertising the real ready count again",
    "info  SIGUSR1: drain requested",
    "info  draining: advertising ready=0 (signal)",
    "info  SIGUSR2: drain by signal lifted",
    "info  drain over: advertising the real ready count again",
  ]);
});
