/**
 * Real cgroups for the cpu and pressure sources' tests, made by the test and removed by it: a
 * child of the v1 cpu and cpuacct hierarchies with a CPU quota, optionally a child of a v2
 * hierarchy too, and busy loops run inside them, bounded in time.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmdirSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseMountinfo, v1Mount } from "../../src/sources/cgroup.ts";
import { requiredOrSkipped } from "./lab.ts";

let made = 0;

/** The v1 cpu and cpuacct hierarchies' mount points, if this machine has them. */
function v1Hierarchies(): { cpu: string; cpuacct: string } | undefined {
  const mounts = parseMountinfo(readFileSync("/proc/self/mountinfo", "utf8"));
  const [cpu, cpuacct] = [v1Mount(mounts, "cpu"), v1Mount(mounts, "cpuacct")];
  return cpu && cpuacct ? { cpu: cpu.mountPoint, cpuacct: cpuacct.mountPoint } : undefined;
}

/** The skip option for a test that needs writable cgroup v1 cpu and cpuacct hierarchies. */
export function skipUnlessCgroupV1(): string | false {
  if (process.getuid?.() !== 0) return requiredOrSkipped("making cgroups needs root");
  if (!v1Hierarchies()) {
    return requiredOrSkipped("no cgroup v1 cpu and cpuacct hierarchies are mounted here");
  }
  return false;
}

/** A cgroup in the v1 cpu and cpuacct hierarchies (the same directory where co-mounted). */
export class V1Cgroup {
  readonly name = `heartbeat-test-${process.pid}-${made++}`;
  /** Its directory in the cpu hierarchy: what `--source cpu:DIR` names. */
  readonly cpu: string;
  readonly #directories: string[];
  readonly #loops = new Set<ChildProcess>();

  /** `quota` in CPUs. */
  constructor(quota: number) {
    const hierarchies = v1Hierarchies()!;
    this.cpu = join(hierarchies.cpu, this.name);
    this.#directories = [...new Set([this.cpu, join(hierarchies.cpuacct, this.name)])];
    for (const directory of this.#directories) mkdirSync(directory);
    writeFileSync(join(this.cpu, "cpu.cfs_quota_us"), `${Math.round(quota * 100000)}`);
    // The most weight there is, so that its loops get their quota on a machine other work
    // keeps busy: the quota, not the neighbours, is what these tests measure.
    writeFileSync(join(this.cpu, "cpu.shares"), "262144");
  }

  /**
   * Starts `count` busy loops inside it (and inside each of `alsoIn`, directories of other
   * hierarchies), each ending by itself after `seconds`.
   */
  busy(count: number, seconds: number, alsoIn: string[] = []): void {
    const procs = [...this.#directories, ...alsoIn].map((directory) =>
      join(directory, "cgroup.procs")
    );
    for (let i = 0; i < count; i++) {
      const loop = spawn("sh", [
        "-c",
        // Joins the cgroups before it spins; one process (no `timeout` child left behind when
        // it is killed), which looks at the time between spins and stops by itself.
        `for f in ${
          procs.join(" ")
        }; do echo $$ > "$f"; done; end=$(($(date +%s) + ${seconds})); ` +
        `while [ "$(date +%s)" -lt "$end" ]; do i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; done`,
      ], { stdio: "ignore" });
      this.#loops.add(loop);
      loop.once("exit", () => this.#loops.delete(loop));
    }
  }

  /** Stops the loops it started. */
  async idle(): Promise<void> {
    await Promise.all([...this.#loops].map((loop) =>
      new Promise((resolve) => {
        loop.once("exit", resolve);
        loop.kill("SIGKILL");
      })
    ));
  }

  async remove(): Promise<void> {
    await this.idle();
    for (const directory of this.#directories) await removeCgroup(directory);
  }
}

/**
 * A cgroup v2 hierarchy mounted for the test at a fresh directory (the kernel shares one v2
 * hierarchy among all its mounts), with a child cgroup in it; create() gives the reason instead
 * when the kernel refuses.
 */
export class V2Mount {
  readonly mountPoint = mkdtempSync(join(tmpdir(), "heartbeat-cgroup2-"));
  readonly child = join(this.mountPoint, `heartbeat-test-${process.pid}-${made++}`);

  static create(): V2Mount | string {
    const mount = new V2Mount();
    try {
      execFileSync("mount", ["-t", "cgroup2", "none", mount.mountPoint], { stdio: "pipe" });
    } catch (error) {
      rmdirSync(mount.mountPoint);
      return `the kernel does not mount cgroup2 here: ${(error as Error).message.split("\n")[0]}`;
    }
    mkdirSync(mount.child);
    return mount;
  }

  async remove(): Promise<void> {
    await removeCgroup(this.child);
    execFileSync("umount", [this.mountPoint]);
    rmdirSync(this.mountPoint);
  }
}

/**
 * Removes a cgroup once its last process is gone: a loop killed while it ran `date` leaves that
 * child for a moment (rmdir says EBUSY until then).
 */
async function removeCgroup(directory: string): Promise<void> {
  for (let attempt = 0;; attempt++) {
    try {
      if (existsSync(directory)) rmdirSync(directory);
      return;
    } catch (error) {
      if ((error as { code?: string }).code !== "EBUSY" || attempt >= 50) throw error;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}
