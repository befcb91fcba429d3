/**
 * Standalone binaries and release archives: `bun scripts/build.ts [--target NAME …]` (or
 * `deno run -A scripts/build.ts`).
 *
 *   dist/heartbeat-<os>-<arch>[.exe]   bun build --compile, every target
 *   dist/deno/heartbeat-<os>-<arch>    deno compile, the targets Deno has, when denort can be had
 *   dist/*.tar.xz, dist/*.zip          one archive per binary (zip for Windows)
 *   dist/SHA256SUMS                    sha256sum -c checks them all
 *
 * deno compile fetches `denort` from Deno's download server unless DENORT_BIN names a local
 * copy; where neither works, it says so and the Bun builds still succeed.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { basename, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const REPO = fileURLToPath(new URL("..", import.meta.url));
const DIST = join(REPO, "dist");
const BIN = join(REPO, "node_modules", ".bin");

/** Our target name → Bun's, and Deno's where Deno has it. */
export const TARGETS: Record<string, { bun: string; deno?: string; windows?: boolean }> = {
  "linux-x64": { bun: "bun-linux-x64", deno: "x86_64-unknown-linux-gnu" },
  "linux-arm64": { bun: "bun-linux-arm64", deno: "aarch64-unknown-linux-gnu" },
  "linux-x64-musl": { bun: "bun-linux-x64-musl" },
  "linux-arm64-musl": { bun: "bun-linux-arm64-musl" },
  "darwin-x64": { bun: "bun-darwin-x64", deno: "x86_64-apple-darwin" },
  "darwin-arm64": { bun: "bun-darwin-arm64", deno: "aarch64-apple-darwin" },
  "windows-x64": { bun: "bun-windows-x64", deno: "x86_64-pc-windows-msvc", windows: true },
};

function run(command: string, args: string[], env: Record<string, string> = {}): { ok: boolean; output: string } {
  const result = spawnSync(command, args, { cwd: REPO, env: { ...process.env, ...env }, encoding: "utf8" });
  return { ok: result.status === 0, output: `${result.stdout ?? ""}${result.stderr ?? ""}${result.error?.message ?? ""}` };
}

/** JavaScriptCore's tier-up thresholds × this: high enough that the agent's code never tiers up. */
const JIT_POLICY = 1_000_000;

/** The bun that compiles: the one running this script, else the project's (under Deno). */
const BUN = "Bun" in globalThis ? process.execPath : join(BIN, "bun");

function buildBun(name: string): string {
  const target = TARGETS[name];
  const outfile = join(DIST, `heartbeat-${name}${target.windows ? ".exe" : ""}`);
  // The target is baked in, for --version; the version comes from deno.json through the bundle.
  const built = run(BUN, [
    "build", "--compile", `--target=${target.bun}`, `--define`, `process.env.HEARTBEAT_BUILD_TARGET=${JSON.stringify(JSON.stringify(name))}`,
    // Bytecode halves the time to the first heartbeat (23 → 13 ms here, scripts/bench.ts).
    "--bytecode", "--format=esm",
    // Holds back JIT tier-up, for 6 MB less memory; the monitor lifts it (allowOptimizingJit).
    `--compile-jit-policy=${JIT_POLICY}`,
    // A binary takes its settings from its flags, environment and config file, not from a
    // .env or bunfig.toml that happens to be in the directory it was started in.
    "--no-compile-autoload-dotenv", "--no-compile-autoload-bunfig",
    "src/main.ts", "--outfile", outfile,
  ]);
  if (!built.ok) throw new Error(`bun build --compile for ${name} failed:\n${built.output}`);
  return outfile;
}

/** The Deno build, or undefined with the reason said when denort cannot be had. */
function buildDeno(name: string): string | undefined {
  const target = TARGETS[name].deno;
  if (!target) return undefined;
  mkdirSync(join(DIST, "deno"), { recursive: true });
  const output = join(DIST, "deno", `heartbeat-${name}${TARGETS[name].windows ? ".exe" : ""}`);
  const built = run(join(BIN, "deno"), ["compile", "-A", "--unstable-net", "--target", target, "--output", output, "src/main.ts"], { NO_COLOR: "1" });
  if (built.ok) return output;
  const reason = process.env.DENORT_BIN
    ? `with DENORT_BIN=${process.env.DENORT_BIN}`
    : "it needs denort from Deno's download server, which cannot be reached here; set DENORT_BIN to a local denort for this target";
  // Deno's error names the step; its "Caused by" chain ends with why.
  const url = /request for url \(([^)]+)\)/.exec(built.output)?.[1];
  const chain = built.output.split("Caused by:")[1]?.split("Stack backtrace")[0] ?? "";
  const causes = chain.split("\n").filter((line) => /^\s+\d+: /.test(line)).map((line) => line.replace(/^\s+\d+: /, ""));
  const said = [url && `downloading ${url}`, causes[causes.length - 1] ?? built.output.trim().split("\n")[0]].filter(Boolean).join(": ");
  console.log(`deno compile ${name}: skipped: ${reason}\n  (${said})`);
  return undefined;
}

function archive(binary: string, windows: boolean): string {
  const name = basename(binary).replace(/\.exe$/, "");
  const folder = join(binary, "..");
  const out = join(folder, `${name}.${windows ? "zip" : "tar.xz"}`);
  rmSync(out, { force: true });
  if (windows) execFileSync("zip", ["-q", "-j", "-9", out, binary]);
  else execFileSync("tar", ["-cJf", out, "-C", folder, basename(binary)], { env: { ...process.env, XZ_OPT: "-9" } });
  return out;
}

function sha256sums(folder: string): void {
  const files = readdirSync(folder).filter((file) => /\.(tar\.xz|zip)$/.test(file)).sort();
  if (files.length === 0) return;
  const lines = files.map((file) => `${createHash("sha256").update(readFileSync(join(folder, file))).digest("hex")}  ${file}`);
  writeFileSync(join(folder, "SHA256SUMS"), `${lines.join("\n")}\n`);
}

export function main(argv: string[]): number {
  const { values } = parseArgs({
    args: argv,
    options: { target: { type: "string", multiple: true }, "no-archives": { type: "boolean" }, help: { type: "boolean", short: "h" } },
  });
  if (values.help) {
    console.log(`Usage: bun scripts/build.ts [--target NAME ...] [--no-archives]\nTargets: ${Object.keys(TARGETS).join(", ")} (default: all)`);
    return 0;
  }
  const names = values.target ?? Object.keys(TARGETS);
  const unknown = names.filter((name) => !(name in TARGETS));
  if (unknown.length) {
    console.error(`build: unknown target ${unknown.join(", ")}; the targets are ${Object.keys(TARGETS).join(", ")}`);
    return 2;
  }
  mkdirSync(DIST, { recursive: true });
  const packed = (binary: string, name: string) => values["no-archives"] ? binary : `${binary} → ${archive(binary, TARGETS[name].windows === true)}`;
  for (const name of names) {
    console.log(`bun  ${name}: ${packed(buildBun(name), name)}`);
    const denoBinary = buildDeno(name);
    if (denoBinary) console.log(`deno ${name}: ${packed(denoBinary, name)}`);
  }
  if (!values["no-archives"]) {
    sha256sums(DIST);
    if (existsSync(join(DIST, "deno"))) sha256sums(join(DIST, "deno"));
    console.log(`checksums: ${join(DIST, "SHA256SUMS")}`);
  }
  return 0;
}

if (import.meta.main) process.exit(main(process.argv.slice(2)));
