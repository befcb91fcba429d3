import assert from "node:assert/strict";
import { test } from "node:test";
import {
  type Admission,
  ConnectionLimits,
  type ConnectionRefusal,
} from "../src/connection-limits.ts";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function limits(bounds: { total: number; perAddress: number; deadlineMs: number }) {
  const refused: [ConnectionRefusal, string, string][] = [];
  const limits = new ConnectionLimits(
    bounds,
    (reason, address, detail) => refused.push([reason, address, detail]),
  );
  return { limits, refused };
}

test("connection limits: a few from one address, the rest from others; the log names who holds the slots", () => {
  const { limits: guard, refused } = limits({ total: 5, perAddress: 2, deadlineMs: 60_000 });
  const held: Admission[] = [];
  const admit = (address: string) => {
    const admission = guard.admit(address, () => {});
    if (admission) held.push(admission);
    return admission !== undefined;
  };
  assert.deepEqual(
    ["10.0.0.9", "::ffff:10.0.0.9", "10.0.0.9"].map(admit),
    [true, true, false],
    "an IPv4 address mapped into IPv6 is the same address",
  );
  assert.deepEqual(refused.pop(), ["too-many-from-address", "10.0.0.9", "2 open from it"]);
  assert.deepEqual(["10.0.0.1", "10.0.0.2", "fe80::1%eth0", "10.0.0.3"].map(admit), [
    true,
    true,
    true,
    false,
  ]);
  assert.deepEqual(refused.pop(), [
    "too-many-connections",
    "10.0.0.3",
    "5 open, the most (2) from 10.0.0.9",
  ]);
  assert.equal(guard.open, 5);
  held[0].release();
  held[0].release();
  assert.equal(guard.open, 4, "a slot is given back once");
  assert.equal(admit("10.0.0.9"), true);
  held.forEach((admission) => admission.release());
  assert.equal(guard.open, 0);
});

test("connection limits: closed at an absolute deadline from the opening, started again by renew", async () => {
  const { limits: guard } = limits({ total: 10, perAddress: 10, deadlineMs: 150 });
  const closed: string[] = [];
  const plain = guard.admit("10.0.0.1", () => closed.push("plain"))!;
  const renewed = guard.admit("10.0.0.1", () => closed.push("renewed"))!;
  await sleep(100);
  renewed.renew();
  await sleep(100);
  assert.deepEqual(closed, ["plain"]);
  assert.equal(guard.open, 1, "the slot is free at the deadline, closed or not");
  await sleep(100);
  assert.deepEqual(closed, ["plain", "renewed"]);
  assert.equal(guard.open, 0);
  plain.release();
  renewed.renew();
  await sleep(200);
  assert.deepEqual(closed, ["plain", "renewed"], "nothing is closed twice");
});
