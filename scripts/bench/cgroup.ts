/**
 * A cgroup of the benchmarks' own: the CPU time of every process in it (those that ended too)
 * and, for the servers of the balance benchmark, a CPU quota. cgroup v1 (cpuacct for the time,
 * cpu for the quota, which may be one hierarchy) where it is mounted, else cgroup v2 (cpu.stat,
 * cpu.max).
 */
import {
  existsSync,
  mkdirSync,
  readFileSync,
  realpathSync,
  rmdirSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";

const ROOT = "/sys/fs/cgroup";
const V1 = existsSync(join(ROOT, "cpuacct", "cpuacct.usage"));
/** The period of the quota, in µs: CFS's default. */
const PERIOD_US = 100_000;

/** Weights 64 times the default's (v1 cpu.shares 1024, v2 cpu.weight 100, at most 10000). */
const HIGH_WEIGHT_V1 = 65536;
const HIGH_WEIGHT_V2 = 6400;

let made = 0;
/** Removed at exit, after the lab has killed what ran in them (its exit handler comes first). */
const open = new Set<Cgroup>();
process.on("exit", () =>
  open.forEach((group) => {
    try {
      group.remove();
    } catch { /* a process the lab could not kill holds it: nothing more to do at exit */ }
  }));

/** Why CPU quotas cannot be set here, or undefined when they can. */
export function quotaUnavailable(): string | undefined {
  if (V1) {
    return existsSync(join(ROOT, "cpu", "cpu.cfs_quota_us"))
      ? undefined
      : `no cgroup v1 cpu controller at ${ROOT}/cpu`;
  }
  const controllers = join(ROOT, "cgroup.controllers");
  return existsSync(controllers) && /\bcpu\b/.test(readFileSync(controllers, "utf8"))
    ? undefined
    : `neither cgroup v1 cpuacct nor a cgroup v2 cpu controller at ${ROOT}`;
}

export class Cgroup {
  /** Where the CPU time is counted. */
  readonly accounting: string;
  /** Where the quota is set (the same folder but on cgroup v1 with separate hierarchies). */
  readonly quota: string;
  /** Each folder a process joins: one per hierarchy. */
  readonly folders: string[];

  constructor(name = `heartbeat-bench-${process.pid}-${made++}`) {
    this.accounting = join(V1 ? join(ROOT, "cpuacct") : ROOT, name);
    this.quota = V1 && existsSync(join(ROOT, "cpu")) ? join(ROOT, "cpu", name) : this.accounting;
    // cgroup v1 may mount cpu and cpuacct as one hierarchy, each name a link to it.
    const hierarchies = new Set([this.accounting, this.quota].map((folder) => {
      mkdirSync(folder, { recursive: true });
      return realpathSync(folder);
    }));
    this.folders = [...hierarchies];
    open.add(this);
  }

  /** Moves process `pid` into the group; what it starts later is born there. */
  enter(pid: number): void {
    for (const folder of this.folders) writeFileSync(join(folder, "cgroup.procs"), String(pid));
  }

  /**
   * Limits the group to `cpus` CPUs (0.5: half of one), over CFS's 100 ms period; and gives it a
   * high weight, so that it gets all of its quota on a machine busy with other work (the quota
   * then is its capacity, not whatever else runs).
   */
  setQuota(cpus: number): void {
    const quotaUs = Math.round(cpus * PERIOD_US);
    if (V1) {
      writeFileSync(join(this.quota, "cpu.cfs_period_us"), String(PERIOD_US));
      writeFileSync(join(this.quota, "cpu.cfs_quota_us"), String(quotaUs));
      writeFileSync(join(this.quota, "cpu.shares"), String(HIGH_WEIGHT_V1));
    } else {
      writeFileSync(join(this.quota, "cpu.max"), `${quotaUs} ${PERIOD_US}`);
      writeFileSync(join(this.quota, "cpu.weight"), String(HIGH_WEIGHT_V2));
    }
  }

  /** CPU time used in the group so far, in ms. */
  usageMs(): number {
    if (V1) return Number(readFileSync(join(this.accounting, "cpuacct.usage"), "utf8")) / 1e6;
    const stat = readFileSync(join(this.accounting, "cpu.stat"), "utf8");
    return Number(/^usage_usec (\d+)/m.exec(stat)![1]) / 1e3;
  }

  /** Once its processes have exited; tries again for a while if the kernel still counts them. */
  remove(): void {
    open.delete(this);
    for (const folder of this.folders.filter(existsSync)) {
      for (let attempt = 0;; attempt++) {
        try {
          rmdirSync(folder);
          break;
        } catch (error) {
          if (attempt === 50 || (error as NodeJS.ErrnoException).code !== "EBUSY") throw error;
          Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
        }
      }
    }
  }
}
