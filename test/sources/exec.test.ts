/** src/sources/exec.ts */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { createSource } from "../../src/sources/index.ts";
import { runtimeCommand } from "../../scripts/lab/lab.ts";
import { REPO } from "../../scripts/repo.ts";
import { FLAG_NAMES } from "../../src/settings.ts";
import { currentRuntime } from "../support/lab.ts";

const scratch = mkdtempSync(join(tmpdir(), "heartbeat-sources-"));
after(() => rmSync(scratch, { recursive: true, force: true }));
const never = new AbortController().signal;

test("exec: the command's output each read; failures and garbage are no data", async () => {
  assert.deepEqual(
    await (await createSource("exec:echo ready=4\\&busy=1", { names: FLAG_NAMES })).read(never),
    {
      ready: 4,
      busy: 1,
    },
  );
  assert.deepEqual(
    await (await createSource(`exec:printf '{"ready":2,"busy":0}'`, { names: FLAG_NAMES })).read(
      never,
    ),
    { ready: 2, busy: 0 },
  );
  await assert.rejects(
    (await createSource("exec:echo oops >&2; exit 3", { names: FLAG_NAMES })).read(never),
    /exited with status 3: oops/,
  );
  await assert.rejects(
    (await createSource("exec:echo garbage", { names: FLAG_NAMES })).read(never),
    /expected ready=N&busy=M/,
  );
  await assert.rejects(
    (await createSource("exec:/no/such/command", { names: FLAG_NAMES })).read(never),
    /exited with status 127/,
  );
  await assert.rejects(
    (await createSource("exec:head -c 100000 /dev/zero", { names: FLAG_NAMES })).read(never),
    /printed more than/,
  );
});

test("exec: a command that hangs is killed at the deadline, with what it started", async () => {
  const pidFile = join(scratch, "background-pid");
  const source = await createSource(
    `exec:sleep 30 & echo $! > ${pidFile}; sleep 30; echo ready=1\\&busy=1`,
    { names: FLAG_NAMES },
  );
  const started = Date.now();
  await assert.rejects(
    source.read(AbortSignal.timeout(300)),
    /did not finish in time and was killed/,
  );
  assert.ok(Date.now() - started < 5000);
  // Killed processes linger as zombies until reaped: give that a moment.
  const background = Number(readFileSync(pidFile, "utf8"));
  const gone = () => {
    try {
      process.kill(background, 0);
      return false;
    } catch {
      return true;
    }
  };
  for (let wait = 0; wait < 40 && !gone(); wait++) {
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  assert.ok(gone(), "the command's background child was killed too");
});

test("exec: a command that leaves a background child holding its output still answers, and the child is killed", async () => {
  const marker = join(scratch, "orphan");
  const source = await createSource(`exec:(sleep 30; touch ${marker}) & echo ready=3\\&busy=1`, {
    names: FLAG_NAMES,
  });
  const deadline = new AbortController();
  const timer = setTimeout(() => deadline.abort(), 2000);
  assert.deepEqual(await source.read(deadline.signal), { ready: 3, busy: 1 });
  clearTimeout(timer);
  // Its process group is gone: nothing is left to hold the pipes (or, later, touch the marker).
  const leftovers = execFileSync("ps", ["-eo", "args"], { encoding: "utf8" }).split("\n")
    .filter((line) => line.includes(`touch ${marker}`));
  assert.deepEqual(leftovers, []);
});

test("exec: a command that cannot start says why (no file descriptors left), not a TypeError", () => {
  const said = execFileSync("sh", [
    "-c",
    `ulimit -n 64 && exec ${
      runtimeCommand(currentRuntime(), "test/support/exec-without-descriptors.ts").join(" ")
    }`,
  ], { cwd: REPO, encoding: "utf8" });
  // In the one wording of every system error, whichever runtime it is.
  assert.equal(said, "cannot run `echo ready=1`: too many open files (EMFILE)\n");
});
