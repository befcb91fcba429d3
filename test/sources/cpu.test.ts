/** src/sources/cpu.ts */
import assert from "node:assert/strict";
import { usage } from "../../src/help.ts";
import { spawn } from "node:child_process";
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import type { Load } from "../../src/codec.ts";
import {
  cpuLoad,
  cpuShare,
  FEEDBACK,
  MIN_SAMPLE_MS,
  SIZE_EXPONENT,
} from "../../src/sources/cpu.ts";
import { createSource } from "../../src/sources/index.ts";
import type { Source } from "../../src/sources/source.ts";
import { skipUnlessCgroupV1, V1Cgroup, V2Mount } from "../support/cgroups.ts";
import { FakeClock } from "../support/fakes.ts";
import { agentCommand, collect, stop, waitFor } from "../../scripts/lab/lab.ts";
import { REPO } from "../../scripts/repo.ts";
import { FLAG_NAMES } from "../../src/settings.ts";
import { currentRuntime } from "../support/lab.ts";

const FIXTURES = new URL("../fixtures/", import.meta.url).pathname;
const scratch = mkdtempSync(join(tmpdir(), "heartbeat-cpu-"));
after(() => rmSync(scratch, { recursive: true, force: true }));
const never = new AbortController().signal;
let trees = 0;

/** A writable copy of a fixture tree, and how to change a file in it. */
function tree(name: string) {
  const root = join(scratch, `${name}-${trees++}`);
  cpSync(join(FIXTURES, name), root, { recursive: true });
  return {
    root,
    write: (path: string, text: string) => writeFileSync(join(root, path), text),
    read: (path: string) => readFileSync(join(root, path), "utf8"),
  };
}

test("cpu: the share of a quota, and of CPUs' ticks, between two samples; the weight from it", () => {
  const quota = (at: number, used: number, limit = 0.5) =>
    ({ kind: "quota", at, used, quota: limit, limit }) as const;
  assert.equal(cpuShare(quota(0, 10), quota(1000, 10.25)), 0.5);
  assert.equal(cpuShare(quota(0, 10), quota(2000, 11)), 1);
  // A quota is enforced per period: an interval may see a little more, never reported above 1.
  assert.equal(cpuShare(quota(0, 10), quota(1000, 10.6)), 1);
  assert.equal(cpuShare(quota(0, 10), quota(0, 10)), undefined);
  const ticks = (cpu0: [number, number], cpu1: [number, number]) =>
    new Map([[0, { busy: cpu0[0], total: cpu0[1] }], [1, { busy: cpu1[0], total: cpu1[1] }]]);
  const cpus = (at: number, map: ReturnType<typeof ticks>, usable = [0, 1]) =>
    ({ kind: "cpus", at, ticks: map, cpus: usable }) as const;
  const before = cpus(0, ticks([100, 1000], [100, 1000]));
  assert.equal(cpuShare(before, cpus(1000, ticks([150, 1100], [100, 1100]))), 0.25);
  assert.equal(cpuShare(before, cpus(1000, ticks([150, 1100], [100, 1100]), [1])), 0);
  // A quota that came or went meanwhile: the two cannot be compared.
  assert.equal(cpuShare(before, quota(1000, 10)), undefined);
  // ready + busy = perCpu × CPUs^1.5; ready falls by FEEDBACK (1/4) of the share used.
  assert.deepEqual(cpuLoad(0.25, 1, 100), { ready: 94, busy: 6 });
  assert.deepEqual(cpuLoad(1, 1, 100), { ready: 75, busy: 25 });
  assert.deepEqual(cpuLoad(0.25, 2, 100), { ready: 265, busy: 18 });
  // Servers of 0.6 and 0.2 CPU weigh 46 and 9 (5.2:1 for CPUs of 3:1); full, 35 and 7, not 0.
  // Idle, busy is still 1: mod_lbmethod_heartbeat divides ready by 4 where busy is 0.
  assert.deepEqual(cpuLoad(0, 0.6, 100), { ready: 45, busy: 1 });
  assert.deepEqual(cpuLoad(0, 0.2, 100), { ready: 8, busy: 1 });
  assert.deepEqual(cpuLoad(1, 0.6, 100), { ready: 35, busy: 11 });
  assert.deepEqual(cpuLoad(1, 0.2, 100), { ready: 7, busy: 2 });
  // A sliver of a CPU is still one ready slot (with busy 1, so that the balancer counts it).
  assert.deepEqual(cpuLoad(0.5, 0.004, 100), { ready: 1, busy: 1 });
  // No more than a heartbeat can carry.
  assert.deepEqual(cpuLoad(0, 4, 0xffff_ffff), { ready: 0xffff_fffe, busy: 1 });
});

test("cpu: the agent's own v1 cgroup: a half-CPU quota, used from cpuacct.usage", async () => {
  const v1 = tree("cgroup-v1");
  const clock = new FakeClock();
  const source = await createSource("cpu", {
    names: FLAG_NAMES,
    capacity: 100,
    fsRoot: v1.root,
    clock,
  });
  assert.equal(
    source.description,
    "cpu of /sys/fs/cgroup/cpu/heartbeat-test (quota 0.5 CPU, cgroup v1)",
  );
  assert.equal(source.defaultSmoothSeconds, 3);
  const usage = "sys/fs/cgroup/cpuacct/heartbeat-test/cpuacct.usage";
  const use = (seconds: number) =>
    v1.write(usage, `${Number(v1.read(usage)) + Math.round(seconds * 1e9)}\n`);
  // Half a CPU at 100 a CPU: 35 in all (100 × 0.5^1.5); half of it used.
  use(0.25);
  clock.advance(1000);
  assert.deepEqual(await source.read(never), { ready: 31, busy: 4 });
  use(0.5);
  clock.advance(1000);
  assert.deepEqual(await source.read(never), { ready: 26, busy: 9 });
  // The quota halved at runtime counts at the next reading: 13 in all, 80 % used.
  v1.write("sys/fs/cgroup/cpu/heartbeat-test/cpu.cfs_quota_us", "25000\n");
  use(0.2);
  clock.advance(1000);
  assert.deepEqual(await source.read(never), { ready: 10, busy: 3 });
});

test("cpu: the first reading covers at least MIN_SAMPLE_MS since startup", async () => {
  const v1 = tree("cgroup-v1");
  const clock = new FakeClock();
  const source = await createSource("cpu", {
    names: FLAG_NAMES,
    capacity: 20,
    fsRoot: v1.root,
    clock,
  });
  const usage = "sys/fs/cgroup/cpuacct/heartbeat-test/cpuacct.usage";
  v1.write(usage, `${Number(v1.read(usage)) + MIN_SAMPLE_MS * 1e6 * 0.5 * 0.4}\n`);
  // 40 % of half a CPU at 20 a CPU.
  assert.deepEqual(await source.read(never), { ready: 6, busy: 1 });
  assert.equal(clock.now(), MIN_SAMPLE_MS);
});

test("cpu: a named v2 cgroup: the tightest quota of it and its parents, at most its cpuset", async () => {
  const v2 = tree("cgroup-v2");
  const clock = new FakeClock();
  const dir = "/sys/fs/cgroup/system.slice/app.service";
  const source = await createSource(`cpu:${dir}`, {
    names: FLAG_NAMES,
    capacity: 100,
    fsRoot: v2.root,
    clock,
  });
  assert.equal(source.description, `cpu of ${dir} (quota 0.5 CPU, cgroup v2)`);
  const usage = `${dir}/cpu.stat`;
  const use = (seconds: number) =>
    v2.write(
      usage,
      v2.read(usage).replace(
        /usage_usec (\d+)/,
        (_, old) => `usage_usec ${Number(old) + seconds * 1e6}`,
      ),
    );
  use(0.1);
  clock.advance(1000);
  assert.deepEqual(await source.read(never), { ready: 33, busy: 2 });
  v2.write("/sys/fs/cgroup/system.slice/cpu.max", "25000 100000\n");
  use(0.1);
  clock.advance(1000);
  assert.deepEqual(await source.read(never), { ready: 12, busy: 1 });
  // 4 CPUs of quota on a cpuset of one CPU: one CPU is what it may use.
  v2.write("/sys/fs/cgroup/system.slice/cpu.max", "max 100000\n");
  v2.write(`${dir}/cpu.max`, "400000 100000\n");
  v2.write(`${dir}/cpuset.cpus.effective`, "1\n");
  use(0.5);
  clock.advance(1000);
  assert.deepEqual(await source.read(never), { ready: 88, busy: 12 });
});

test("cpu: no quota: how busy the cgroup's CPUs were, from /proc/stat", async () => {
  const v1 = tree("cgroup-v1");
  const clock = new FakeClock();
  const source = await createSource("cpu:/sys/fs/cgroup/cpu", {
    names: FLAG_NAMES,
    capacity: 100,
    fsRoot: v1.root,
    clock,
  });
  assert.equal(
    source.description,
    "cpu of /sys/fs/cgroup/cpu (no quota: the busy share of CPUs 0-1 from /proc/stat, cgroup v1)",
  );
  const stat = v1.read("proc/stat");
  const tick = (cpu0: [number, number], cpu1: [number, number]) =>
    v1.write(
      "proc/stat",
      stat.replace(/^cpu0 (\d+) 0 (\d+) (\d+)/m, (_, user, system, idle) =>
        `cpu0 ${Number(user) + cpu0[0]} 0 ${system} ${Number(idle) + cpu0[1]}`).replace(
          /^cpu1 (\d+) 0 (\d+) (\d+)/m,
          (_, user, system, idle) =>
            `cpu1 ${Number(user) + cpu1[0]} 0 ${system} ${Number(idle) + cpu1[1]}`,
        ),
    );
  // Two CPUs, a quarter busy.
  tick([50, 50], [0, 100]);
  clock.advance(1000);
  assert.deepEqual(await source.read(never), { ready: 265, busy: 18 });
  // Its cpuset narrowed to CPU 1, which stayed idle.
  v1.write("sys/fs/cgroup/cpuset/cpuset.cpus", "1\n");
  tick([100, 100], [0, 200]);
  clock.advance(1000);
  assert.deepEqual(await source.read(never), { ready: 99, busy: 1 });
});

test("cpu: mistakes are startup errors that say what to fix", async () => {
  const v1 = tree("cgroup-v1");
  await assert.rejects(
    createSource("cpu", { names: FLAG_NAMES, fsRoot: v1.root }),
    /needs --capacity N/,
  );
  await assert.rejects(
    createSource("cpu:/sys/fs/cgroup/cpu/nginx.service", {
      names: FLAG_NAMES,
      capacity: 1,
      fsRoot: v1.root,
    }),
    /cpu:\/sys\/fs\/cgroup\/cpu\/nginx.service: no such cgroup directory/,
  );
  await assert.rejects(
    createSource("cpu:sys/fs/cgroup/cpu", { names: FLAG_NAMES, capacity: 1, fsRoot: v1.root }),
    /name the cgroup by its directory/,
  );
  rmSync(join(v1.root, "sys/fs/cgroup/cpuacct/heartbeat-test"), { recursive: true });
  await assert.rejects(
    createSource("cpu", { names: FLAG_NAMES, capacity: 1, fsRoot: v1.root }),
    /no cpuacct.usage \(no \/sys\/fs\/cgroup\/cpuacct\/heartbeat-test\/cpuacct.usage\): cgroup v1 counts CPU use in the cpuacct hierarchy/,
  );
  v1.write(
    "proc/self/mountinfo",
    v1.read("proc/self/mountinfo").split("\n").filter((line) => !line.includes("cpuacct")).join(
      "\n",
    ),
  );
  await assert.rejects(
    createSource("cpu", { names: FLAG_NAMES, capacity: 1, fsRoot: v1.root }),
    /no cpuacct hierarchy is mounted/,
  );
  rmSync(join(v1.root, "proc/self/mountinfo"));
  await assert.rejects(
    createSource("cpu", { names: FLAG_NAMES, capacity: 1, fsRoot: v1.root }),
    /Linux only/,
  );
});

test("cpu: --help lists it, from the registry", () => {
  assert.match(usage("agent"), /cpu: the CPUs its cgroup may use \(quota, cpuset\)/);
});

/** The share of its CPU a cpu reading says was used: busy is FEEDBACK × that share of the size. */
function used({ ready, busy }: Load): number {
  return busy / ((ready + busy) * FEEDBACK);
}

/** Reads `source` every second until `check` holds for a reading, for at most `seconds`. */
async function readUntil(
  source: Source,
  check: (load: Load) => boolean,
  seconds: number,
  what: string,
): Promise<string[]> {
  const seen: string[] = [];
  for (let i = 0; i < seconds; i++) {
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const load = await source.read(never);
    seen.push(`${load.ready}/${load.busy}`);
    if (check(load)) return seen;
  }
  throw new Error(`no ${what} within ${seconds} s: ready/busy was ${seen.join(", ")}`);
}

// The real cgroups below: idle is under 30 % of the half CPU used, busy over 80 %. At 1,000 a CPU
// (354 in all for half a CPU) the readings tell those apart to the percent.
test("cpu, for real: a v1 cgroup limited to half a CPU, idle, busy, idle again", {
  skip: skipUnlessCgroupV1(),
  timeout: 60_000,
}, async () => {
  const cgroup = new V1Cgroup(0.5);
  try {
    const source = await createSource(`cpu:${cgroup.cpu}`, { names: FLAG_NAMES, capacity: 1000 });
    assert.equal(source.description, `cpu of ${cgroup.cpu} (quota 0.5 CPU, cgroup v1)`);
    await readUntil(source, (load) => used(load) <= 0.3, 1, "idle reading");
    // One loop is a quarter of this 2-core host, but all of the half CPU it may use.
    cgroup.busy(1, 30);
    await readUntil(source, (load) => used(load) >= 0.8, 15, "busy reading");
    await cgroup.idle();
    await readUntil(source, (load) => used(load) <= 0.3, 15, "idle reading after the loop");
  } finally {
    await cgroup.remove();
  }
});

test("cpu, for real: the agent on a half-CPU v1 cgroup, --dry-run, busy then idle", {
  skip: skipUnlessCgroupV1(),
  timeout: 90_000,
}, async () => {
  const cgroup = new V1Cgroup(0.5);
  // Prints instead of sending; in a network namespace of its own all the same.
  const agent = spawn("unshare", [
    "--net",
    ...agentCommand(currentRuntime(), [
      ...["-a", "239.0.0.1:27999", "--dry-run", "-v"],
      ...["--source", `cpu:${cgroup.cpu}`, "--capacity", "1000"],
    ]),
  ], { cwd: REPO, stdio: ["ignore", "pipe", "pipe"] });
  const output = collect(agent);
  const shares = () =>
    [...output().stdout.matchAll(/ready=(\d+)&busy=(\d+)/g)].map((match) =>
      used({ ready: Number(match[1]), busy: Number(match[2]) })
    );
  try {
    await waitFor(() => shares().length >= 1, 30_000, "a first heartbeat");
    assert.match(output().stderr, /sending cpu of .* \(quota 0\.5 CPU, cgroup v1\)/);
    assert.ok(shares()[0] <= 0.3, `idle: ${shares()}`);
    const before = shares().length;
    cgroup.busy(1, 40);
    await waitFor(() => shares().slice(before).some((share) => share >= 0.8), 15_000, "busy");
    await cgroup.idle();
    const busyUntil = shares().length;
    await waitFor(() => shares().slice(busyUntil).some((share) => share <= 0.3), 15_000, "idle");
  } finally {
    await stop(agent);
    await cgroup.remove();
  }
});

test("cpu, for real: a cgroup v2 mounted for the test (no cpu controller here: no quota)", {
  skip: skipUnlessCgroupV1(),
}, async (context) => {
  const mount = V2Mount.create();
  if (typeof mount === "string") return context.skip(mount);
  try {
    const source = await createSource(`cpu:${mount.child}`, { names: FLAG_NAMES, capacity: 100 });
    // This kernel binds the cpu controller to v1, so v2 cgroups have no cpu.max.
    assert.match(
      source.description,
      /no quota: the busy share of CPUs [\d,-]+ from \/proc\/stat, cgroup v2/,
    );
    // 100 × CPUs^1.5, the CPUs online (a cpu line each in /proc/stat).
    const online = readFileSync("/proc/stat", "utf8").match(/^cpu\d+ /gm)!.length;
    const { ready, busy } = await source.read(never);
    assert.equal(ready + busy, Math.round(100 * online ** SIZE_EXPONENT));
  } finally {
    await mount.remove();
  }
});

test("cpu: a quota larger than its cpuset: the startup line says which one limits", async () => {
  const v2 = tree("cgroup-v2");
  const dir = "/sys/fs/cgroup/system.slice/app.service";
  v2.write(`${dir}/cpu.max`, "400000 100000\n");
  const source = await createSource("cpu", { names: FLAG_NAMES, capacity: 100, fsRoot: v2.root });
  assert.equal(
    source.description,
    `cpu of ${dir} (quota 4 CPUs but 2 CPUs to run on, cgroup v2)`,
  );
});
