/**
 * Whether a lab test runs here, and under which runtime. The lab itself (namespaces, real
 * servers) is scripts/lab/, which the benchmarks use too.
 */
import { commandAvailable } from "../../scripts/lab/lab.ts";

/** Why lab tests cannot run here, or undefined when they can. */
function labUnavailable(needs: string[] = []): string | undefined {
  if (process.getuid?.() !== 0) return "network namespaces need root";
  for (const command of ["ip", ...needs]) {
    if (!commandAvailable(command)) {
      return `${command} is not installed (apt-get install it, or run .ci/run)`;
    }
  }
  return undefined;
}

/**
 * The `skip` option for a lab test: the reason it cannot run, or false. With
 * HEARTBEAT_REQUIRE_LAB=1 (set by .ci/run) a missing lab fails the test instead of skipping it.
 */
export function skipUnlessLab(needs: string[] = []): string | false {
  return requiredOrSkipped(labUnavailable(needs));
}

/** `reason` as a test's skip option, or, under HEARTBEAT_REQUIRE_LAB=1, an error. */
export function requiredOrSkipped(reason: string | undefined): string | false {
  if (reason && process.env.HEARTBEAT_REQUIRE_LAB === "1") {
    throw new Error(`lab tests are required here but cannot run: ${reason}`);
  }
  return reason ?? false;
}

// Scripts need it too (scripts/screenshot.ts): it lives with the lab.
export { currentRuntime } from "../../scripts/lab/lab.ts";
