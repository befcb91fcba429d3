/**
 * `pressure[:cpu|memory|io][:CGROUP]`: Linux's pressure stall information (PSI), the share of
 * the last 10 s in which some task waited for the resource (`some avg10`), against the capacity
 * the admin gives: ready = round(capacity × (1 − some/100)). From the cgroup's own
 * RESOURCE.pressure where cgroup v2 has one (the agent's cgroup, or the one named), else the
 * machine's /proc/pressure/RESOURCE. avg10 is already an average: no smoothing by default.
 */
import type { Load } from "../codec.ts";
import { describeError, errorCode } from "../errors.ts";
// Its type only: settings.ts lists the sources.
import type { SettingNames } from "../settings.ts";
import { HostFiles, locateCgroup, parsePressure } from "./cgroup.ts";
import { requireCapacity, SourceConfigError, type SourceDefinition } from "./source.ts";

const PRESSURE_RESOURCES = ["cpu", "memory", "io"] as const;
export type PressureResource = typeof PRESSURE_RESOURCES[number];

/** `cpu`, `memory:/sys/fs/cgroup/x`, `/sys/fs/cgroup/x`: the resource (cpu if not given), the cgroup. */
export function parsePressureArgument(
  argument: string | undefined,
  names: SettingNames,
): { resource: PressureResource; cgroup?: string } {
  if (argument === undefined) return { resource: "cpu" };
  const colon = argument.indexOf(":");
  const head = colon < 0 ? argument : argument.slice(0, colon);
  const resource = PRESSURE_RESOURCES.find((name) => name === head);
  if (resource) return { resource, cgroup: colon < 0 ? undefined : argument.slice(colon + 1) };
  if (argument.startsWith("/")) return { resource: "cpu", cgroup: argument };
  throw new SourceConfigError(
    `${names("source")} pressure:${argument}: give a resource (${
      PRESSURE_RESOURCES.join(", ")
    }) and/or a cgroup directory, e.g. pressure:memory:/sys/fs/cgroup/system.slice/nginx.service`,
  );
}

/** ready = round(capacity × (1 − some/100)), busy = the rest. */
export function pressureLoad(someAvg10: number, capacity: number): Load {
  const ready = Math.round(capacity * (1 - someAvg10 / 100));
  return { ready, busy: capacity - ready };
}

export const pressureSource: SourceDefinition = {
  summary:
    "PSI's some avg10 for cpu, memory or io, of its cgroup (v2) or the machine; needs --capacity (Linux)",
  async create(argument, settings) {
    const { resource, cgroup } = parsePressureArgument(argument, settings.names);
    const capacity = requireCapacity(
      "pressure",
      settings,
      "the ready to send when nothing waits (ready = N × (1 − avg10 / 100))",
    );
    const source = settings.names("source");
    const files = new HostFiles(settings.fsRoot ?? "/");
    if (settings.fsRoot === undefined && process.platform !== "linux") {
      throw new SourceConfigError(
        `${source} pressure reads Linux's pressure stall information (this is ${process.platform})`,
      );
    }
    const location = await locateCgroup(files, "pressure", cgroup, settings.names);
    const own = location?.version === 2 && location.cpu
      ? `${location.cpu}/${resource}.pressure`
      : undefined;
    let path: string;
    if (cgroup !== undefined) {
      if (!own || !(await files.exists(own))) {
        throw new SourceConfigError(
          `${source} pressure:${argument}: ${
            location?.version === 1
              ? "a cgroup v1 cgroup has no pressure file"
              : `no ${own ?? `${cgroup}/${resource}.pressure`}`
          }; per-cgroup pressure needs cgroup v2 (else leave out the cgroup for the machine's /proc/pressure/${resource})`,
        );
      }
      path = own;
    } else {
      path = own && await files.exists(own) ? own : `/proc/pressure/${resource}`;
    }
    const read = async () => parsePressure(await files.read(path)).avg10;
    try {
      await read();
    } catch (error) {
      const code = errorCode(error);
      throw new SourceConfigError(
        code === "ENOENT" || code === "EOPNOTSUPP"
          ? `${source} pressure: ${path} ${
            code === "ENOENT" ? "does not exist" : "is not supported"
          }: this kernel has no pressure stall information (PSI: CONFIG_PSI, and psi=1 on the kernel command line where it is off by default)`
          : `${source} pressure: cannot read ${path}: ${describeError(error)}`,
      );
    }
    return {
      description: `pressure of ${resource} from ${path} (some avg10)`,
      read: async () => pressureLoad(await read(), capacity),
    };
  },
};
