/** src/sources/cgroup.ts */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import {
  type CgroupMount,
  formatCpuList,
  namedCgroup,
  ownCgroup,
  ownV2Cgroup,
  parseCfsQuota,
  parseCpuacctUsage,
  parseCpuList,
  parseCpuMax,
  parseCpuStatUsage,
  parseMountinfo,
  parsePressure,
  parseProcCgroup,
  parseProcStat,
} from "../../src/sources/cgroup.ts";

const fixture = (path: string) =>
  readFileSync(new URL(`../fixtures/${path}`, import.meta.url), "utf8");

test("cgroup: mountinfo of a cgroup v1 host (cpu and cpuacct apart, a v2 hierarchy beside)", () => {
  const mounts = parseMountinfo(fixture("cgroup-v1/proc/self/mountinfo"));
  assert.deepEqual(mounts.find((mount) => mount.controllers.includes("cpu")), {
    version: 1,
    root: "/",
    mountPoint: "/sys/fs/cgroup/cpu",
    controllers: ["cpu"],
  });
  assert.equal(
    mounts.find((mount) => mount.controllers.includes("cpuacct"))?.mountPoint,
    "/sys/fs/cgroup/cpuacct",
  );
  assert.deepEqual(mounts.find((mount) => mount.version === 2), {
    version: 2,
    root: "/",
    mountPoint: "/sys/fs/cgroup/unified",
    controllers: [],
  });
  assert.equal(mounts.length, 10); // the tmpfs at /sys/fs/cgroup and other mounts left out
  assert.throws(() => parseMountinfo("garbage\n"), /not a mountinfo line/);
});

test("cgroup: mountinfo's octal escapes in paths", () => {
  const [mount] = parseMountinfo(
    "41 31 0:38 /a\\040b /mnt/my\\040cgroups rw,relatime - cgroup2 cgroup2 rw,nsdelegate\n",
  );
  assert.equal(mount.root, "/a b");
  assert.equal(mount.mountPoint, "/mnt/my cgroups");
});

test("cgroup: /proc/self/cgroup, v1 lines per hierarchy and v2's 0:: line", () => {
  const lines = parseProcCgroup(fixture("cgroup-v1/proc/self/cgroup"));
  assert.deepEqual(lines.find((line) => line.controllers.includes("cpu")), {
    hierarchy: 1,
    controllers: ["cpu"],
    path: "/heartbeat-test",
  });
  assert.deepEqual(lines.at(-1), { hierarchy: 0, controllers: [], path: "/heartbeat-test" });
  assert.deepEqual(parseProcCgroup("0::/system.slice/app.service\n"), [
    { hierarchy: 0, controllers: [], path: "/system.slice/app.service" },
  ]);
  assert.throws(() => parseProcCgroup("cpu:/x\n"), /not a \/proc\/self\/cgroup line/);
});

test("cgroup: the agent's own cgroup: v1 where the cpu controller is, else v2", () => {
  const v1 = ownCgroup(
    parseMountinfo(fixture("cgroup-v1/proc/self/mountinfo")),
    parseProcCgroup(fixture("cgroup-v1/proc/self/cgroup")),
  );
  assert.deepEqual(v1, {
    version: 1,
    name: "/heartbeat-test",
    cpu: "/sys/fs/cgroup/cpu/heartbeat-test",
    cpuacct: "/sys/fs/cgroup/cpuacct/heartbeat-test",
    cpuset: "/sys/fs/cgroup/cpuset",
    top: "/sys/fs/cgroup/cpu",
  });
  // Pressure looks in the v2 hierarchy, which a hybrid system has too.
  assert.equal(
    ownV2Cgroup(
      parseMountinfo(fixture("cgroup-v1/proc/self/mountinfo")),
      parseProcCgroup(fixture("cgroup-v1/proc/self/cgroup")),
    )?.cpu,
    "/sys/fs/cgroup/unified/heartbeat-test",
  );
  const v2 = ownCgroup(
    parseMountinfo(fixture("cgroup-v2/proc/self/mountinfo")),
    parseProcCgroup(fixture("cgroup-v2/proc/self/cgroup")),
  );
  assert.deepEqual(v2, {
    version: 2,
    name: "/system.slice/app.service",
    cpu: "/sys/fs/cgroup/system.slice/app.service",
    cpuset: "/sys/fs/cgroup/system.slice/app.service",
    top: "/sys/fs/cgroup",
  });
  assert.equal(ownCgroup([], parseProcCgroup("0::/\n")), undefined);
});

test("cgroup: a container that sees only its own subtree, mounted at /sys/fs/cgroup", () => {
  const mounts: CgroupMount[] = [
    { version: 2, root: "/kubepods/pod1/c1", mountPoint: "/sys/fs/cgroup", controllers: [] },
  ];
  assert.equal(ownCgroup(mounts, parseProcCgroup("0::/kubepods/pod1/c1\n"))?.cpu, "/sys/fs/cgroup");
  // A cgroup outside what the mount shows has no directory here.
  assert.equal(ownCgroup(mounts, parseProcCgroup("0::/elsewhere\n"))?.cpu, undefined);
});

test("cgroup: a named v1 directory maps to the same cgroup in cpuacct and cpuset", () => {
  const apart = parseMountinfo(fixture("cgroup-v1/proc/self/mountinfo"));
  assert.deepEqual(namedCgroup(apart, "/sys/fs/cgroup/cpu/system.slice/nginx.service"), {
    version: 1,
    name: "/sys/fs/cgroup/cpu/system.slice/nginx.service",
    cpu: "/sys/fs/cgroup/cpu/system.slice/nginx.service",
    cpuacct: "/sys/fs/cgroup/cpuacct/system.slice/nginx.service",
    cpuset: "/sys/fs/cgroup/cpuset/system.slice/nginx.service",
    top: "/sys/fs/cgroup/cpu",
  });
  // Debian's and systemd's usual layout: cpu and cpuacct mounted together.
  const together: CgroupMount[] = [
    {
      version: 1,
      root: "/",
      mountPoint: "/sys/fs/cgroup/cpu,cpuacct",
      controllers: ["cpu", "cpuacct"],
    },
  ];
  const comounted = namedCgroup(together, "/sys/fs/cgroup/cpu,cpuacct/system.slice/x.service");
  assert.equal(comounted?.cpu, "/sys/fs/cgroup/cpu,cpuacct/system.slice/x.service");
  assert.equal(comounted?.cpuacct, comounted?.cpu);
  assert.equal(comounted?.cpuset, undefined);
  assert.equal(namedCgroup(together, "/tmp"), undefined);
  assert.equal(namedCgroup(together, "/sys/fs/cgroup/cpu,cpuacct-other"), undefined);
});

test("cgroup: quotas, v2 cpu.max and v1 cfs files, in CPUs", () => {
  assert.equal(
    parseCpuMax(fixture("cgroup-v2/sys/fs/cgroup/system.slice/app.service/cpu.max")),
    0.5,
  );
  assert.equal(parseCpuMax(fixture("cgroup-v2/sys/fs/cgroup/system.slice/cpu.max")), undefined);
  assert.equal(parseCpuMax("150000 100000\n"), 1.5);
  assert.throws(() => parseCpuMax("max\n"), /not a cpu.max/);
  assert.throws(() => parseCpuMax("5 0\n"), /not a cpu.max/);
  const v1 = "cgroup-v1/sys/fs/cgroup/cpu";
  assert.equal(
    parseCfsQuota(
      fixture(`${v1}/heartbeat-test/cpu.cfs_quota_us`),
      fixture(`${v1}/heartbeat-test/cpu.cfs_period_us`),
    ),
    0.5,
  );
  assert.equal(
    parseCfsQuota(fixture(`${v1}/cpu.cfs_quota_us`), fixture(`${v1}/cpu.cfs_period_us`)),
    undefined,
  );
  assert.throws(() => parseCfsQuota("x", "100000"), /cpu.cfs_quota_us: not a number/);
});

test("cgroup: CPU time used, v2 cpu.stat and v1 cpuacct.usage, in seconds", () => {
  assert.equal(
    parseCpuStatUsage(fixture("cgroup-v2/sys/fs/cgroup/system.slice/app.service/cpu.stat")),
    0.284393,
  );
  assert.equal(
    parseCpuacctUsage(fixture("cgroup-v1/sys/fs/cgroup/cpuacct/heartbeat-test/cpuacct.usage")),
    0.284632206,
  );
  assert.throws(() => parseCpuStatUsage("user_usec 5\n"), /no usage_usec/);
  assert.throws(() => parseCpuStatUsage("usage_usec -\n"), /not a KEY VALUE line/);
});

test("cgroup: CPU lists", () => {
  assert.deepEqual(parseCpuList(fixture("cgroup-v1/sys/fs/cgroup/cpuset/cpuset.cpus")), [0, 1]);
  assert.deepEqual(parseCpuList("0-2,5,8-9\n"), [0, 1, 2, 5, 8, 9]);
  assert.deepEqual(parseCpuList("\n"), []);
  assert.throws(() => parseCpuList("3-1"), /not a CPU range/);
  assert.throws(() => parseCpuList("a"), /not a CPU list/);
  assert.equal(formatCpuList([0, 1, 2, 5, 8, 9]), "0-2,5,8-9");
});

test("cgroup: /proc/stat's per-CPU lines; steal counts as busy, iowait as idle", () => {
  const cpus = parseProcStat(fixture("cgroup-v1/proc/stat"));
  // cpu0 18964 0 8497 20678 112 0 285 1137 0 0
  assert.deepEqual(cpus.get(0), { busy: 18964 + 8497 + 285 + 1137, total: 49673 });
  assert.deepEqual([...cpus.keys()], [0, 1]);
  assert.throws(() => parseProcStat("intr 5\n"), /no cpuN lines/);
});

test("cgroup: PSI files, the machine's and a cgroup's", () => {
  assert.deepEqual(parsePressure(fixture("cgroup-v1/proc/pressure/cpu")), {
    avg10: 97.97,
    avg60: 81.29,
    avg300: 40.76,
  });
  assert.equal(
    parsePressure(fixture("cgroup-v2/sys/fs/cgroup/system.slice/app.service/memory.pressure"))
      .avg10,
    0,
  );
  assert.throws(() => parsePressure("full avg10=1.00 avg60=0.00 avg300=0.00 total=1\n"), /not a/);
  assert.throws(
    () => parsePressure("some avg10=101.00 avg60=0.00 avg300=0.00 total=1\n"),
    /above 100/,
  );
});
