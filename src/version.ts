/**
 * What this build is: `heartbeat 0.2.0 (abc1234, 2026-11-24, bun 1.4.5, linux-x64)`.
 * scripts/build.ts bakes the commit, build date and target into a compiled binary (as
 * `process.env.HEARTBEAT_BUILD_*` replaced at compile time: the global `process`, which Bun's
 * --define matches, not one imported from node:process); run from source, the line says so.
 */
import denoConfig from "../deno.json" with { type: "json" };
import { runtimeVersion } from "./runtime.ts";

export const VERSION: string = denoConfig.version;

export interface Build {
  /** Short commit hash, `-dirty` when built from a modified tree. */
  commit?: string;
  /** The build's date, YYYY-MM-DD (UTC). */
  date?: string;
  /** The target built for, e.g. linux-x64. */
  target?: string;
}

/** What the compiled binary was built from; all undefined when run from source. */
export function bakedBuild(): Build {
  return {
    commit: process.env.HEARTBEAT_BUILD_COMMIT,
    date: process.env.HEARTBEAT_BUILD_DATE,
    target: process.env.HEARTBEAT_BUILD_TARGET,
  };
}

/** The `--version` line. */
export function versionLine(
  build: Build = bakedBuild(),
  runtime: string = runtimeVersion(),
): string {
  const made = build.date ? [build.commit ?? "unknown commit", build.date] : ["from source"];
  const target = build.target ?? `${process.platform}-${process.arch}`;
  return `heartbeat ${VERSION} (${[...made, runtime, target].join(", ")})`;
}
