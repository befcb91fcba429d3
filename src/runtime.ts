/** Which JavaScript runtime this is: decided here and nowhere else. */

export type RuntimeName = "deno" | "bun" | "node";

export function detectRuntime(global: object = globalThis): RuntimeName {
  if ("Bun" in global) return "bun";
  if ("Deno" in global) return "deno";
  return "node";
}

/** `deno 2.9.6`, `bun 1.4.5` or `node 20.20.2`. */
export function runtimeVersion(runtime: RuntimeName = detectRuntime()): string {
  const versions = process.versions as Record<string, string | undefined>;
  return `${runtime} ${versions[runtime] ?? "unknown"}`;
}

/**
 * Lets Bun's optimizing JIT tiers work as usual. The compiled binary starts with them held back
 * (scripts/build.ts): an agent's one heartbeat a second gains nothing from them but costs about
 * 6 MB of memory, while a monitor taking thousands of heartbeats a second needs them.
 */
export function allowOptimizingJit(global: object = globalThis): void {
  (global as { Bun?: { unsafe?: { setJITPolicy?(scale: number): void } } }).Bun?.unsafe
    ?.setJITPolicy?.(1);
}
