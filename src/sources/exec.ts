/** `exec:COMMAND`: a command run each interval that prints `ready=N&busy=M` or JSON. */
import { describeError } from "../errors.ts";
import { parseLoadText } from "./load-text.ts";
import { SourceConfigError, type SourceDefinition } from "./source.ts";

const MAX_OUTPUT_BYTES = 64 * 1024;

/**
 * The command's standard output, run by `sh -c` in a process group of its own so that, at the
 * deadline, it is killed with everything it started. Rejects on a non-zero exit.
 */
export async function runCommand(command: string, signal: AbortSignal): Promise<string> {
  const { spawn } = await import("node:child_process");
  return new Promise((resolve, reject) => {
    const child = spawn("sh", ["-c", command], {
      detached: true,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    const kill = () => {
      try {
        process.kill(-child.pid!, "SIGKILL");
      } catch { /* already gone */ }
    };
    signal.addEventListener("abort", kill, { once: true });
    child.on("error", (error) => {
      signal.removeEventListener("abort", kill);
      reject(new Error(`cannot run \`${command}\`: ${describeError(error)}`));
    });
    // A command that could not start (no file descriptors left, say) has no pipes: the error
    // event above says why, rather than a TypeError about its missing stdout.
    if (!child.stdout || !child.stderr) return;
    child.stdout.on("data", (chunk) => {
      stdout += chunk;
      if (stdout.length > MAX_OUTPUT_BYTES) {
        kill();
        reject(new Error(`\`${command}\` printed more than ${MAX_OUTPUT_BYTES} bytes`));
      }
    });
    child.stderr.on("data", (chunk) => stderr = (stderr + chunk).slice(-500));
    let settled = false;
    const settle = (code: number | null, killedBy: NodeJS.Signals | null) => {
      if (settled) return;
      settled = true;
      signal.removeEventListener("abort", kill);
      if (signal.aborted) reject(new Error(`\`${command}\` did not finish in time and was killed`));
      else if (code === 0) resolve(stdout);
      else {
        const said = stderr.trim().split("\n").pop();
        reject(
          new Error(
            `\`${command}\` ${
              killedBy ? `was killed by ${killedBy}` : `exited with status ${code}`
            }${said ? `: ${said}` : ""}`,
          ),
        );
      }
    };
    child.on("close", settle);
    // A command that exits leaving a background child holding its output open would never
    // close: what it printed before exiting is its answer, and what it left behind is killed.
    child.on("exit", (code, killedBy) => {
      setTimeout(() => {
        if (settled) return;
        kill();
        child.stdout!.destroy();
        child.stderr!.destroy();
        settle(code, killedBy);
      }, ORPHAN_GRACE_MS);
    });
  });
}

/** How long after the command exits its output may still be arriving. */
const ORPHAN_GRACE_MS = 50;

export const execSource: SourceDefinition = {
  summary: 'a command run each interval that prints ready=N&busy=M or {"ready":N,"busy":M}',
  create(argument, settings) {
    if (!argument?.trim()) {
      throw new SourceConfigError(
        `${settings.names("source")} exec:COMMAND needs a command, e.g. exec:/usr/local/bin/load`,
      );
    }
    return {
      description: `exec ${argument}`,
      read: async (signal) => parseLoadText(await runCommand(argument, signal)),
    };
  },
};
