/** Lines to stdout and stderr that never stop the work (src/output.ts). */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { closeSync, constants, mkdtempSync, openSync, readSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { lineWriter } from "../src/output.ts";

const scratch = mkdtempSync(join(tmpdir(), "heartbeat-output-"));
after(() => rmSync(scratch, { recursive: true, force: true }));

/** A pipe's two ends, as a FIFO: nothing reads the read end unless a test does. */
function pipe(name: string): { read: number; write: number } {
  const path = join(scratch, name);
  execFileSync("mkfifo", [path]);
  const read = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  return { read, write: openSync(path, constants.O_WRONLY) };
}

test("output: a reader that stops reading costs dropped lines, counted, never a blocked process or unbounded memory", async () => {
  const { read, write } = pipe("unread");
  const out = lineWriter(write, 64 * 1024);
  const line = "x".repeat(99);
  const started = Date.now();
  for (let i = 0; i < 20_000; i++) out(line);
  assert.ok(Date.now() - started < 1000, "writing 2 MB to a full pipe returns at once");
  await out.flush(300);
  assert.ok(out.dropped > 10_000, `dropped ${out.dropped}`);
  // Read some: what gets through is whole lines, then a note of what was dropped.
  const buffer = Buffer.alloc(65_536);
  const got = buffer.subarray(0, readSync(read, buffer)).toString();
  assert.ok(got.startsWith(`${line}\n${line}\n`));
  closeSync(read);
  closeSync(write);
});

test("output: a reader that goes away ends the writing quietly", async () => {
  const { read, write } = pipe("gone");
  const out = lineWriter(write);
  out("first");
  await out.flush(1000);
  closeSync(read);
  for (let i = 0; i < 100; i++) out(`after ${i}`);
  await out.flush(1000);
  out("still no error");
  await out.flush(1000);
  closeSync(write);
});
