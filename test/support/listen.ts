/**
 * A UDP listener in a lab namespace, for tests that check what reached the wire: listen-probe.ts
 * (node:dgram, on every address, in a multicast group if given), or adapter-listen-probe.ts
 * through one of heartbeat's own UDP adapters.
 */
import type { ChildProcess } from "node:child_process";
import {
  collect,
  type Lab,
  runtimeCommand,
  type RuntimeName,
  waitFor,
} from "../../scripts/lab/lab.ts";
import type { AdapterName } from "../../src/transport/transport.ts";

export type ListenProbeOptions =
  & { port: number; env?: Record<string, string> }
  & (
    | { group?: string }
    | { adapter: AdapterName; address: string; zone?: string }
  );

export interface ListenProbe {
  readonly child: ChildProcess;
  /** What it has written: a `{"listening":true…}` line, then one JSON line per datagram. */
  readonly output: () => { stdout: string; stderr: string };
  /** Resolves once it listens; rejects after 10 s with what it wrote on stderr. */
  listening(): Promise<void>;
  /** How many of the lines it has written hold `text`. */
  count(text: string): number;
}

/** Starts a listen probe in namespace `ns` of `lab`, without waiting for it to listen. */
export function startListenProbe(
  lab: Lab,
  ns: string,
  runtime: RuntimeName,
  options: ListenProbeOptions,
): ListenProbe {
  const argv = "adapter" in options
    ? runtimeCommand(runtime, "test/support/adapter-listen-probe.ts", [
      options.adapter,
      options.address,
      String(options.port),
      ...(options.zone ? [options.zone] : []),
    ])
    : runtimeCommand(runtime, "test/support/listen-probe.ts", [
      String(options.port),
      ...(options.group ? [options.group] : []),
    ]);
  const child = lab.spawn(ns, argv, { env: options.env });
  const output = collect(child);
  return {
    child,
    output,
    listening: () =>
      waitFor(
        () => output().stdout.includes("listening"),
        10_000,
        `the listen probe in ${ns}: ${output().stderr}`,
      ),
    count: (text) => output().stdout.split("\n").filter((line) => line.includes(text)).length,
  };
}

/** A listen probe in namespace `ns` of `lab`, listening. */
export async function listenProbe(
  lab: Lab,
  ns: string,
  runtime: RuntimeName,
  options: ListenProbeOptions,
): Promise<ListenProbe> {
  const probe = startListenProbe(lab, ns, runtime, options);
  await probe.listening();
  return probe;
}
