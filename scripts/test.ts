/**
 * The whole test suite on both runtimes: type checks, `deno test`, `bun test`, and on linux-x64
 * a third pass of the end-to-end and interop tests with the compiled binary as the agent; then
 * one closing line `N passed, N failed` summing them. Run it as `npm test` (or
 * `npx bun scripts/test.ts`).
 *
 * As root, each test runner runs in a network namespace of its own (unshare -n) with only a
 * loopback: tests that need a network build private ones, and nothing can reach the machine's
 * real interfaces even by mistake.
 *
 * Tests are flat `test()` calls, without `describe`: Deno counts a describe block as a test of
 * its own and Bun does not, so only flat tests give both runtimes the same count.
 */
import { spawn } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const REPO = fileURLToPath(new URL("..", import.meta.url));
const BIN = join(REPO, "node_modules", ".bin");
const VERSION: string = JSON.parse(readFileSync(join(REPO, "deno.json"), "utf8")).version;

interface Outcome {
  passed: number;
  failed: number;
  skipped: number;
}

/** Runs a command from the repo root, echoing its output; resolves to exit code and output. */
function run(
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

/**
 * `argv` inside a fresh network namespace with loopback up, when this process may make one.
 * Multicast is routed to loopback there, as a host's default route would carry it, so that a
 * test starting a monitor on a group in-process (`-t` joins it) finds a route, and nothing
 * leaves.
 */
function isolated(argv: string[]): string[] {
  if (process.getuid?.() !== 0 || !existsSync("/usr/bin/unshare")) return argv;
  return [
    "unshare",
    "--net",
    "--",
    "sh",
    "-c",
    'ip link set lo up multicast on && ip route add 224.0.0.0/4 dev lo && exec "$@"',
    "sh",
    ...argv,
  ];
}

// deno test: "ok | 31 passed | 0 failed | 2 ignored (1s)"
function denoOutcome(output: string): Outcome | undefined {
  const line = /(\d+) passed[^|\n]*\| (\d+) failed(?: \| (\d+) ignored)?/.exec(output);
  return line
    ? { passed: Number(line[1]), failed: Number(line[2]), skipped: Number(line[3] ?? 0) }
    : undefined;
}

// bun test: " 31 pass\n 2 skip\n 0 fail"
function bunOutcome(output: string): Outcome | undefined {
  const count = (word: string) =>
    Number(new RegExp(`^\\s*(\\d+) ${word}$`, "m").exec(output)?.[1] ?? NaN);
  const outcome = { passed: count("pass"), failed: count("fail"), skipped: count("skip") || 0 };
  return Number.isNaN(outcome.passed) || Number.isNaN(outcome.failed) ? undefined : outcome;
}

async function main(): Promise<number> {
  if (!existsSync(join(BIN, "deno")) || !existsSync(join(BIN, "bun"))) {
    console.error("heartbeat tests: Deno and Bun come from npm: run `npm ci` first.");
    return 2;
  }
  // ANSI colour codes, which the runners print even with NO_COLOR in places.
  const plain = (text: string) =>
    text.replace(new RegExp(`${String.fromCharCode(27)}\\[[0-9;]*m`, "g"), "");

  console.log("== type check (tsc, deno check), format (deno fmt --check), lint (deno lint)");
  const checks = [
    await run([join(BIN, "tsc"), "-p", "."]),
    await run([join(BIN, "deno"), "check", "src", "test", "scripts"]),
    await run([join(BIN, "deno"), "fmt", "--check"], { NO_COLOR: "1" }),
    await run([join(BIN, "deno"), "lint"], { NO_COLOR: "1" }),
  ];
  const checksOk = checks.every((check) => check.code === 0);

  const totals: Outcome = { passed: 0, failed: 0, skipped: 0 };
  const runners: {
    name: string;
    argv: string[];
    read: (output: string) => Outcome | undefined;
    env?: Record<string, string>;
  }[] = [
    { name: "deno", argv: [join(BIN, "deno"), "test", "-A"], read: denoOutcome },
    { name: "bun", argv: [join(BIN, "bun"), "test", "--timeout", "120000"], read: bunOutcome },
  ];
  const binary = join(REPO, "dist", "heartbeat-linux-x64");
  if (`${process.platform}-${process.arch}` === "linux-x64") {
    // The container image too, where podman can build it (CI installs it): image.test.ts runs it.
    const image = existsSync("/usr/bin/podman")
      ? join(REPO, "dist", `heartbeat-${VERSION}-linux-x64.image.tar`)
      : undefined;
    console.log(`\n== build the linux-x64 binary${image ? " and image" : ""}`);
    // In a namespace of its own too: deno compile would otherwise try to download denort (a
    // look-up of Deno's server leaving the machine); isolated, it is skipped at once, as it says.
    const built = await run(isolated([
      join(BIN, "bun"),
      "scripts/build.ts",
      "--target",
      "linux-x64",
      "--no-archives",
      ...(image ? ["--image"] : []),
    ]));
    if (built.code !== 0) totals.failed += 1;
    const endToEnd = readdirSync(join(REPO, "test")).filter((file) =>
      /^(binary|cli\.e2e|image|readme|interop\..*)\.test\.ts$/.test(file)
    ).map((file) => `./test/${file}`);
    // Lab tests in test/lab/ (issue 24's layout; #26's nginx test is the first there) run with the binary too.
    endToEnd.push(
      ...readdirSync(join(REPO, "test", "lab")).filter((file) => file.endsWith(".test.ts"))
        .map((file) => `./test/lab/${file}`),
    );
    runners.push({
      name: "binary",
      argv: [join(BIN, "bun"), "test", "--timeout", "120000", ...endToEnd],
      read: bunOutcome,
      env: { HEARTBEAT_BINARY: binary, ...(image ? { HEARTBEAT_IMAGE: image } : {}) },
    });
  }
  for (const runner of runners) {
    console.log(`\n== ${runner.name} test`);
    const { code, output } = await run(isolated(runner.argv), { NO_COLOR: "1", ...runner.env });
    const outcome = runner.read(plain(output)) ?? { passed: 0, failed: 0, skipped: 0 };
    // A runner that crashed or printed no summary counts as a failure, never as a pass.
    if (code !== 0 && outcome.failed === 0) outcome.failed = 1;
    console.log(
      `${runner.name}: ${outcome.passed} passed, ${outcome.failed} failed, ${outcome.skipped} skipped`,
    );
    totals.passed += outcome.passed;
    totals.failed += outcome.failed;
    totals.skipped += outcome.skipped;
  }
  if (!checksOk) {
    console.log("type check, format or lint failed: see above (`npx deno fmt` formats)");
    totals.failed += 1;
  }
  console.log(`\n${totals.passed} passed, ${totals.failed} failed, ${totals.skipped} skipped`);
  return totals.failed === 0 ? 0 : 1;
}

process.exit(await main());
