/** src/sources/pressure.ts */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { after, test } from "node:test";
import { usage } from "../../src/help.ts";
import { createSource } from "../../src/sources/index.ts";
import { parsePressureArgument, pressureLoad } from "../../src/sources/pressure.ts";
import { skipUnlessCgroupV1, V1Cgroup, V2Mount } from "../support/cgroups.ts";
import { agentCommand } from "../../scripts/lab/lab.ts";
import { REPO } from "../../scripts/repo.ts";
import { FLAG_NAMES } from "../../src/settings.ts";
import { currentRuntime, requiredOrSkipped } from "../support/lab.ts";

const FIXTURES = new URL("../fixtures/", import.meta.url).pathname;
const scratch = mkdtempSync(join(tmpdir(), "heartbeat-pressure-"));
after(() => rmSync(scratch, { recursive: true, force: true }));
const never = new AbortController().signal;
let trees = 0;

function tree(name: string): string {
  const root = join(scratch, `${name}-${trees++}`);
  cpSync(join(FIXTURES, name), root, { recursive: true });
  return root;
}

test("pressure: the argument, a resource and/or a cgroup directory", () => {
  assert.deepEqual(parsePressureArgument(undefined, FLAG_NAMES), { resource: "cpu" });
  assert.deepEqual(parsePressureArgument("io", FLAG_NAMES), { resource: "io", cgroup: undefined });
  assert.deepEqual(parsePressureArgument("memory:/sys/fs/cgroup/a.slice", FLAG_NAMES), {
    resource: "memory",
    cgroup: "/sys/fs/cgroup/a.slice",
  });
  assert.deepEqual(parsePressureArgument("/sys/fs/cgroup/a.slice", FLAG_NAMES), {
    resource: "cpu",
    cgroup: "/sys/fs/cgroup/a.slice",
  });
  assert.throws(
    () => parsePressureArgument("disk", FLAG_NAMES),
    /give a resource \(cpu, memory, io\)/,
  );
  assert.deepEqual(pressureLoad(97.97, 100), { ready: 2, busy: 98 });
  assert.deepEqual(pressureLoad(0, 10), { ready: 10, busy: 0 });
  assert.deepEqual(pressureLoad(100, 10), { ready: 0, busy: 10 });
});

test("pressure: the machine's /proc/pressure where the agent's cgroup has no pressure file", async () => {
  const source = await createSource("pressure", {
    names: FLAG_NAMES,
    capacity: 100,
    fsRoot: tree("cgroup-v1"),
  });
  assert.equal(source.description, "pressure of cpu from /proc/pressure/cpu (some avg10)");
  assert.equal(source.defaultSmoothSeconds, undefined); // avg10 is an average already
  assert.deepEqual(await source.read(never), { ready: 2, busy: 98 });
  const io = await createSource("pressure:io", {
    names: FLAG_NAMES,
    capacity: 100,
    fsRoot: tree("cgroup-v1"),
  });
  assert.equal(io.description, "pressure of io from /proc/pressure/io (some avg10)");
});

test("pressure: a v2 cgroup's own file, the agent's or a named one", async () => {
  const root = tree("cgroup-v2");
  const dir = "/sys/fs/cgroup/system.slice/app.service";
  const own = await createSource("pressure", { names: FLAG_NAMES, capacity: 100, fsRoot: root });
  assert.equal(own.description, `pressure of cpu from ${dir}/cpu.pressure (some avg10)`);
  assert.deepEqual(await own.read(never), { ready: 98, busy: 2 }); // some avg10=1.82
  writeFileSync(
    join(root, dir, "cpu.pressure"),
    "some avg10=35.50 avg60=10.00 avg300=2.00 total=123\nfull avg10=1.00 avg60=0.00 avg300=0.00 total=4\n",
  );
  assert.deepEqual(await own.read(never), { ready: 65, busy: 35 });
  const memory = await createSource(`pressure:memory:${dir}`, {
    names: FLAG_NAMES,
    capacity: 10,
    fsRoot: root,
  });
  assert.equal(memory.description, `pressure of memory from ${dir}/memory.pressure (some avg10)`);
  assert.deepEqual(await memory.read(never), { ready: 10, busy: 0 });
  const named = await createSource(`pressure:${dir}`, {
    names: FLAG_NAMES,
    capacity: 10,
    fsRoot: root,
  });
  assert.equal(named.description, `pressure of cpu from ${dir}/cpu.pressure (some avg10)`);
  // Garbage in the file is no data, not a wrong heartbeat.
  writeFileSync(join(root, dir, "cpu.pressure"), "oops\n");
  await assert.rejects(own.read(never), /not a pressure file/);
});

test("pressure: mistakes, and a kernel without PSI, are startup errors naming what to fix", async () => {
  const v1 = tree("cgroup-v1");
  await assert.rejects(
    createSource("pressure", { names: FLAG_NAMES, fsRoot: v1 }),
    /needs --capacity N/,
  );
  await assert.rejects(
    createSource("pressure:cpu:/sys/fs/cgroup/cpu/heartbeat-test", {
      names: FLAG_NAMES,
      capacity: 1,
      fsRoot: v1,
    }),
    /a cgroup v1 cgroup has no pressure file; per-cgroup pressure needs cgroup v2/,
  );
  await assert.rejects(
    createSource("pressure:memory:/sys/fs/cgroup/nope", {
      names: FLAG_NAMES,
      capacity: 1,
      fsRoot: v1,
    }),
    /no such cgroup directory/,
  );
  // A system error in its one wording on every runtime, as everywhere else.
  rmSync(join(v1, "proc/pressure/io"));
  mkdirSync(join(v1, "proc/pressure/io"));
  await assert.rejects(
    createSource("pressure:io", { names: FLAG_NAMES, capacity: 1, fsRoot: v1 }),
    /--source pressure: cannot read \/proc\/pressure\/io: is a directory \(EISDIR\)$/,
  );
  rmSync(join(v1, "proc/pressure"), { recursive: true });
  await assert.rejects(
    createSource("pressure:memory", { names: FLAG_NAMES, capacity: 1, fsRoot: v1 }),
    /--source pressure: \/proc\/pressure\/memory does not exist: this kernel has no pressure stall information/,
  );
  assert.match(usage("agent"), /pressure: PSI's some avg10 for cpu, memory or io/);
});

test("pressure, for real: a v2 cgroup's cpu pressure rises under more busy loops than CPUs", {
  skip: skipUnlessCgroupV1(),
  timeout: 60_000,
}, async (context) => {
  const mount = V2Mount.create();
  if (typeof mount === "string") return context.skip(mount);
  // The loops' CPU is capped at one CPU (a v1 quota) so that the machine stays usable; three
  // of them wait for it in turn, which PSI counts as the v2 cgroup's stall.
  const limit = new V1Cgroup(1);
  try {
    const source = await createSource(`pressure:cpu:${mount.child}`, {
      names: FLAG_NAMES,
      capacity: 100,
    });
    assert.equal(
      source.description,
      `pressure of cpu from ${mount.child}/cpu.pressure (some avg10)`,
    );
    assert.deepEqual(await source.read(never), { ready: 100, busy: 0 });
    limit.busy(3, 20, [mount.child]);
    const seen: number[] = [];
    for (let second = 0; second < 15; second++) {
      await new Promise((resolve) => setTimeout(resolve, 1000));
      seen.push((await source.read(never)).ready);
      if (seen.at(-1)! <= 75) break;
    }
    assert.ok(seen.at(-1)! <= 75, `ready under three loops: ${seen.join(", ")}`);
  } finally {
    await limit.remove();
    await mount.remove();
  }
});

test("pressure, for real: the agent with --source pressure --once --dry-run", {
  skip: process.getuid?.() === 0 ? false : requiredOrSkipped("unshare --net needs root"),
}, async () => {
  const { stdout } = await promisify(execFile)("unshare", [
    "--net",
    ...agentCommand(currentRuntime(), [
      ...["-a", "239.0.0.1:27999", "--once", "--dry-run"],
      ...["--source", "pressure", "--capacity", "100"],
    ]),
  ], { cwd: REPO });
  const [, ready, busy] = /^239\.0\.0\.1:27999 v=1&ready=(\d+)&busy=(\d+)$/m.exec(stdout) ?? [];
  assert.equal(Number(ready) + Number(busy), 100);
});
