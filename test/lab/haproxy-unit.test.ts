/**
 * The shipped HAProxy push, as systemd would run it: contrib/haproxy.cfg's admin socket (as root
 * makes it) and the monitor as contrib/heartbeat-monitor.service with its HAProxy drop-in runs it:
 * an unprivileged user (a DynamicUser's range) with the drop-in's SupplementaryGroups=, in a user
 * namespace of its own mapping only itself, as PrivateUsers=yes does, and the drop-in's
 * ExecStart. A real HAProxy takes the weights it sets.
 *
 *   proxy   10.99.40.1   haproxy (root, as its unit starts it), heartbeat monitor (the unit's user)
 *   origin  10.99.40.11  agent --ready 30 --busy 10
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import {
  chmodSync,
  chownSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { parseServersState } from "../../src/monitor/outputs/haproxy.ts";
import { agentCommand, collect, commandAvailable, Lab } from "../../scripts/lab/lab.ts";
import { REPO } from "../../scripts/repo.ts";
import { currentRuntime, requiredOrSkipped, skipUnlessLab } from "../support/lab.ts";

const skip = skipUnlessLab(["haproxy", "socat", "setpriv", "unshare"]);
const runtime = currentRuntime();
/** A uid in systemd's DynamicUser range (61184-65519) that no account here has. */
const SERVICE_UID = 61999;

const unit = readFileSync(join(REPO, "contrib", "heartbeat-monitor.service"), "utf8");
const dropIn = readFileSync(
  join(REPO, "contrib", "heartbeat-monitor.service.d", "haproxy.conf"),
  "utf8",
);
/** The last value of `key=` in a unit's text, as systemd reads a setting given more than once. */
const setting = (text: string, key: string) =>
  [...text.matchAll(new RegExp(`^${key}=(.*)$`, "gm"))].map((match) => match[1]).at(-1);

let lab: Lab | undefined;
const scratch: string[] = [];
after(() => {
  lab?.close();
  scratch.forEach((dir) => rmSync(dir, { recursive: true, force: true }));
});

test(
  "haproxy-unit: the monitor, as the unit with its HAProxy drop-in runs it, sets weights through contrib/haproxy.cfg's admin socket",
  { skip },
  async () => {
    const groups = setting(dropIn, "SupplementaryGroups");
    assert.equal(groups, "haproxy", "the drop-in joins HAProxy's group");
    assert.equal(setting(unit, "DynamicUser"), "yes");
    // The group must exist for systemd to start the unit: Debian's haproxy package makes it.
    const group = spawnSync("getent", ["group", groups!], { encoding: "utf8" });
    assert.equal(group.status, 0, `group ${groups} exists where haproxy is installed`);

    lab = new Lab();
    lab.addSwitch("switch");
    lab.addNamespace("proxy");
    lab.plug("proxy", "10.99.40.1/24");
    lab.addNamespace("origin");
    lab.plug("origin", "10.99.40.11/24");

    // The socket's folder grants nothing (root's, 0755): only the socket's own mode and group may.
    const run = mkdtempSync(join(tmpdir(), "heartbeat-haproxy-run-"));
    scratch.push(run);
    chmodSync(run, 0o755);
    const socket = join(run, "admin.sock");
    const config = join(lab.dir, "haproxy.cfg");
    writeFileSync(
      config,
      readFileSync(join(REPO, "contrib", "haproxy.cfg"), "utf8")
        .replaceAll("/run/haproxy/admin.sock", socket)
        .replace("bind :8001", "bind 10.99.40.1:8001")
        .replace("bind :8002", "bind 10.99.40.1:8002")
        .replaceAll("10.0.0.11", "10.99.40.11")
        .replaceAll("10.0.0.12", "10.99.40.12"),
    );
    const haproxy = collect(lab.spawn("proxy", ["haproxy", "-db", "-f", config]));

    lab.spawn(
      "origin",
      agentCommand(runtime, ["-a", "239.0.0.1:27999", "--ready", "30", "--busy", "10"]),
    );

    // The drop-in's ExecStart, with this build for /usr/local/bin/heartbeat and the lab's socket.
    const execStart = setting(dropIn, "ExecStart")!.split(/\s+/);
    assert.equal(execStart[0], "/usr/local/bin/heartbeat");
    const args = execStart.slice(1).map((arg) => arg === "/run/haproxy/admin.sock" ? socket : arg);
    // A home the service user may write, for Deno's cache; the unit's own has none either.
    const home = mkdtempSync(join(tmpdir(), "heartbeat-service-home-"));
    scratch.push(home);
    chownSync(home, SERVICE_UID, SERVICE_UID);
    const privateUsers = setting(unit, "PrivateUsers") === "yes"
      ? ["unshare", "--user", "--map-current-user", "--"]
      : [];
    const monitorProcess = lab.spawn("proxy", [
      "setpriv",
      `--reuid=${SERVICE_UID}`,
      `--regid=${SERVICE_UID}`,
      `--groups=${groups}`,
      "--",
      ...privateUsers,
      ...agentCommand(runtime, args),
    ], { env: { HOME: home, DENO_DIR: join(home, "deno") } });
    const monitor = collect(monitorProcess);

    const state = () => {
      const answer = spawnSync("ip", [
        "netns",
        "exec",
        lab!.ns("proxy"),
        "socat",
        "-",
        `UNIX-CONNECT:${socket}`,
      ], { input: "show servers state pushed\n", encoding: "utf8" });
      return Object.fromEntries(
        parseServersState(answer.stdout).map((server) => [server.name, server.weight]),
      );
    };
    const deadline = Date.now() + 20_000;
    let seen: Record<string, number> = {};
    while (Date.now() < deadline && seen.o1 !== 256) {
      await new Promise((resolve) => setTimeout(resolve, 200));
      seen = state();
    }
    const logs = `monitor:\n${monitor().stderr}\nhaproxy:\n${haproxy().stderr}`;
    assert.equal(seen.o1, 256, `o1's weight, set by the monitor: ${JSON.stringify(seen)}\n${logs}`);
    assert.doesNotMatch(monitor().stderr, /EACCES|permission denied/i, logs);

    // It was the unit's user that did it: its uid, and HAProxy's group among its groups.
    const status = readFileSync(`/proc/${monitorProcess.pid}/status`, "utf8");
    assert.match(status, new RegExp(`^Uid:\\s+${SERVICE_UID}\\s`, "m"));
    const gid = group.stdout.split(":")[2];
    assert.match(status, new RegExp(`^Groups:.*\\b${gid}\\b`, "m"), status);
  },
);

test("haproxy-unit: the monitor's unit with its HAProxy drop-in passes systemd-analyze verify", {
  skip: requiredOrSkipped(
    commandAvailable("systemd-analyze")
      ? undefined
      : "systemd-analyze is not installed (apt-get install systemd)",
  ),
}, () => {
  // verify reads drop-ins from the folder beside the unit, and checks ExecStart's program exists.
  const units = mkdtempSync(join(tmpdir(), "heartbeat-units-"));
  scratch.push(units);
  const binary = "/usr/local/bin/heartbeat";
  writeFileSync(join(units, "heartbeat-monitor.service"), unit.replaceAll(binary, "/bin/true"));
  const dropIns = join(units, "heartbeat-monitor.service.d");
  mkdirSync(dropIns);
  writeFileSync(join(dropIns, "haproxy.conf"), dropIn.replaceAll(binary, "/bin/nonexistent"));
  // The drop-in is read: its ExecStart names a program that is not there.
  const broken = spawnSync(
    "systemd-analyze",
    ["verify", join(units, "heartbeat-monitor.service")],
    {
      encoding: "utf8",
    },
  );
  assert.match(broken.stdout + broken.stderr, /\/bin\/nonexistent/);
  writeFileSync(join(dropIns, "haproxy.conf"), dropIn.replaceAll(binary, "/bin/true"));
  const verify = spawnSync(
    "systemd-analyze",
    ["verify", join(units, "heartbeat-monitor.service")],
    {
      encoding: "utf8",
    },
  );
  assert.deepEqual([verify.status, verify.stdout + verify.stderr], [0, ""]);
});
