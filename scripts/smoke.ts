/**
 * A release binary's smoke test, for the platforms this repository's tests cannot run it on
 * (the release workflow runs it on Windows and macOS runners; the binary test runs it on
 * linux-x64): `npx bun scripts/smoke.ts BINARY`. It checks `--version`, a `--dry-run --once`
 * heartbeat, and a real heartbeat sent to 127.0.0.1 and received by a listener here. Only
 * loopback is used. Exits 0 when all hold, 1 naming the first that did not.
 */
import { spawnSync } from "node:child_process";
import { createSocket } from "node:dgram";
import { once } from "node:events";

const binary = process.argv[2];
if (!binary) {
  console.error("usage: npx bun scripts/smoke.ts BINARY");
  process.exit(2);
}

function heartbeat(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const result = spawnSync(binary, args, { encoding: "utf8", timeout: 20_000 });
  return {
    status: result.status,
    stdout: result.stdout ?? "",
    stderr: `${result.stderr ?? ""}${result.error?.message ?? ""}`,
  };
}

function check(what: string, holds: boolean, detail: string): void {
  console.log(`${holds ? "ok  " : "FAIL"} ${what}${holds ? "" : `: ${detail}`}`);
  if (!holds) process.exit(1);
}

const version = heartbeat(["--version"]);
check(
  "--version",
  version.status === 0 && /^heartbeat \d+\.\d+\.\d+ \(/.test(version.stdout),
  JSON.stringify(version),
);

const dry = heartbeat(["-a", "127.0.0.1:27999", "--ready", "3", "--dry-run", "--once"]);
check(
  "--dry-run --once",
  dry.status === 0 && dry.stdout === "127.0.0.1:27999 v=1&ready=3&busy=0\n",
  JSON.stringify(dry),
);

const listener = createSocket("udp4");
listener.bind(0, "127.0.0.1");
await once(listener, "listening");
const port = listener.address().port;
const received = new Promise<string>((resolve) =>
  listener.once("message", (message) => resolve(message.toString("latin1")))
);
const sent = heartbeat(["-a", `127.0.0.1:${port}`, "--ready", "5", "--busy", "1", "--once"]);
check("--once sends", sent.status === 0, JSON.stringify(sent));
const timeout = new Promise<string>((resolve) => setTimeout(() => resolve("nothing"), 5_000));
const message = await Promise.race([received, timeout]);
listener.close();
check("a listener on 127.0.0.1 receives it", message === "v=1&ready=5&busy=1", message);
process.exit(0);
