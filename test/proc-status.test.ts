import assert from "node:assert/strict";
import { test } from "node:test";
import { statusMask } from "../src/proc-status.ts";

const STATUS = "Name:\tdeno\nSigBlk:\t0000000000000200\nCapEff:\t000001ffffffffff\n";

test("proc status: a mask field read as a number, and none where the field is missing", () => {
  assert.equal(statusMask(STATUS, "SigBlk"), 0x200n);
  assert.equal(statusMask(STATUS, "CapEff"), 0x1ffffffffffn);
  assert.equal(statusMask(STATUS, "SigIgn"), undefined);
});
