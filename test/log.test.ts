/** Log lines and rate-limited problem logging (src/log.ts). */
import assert from "node:assert/strict";
import { test } from "node:test";
import { createLogger, ProblemLog } from "../src/log.ts";
import { recordingLog } from "./support/fakes.ts";

test("log: lines carry time and level, and levels below the threshold are dropped", () => {
  const log = recordingLog();
  const logger = createLogger({ level: "warn", write: log.write, now: () => new Date(0) });
  logger.debug("d");
  logger.info("i");
  logger.warn("w");
  logger.error("e");
  assert.deepEqual(log.lines, [
    "1970-01-01T00:00:00.000Z warn  w",
    "1970-01-01T00:00:00.000Z error e",
  ]);
});

test("log: ProblemLog keeps separate problems apart", () => {
  const log = recordingLog();
  let now = 0;
  const problems = new ProblemLog(
    createLogger({ level: "info", write: log.write, now: () => new Date(0) }),
    { now: () => now },
  );
  problems.fail("a", "a broke");
  problems.fail("b", "b broke");
  problems.fail("a", "a broke");
  problems.ok("c", "c fine");
  now = 5000;
  problems.ok("a", "a fine");
  problems.ok("a", "a fine");
  problems.fail("a", "a broke again");
  assert.deepEqual(log.lines.map((line) => line.slice(25)), [
    "warn  a broke",
    "warn  b broke",
    "info  a fine (after 2 failures in 5 s)",
    "warn  a broke again",
  ]);
});

test("log: bytes from outside cannot forge a line or reach the terminal as control sequences", () => {
  const log = recordingLog();
  const logger = createLogger({ level: "info", write: log.write, now: () => new Date(0) });
  logger.warn(
    "rejected: bad-number: ready 'x\n1970-01-01T00:00:00.000Z error  forged\u001b[31m\u009b2J'",
  );
  assert.deepEqual(log.lines, [
    "1970-01-01T00:00:00.000Z warn  rejected: bad-number: ready 'x\\x0a1970-01-01T00:00:00.000Z error  forged\\x1b[31m\\x9b2J'",
  ]);
});
