/**
 * What a start needs from its settings before it opens anything, and the checks `-t` runs: the
 * UDP adapter, the key, the destinations' addresses, a port the process may bind. Each failure is
 * one line naming the setting as the operator gave it. Both commands and the agent's factory
 * (src/senders/build.ts) use these.
 */
import { readFileSync } from "node:fs";
import { type Destination, lookupAll } from "./address.ts";
import { UsageError } from "./cli.ts";
import { describeError, firstUnprivilegedPort } from "./errors.ts";
import type { Logger } from "./log.ts";
import {
  type AddressSetting,
  type Resolved,
  type SettingNames,
  settingNames,
  type Settings,
} from "./settings.ts";
import { statusMask } from "./proc-status.ts";
import { readKeyFile } from "./signing.ts";
import { SourceConfigError } from "./sources/source.ts";
import { adapterUnavailable, defaultAdapter } from "./transport/index.ts";
import type { AdapterName } from "./transport/transport.ts";

/** A failure at run time that the user should see as one line, with exit status 1. */
export class RuntimeFailure extends Error {}

/** --runtime-adapter, or the runtime's own; a usage error where it cannot run. */
export function chooseAdapter(settings: Settings, names: SettingNames): AdapterName {
  const adapter = settings.runtimeAdapter ?? defaultAdapter();
  const unavailable = adapterUnavailable(adapter);
  if (unavailable) {
    throw new UsageError(`${names("runtimeAdapter")} ${adapter}: ${unavailable}`);
  }
  return adapter;
}

/** The key in --key-file; a key file others can read is logged as a warning. */
export function keyFrom(path: string, names: SettingNames, logger: Logger): Buffer {
  let read: ReturnType<typeof readKeyFile>;
  try {
    read = readKeyFile(path);
  } catch (error) {
    throw new UsageError(`${names("keyFile")}: ${describeError(error)}`);
  }
  if (read.warning) logger.warn(read.warning);
  return read.key;
}

/**
 * Each destination with the addresses its host stands for now; a name that resolves to nothing is
 * a usage error, about the setting named `name`.
 */
export async function resolveDestinations(
  destinations: AddressSetting[],
  name: string,
): Promise<(Destination & { addresses: string[] })[]> {
  return await Promise.all(destinations.map(async ({ text, host, port, zone }) => {
    try {
      return { host, port, zone, addresses: await lookupAll(host) };
    } catch (error) {
      throw new UsageError(
        `${name} '${text}': cannot find an address for '${host}' (${describeError(error)})`,
      );
    }
  }));
}

/** One thing a start needs that the configuration may lack, and the setting it is about. */
export interface Check {
  key?: keyof Settings;
  /** Which of a repeatable setting's values it is about. */
  item?: number;
  /** Throws a UsageError (or a SourceConfigError) saying what is wrong. */
  run(): unknown;
}

/**
 * Runs every check, as `-t` does: each problem as one line, put at the FILE:LINE of the
 * directive it is about when the setting came from a config file (so the checks are given names
 * that leave the FILE:LINE out).
 */
export async function problemsOf(
  checks: (names: SettingNames) => Check[],
  { origins, itemOrigins }: Pick<Resolved, "origins" | "itemOrigins">,
): Promise<string[]> {
  const problems: string[] = [];
  for (const check of checks(settingNames(origins, false))) {
    try {
      await check.run();
    } catch (error) {
      if (!(error instanceof UsageError || error instanceof SourceConfigError)) throw error;
      const origin = check.key &&
        ((check.item === undefined ? undefined : itemOrigins[check.key]?.[check.item]) ??
          origins[check.key]);
      problems.push(origin && /:\d+$/.test(origin) ? `${origin}: ${error.message}` : error.message);
    }
  }
  return problems;
}

/** Runs every check, as a start does: the first problem is thrown. */
export async function runChecks(checks: Check[]): Promise<void> {
  for (const check of checks) await check.run();
}

/**
 * Linux refuses a port below net.ipv4.ip_unprivileged_port_start (1024) to a process without
 * CAP_NET_BIND_SERVICE (root has it): said by `-t`, where a start would fail with EACCES. Where
 * /proc does not tell, nothing is said, and the start says it. `name` is the setting's.
 */
export function requireBindablePort(address: AddressSetting, name: string): void {
  const first = firstUnprivilegedPort();
  if (first === undefined) return;
  let capabilities: bigint;
  try {
    const status = readFileSync("/proc/self/status", "utf8");
    capabilities = statusMask(status, "CapEff") ?? 0n;
  } catch {
    return;
  }
  if (address.port >= first || (capabilities >> CAP_NET_BIND_SERVICE) & 1n) return;
  throw new UsageError(
    `${name} '${address.text}': permission denied (EACCES): ports below ${first} need root or CAP_NET_BIND_SERVICE`,
  );
}

/** Its bit in the capability sets of /proc/PID/status. */
const CAP_NET_BIND_SERVICE = 10n;
