/** src/sources/file.ts */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { createSource } from "../../src/sources/index.ts";
import { FLAG_NAMES } from "../../src/settings.ts";

const scratch = mkdtempSync(join(tmpdir(), "heartbeat-sources-"));
after(() => rmSync(scratch, { recursive: true, force: true }));
const never = new AbortController().signal;

test("file: the file's numbers while it is fresh; stale, missing or garbage files are no data", async () => {
  const path = join(scratch, "load");
  const source = await createSource(`file:${path}`, { names: FLAG_NAMES, maxAgeSeconds: 5 });
  await assert.rejects(source.read(never), /ENOENT/);
  writeFileSync(path, "ready=7&busy=3\n");
  assert.deepEqual(await source.read(never), { ready: 7, busy: 3 });
  writeFileSync(path, '{"ready":1,"busy":2}');
  assert.deepEqual(await source.read(never), { ready: 1, busy: 2 });
  const old = new Date(Date.now() - 60_000);
  utimesSync(path, old, old);
  await assert.rejects(source.read(never), /was last written 60 s ago \(more than --max-age 5\)/);
  writeFileSync(path, "half-writ");
  await assert.rejects(source.read(never), /expected ready=N&busy=M/);
  writeFileSync(path, "x".repeat(70_000));
  await assert.rejects(source.read(never), /too large/);
});

test("file: a named pipe at the path is refused at once, not waited on, and a regular file there works again", async () => {
  const path = join(scratch, "load-fifo");
  execFileSync("mkfifo", [path]);
  const source = await createSource(`file:${path}`, { names: FLAG_NAMES });
  const started = Date.now();
  await assert.rejects(source.read(never), /is not a regular file/);
  assert.ok(Date.now() - started < 1000, "refused at once");
  rmSync(path);
  writeFileSync(path, "ready=2&busy=1");
  assert.deepEqual(await source.read(never), { ready: 2, busy: 1 });
});
