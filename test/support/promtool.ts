/** Prometheus' own promtool, to check both wings' /metrics text. */
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { requiredOrSkipped } from "./lab.ts";

/** promtool: $PROMTOOL, else where .ci/run puts it (from Debian's prometheus package). */
const PROMTOOL = process.env.PROMTOOL ?? "/opt/promtool/promtool";

/** Why the promtool tests are skipped here, or false. */
export const skipWithoutPromtool = requiredOrSkipped(
  existsSync(PROMTOOL)
    ? undefined
    : `no promtool at ${PROMTOOL} (.ci/run extracts it from Debian's prometheus package)`,
);

export function promtool(text: string): { status: number | null; output: string } {
  const run = spawnSync(PROMTOOL, ["check", "metrics"], { input: text, encoding: "utf8" });
  return { status: run.status, output: `${run.stdout}${run.stderr}` };
}
