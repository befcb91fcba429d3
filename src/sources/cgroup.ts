/**
 * Linux's cgroup and /proc files, for the cpu and pressure sources: pure parsers, which cgroup
 * directory holds what (also pure), and finding the cgroup a source watches (the one reader).
 * Every path read is under `fsRoot` (`/`; tests point it at a fixture tree).
 */
import { readFile, realpath, stat } from "node:fs/promises";
import { join, posix } from "node:path";
import { describeError } from "../errors.ts";
// Its type only: settings.ts lists the sources.
import type { SettingNames } from "../settings.ts";
import { SourceConfigError } from "./source.ts";

/** A mounted cgroup hierarchy, from /proc/self/mountinfo. */
export interface CgroupMount {
  version: 1 | 2;
  /** Where it is mounted, e.g. /sys/fs/cgroup/cpu,cpuacct. */
  mountPoint: string;
  /** The cgroup shown at the mount point: `/` unless a container sees only its own subtree. */
  root: string;
  /** cgroup v1: the controllers bound to this hierarchy (cpu, cpuacct, name=systemd, …). */
  controllers: string[];
}

/** mountinfo escapes space, tab, newline and backslash in paths as octal. */
function unescapeMountPath(text: string): string {
  return text.replace(/\\([0-7]{3})/g, (_, octal) => String.fromCharCode(parseInt(octal, 8)));
}

/** The cgroup hierarchies in a /proc/PID/mountinfo; other mounts are left out. */
export function parseMountinfo(text: string): CgroupMount[] {
  const mounts: CgroupMount[] = [];
  for (const line of text.split("\n")) {
    if (line.trim() === "") continue;
    // ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTIONS
    const [before, after] = line.split(" - ");
    const fields = before?.split(" ") ?? [];
    const [fsType, , superOptions = ""] = after?.split(" ") ?? [];
    if (fields.length < 6 || fsType === undefined) {
      throw new Error(`not a mountinfo line: ${JSON.stringify(line.slice(0, 80))}`);
    }
    if (fsType !== "cgroup" && fsType !== "cgroup2") continue;
    mounts.push({
      version: fsType === "cgroup2" ? 2 : 1,
      root: unescapeMountPath(fields[3]),
      mountPoint: unescapeMountPath(fields[4]),
      controllers: fsType === "cgroup2"
        ? []
        : superOptions.split(",").filter((option) => option !== "rw" && option !== "ro"),
    });
  }
  return mounts;
}

/** A line of /proc/PID/cgroup: v1 `ID:CONTROLLERS:PATH`, v2 `0::PATH`. */
export interface CgroupMembership {
  hierarchy: number;
  controllers: string[];
  path: string;
}

export function parseProcCgroup(text: string): CgroupMembership[] {
  return text.split("\n").filter((line) => line.trim() !== "").map((line) => {
    const match = /^(\d+):([^:]*):(\/.*)$/.exec(line);
    if (!match) throw new Error(`not a /proc/self/cgroup line: ${JSON.stringify(line)}`);
    return {
      hierarchy: Number(match[1]),
      controllers: match[2] === "" ? [] : match[2].split(","),
      path: match[3],
    };
  });
}

/** The directory of cgroup `path` in `mount`, or undefined when the mount does not show it. */
function cgroupDirectory(mount: CgroupMount, path: string): string | undefined {
  const relative = posix.relative(mount.root, path);
  if (relative.startsWith("..") || posix.isAbsolute(relative)) return undefined;
  return posix.join(mount.mountPoint, relative);
}

/** The v1 hierarchy `controller` is bound to, if one is mounted. */
export function v1Mount(mounts: CgroupMount[], controller: string): CgroupMount | undefined {
  return mounts.find((mount) => mount.version === 1 && mount.controllers.includes(controller));
}

/** The mount a directory is in: the longest mount point it lies under. */
function mountOf(mounts: CgroupMount[], directory: string): CgroupMount | undefined {
  let found: CgroupMount | undefined;
  for (const mount of mounts) {
    const inside = directory === mount.mountPoint ||
      directory.startsWith(
        mount.mountPoint.endsWith("/") ? mount.mountPoint : `${mount.mountPoint}/`,
      );
    if (inside && (!found || mount.mountPoint.length > found.mountPoint.length)) found = mount;
  }
  return found;
}

/** A whole number in a cgroup file; throws on anything else. */
function count(text: string, what: string): number {
  const trimmed = text.trim();
  if (!/^-?\d+$/.test(trimmed)) {
    throw new Error(`${what}: not a number: ${JSON.stringify(trimmed)}`);
  }
  return Number(trimmed);
}

/** cgroup v2 `cpu.max` (`QUOTA PERIOD` or `max PERIOD`) in CPUs; undefined: no quota. */
export function parseCpuMax(text: string): number | undefined {
  const match = /^(max|\d+)\s+(\d+)$/.exec(text.trim());
  if (!match || Number(match[2]) === 0) throw new Error(`not a cpu.max: ${JSON.stringify(text)}`);
  return match[1] === "max" ? undefined : Number(match[1]) / Number(match[2]);
}

/** cgroup v1 `cpu.cfs_quota_us` (-1: none) over `cpu.cfs_period_us`, in CPUs. */
export function parseCfsQuota(quotaText: string, periodText: string): number | undefined {
  const quota = count(quotaText, "cpu.cfs_quota_us");
  const period = count(periodText, "cpu.cfs_period_us");
  if (period <= 0) throw new Error(`cpu.cfs_period_us: ${period} is not a period`);
  return quota < 0 ? undefined : quota / period;
}

/** A flat-keyed cgroup file (`cpu.stat`): `KEY VALUE` lines. */
function parseFlatKeyed(text: string): Map<string, number> {
  const values = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (line.trim() === "") continue;
    const match = /^(\S+)\s+(\d+)$/.exec(line.trim());
    if (!match) throw new Error(`not a KEY VALUE line: ${JSON.stringify(line)}`);
    values.set(match[1], Number(match[2]));
  }
  return values;
}

/** cgroup v2 `cpu.stat`'s `usage_usec`, in seconds of CPU time. */
export function parseCpuStatUsage(text: string): number {
  const usage = parseFlatKeyed(text).get("usage_usec");
  if (usage === undefined) throw new Error("cpu.stat has no usage_usec");
  return usage / 1e6;
}

/** cgroup v1 `cpuacct.usage` (nanoseconds), in seconds of CPU time. */
export function parseCpuacctUsage(text: string): number {
  return count(text, "cpuacct.usage") / 1e9;
}

/** A CPU list as cpuset and /sys/devices/system/cpu/online write it: `0-3,6,8-9`. */
export function parseCpuList(text: string): number[] {
  const cpus: number[] = [];
  for (const part of text.trim().split(",")) {
    if (part === "") continue;
    const match = /^(\d+)(?:-(\d+))?$/.exec(part);
    if (!match) throw new Error(`not a CPU list: ${JSON.stringify(text.trim())}`);
    const [first, last] = [Number(match[1]), Number(match[2] ?? match[1])];
    if (last < first || last - first > 65536) throw new Error(`not a CPU range: ${part}`);
    for (let cpu = first; cpu <= last; cpu++) cpus.push(cpu);
  }
  return cpus;
}

/** `0,1,2,5` as `0-2,5`, for the startup line. */
export function formatCpuList(cpus: number[]): string {
  const ranges: string[] = [];
  for (let i = 0; i < cpus.length; i++) {
    let j = i;
    while (j + 1 < cpus.length && cpus[j + 1] === cpus[j] + 1) j++;
    ranges.push(j === i ? `${cpus[i]}` : `${cpus[i]}-${cpus[j]}`);
    i = j;
  }
  return ranges.join(",");
}

/** One CPU's time in /proc/stat, in clock ticks: all of it, and the part not idle. */
export interface CpuTicks {
  busy: number;
  total: number;
}

/**
 * The per-CPU lines of /proc/stat (`cpuN user nice system idle iowait irq softirq steal …`),
 * by CPU number; only online CPUs have one. Idle and iowait are free time; steal is not (the
 * hypervisor gave the CPU to someone else). guest and guest_nice are already in user and nice.
 */
export function parseProcStat(text: string): Map<number, CpuTicks> {
  const cpus = new Map<number, CpuTicks>();
  for (const line of text.split("\n")) {
    const match = /^cpu(\d+)\s+(.*)$/.exec(line);
    if (!match) continue;
    const ticks = match[2].trim().split(/\s+/).map((field) => count(field, "/proc/stat"));
    if (ticks.length < 4) throw new Error(`not a /proc/stat cpu line: ${JSON.stringify(line)}`);
    const [user, nice, system, idle, iowait = 0, irq = 0, softirq = 0, steal = 0] = ticks;
    const busy = user + nice + system + irq + softirq + steal;
    cpus.set(Number(match[1]), { busy, total: busy + idle + iowait });
  }
  if (cpus.size === 0) throw new Error("/proc/stat has no cpuN lines");
  return cpus;
}

/** A PSI line's averages: the share of time (percent) some (or all) tasks stalled. */
export interface PressureAverages {
  avg10: number;
  avg60: number;
  avg300: number;
}

/** A PSI file (/proc/pressure/cpu, a v2 cgroup's cpu.pressure): its `some` line. */
export function parsePressure(text: string): PressureAverages {
  const match = /^some avg10=(\d+\.\d+) avg60=(\d+\.\d+) avg300=(\d+\.\d+) total=\d+$/m.exec(text);
  if (!match) throw new Error(`not a pressure file: ${JSON.stringify(text.slice(0, 80))}`);
  const [avg10, avg60, avg300] = match.slice(1).map(Number);
  if ([avg10, avg60, avg300].some((value) => value > 100)) {
    throw new Error(`pressure above 100 %: ${JSON.stringify(text.slice(0, 80))}`);
  }
  return { avg10, avg60, avg300 };
}

/** Where the files of the cgroup a source watches are, each controller's in its own hierarchy. */
export interface CgroupLocation {
  version: 1 | 2;
  /** The cgroup as the user knows it, for the startup line. */
  name: string;
  /** v2: the cgroup's directory; v1: its directory in the cpu hierarchy, if one is mounted. */
  cpu?: string;
  /** v1: its directory in the cpuacct hierarchy. */
  cpuacct?: string;
  /** v1: its directory in the cpuset hierarchy (v2: the same as cpu). */
  cpuset?: string;
  /** The mount point of the cpu (v2: the only) hierarchy: quotas are looked for up to there. */
  top?: string;
}

/**
 * The cgroup the agent itself runs in: v1 where the cpu controller is in a v1 hierarchy (the
 * `cpu` line of /proc/self/cgroup), else v2's `0::` line. Undefined when no cgroup holding the
 * cpu controller is mounted (then the whole machine is what there is).
 */
export function ownCgroup(
  mounts: CgroupMount[],
  memberships: CgroupMembership[],
): CgroupLocation | undefined {
  const cpuMount = v1Mount(mounts, "cpu");
  if (cpuMount) {
    const dirOf = (controller: string) => {
      const mount = v1Mount(mounts, controller);
      const line = memberships.find((entry) => entry.controllers.includes(controller));
      return mount && line ? cgroupDirectory(mount, line.path) : undefined;
    };
    const line = memberships.find((entry) => entry.controllers.includes("cpu"));
    return {
      version: 1,
      name: line?.path ?? "/",
      cpu: dirOf("cpu"),
      cpuacct: dirOf("cpuacct"),
      cpuset: dirOf("cpuset"),
      top: cpuMount.mountPoint,
    };
  }
  return ownV2Cgroup(mounts, memberships);
}

/**
 * The agent's cgroup in the v2 hierarchy (its `0::` line), also where cgroup v1 holds the cpu
 * controller: the v2 hierarchy of a hybrid system still counts its tasks' pressure.
 */
export function ownV2Cgroup(
  mounts: CgroupMount[],
  memberships: CgroupMembership[],
): CgroupLocation | undefined {
  const mount = mounts.find((entry) => entry.version === 2);
  const line = memberships.find((entry) => entry.hierarchy === 0 && entry.controllers.length === 0);
  if (!mount || !line) return undefined;
  const directory = cgroupDirectory(mount, line.path);
  return { version: 2, name: line.path, cpu: directory, cpuset: directory, top: mount.mountPoint };
}

/**
 * The cgroup at `directory` (a real path, symbolic links resolved). A v1 directory names a
 * cgroup by its path inside its hierarchy; the cpu, cpuacct and cpuset directories are that
 * path in each of those hierarchies (systemd and container runtimes name a cgroup alike in all
 * of them), so `/sys/fs/cgroup/cpu,cpuacct/system.slice/nginx.service` is read where cpu and
 * cpuacct are mounted together or apart. Undefined when no cgroup hierarchy holds `directory`.
 */
export function namedCgroup(mounts: CgroupMount[], directory: string): CgroupLocation | undefined {
  const mount = mountOf(mounts, directory);
  if (!mount) return undefined;
  if (mount.version === 2) {
    return {
      version: 2,
      name: directory,
      cpu: directory,
      cpuset: directory,
      top: mount.mountPoint,
    };
  }
  const path = posix.join(mount.root, posix.relative(mount.mountPoint, directory) || ".");
  const dirOf = (controller: string) => {
    const hierarchy = v1Mount(mounts, controller);
    return hierarchy && cgroupDirectory(hierarchy, path);
  };
  return {
    version: 1,
    name: directory,
    cpu: dirOf("cpu"),
    cpuacct: dirOf("cpuacct"),
    cpuset: dirOf("cpuset"),
    top: v1Mount(mounts, "cpu")?.mountPoint,
  };
}

/** Reads the machine's files under a root: `/`, or a fixture tree in tests. */
export class HostFiles {
  constructor(readonly root: string) {}

  /** The path on this machine of `path` (absolute, as the kernel writes it). */
  resolve(path: string): string {
    return join(this.root, path);
  }

  read(path: string): Promise<string> {
    return readFile(this.resolve(path), "utf8");
  }

  async exists(path: string): Promise<boolean> {
    try {
      await stat(this.resolve(path));
      return true;
    } catch {
      return false;
    }
  }

  /** `path` with symbolic links resolved, as a path under the root. */
  async real(path: string): Promise<string> {
    const [real, root] = await Promise.all([realpath(this.resolve(path)), realpath(this.root)]);
    return root === "/" ? real : `/${posix.relative(root, real)}`;
  }
}

/**
 * The cgroup `--source NAME:ARGUMENT` watches: the named directory, or the agent's own (for
 * pressure, its v2 one).
 * Undefined when cgroups are not mounted and none was named. Throws SourceConfigError, saying
 * what to fix, when the named one is not a cgroup or cannot be found.
 */
export async function locateCgroup(
  files: HostFiles,
  source: "cpu" | "pressure",
  argument: string | undefined,
  names: SettingNames,
): Promise<CgroupLocation | undefined> {
  let mounts: CgroupMount[];
  let memberships: CgroupMembership[];
  try {
    mounts = parseMountinfo(await files.read("/proc/self/mountinfo"));
    memberships = parseProcCgroup(await files.read("/proc/self/cgroup"));
  } catch (error) {
    throw new SourceConfigError(
      `${
        names("source")
      } ${source} finds cgroups through /proc/self/mountinfo and /proc/self/cgroup: ${
        describeError(error)
      } (Linux only)`,
    );
  }
  if (argument === undefined) {
    return (source === "cpu" ? ownCgroup : ownV2Cgroup)(mounts, memberships);
  }
  if (!argument.startsWith("/")) {
    throw new SourceConfigError(
      `${
        names("source")
      } ${source}:${argument}: name the cgroup by its directory, e.g. ${source}:/sys/fs/cgroup/system.slice/nginx.service`,
    );
  }
  let directory: string;
  try {
    directory = await files.real(argument);
    if (!(await stat(files.resolve(directory))).isDirectory()) throw new Error("not a directory");
  } catch {
    throw new SourceConfigError(
      `${
        names("source")
      } ${source}:${argument}: no such cgroup directory (the server's cgroup is in /proc/PID/cgroup; the hierarchies are mounted under /sys/fs/cgroup)`,
    );
  }
  const location = namedCgroup(mounts, directory);
  if (!location) {
    throw new SourceConfigError(
      `${
        names("source")
      } ${source}:${argument}: ${directory} is not in a cgroup hierarchy (none of the cgroup mounts in /proc/self/mountinfo holds it)`,
    );
  }
  return { ...location, name: argument };
}
