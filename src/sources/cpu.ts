/**
 * `cpu[:CGROUP]`: what a server can take, from the CPUs it may use and how much of them it used
 * since the last reading, as a weight for the balancer's draw:
 *
 *   ready + busy = round(capacity × C^1.5), C the CPUs it may use (`--capacity` is what one CPU
 *   is worth); ready = that × (1 − FEEDBACK × the share of them used), busy at least 1.
 *
 * Why not ready = capacity × the free share, as for slots: measured with a real Apache balancer
 * (docs/performance.md), a report of the free share makes a server stay idle to be sent work: the
 * fast server of a 3:1 pair was kept a third idle, and two saturated servers both at ready=0 left
 * the balancer no member (503s). Why C^1.5 (SIZE_EXPONENT), not C: see there.
 *
 * What it may use is its cgroup's limit: the tightest CPU quota of the cgroup and its
 * ancestors (v2 cpu.max, v1 cpu.cfs_quota_us / cpu.cfs_period_us), at most the CPUs of its
 * cpuset; its use is the cgroup's own CPU time (v2 cpu.stat usage_usec, v1 cpuacct.usage).
 * Without a quota, what it may use is the CPUs of its cpuset (or all online CPUs), and the
 * share is how busy those CPUs were, from /proc/stat: other work on them leaves less for it.
 * The quota is read again at every reading, so a quota changed at runtime counts at once.
 */
import { type Load, MAX_COUNT } from "../codec.ts";
import { errorCode } from "../errors.ts";
import { systemClock } from "../scheduler.ts";
// Its type only: settings.ts lists the sources.
import type { SettingNames } from "../settings.ts";
import {
  type CgroupLocation,
  type CpuTicks,
  formatCpuList,
  HostFiles,
  locateCgroup,
  parseCfsQuota,
  parseCpuacctUsage,
  parseCpuList,
  parseCpuMax,
  parseCpuStatUsage,
  parseProcStat,
} from "./cgroup.ts";
import { requireCapacity, SourceConfigError, type SourceDefinition } from "./source.ts";

/**
 * A reading covers at least this long: /proc/stat counts in 10 ms ticks, so a shorter one is
 * mostly rounding. Only the first reading after startup (or after the quota came or went)
 * waits for it, at the default interval.
 */
export const MIN_SAMPLE_MS = 100;

/** What CPU use was counted at one moment; two of the same kind give the share between them. */
export type CpuSample =
  | {
    kind: "quota";
    /** Milliseconds, on the source's clock. */
    at: number;
    /** Seconds of CPU time the cgroup has used. */
    used: number;
    /** The tightest quota, in CPUs. */
    quota: number;
    /** CPUs it may use: the quota, at most its cpuset's CPUs. */
    limit: number;
  }
  | { kind: "cpus"; at: number; ticks: Map<number, CpuTicks>; cpus: number[] };

/**
 * The share (0 to 1) of what it may use that was used between two samples; undefined when they
 * cannot be compared (of different kinds, or no time between them).
 */
export function cpuShare(before: CpuSample, after: CpuSample): number | undefined {
  let share: number;
  if (before.kind === "quota" && after.kind === "quota") {
    const seconds = (after.at - before.at) / 1000;
    if (!(seconds > 0) || !(after.limit > 0)) return undefined;
    share = (after.used - before.used) / (seconds * after.limit);
  } else if (before.kind === "cpus" && after.kind === "cpus") {
    let busy = 0;
    let total = 0;
    for (const cpu of after.cpus) {
      const [then, now] = [before.ticks.get(cpu), after.ticks.get(cpu)];
      if (!then || !now) continue;
      busy += now.busy - then.busy;
      total += now.total - then.total;
    }
    if (!(total > 0)) return undefined;
    share = busy / total;
  } else {
    return undefined;
  }
  // A quota is enforced per period, so an interval can see a little more than it.
  return Math.min(1, Math.max(0, share));
}

/**
 * A server's weight grows as its CPUs to this power, not in proportion. mod_lbmethod_heartbeat
 * draws each request at random in proportion to ready, and a random split sends each server
 * bursts; the same burst takes a server with a third of the CPU three times as long to clear, so
 * in proportion (3:1 for CPUs of 3:1) the small server's queue set the p99. Weighed by C^1.5
 * (5.2:1), each server keeps about the same spare requests a second, so about the same wait:
 * measured in the balance bench, p99 119 ms where in proportion it was 289-321 ms and bybusyness
 * 202 ms (docs/performance.md).
 */
export const SIZE_EXPONENT = 1.5;

/**
 * How far a fully used server's ready falls: to 3/4 of its size. Not to 0: when every member is
 * saturated, their ready stays in proportion to their weights rather than all 0 (the balancer
 * answers 503 when no member has a slot). Not further: a strong pull to equal use undoes
 * SIZE_EXPONENT's skew (3/4 gave a 78 % share and p99 285 ms where 1/4 gave 81 % and 130-157 ms).
 */
export const FEEDBACK = 0.25;

/** The CPUs a sample says the server may use. */
function usableCpus(sample: CpuSample): number {
  return sample.kind === "quota" ? sample.limit : sample.cpus.length;
}

/**
 * ready + busy = round(perCpu × cpus^SIZE_EXPONENT), at least 2 and at most what a heartbeat
 * can carry; ready = round(that × (1 − FEEDBACK × share)), at most size − 1; busy the rest. busy
 * is never 0: mod_lbmethod_heartbeat divides ready by 4 when it is, which would make an idle
 * server weigh a quarter of its weight (and a size of 1, nothing).
 */
export function cpuLoad(share: number, cpus: number, perCpu: number): Load {
  const size = Math.min(MAX_COUNT, Math.max(2, Math.round(perCpu * cpus ** SIZE_EXPONENT)));
  const ready = Math.min(size - 1, Math.round(size * (1 - FEEDBACK * share)));
  return { ready, busy: size - ready };
}

/** `0.5 CPU`, `2 CPUs`. */
function cpus(count: number): string {
  const rounded = Math.round(count * 1000) / 1000;
  return `${rounded} CPU${rounded === 1 || rounded < 1 ? "" : "s"}`;
}

/** The directories from `directory` up to `top`, where a quota may be set. */
function selfAndAncestors(directory: string, top: string | undefined): string[] {
  const chain = [directory];
  let current = directory;
  while (top && current !== top && current.startsWith(top) && current !== "/") {
    current = current.slice(0, current.lastIndexOf("/")) || "/";
    chain.push(current);
  }
  return chain;
}

function missing(error: unknown): boolean {
  return errorCode(error) === "ENOENT";
}

/** How to read one cgroup's quota, use and cpuset. */
interface CgroupFiles {
  /** The tightest quota, in CPUs; undefined: none. */
  quota(): Promise<number | undefined>;
  /** Seconds of CPU time used. */
  used(): Promise<number>;
  /** The cpuset file, if it has one. */
  cpuset?: string;
}

async function cgroupFiles(
  files: HostFiles,
  location: CgroupLocation,
  argument: string | undefined,
  names: SettingNames,
): Promise<CgroupFiles> {
  const named = argument === undefined
    ? `the agent's cgroup (${location.name})`
    : `cgroup ${argument}`;
  if (!location.cpu || !(await files.exists(location.cpu))) {
    throw new SourceConfigError(
      `${names("source")} cpu: ${named} has no directory in the ${
        location.version === 1 ? "cpu hierarchy" : "cgroup v2 mount"
      }${location.cpu ? ` (no ${location.cpu})` : ""}: name the server's cgroup with ${
        names("source")
      } cpu:DIR`,
    );
  }
  const chain = selfAndAncestors(location.cpu, location.top);
  const cpusetDirectory = await nearestExisting(files, location.cpuset);
  const cpusetFile = cpusetDirectory &&
    `${cpusetDirectory}/${location.version === 2 ? "cpuset.cpus.effective" : "cpuset.cpus"}`;
  // v2 has the file only where the cpuset controller is enabled.
  const cpuset = cpusetFile && await files.exists(cpusetFile) ? cpusetFile : undefined;
  if (location.version === 2) {
    return {
      quota: async () => {
        const quotas = await Promise.all(chain.map(async (directory) => {
          try {
            return parseCpuMax(await files.read(`${directory}/cpu.max`));
          } catch (error) {
            if (missing(error)) return undefined; // the root, or the cpu controller not enabled
            throw error;
          }
        }));
        return tightest(quotas);
      },
      used: async () => parseCpuStatUsage(await files.read(`${location.cpu}/cpu.stat`)),
      cpuset,
    };
  }
  const cpuacct = location.cpuacct;
  if (!cpuacct || !(await files.exists(`${cpuacct}/cpuacct.usage`))) {
    throw new SourceConfigError(
      `${names("source")} cpu: ${named} has no cpuacct.usage ${
        cpuacct ? `(no ${cpuacct}/cpuacct.usage)` : "(no cpuacct hierarchy is mounted)"
      }: cgroup v1 counts CPU use in the cpuacct hierarchy; mount it (mount -t cgroup -o cpuacct cpuacct /sys/fs/cgroup/cpuacct) or, for a cgroup you made, make it there too`,
    );
  }
  return {
    quota: async () =>
      tightest(
        await Promise.all(chain.map(async (directory) =>
          parseCfsQuota(
            await files.read(`${directory}/cpu.cfs_quota_us`),
            await files.read(`${directory}/cpu.cfs_period_us`),
          )
        )),
      ),
    used: async () => parseCpuacctUsage(await files.read(`${cpuacct}/cpuacct.usage`)),
    cpuset,
  };
}

function tightest(quotas: (number | undefined)[]): number | undefined {
  const set = quotas.filter((quota) => quota !== undefined);
  return set.length ? Math.min(...set) : undefined;
}

/**
 * `directory`, or its nearest ancestor that exists: systemd on cgroup v1 makes no cpuset cgroup
 * for a service, which then runs in its parent's (the root's) cpuset.
 */
async function nearestExisting(
  files: HostFiles,
  directory: string | undefined,
): Promise<string | undefined> {
  for (let current = directory; current && current !== "/";) {
    if (await files.exists(current)) return current;
    current = current.slice(0, current.lastIndexOf("/"));
  }
  return undefined;
}

export const cpuSource: SourceDefinition = {
  summary:
    "the CPUs its cgroup may use (quota, cpuset) and how much it used; needs --capacity N per CPU (Linux)",
  async create(argument, settings) {
    const capacity = requireCapacity(
      "cpu",
      settings,
      "what one CPU is worth in slots, e.g. 100 (ready + busy = N × CPUs^1.5)",
    );
    const files = new HostFiles(settings.fsRoot ?? "/");
    const clock = settings.clock ?? systemClock;
    if (settings.fsRoot === undefined && process.platform !== "linux") {
      throw new SourceConfigError(
        `${
          settings.names("source")
        } cpu reads Linux's cgroups and /proc/stat (this is ${process.platform})`,
      );
    }
    const location = await locateCgroup(files, "cpu", argument, settings.names);
    const cgroup = location && await cgroupFiles(files, location, argument, settings.names);
    const online = [...parseProcStat(await files.read("/proc/stat")).keys()];

    const sample = async (): Promise<CpuSample> => {
      const [quota, cpuset] = await Promise.all([
        cgroup?.quota(),
        cgroup?.cpuset && files.read(cgroup.cpuset).then(parseCpuList),
      ]);
      const usable = cpuset ? cpuset.filter((cpu) => online.includes(cpu)) : online;
      if (usable.length === 0) {
        throw new Error(`none of the CPUs of ${cgroup?.cpuset} is online`);
      }
      if (quota !== undefined) {
        const used = await cgroup!.used();
        const limit = Math.min(quota, usable.length);
        return { kind: "quota", at: clock.now(), used, quota, limit };
      }
      const ticks = parseProcStat(await files.read("/proc/stat"));
      return { kind: "cpus", at: clock.now(), ticks, cpus: usable };
    };

    // The first sample now, so that the first heartbeat covers the time since startup.
    let baseline = await sample();
    const version = location ? `cgroup v${location.version}` : "no cgroup mounted";
    const measured = baseline.kind === "quota"
      ? `quota ${cpus(baseline.quota)}${
        baseline.limit < baseline.quota ? ` but ${cpus(baseline.limit)} to run on` : ""
      }, ${version}`
      : `no quota: the busy share of CPUs ${
        formatCpuList(baseline.cpus)
      } from /proc/stat, ${version}`;
    return {
      description: `cpu of ${location ? argument ?? location.cpu : "this machine"} (${measured})`,
      defaultSmoothSeconds: 3,
      read: async (signal) => {
        let current = await sample();
        if (current.kind !== baseline.kind) baseline = current; // the quota came or went
        const wait = baseline.at + MIN_SAMPLE_MS - current.at;
        if (wait > 0) {
          await clock.sleep(wait, signal);
          signal.throwIfAborted();
          current = await sample();
        }
        const share = cpuShare(baseline, current);
        baseline = current;
        if (share === undefined) {
          throw new Error("no CPU time counted between two readings, or the quota came or went");
        }
        return cpuLoad(share, usableCpus(current), capacity);
      },
    };
  },
};
