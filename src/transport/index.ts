/** Picks the UDP adapter for this runtime, or the one asked for, and says when it cannot. */
import { detectRuntime, type RuntimeName } from "../runtime.ts";
import type { AdapterName, UdpAdapter } from "./transport.ts";

/** The native adapter where the runtime has one that works, else node:dgram. */
export function defaultAdapter(runtime: RuntimeName = detectRuntime()): AdapterName {
  return adapterUnavailable(runtime, runtime) ? "node" : runtime;
}

/** Why `adapter` cannot run here, or undefined when it can. */
export function adapterUnavailable(
  adapter: AdapterName,
  runtime: RuntimeName = detectRuntime(),
): string | undefined {
  if (adapter === "node") return undefined;
  if (adapter !== runtime) {
    return `the ${adapter} adapter needs the ${adapter} runtime; this is ${runtime}`;
  }
  if (
    adapter === "deno" &&
    !(globalThis as { Deno?: { listenDatagram?: unknown } }).Deno?.listenDatagram
  ) {
    return "the deno adapter needs Deno's unstable net API: run with --unstable-net";
  }
  return undefined;
}

export async function loadAdapter(adapter: AdapterName): Promise<UdpAdapter> {
  switch (adapter) {
    case "deno":
      return await import("./deno.ts");
    case "bun":
      return await import("./bun.ts");
    case "node":
      return await import("./node.ts");
  }
}
