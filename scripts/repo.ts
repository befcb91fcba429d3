/**
 * What every script needs of the repository: where it is, its tools in node_modules/.bin, its
 * version, and running a program from its root.
 */
import { spawn, spawnSync } from "node:child_process";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

export { VERSION } from "../src/version.ts";

/** The repository's root, with a trailing separator. */
export const REPO = fileURLToPath(new URL("..", import.meta.url));
/** Deno, Bun and tsc, as npm installed them. */
export const BIN = join(REPO, "node_modules", ".bin");
/** What scripts/build.ts makes: binaries, archives, images. */
export const DIST = join(REPO, "dist");

/** Runs `command` from the repository's root to its end: whether it exited 0, and all it wrote. */
export function run(
  command: string,
  args: string[],
  env: Record<string, string> = {},
): { ok: boolean; output: string } {
  const result = spawnSync(command, args, {
    cwd: REPO,
    env: { ...process.env, ...env },
    encoding: "utf8",
  });
  return {
    ok: result.status === 0,
    output: `${result.stdout ?? ""}${result.stderr ?? ""}${result.error?.message ?? ""}`,
  };
}

/**
 * Runs `argv` from the repository's root, echoing its output as it comes (a test run takes
 * minutes); resolves to its exit code and all it wrote.
 */
export function runEchoing(
  argv: string[],
  env: Record<string, string> = {},
): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    const child = spawn(argv[0], argv.slice(1), {
      cwd: REPO,
      env: { ...process.env, ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let output = "";
    child.stdout.on("data", (chunk) => (output += chunk, process.stdout.write(chunk)));
    child.stderr.on("data", (chunk) => (output += chunk, process.stderr.write(chunk)));
    child.on("error", (error) => resolve({ code: 127, output: `${output}\n${error.message}` }));
    child.on("close", (code) => resolve({ code: code ?? 1, output }));
  });
}
