import assert from "node:assert/strict";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { createLogger } from "../../src/log.ts";
import { Drain, shapeLoad, type Shaping } from "../../src/agent/shaping.ts";
import { recordingLog } from "../support/fakes.ts";

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
    })?.ready;
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
    `info  draining: advertising ready=0 (${file} exists), then nothing`,
    "info  drain over: advertising the real ready count again, ramping up",
    "info  SIGUSR1: drain requested",
    "info  draining: advertising ready=0 (signal), then nothing",
    "info  SIGUSR2: drain by signal lifted",
    "info  drain over: advertising the real ready count again, ramping up",
  ]);
});

test("shaping: a drain says ready=0 twice, then sends nothing, so the balancer drops the server; it ramps up again after", () => {
  let now = 0;
  const log = recordingLog();
  const drain = new Drain(createLogger({ level: "info", write: log.write }), () => now);
  const shaping: Shaping = {
    draining: () => drain.draining(undefined),
    announce: () => drain.announce(),
    resumedAt: () => drain.resumedAt(),
    startedAt: 0,
    now: () => now,
  };
  const load = { ready: 40, busy: 3 };
  assert.deepEqual(shapeLoad(load, shaping), load);
  drain.set(true, "SIGTTOU");
  assert.deepEqual([shapeLoad(load, shaping), shapeLoad(load, shaping)], [{ ready: 0, busy: 3 }, {
    ready: 0,
    busy: 3,
  }]);
  assert.deepEqual([shapeLoad(load, shaping), shapeLoad(load, shaping)], [undefined, undefined]);
  assert.equal(log.lines.filter((line) => line.includes("sending nothing now")).length, 1);
  now = 60_000;
  drain.set(false, "SIGTTIN");
  const at = (ms: number) => {
    now = 60_000 + ms;
    return shapeLoad(load, shaping)?.ready;
  };
  // UNDRAIN_RAMP_SECONDS (10) without --ramp-up.
  assert.deepEqual([at(0), at(5000), at(10_000), at(20_000)], [0, 20, 40, 40]);
  // A new drain announces again.
  drain.set(true, "SIGTTOU");
  assert.deepEqual(shapeLoad(load, shaping), { ready: 0, busy: 3 });
  // With --ramp-up, that is the ramp after a drain too.
  drain.set(false, "SIGTTIN");
  assert.equal(shapeLoad(load, { ...shaping, rampUpSeconds: 2, now: () => now + 1000 })?.ready, 20);
});
