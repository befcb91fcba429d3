/**
 * Runs an exec source with every file descriptor taken, as a flood of connections leaves an
 * agent, and prints what the reading failed with. Run it under a small `ulimit -n`.
 */
import { openSync } from "node:fs";
import { runCommand } from "../../src/sources/exec.ts";

const taken: number[] = [];
try {
  for (;;) taken.push(openSync("/dev/null", "r"));
} catch { /* all taken */ }
try {
  await runCommand("echo ready=1", new AbortController().signal);
  console.log("ran");
} catch (error) {
  console.log((error as Error).message);
}
process.exit(0);
