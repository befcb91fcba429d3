/**
 * The agent as users run it (`deno run -A src/main.ts`, `bun src/main.ts`), in a private
 * namespace: exit statuses, signals, and what it logs when the network is missing.
 *
 *   host   eth0 10.99.3.1 ── eth0 10.99.3.2  peer (listener on 27999)
 *   lonely (loopback only)
 */
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, test } from "node:test";
import { sigusr1In } from "../../src/inspector-guard.ts";
import { drainSignals } from "../../src/signals.ts";
import { sign } from "../../src/signing.ts";
import {
  agentCommand,
  collect,
  commandAvailable,
  Lab,
  runtimeCommand,
  stop,
  waitFor,
} from "../../scripts/lab/lab.ts";
import { REPO } from "../../scripts/repo.ts";
import { currentRuntime, skipUnlessLab } from "../support/lab.ts";
import { listenProbe } from "../support/listen.ts";
import { skipUnlessCgroupV1, V1Cgroup } from "../support/cgroups.ts";
import type { Probe } from "../support/send-probe.ts";

const skip = skipUnlessLab();
const runtime = currentRuntime();

let lab: Lab | undefined;
function network(): Lab {
  if (lab) return lab;
  lab = new Lab();
  for (const name of ["host", "peer", "lonely"]) lab.addNamespace(name);
  lab.link({ ns: "host", dev: "eth0", cidr: "10.99.3.1/24", cidr6: "fd00:99:3::1/64" }, {
    ns: "peer",
    dev: "eth0",
    cidr: "10.99.3.2/24",
    cidr6: "fd00:99:3::2/64",
  });
  lab.sh("host", "ip route add 224.0.0.0/4 dev eth0");
  lab.sh("peer", "ip route add 224.0.0.0/4 dev eth0");
  return lab;
}
after(() => lab?.close());

test(`e2e ${runtime}: --once exits 0 when the heartbeat was sent`, { skip }, async () => {
  const result = await network().run(
    "host",
    agentCommand(runtime, ["-a", "239.0.0.1:27999", "--ready", "3", "--once"]),
  );
  assert.equal(result.code, 0, result.stderr);
  assert.match(result.stderr, /^\S+ info {2}sent v=1&ready=3&busy=0 to 239\.0\.0\.1:27999\n$/);
});

test(
  `e2e ${runtime}: --once exits 1 with one warning when there is no route`,
  { skip },
  async () => {
    const result = await network().run(
      "lonely",
      agentCommand(runtime, ["-a", "239.0.0.1:27999", "--ready", "3", "--once"]),
    );
    assert.equal(result.code, 1);
    const lines = result.stderr.trim().split("\n");
    assert.equal(lines.length, 1, result.stderr);
    assert.match(
      lines[0],
      /^\d{4}-\d\d-\d\dT\S+Z warn {2}send 239\.0\.0\.1:27999 failed: .*(unreachable|UNKNOWN)/i,
    );
  },
);

test(`e2e ${runtime}: a wrong --interface is a usage error, exit 2`, { skip }, async () => {
  const result = await network().run(
    "host",
    agentCommand(runtime, [
      "-a",
      "239.0.0.1:27999",
      "--ready",
      "3",
      "--interface",
      "10.1.2.3",
      "--once",
    ]),
  );
  assert.equal(result.code, 2);
  assert.match(
    result.stderr,
    /^heartbeat: --interface '10\.1\.2\.3': no local interface has this address\n/,
  );
});

test(
  `e2e ${runtime}: SIGTERM and SIGINT send ready=0 to every destination, then exit 0`,
  { skip },
  async () => {
    const lab = network();
    const listener = await listenProbe(lab, "peer", runtime, { port: 27999, group: "239.0.0.1" });
    for (const signal of ["SIGTERM", "SIGINT"] as const) {
      const agent = lab.spawn(
        "host",
        agentCommand(runtime, [
          "-a",
          "239.0.0.1:27999",
          "--ready",
          "4",
          "--busy",
          "1",
          "--interval",
          "0.2",
        ]),
      );
      const output = collect(agent);
      const count = (payload = "ready=4&busy=1") => listener.count(payload);
      const before = count();
      await waitFor(() => count() >= before + 3, 10_000, "three heartbeats");
      // `ip netns exec` execs the agent in place, so its pid is the agent's. process.kill, not
      // agent.kill: Deno's ChildProcess.kill() reports the signal as the cause of exit even when
      // the process handled it and exited 0.
      const exited = new Promise<number | null>((resolve) => agent.once("exit", resolve));
      const farewells = count("ready=0&busy=1");
      process.kill(agent.pid!, signal);
      assert.equal(await exited, 0, output().stderr);
      assert.match(
        output().stderr,
        new RegExp(
          `info  stopping on ${signal}: telling the proxies ready=0\\n.*info  stopped\\n$`,
        ),
      );
      await waitFor(
        () => count("ready=0&busy=1") === farewells + 1,
        5_000,
        "the farewell heartbeat",
      );
      assert.doesNotMatch(output().stderr, /warn|error/);
    }
    await stop(listener.child);
  },
);

test(
  `e2e ${runtime}: with no source to be found, auto exits 2 and lists the choices`,
  { skip },
  async () => {
    const result = await network().run("lonely", agentCommand(runtime, ["-a", "239.0.0.1:27999"]));
    assert.equal(result.code, 2);
    assert.match(
      result.stderr,
      /^heartbeat: no load source found \(tried apache http:\/\/127\.0\.0\.1\/server-status\?auto: connection refused \(ECONNREFUSED\); php-fpm tcp:\/\/127\.0\.0\.1:9000\/status: connection refused \(ECONNREFUSED\): is php-fpm running, with a pool that listens there\?; nginx, tcp: need --capacity N\)\. Choose one with --source: static --ready N, apache/,
    );
  },
);

test(
  `e2e ${runtime}: -t says Syntax OK, or lists each error as FILE:LINE and exits 2`,
  { skip },
  async () => {
    const lab = network();
    const good = join(lab.dir, "good.conf");
    const bad = join(lab.dir, "bad.conf");
    // -t checks what a start would: with no source found here, the address alone is not enough.
    writeFileSync(
      good,
      "<IfModule mod_heartbeat.c>\n  HeartbeatAddress 239.0.0.1:27999\n  HeartbeatReady 4\n</IfModule>\n",
    );
    const sourceless = join(lab.dir, "sourceless.conf");
    writeFileSync(sourceless, "HeartbeatAddress 239.0.0.1:27999\n");
    const unstartable = await lab.run("lonely", agentCommand(runtime, ["-t", "-f", sourceless]));
    assert.equal(unstartable.code, 2);
    assert.match(unstartable.stderr, /^no load source found \(tried apache http:/);
    writeFileSync(bad, "HeartbeatAddress 239.0.0.1\nHeartbeatTTL 300\n<IfModule x>\n");
    const ok = await lab.run("lonely", agentCommand(runtime, ["-t", "-f", good]));
    assert.deepEqual([ok.code, ok.stdout, ok.stderr], [0, "Syntax OK\n", ""]);
    const broken = await lab.run(
      "lonely",
      agentCommand(runtime, ["--test-config", "--config", bad]),
    );
    assert.equal(broken.code, 2);
    assert.equal(
      broken.stderr,
      [
        `${bad}:1: HeartbeatAddress: No port provided in address`,
        `${bad}:2: HeartbeatTTL: give a whole number from 0 to 255`,
        `${bad}:3: <IfModule> was not closed.`,
        "",
      ].join("\n"),
    );
  },
);

test(
  `e2e ${runtime}: --print-config shows each setting and where it came from`,
  { skip },
  async () => {
    const lab = network();
    const conf = join(lab.dir, "print.conf");
    writeFileSync(
      conf,
      "HeartbeatAddress 239.0.0.1:27999\nHeartbeatTTL 2\nHeartbeatSource static\nHeartbeatSource apache:http://127.0.0.1:8080/server-status?auto\nHeartbeatSmooth 2\n",
    );
    const result = await lab.run(
      "lonely",
      agentCommand(runtime, ["-f", conf, "--print-config", "--ready", "4"]),
      { env: { HEARTBEAT_PORT: "8080" } },
    );
    assert.equal(result.code, 0, result.stderr);
    assert.match(
      result.stdout,
      new RegExp(
        `^HeartbeatAddress +239\\.0\\.0\\.1:27999 +${conf.replace(/[.]/g, "\\.")}:1$`,
        "m",
      ),
    );
    assert.match(result.stdout, /^HeartbeatPort +8080 +HEARTBEAT_PORT$/m);
    assert.match(result.stdout, /^HeartbeatReady +4 +--ready$/m);
    assert.match(result.stdout, /^HeartbeatInterval +1 +default$/m);
    const at = (line: number) => `${conf.replace(/[.]/g, "\\.")}:${line}`;
    assert.match(
      result.stdout,
      new RegExp(
        `^HeartbeatSource +static, apache:http://127\\.0\\.0\\.1:8080/server-status\\?auto +${
          at(3)
        }, ${at(4)}$`,
        "m",
      ),
    );
    assert.match(result.stdout, new RegExp(`^HeartbeatSmooth +2 +${at(5)}$`, "m"));
  },
);

test(`e2e ${runtime}: SIGHUP rereads the config; a broken one is logged and the running one kept`, {
  skip,
}, async () => {
  const lab = network();
  const conf = join(lab.dir, "reload.conf");
  const config = (ready: string, address = "239.0.0.1:27998") =>
    writeFileSync(
      conf,
      `HeartbeatAddress ${address}\nHeartbeatSource static\nHeartbeatReady ${ready}\nHeartbeatInterval 0.2\n`,
    );
  const listener = await listenProbe(lab, "peer", runtime, { port: 27998, group: "239.0.0.1" });
  const count = (ready: number) => listener.count(`"v=1&ready=${ready}&busy=0"`);

  config("5");
  const agent = lab.spawn("host", agentCommand(runtime, ["-f", conf]));
  const output = collect(agent);
  await waitFor(() => count(5) >= 2, 10_000, "heartbeats with ready=5");

  config("9");
  process.kill(agent.pid!, "SIGHUP");
  await waitFor(() => count(9) >= 2, 10_000, "heartbeats with ready=9 after SIGHUP");

  config("7", "239.0.0.1");
  process.kill(agent.pid!, "SIGHUP");
  await waitFor(
    () => output().stderr.includes("reload failed"),
    10_000,
    "the failed reload to be logged",
  );
  const before = count(9);
  await waitFor(() => count(9) >= before + 2, 10_000, "heartbeats with ready=9 to go on");
  assert.equal(count(7), 0);
  assert.match(
    output().stderr,
    new RegExp(
      `error reload: ${
        conf.replace(/[.]/g, "\\.")
      }:1: HeartbeatAddress: No port provided in address\n.*error reload failed: the running configuration is kept\n`,
    ),
  );

  const exited = new Promise<number | null>((resolve) => agent.once("exit", resolve));
  process.kill(agent.pid!, "SIGTERM");
  assert.equal(await exited, 0, output().stderr);
  await stop(listener.child);
});

test(
  `e2e ${runtime}: drain by signal and by file, and SIGTERM, show in the monitor's storage within an interval`,
  { skip },
  async () => {
    const lab = network();
    const storage = join(lab.dir, "drain-hb.dat");
    const drainFile = join(lab.dir, "drain-now");
    const monitor = lab.spawn(
      "peer",
      agentCommand(runtime, ["monitor", "--listen", "239.0.0.1:27996", "--storage", storage]),
    );
    const monitorLog = collect(monitor);
    await waitFor(() => monitorLog().stderr.includes("listening on"), 10_000, "the monitor");
    const agent = lab.spawn(
      "host",
      agentCommand(runtime, [
        "-a",
        "239.0.0.1:27996",
        "--ready",
        "12",
        "--busy",
        "3",
        "--interval",
        "0.5",
        "--drain-file",
        drainFile,
        // After a drain, ready ramps up again over this: short, for the test.
        "--ramp-up",
        "0.5",
      ]),
    );
    const agentLog = collect(agent);
    const line = () => {
      try {
        return readFileSync(storage, "utf8").split("\n").find((text) =>
          text.startsWith("10.99.3.1 ")
        ) ?? "";
      } catch {
        return "";
      }
    };
    const advertises = async (ready: number, what: string) => {
      const started = Date.now();
      await waitFor(
        () => line().startsWith(`10.99.3.1 &ready=${ready}&busy=3&`),
        5_000,
        `${what}: ${line()}\n${agentLog().stderr}`,
      );
      return Date.now() - started;
    };
    await advertises(12, "first heartbeats");
    const { drain, undrain } = drainSignals(runtime);
    for (const [on, off] of drain.map((signal, i) => [signal, undrain[i]] as const)) {
      process.kill(agent.pid!, on);
      // One interval (0.5 s) for the next heartbeat, and up to a second for the monitor's next write.
      assert.ok(await advertises(0, `${on} drains`) < 1600);
      process.kill(agent.pid!, off);
      await advertises(12, `${off} resumes`);
    }
    writeFileSync(drainFile, "");
    assert.ok(await advertises(0, "the drain file drains") < 1600);
    rmSync(drainFile);
    await advertises(12, "removing it resumes");
    const exited = new Promise<number | null>((resolve) => agent.once("exit", resolve));
    process.kill(agent.pid!, "SIGTERM");
    assert.equal(await exited, 0);
    assert.ok(await advertises(0, "SIGTERM's farewell") < 1600);
    assert.match(
      agentLog().stderr,
      new RegExp(
        `${drain[0]}: drain requested\\n.*draining: advertising ready=0 \\(signal\\)`,
        "s",
      ),
    );
    await stop(monitor);
  },
);

test(`e2e ${runtime}: no signal opens a debugger; stray ones stop neither agent nor monitor`, {
  skip,
}, async () => {
  const lab = network();
  const monitor = lab.spawn(
    "peer",
    agentCommand(runtime, ["monitor", "--listen", "239.0.0.1:27993"]),
  );
  const monitorLog = collect(monitor);
  const agent = lab.spawn(
    "host",
    agentCommand(runtime, ["-a", "239.0.0.1:27993", "--ready", "2", "--interval", "0.2"]),
  );
  const agentLog = collect(agent);
  await waitFor(
    () => monitorLog().stderr.includes("listening on") && agentLog().stderr.includes("sending"),
    10_000,
    "agent and monitor",
  );
  // Deno installs its SIGUSR1 inspector trigger 500 ms after start: wait past it.
  await new Promise((resolve) => setTimeout(resolve, 1500));
  for (const signal of ["SIGUSR1", "SIGUSR2", "SIGTTOU", "SIGTTIN", "SIGHUP"] as const) {
    process.kill(agent.pid!, signal);
    process.kill(monitor.pid!, signal);
  }
  await new Promise((resolve) => setTimeout(resolve, 1000));
  for (const ns of ["host", "peer"]) {
    assert.equal(lab.sh(ns, "ss -Htln"), "", `a TCP port is open in ${ns}`);
  }
  assert.doesNotMatch(agentLog().stderr + monitorLog().stderr, /Debugger|inspect/i);
  assert.match(monitorLog().stderr, /SIGUSR2: the monitor does not drain; ignored/);
  // process.kill, not stop(): Deno's ChildProcess reports a handled SIGTERM as the cause of exit.
  for (const [child, log] of [[agent, agentLog], [monitor, monitorLog]] as const) {
    const exited = new Promise<number | null>((resolve) => child.once("exit", resolve));
    process.kill(child.pid!, "SIGTERM");
    assert.equal(await exited, 0, log().stderr);
  }
});

/** Process `pid`'s /proc status ("" once it is gone). */
function procStatus(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/status`, "utf8");
  } catch {
    return "";
  }
}

/** The TCP ports listened on in namespace `ns`, but `expected`. */
function unexpectedListeners(lab: Lab, ns: string, expected: string[] = []): string[] {
  return lab.sh(ns, "ss -Htln").split("\n").filter((line) =>
    line && !expected.some((port) => line.includes(`:${port} `))
  );
}

test(`e2e ${runtime}: SIGUSR1 the instant a handler for it appears opens no debugger`, {
  skip,
}, async () => {
  const lab = network();
  const agent = lab.spawn(
    "host",
    agentCommand(runtime, ["-a", "239.0.0.1:27993", "--ready", "2", "--interval", "0.2"]),
  );
  const agentLog = collect(agent);
  // Watched without a pause: the signal follows the handler (Deno's inspector trigger, 500 ms
  // after start, or ours) within microseconds, where a guard polling every 25 ms would be late.
  const deadline = Date.now() + 15_000;
  let status = "";
  while (Date.now() < deadline && agent.exitCode === null) {
    status = procStatus(agent.pid!);
    if (sigusr1In(status, "SigCgt")) break;
  }
  assert.ok(sigusr1In(status, "SigCgt"), `no SIGUSR1 handler appeared: ${agentLog().stderr}`);
  if (runtime === "deno" && !process.env.HEARTBEAT_BINARY) {
    assert.ok(sigusr1In(status, "SigBlk"), "Deno's handler is there and SIGUSR1 is not blocked");
  }
  process.kill(agent.pid!, "SIGUSR1");
  await new Promise((resolve) => setTimeout(resolve, 1500));
  assert.deepEqual(unexpectedListeners(lab, "host"), [], "a TCP port is open");
  assert.doesNotMatch(agentLog().stderr, /Debugger|inspect/i);
  const exited = new Promise<number | null>((resolve) => agent.once("exit", resolve));
  process.kill(agent.pid!, "SIGTERM");
  assert.equal(await exited, 0, agentLog().stderr);
});

test(
  `e2e ${runtime}: SIGUSR1 during a slow start opens no debugger, and stops nothing`,
  { skip },
  async () => {
    const lab = network();
    // auto probes Apache's and nginx's status pages at 127.0.0.1:80, 1 s each: a server that never
    // answers makes a start of over 2 s.
    const server = lab.spawn(
      "host",
      runtimeCommand(runtime, "test/support/silent-server.ts", ["80"]),
    );
    const serverOutput = collect(server);
    await waitFor(() => serverOutput().stdout.includes("listening"), 10_000, "the silent server");
    const agent = lab.spawn(
      "host",
      agentCommand(runtime, ["-a", "239.0.0.1:27993", "--capacity", "10", "--interval", "0.2"]),
    );
    const agentLog = collect(agent);
    try {
      for (const atMs of [1000, 1600]) {
        await new Promise((resolve) => setTimeout(resolve, atMs === 1000 ? 1000 : 600));
        assert.doesNotMatch(agentLog().stderr, /sending tcp/, "the start was not slow");
        if (agent.exitCode === null && agent.signalCode === null) {
          process.kill(
            agent.pid!,
            "SIGUSR1",
          );
        }
      }
      await new Promise((resolve) => setTimeout(resolve, 1500));
      assert.deepEqual(unexpectedListeners(lab, "host", ["80"]), [], "a TCP port is open");
      assert.doesNotMatch(agentLog().stderr, /Debugger|inspect/i);
      if (runtime === "deno" && !process.env.HEARTBEAT_BINARY) {
        // Deno runs heartbeat with SIGUSR1 blocked: the signals wait, unseen, and the start goes on.
        await waitFor(() => agentLog().stderr.includes("sending tcp"), 10_000, "the start");
        assert.ok(sigusr1In(procStatus(agent.pid!), "SigBlk"), "SIGUSR1 is not blocked");
        const exited = new Promise<number | null>((resolve) => agent.once("exit", resolve));
        process.kill(agent.pid!, "SIGTERM");
        assert.equal(await exited, 0, agentLog().stderr);
      } else {
        // On Bun and the binary SIGUSR1 drains: sent during the start, it waits for the agent, which
        // then drains, rather than ending the process as its default action would.
        await waitFor(() => agentLog().stderr.includes("sending tcp"), 10_000, "the start");
        await waitFor(
          () => agentLog().stderr.includes("SIGUSR1: drain requested"),
          5_000,
          `the drain: ${agentLog().stderr}`,
        );
        assert.equal(agent.signalCode, null, agentLog().stderr);
        const exited = new Promise<number | null>((resolve) => agent.once("exit", resolve));
        process.kill(agent.pid!, "SIGTERM");
        assert.equal(await exited, 0, agentLog().stderr);
      }
    } finally {
      await Promise.all([stop(agent), stop(server)]);
    }
  },
);

test(
  `e2e ${runtime}: a log reader that goes away stops nothing: heartbeats go on, and the farewell`,
  {
    skip,
  },
  async () => {
    const lab = network();
    const listener = await listenProbe(lab, "peer", runtime, { port: 27992, group: "239.0.0.1" });
    const agent = lab.spawn(
      "host",
      agentCommand(runtime, ["-a", "239.0.0.1:27992", "--ready", "6", "-v", "--interval", "0.05"]),
    );
    const count = (payload: string) => listener.count(payload);
    await waitFor(() => count("ready=6&busy=0") >= 3, 10_000, "heartbeats");
    // The reader of the agent's log (every heartbeat, with -v) goes away.
    agent.stderr!.destroy();
    const before = count("ready=6&busy=0");
    await waitFor(
      () => count("ready=6&busy=0") >= before + 10,
      10_000,
      "heartbeats after the log's reader left",
    );
    const exited = new Promise<number | null>((resolve) => agent.once("exit", resolve));
    process.kill(agent.pid!, "SIGTERM");
    assert.equal(await exited, 0);
    await waitFor(() => count("ready=0&busy=0") >= 1, 5_000, "the farewell");
    await stop(listener.child);
  },
);

test(
  `e2e ${runtime}: sources that stalled it: a named pipe for a while, and a command leaving a child behind`,
  {
    skip,
  },
  async () => {
    const lab = network();
    const listener = await listenProbe(lab, "peer", runtime, { port: 27991, group: "239.0.0.1" });
    const count = (payload: string) => listener.count(payload);
    const load = join(lab.dir, "load");
    execFileSync("mkfifo", [load]);
    const agent = lab.spawn(
      "host",
      agentCommand(runtime, [
        "-a",
        "239.0.0.1:27991",
        "--source",
        `file:${load}`,
        "--interval",
        "0.1",
      ]),
    );
    const log = collect(agent);
    await waitFor(
      () => log().stderr.includes("is not a regular file"),
      10_000,
      `the FIFO refused: ${log().stderr}`,
    );
    rmSync(load);
    writeFileSync(load, "ready=4&busy=2\n");
    await waitFor(
      () => count("ready=4&busy=2") >= 3,
      10_000,
      `heartbeats once the path is a file again: ${log().stderr}`,
    );
    await stop(agent);
    const exec = lab.spawn(
      "host",
      agentCommand(runtime, [
        "-a",
        "239.0.0.1:27991",
        "--source",
        "exec:sleep 60 & echo ready=5\\&busy=1",
        "--interval",
        "0.2",
      ]),
    );
    await waitFor(
      () => count("ready=5&busy=1") >= 3,
      10_000,
      "heartbeats from a command that leaves a child",
    );
    await stop(exec);
    await stop(listener.child);
  },
);

test(
  `e2e ${runtime}: the agent's /healthz turns 503 when its source fails and 200 when it recovers`,
  {
    skip,
  },
  async () => {
    const lab = network();
    const load = join(lab.dir, "healthz-load");
    const agent = lab.spawn(
      "host",
      agentCommand(runtime, [
        "-a",
        "239.0.0.1:27990",
        "--source",
        `file:${load}`,
        "--interval",
        "0.2",
        "--http",
        "10.99.3.1:9101",
      ]),
    );
    const log = collect(agent);
    await waitFor(
      () => log().stderr.includes("the status page, /healthz and /metrics on"),
      10_000,
      `the agent's HTTP side: ${log().stderr}`,
    );
    const healthz = async () => {
      const result = await lab.run("peer", [
        "curl",
        "-s",
        "-w",
        "\n%{http_code}",
        "http://10.99.3.1:9101/healthz",
      ]);
      const [body, code] = result.stdout.split(/\n(?=\d+$)/);
      return `${code} ${body.trim()}`;
    };
    let answer = "";
    for (let i = 0; i < 30 && !answer.startsWith("503"); i++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      answer = await healthz();
    }
    assert.match(answer, /^503 no data: .*no such file or directory \(ENOENT\)$/);
    writeFileSync(load, "ready=3&busy=1\n");
    for (let i = 0; i < 30 && !answer.startsWith("200"); i++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      answer = await healthz();
    }
    assert.equal(answer, "200 ok");
    const metrics = await lab.run("peer", ["curl", "-s", "http://10.99.3.1:9101/metrics"]);
    assert.match(metrics.stdout, /^heartbeat_ready 3$/m);
    await stop(agent);
  },
);

/** The `ready=N&busy=M` of each heartbeat an agent in --dry-run printed so far. */
function printedHeartbeats(stdout: string): string[] {
  return stdout.split("\n").filter(Boolean).map((line) => line.split(" v=1&")[1]);
}

test(
  `e2e ${runtime}: two sources, each in turn the tight one; each one's reading in /metrics`,
  { skip },
  async () => {
    const lab = network();
    const load = join(lab.dir, "second-source-load");
    // Written whole and renamed over, as the file source asks: never read half written.
    const write = (text: string) => {
      writeFileSync(`${load}.new`, text);
      renameSync(`${load}.new`, load);
    };
    write("ready=1&busy=1\n");
    const agent = lab.spawn(
      "host",
      agentCommand(runtime, [
        "-a",
        "239.0.0.1:27990",
        "--ready",
        "40",
        "--busy",
        "10",
        "--interval",
        "0.2",
        "--dry-run",
        "--http",
        "10.99.3.1:9102",
      ]),
      { env: { HEARTBEAT_SOURCE: `static, file:${load}` } },
    );
    const output = collect(agent);
    const latest = () => printedHeartbeats(output().stdout).at(-1);
    const settles = async (expected: string, what: string) => {
      const start = printedHeartbeats(output().stdout).length;
      // Two in a row that say it, after the file changed: the one under way may be the old one.
      await waitFor(
        () =>
          printedHeartbeats(output().stdout).slice(start).slice(-2).join() ===
            `${expected},${expected}`,
        10_000,
        `${what}: ${expected}, last ${latest()}\n${output().stderr}`,
      );
    };
    // The file's 50 % free is tighter than static's 80 %: half of static's 50 slots.
    await settles("ready=25&busy=25", "the file the tight one");
    assert.match(
      output().stderr,
      new RegExp(
        `sending the tightest of \\(static ready=40 busy=10\\) and \\(file ${load}\\) to 239\\.0\\.0\\.1:27990 `,
      ),
    );
    const metrics = async () =>
      (await lab.run("peer", ["curl", "-s", "http://10.99.3.1:9102/metrics"])).stdout;
    const file = `file:${load}`;
    assert.match(
      await metrics(),
      new RegExp(`^heartbeat_source_free_ratio\\{source="${file}"\\} 0\\.5$`, "m"),
    );

    write("ready=9&busy=1\n");
    await settles("ready=40&busy=10", "static the tight one");
    const text = await metrics();
    for (
      const line of [
        'heartbeat_source_ready{source="static"} 40',
        'heartbeat_source_busy{source="static"} 10',
        'heartbeat_source_free_ratio{source="static"} 0.8',
        `heartbeat_source_up{source="${file}"} 1`,
        `heartbeat_source_ready{source="${file}"} 9`,
        `heartbeat_source_busy{source="${file}"} 1`,
        `heartbeat_source_free_ratio{source="${file}"} 0.9`,
        "heartbeat_ready 40",
      ]
    ) assert.ok(text.split("\n").includes(line), `${line} in\n${text}`);

    write("ready=0&busy=4\n");
    await settles("ready=0&busy=50", "nothing free in the file");
    // One source without an answer: no heartbeat, and /metrics says which.
    write("nonsense\n");
    await waitFor(
      () => output().stderr.includes(`no heartbeat sent: the tightest of`),
      10_000,
      `the failure logged: ${output().stderr}`,
    );
    assert.match(
      output().stderr,
      new RegExp(`no heartbeat sent: the tightest of .*: file:${load}: expected ready=N&busy=M`),
    );
    assert.match(await metrics(), new RegExp(`^heartbeat_source_up\\{source="${file}"\\} 0$`, "m"));
    await stop(agent);
  },
);

test(
  `e2e ${runtime}: --smooth: a step in a source's free share shows gradually, 63 % of it in the time constant`,
  { skip },
  async () => {
    const lab = network();
    const load = join(lab.dir, "smoothed-load");
    writeFileSync(load, "ready=0&busy=100\n");
    const agent = lab.spawn(
      "host",
      agentCommand(runtime, [
        "-a",
        "239.0.0.1:27990",
        "--source",
        `file:${load}`,
        "--smooth",
        "1",
        "--interval",
        "0.1",
        "--dry-run",
      ]),
    );
    const output = collect(agent);
    const readies = () =>
      printedHeartbeats(output().stdout).map((heartbeat) =>
        Number(/ready=(\d+)/.exec(heartbeat)![1])
      );
    await waitFor(() => readies().length >= 3, 10_000, `heartbeats: ${output().stderr}`);
    assert.match(output().stderr, new RegExp(`sending file ${load}, smoothed over 1 s to `));
    assert.deepEqual(new Set(readies()), new Set([0]));
    const before = readies().length;
    const stepped = Date.now();
    writeFileSync(load, "ready=100&busy=0\n");
    await waitFor(() => readies().at(-1)! >= 95, 10_000, `ready 95: ${readies()}`);
    const took = Date.now() - stepped;
    // 95 % takes three time constants, 3 s; unsmoothed it would be the next heartbeat.
    assert.ok(took >= 2500 && took < 6000, `95 % after ${took} ms: ${readies().slice(before)}`);
    const climb = readies().slice(before).filter((ready) => ready > 0 && ready < 95);
    assert.ok(climb.length >= 10, `a gradual climb: ${readies().slice(before)}`);
    for (let i = 1; i < climb.length; i++) assert.ok(climb[i] >= climb[i - 1], `${climb}`);
    await stop(agent);
  },
);

test(
  `e2e ${runtime}: static and cpu at once: static's numbers while the CPU is idle, cpu's once its quota is used, smoothed over cpu's 3 s`,
  { skip: skip || skipUnlessCgroupV1(), timeout: 90_000 },
  async () => {
    const cgroup = new V1Cgroup(0.5);
    // In a network namespace of its own, though it only prints; not by `ip netns exec`, which
    // mounts a /sys of its own, without the cgroup hierarchies.
    const agent = spawn("unshare", [
      "--net",
      ...agentCommand(runtime, [
        ...["-a", "239.0.0.1:27990", "--dry-run"],
        ...["--source", "static", "--ready", "90", "--busy", "10"],
        ...["--source", `cpu:${cgroup.cpu}`, "--capacity", "1000"],
      ]),
    ], { cwd: REPO, stdio: ["ignore", "pipe", "pipe"] });
    const output = collect(agent);
    const heartbeats = () => printedHeartbeats(output().stdout);
    try {
      await waitFor(() => heartbeats().length >= 2, 30_000, `heartbeats: ${output().stderr}`);
      assert.match(
        output().stderr,
        /sending the tightest of \(static ready=90 busy=10\) and \(cpu of .* \(quota 0\.5 CPU, cgroup v1\), smoothed over 3 s\)/,
      );
      // Idle (under 30 % of its CPU used), cpu's share is over 1 − 1/4 × 0.3 = 92.5 %, more than
      // static's 90 %: static's own numbers.
      assert.equal(heartbeats().at(-1), "ready=90&busy=10");
      const before = heartbeats().length;
      cgroup.busy(1, 40);
      // The half CPU used up, at least 90 % of it: cpu's share is at most 1 − 1/4 × 0.9 = 77.5 %
      // (a fully used CPU keeps 75 %), so ready = floor(100 × that) is 75 to 77.
      await waitFor(
        () =>
          heartbeats().slice(before).some((heartbeat) =>
            /^ready=7[5-7]&busy=2[3-5]$/.test(heartbeat)
          ),
        20_000,
        `cpu's share: ${heartbeats().slice(before)}`,
      );
      const busy = heartbeats().slice(before);
      // Smoothed: it came down over several heartbeats, not in one step.
      assert.ok(
        busy.filter((heartbeat) => !/^ready=(90|7[5-7])&/.test(heartbeat)).length >= 2,
        `a gradual fall: ${busy}`,
      );
      await cgroup.idle();
      const busyUntil = heartbeats().length;
      await waitFor(
        () => heartbeats().slice(busyUntil).includes("ready=90&busy=10"),
        20_000,
        `static's numbers again: ${heartbeats().slice(busyUntil)}`,
      );
    } finally {
      await stop(agent);
      await cgroup.remove();
    }
  },
);

test(
  `e2e ${runtime}: with --key-file, the monitor takes signed heartbeats and rejects unsigned, forged and replayed ones`,
  { skip },
  async () => {
    const lab = network();
    const keyFile = join(lab.dir, "key");
    const otherKey = join(lab.dir, "other-key");
    writeFileSync(keyFile, "0123456789abcdef0123456789abcdef\n", { mode: 0o600 });
    writeFileSync(otherKey, "fedcba9876543210fedcba9876543210\n", { mode: 0o600 });
    const monitor = lab.spawn(
      "peer",
      agentCommand(runtime, [
        "monitor",
        "--listen",
        "239.0.0.1:27995",
        "--http",
        "10.99.3.2:8095",
        "--key-file",
        keyFile,
        "--print",
      ]),
    );
    const output = collect(monitor);
    await waitFor(
      () => output().stderr.includes("signed heartbeats only"),
      10_000,
      `the monitor: ${output().stderr}`,
    );
    // One signed in the second the monitor started is refused: it may be one taken before a restart.
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const send = (args: string[]) =>
      lab.run(
        "host",
        agentCommand(runtime, [
          "-a",
          "239.0.0.1:27995",
          "--ready",
          "5",
          "--busy",
          "1",
          "--once",
          ...args,
        ]),
      );
    assert.equal((await send(["--key-file", keyFile])).code, 0);
    await waitFor(
      () => output().stdout.includes("10.99.3.1 ready=5 busy=1"),
      5_000,
      "the signed heartbeat",
    );
    assert.equal((await send([])).code, 0);
    assert.equal((await send(["--key-file", otherKey])).code, 0);
    const replay: Probe = {
      adapter: "node",
      sessions: [{
        options: { ttl: 1, loopback: true },
        sends: [{
          host: "239.0.0.1",
          port: 27995,
          payload: sign(
            "v=1&ready=9&busy=9",
            Buffer.from("0123456789abcdef0123456789abcdef"),
            Math.floor(Date.now() / 1000) - 120,
          ),
        }],
      }],
    };
    assert.equal(
      (await lab.run(
        "host",
        runtimeCommand(runtime, "test/support/send-probe.ts", [JSON.stringify(replay)]),
      )).code,
      0,
    );
    await waitFor(
      () => /rejected.*replayed/.test(output().stderr),
      5_000,
      `rejections: ${output().stderr}`,
    );
    const metrics = await lab.run("host", ["curl", "-sS", "http://10.99.3.2:8095/metrics"]);
    for (const reason of ["unsigned", "forged", "replayed"]) {
      assert.match(
        metrics.stdout,
        new RegExp(`^heartbeat_messages_rejected_total\\{reason="${reason}"\\} 1$`, "m"),
        reason,
      );
    }
    assert.doesNotMatch(output().stdout, /ready=9/);
    assert.ok(!output().stderr.includes("0123456789abcdef"), "the key is never logged");
    await stop(monitor);
  },
);

test(
  `e2e ${runtime}: a signed heartbeat names the address each destination sees, IPv4 and IPv6, and again after the host is renumbered`,
  { skip },
  async () => {
    const lab = network();
    const keyFile = join(lab.dir, "key");
    writeFileSync(keyFile, "0123456789abcdef0123456789abcdef\n", { mode: 0o600 });
    const destinations = ["-a", "10.99.3.2:27989", "-a", "[fd00:99:3::2]:27989"];
    const dryRun = await lab.run(
      "host",
      agentCommand(runtime, [
        ...destinations,
        "--ready",
        "5",
        "--key-file",
        keyFile,
        "--dry-run",
        "--once",
      ]),
    );
    assert.deepEqual(
      dryRun.stdout.trim().split("\n").map((line) =>
        /^(\S+) .*&from=([^&]+)&/.exec(line)?.slice(1)
      ),
      [["10.99.3.2:27989", "10.99.3.1"], ["[fd00:99:3::2]:27989", "fd00:99:3::1"]],
      dryRun.stdout + dryRun.stderr,
    );
    const monitors = ["10.99.3.2:27989", "[fd00:99:3::2]:27989"].map((listen) =>
      collect(lab.spawn(
        "peer",
        agentCommand(runtime, ["monitor", "--listen", listen, "--key-file", keyFile, "--print"]),
      ))
    );
    for (const output of monitors) {
      await waitFor(() => output().stderr.includes("signed heartbeats only"), 10_000, "a monitor");
    }
    const agent = lab.spawn(
      "host",
      agentCommand(runtime, [...destinations, "--ready", "5", "--key-file", keyFile]),
    );
    const agentOutput = collect(agent);
    const heard = (output: () => { stdout: string }, from: string) => () =>
      output().stdout.includes(`${from} ready=5 busy=0`);
    const why = () => monitors.map((output) => output().stderr).join("") + agentOutput().stderr;
    await waitFor(heard(monitors[0], "10.99.3.1"), 10_000, `IPv4: ${why()}`);
    await waitFor(heard(monitors[1], "fd00:99:3::1"), 10_000, `IPv6: ${why()}`);
    assert.doesNotMatch(why(), /wrong-sender/);
    // Renumbered: the IPv4 monitor believes the new address within RELEARN_MS (10 s).
    // (Promoted, or deleting the first address of a subnet takes the others with it.)
    lab.sh(
      "host",
      "sysctl -qw net.ipv4.conf.eth0.promote_secondaries=1; ip addr add 10.99.3.5/24 dev eth0; ip addr del 10.99.3.1/24 dev eth0",
    );
    try {
      await waitFor(heard(monitors[0], "10.99.3.5"), 15_000, `renumbered: ${why()}`);
    } finally {
      lab.sh("host", "ip addr add 10.99.3.1/24 dev eth0; ip addr del 10.99.3.5/24 dev eth0");
      lab.sh("host", "ip route replace 224.0.0.0/4 dev eth0");
    }
    await stop(agent);
  },
);

test(
  `e2e ${runtime}: IPv6 multicast and unicast heartbeats reach the monitor`,
  { skip },
  async () => {
    const lab = network();
    const storage = {
      group: join(lab.dir, "v6-group.dat"),
      unicast: join(lab.dir, "v6-unicast.dat"),
    };
    const monitors = [
      lab.spawn(
        "peer",
        agentCommand(runtime, [
          "monitor",
          "--listen",
          "[ff02::1234%eth0]:27993",
          "--storage",
          storage.group,
        ]),
      ),
      lab.spawn(
        "peer",
        agentCommand(runtime, [
          "monitor",
          "--listen",
          "[fd00:99:3::2]:27994",
          "--storage",
          storage.unicast,
        ]),
      ),
    ];
    const logs = monitors.map((monitor) => collect(monitor));
    for (const log of logs) {
      await waitFor(
        () => log().stderr.includes("listening on"),
        10_000,
        `a monitor: ${log().stderr}`,
      );
    }
    const sent = await lab.run(
      "host",
      agentCommand(runtime, [
        "-a",
        "[ff02::1234%eth0]:27993",
        "-a",
        "[fd00:99:3::2]:27994",
        "--ready",
        "2",
        "--busy",
        "1",
        "--port",
        "8080",
        "--once",
      ]),
    );
    assert.equal(sent.code, 0, sent.stderr);
    assert.match(sent.stderr, /^\S+ info {2}sent [^\n]+\n$/, "one line saying what went where");
    const read = (file: string) => {
      try {
        return readFileSync(file, "utf8");
      } catch {
        return "";
      }
    };
    await waitFor(
      () => /^fe80:[0-9a-f:]+ &ready=2&busy=1&lastseen=\d+&port=8080$/m.test(read(storage.group)),
      5_000,
      `multicast: ${read(storage.group)} ${logs[0]().stderr}`,
    );
    await waitFor(
      () => /^fd00:99:3::1 &ready=2&busy=1&lastseen=\d+&port=8080$/m.test(read(storage.unicast)),
      5_000,
      `unicast: ${read(storage.unicast)} ${logs[1]().stderr}`,
    );
    await Promise.all(monitors.map((monitor) => stop(monitor)));
  },
);

test(
  `e2e ${runtime}: heartbeats POSTed over https, to a server with a certificate the runtime is told to trust`,
  { skip: skip || (commandAvailable("openssl") ? false : "openssl is not installed") },
  async () => {
    const lab = network();
    const cert = join(lab.dir, "cert.pem");
    const key = join(lab.dir, "key.pem");
    execFileSync("openssl", [
      "req",
      "-x509",
      "-newkey",
      "rsa:2048",
      "-nodes",
      "-keyout",
      key,
      "-out",
      cert,
      "-days",
      "1",
      "-subj",
      "/CN=10.99.3.2",
      "-addext",
      "subjectAltName=IP:10.99.3.2",
    ], { stdio: "ignore" });
    const receiver = lab.spawn(
      "peer",
      runtimeCommand(runtime, "test/support/https-receiver.ts", ["10.99.3.2", "8443", cert, key]),
    );
    const received = collect(receiver);
    await waitFor(
      () => received().stdout.includes("listening"),
      10_000,
      `the https receiver: ${received().stderr}`,
    );
    // Both runtimes' node:https trust the authorities in NODE_EXTRA_CA_CERTS (Deno ignores DENO_CERT there).
    const sent = await lab.run(
      "host",
      agentCommand(runtime, [
        "-a",
        "https://10.99.3.2:8443/heartbeat",
        "--ready",
        "5",
        "--busy",
        "2",
        "--once",
      ]),
      { env: { NODE_EXTRA_CA_CERTS: cert } },
    );
    assert.equal(sent.code, 0, sent.stderr);
    assert.match(sent.stderr, /^\S+ info {2}sent [^\n]+\n$/, "one line saying what went where");
    assert.match(received().stdout, /"body":"v=1&ready=5&busy=2"/);
    const untrusted = await lab.run(
      "host",
      agentCommand(runtime, ["-a", "https://10.99.3.2:8443/heartbeat", "--ready", "5", "--once"]),
    );
    assert.equal(untrusted.code, 1);
    assert.match(
      untrusted.stderr,
      /warn {2}send https:\/\/10\.99\.3\.2:8443\/heartbeat failed: .*(certificate|self.signed|UnknownIssuer|CERT)/i,
    );
    await stop(receiver);
  },
);

test(
  `e2e ${runtime}: a host name that cannot be looked up is a usage error, exit 2`,
  { skip },
  async () => {
    // In the namespace with no network, the lookup fails without a packet leaving the machine.
    const result = await network().run(
      "lonely",
      agentCommand(runtime, ["-a", "no-such-host.invalid:80", "--ready", "1", "--dry-run"]),
    );
    assert.equal(result.code, 2);
    assert.match(
      result.stderr,
      /^heartbeat: --address 'no-such-host\.invalid:80': cannot find an address/,
    );
    assert.ok(!result.stderr.includes("    at "), "no stack trace");
    // -t says it once, though it both looks the name up and tries to listen there.
    const checked = await network().run(
      "lonely",
      agentCommand(runtime, ["monitor", "-t", "--listen", "no-such-host.invalid:27999"]),
    );
    assert.equal(checked.code, 2);
    assert.match(
      checked.stderr,
      /^--listen 'no-such-host\.invalid:27999': cannot find an address for 'no-such-host\.invalid' \(.*\)\n$/,
    );
  },
);

test(
  `e2e ${runtime}: the monitor's --receive-buffer is the socket's; capped by the kernel, it says what to raise`,
  { skip },
  async () => {
    const max = Number(network().sh("peer", "cat /proc/sys/net/core/rmem_max"));
    for (const [asked, given] of [[1 << 20, 1 << 20], [max * 2, max]]) {
      const monitor = network().spawn(
        "peer",
        agentCommand(runtime, [
          "monitor",
          "--listen",
          "127.0.0.1:27991",
          "--receive-buffer",
          String(asked),
        ]),
      );
      const output = collect(monitor);
      await waitFor(() => output().stderr.includes("listening on"), 10_000, "the monitor");
      const ss = network().sh("peer", "ss -uamn 'sport = :27991'");
      await stop(monitor);
      assert.match(output().stderr, new RegExp(`; receive buffer ${given} bytes`));
      assert.match(ss, new RegExp(`\\brb${given * 2}\\b`), ss);
      assert.equal(
        output().stderr.includes(`the kernel gave ${given} bytes, its limit (net.core.rmem_max)`),
        asked !== given,
        output().stderr,
      );
    }
  },
);

test(
  `e2e ${runtime}: a failure reads the same on every adapter and path, with what to do: no multicast route, a refused status page, a name not found`,
  { skip },
  async () => {
    const lonely = (args: string[]) => network().run("lonely", agentCommand(runtime, args));
    // The compiled binary is Bun: its adapters are bun and node.
    const adapters = process.env.HEARTBEAT_BINARY ? ["bun", "node"] : [runtime, "node"];
    for (const adapter of adapters) {
      const monitor = await lonely([
        "monitor",
        "--listen",
        "239.0.0.1:27999",
        "--http",
        "127.0.0.1:8080",
        "--runtime-adapter",
        adapter,
      ]);
      assert.equal(monitor.code, 1, monitor.stderr);
      // Only the listener that failed is named, with what to do about it.
      assert.equal(
        monitor.stderr,
        `heartbeat: cannot listen on udp 239.0.0.1:27999 (${adapter} adapter): no such device (ENODEV): no interface routes multicast: add a route (ip route add 224.0.0.0/4 dev eth0) or give --interface ADDRESS\n`,
      );
    }
    const refused = await lonely(["-a", "127.0.0.1:27999", "--source", "apache", "--once"]);
    assert.equal(refused.code, 1);
    assert.match(
      refused.stderr,
      /warn {2}no heartbeat sent: apache http:\/\/127\.0\.0\.1\/server-status\?auto: connection refused \(ECONNREFUSED\)\n/,
    );
    const unnamed = await lonely([
      "-a",
      "http://proxy.invalid/heartbeat",
      "--ready",
      "1",
      "--once",
    ]);
    assert.equal(unnamed.code, 1);
    assert.match(
      unnamed.stderr,
      /warn {2}send http:\/\/proxy\.invalid\/heartbeat failed: (the name could not be looked up now \(EAI_AGAIN\)|no such host \(ENOTFOUND\))\n/,
    );
  },
);

test(
  `e2e ${runtime}: -t tries what a start would bind: a group no interface routes, a port below 1024 without root`,
  { skip: skip || (commandAvailable("setpriv") ? false : "setpriv is not installed") },
  async () => {
    const noRoute = await network().run(
      "lonely",
      agentCommand(runtime, ["monitor", "--listen", "239.0.0.1:27999", "-t"]),
    );
    assert.equal(noRoute.code, 2, noRoute.stderr);
    assert.equal(
      noRoute.stderr,
      "--listen '239.0.0.1:27999': no such device (ENODEV): no interface routes multicast: add a route (ip route add 224.0.0.0/4 dev eth0) or give --interface ADDRESS\n",
    );
    // As user nobody (a runtime's caches in a folder of its own), ports below 1024 are refused.
    const home = join(network().dir, "nobody");
    execFileSync("install", ["-d", "-o", "65534", home]);
    const asNobody = (args: string[]) =>
      network().run(
        "lonely",
        [
          "setpriv",
          "--reuid",
          "65534",
          "--regid",
          "65534",
          "--clear-groups",
          ...agentCommand(runtime, args),
        ],
        { env: { HOME: home, DENO_DIR: join(home, "deno") } },
      );
    const monitor = await asNobody([
      "monitor",
      "--listen",
      "127.0.0.1:27999",
      "--http",
      "127.0.0.1:80",
      "-t",
    ]);
    assert.equal(monitor.code, 2, monitor.stderr);
    assert.equal(
      monitor.stderr,
      "--http '127.0.0.1:80': permission denied (EACCES): ports below 1024 need root or CAP_NET_BIND_SERVICE\n",
    );
    const agent = await asNobody([
      "-a",
      "127.0.0.1:27999",
      "--ready",
      "1",
      "--agent-check",
      "127.0.0.1:300",
      "-t",
    ]);
    assert.equal(agent.code, 2, agent.stderr);
    assert.match(
      agent.stderr,
      /^--agent-check '127\.0\.0\.1:300': permission denied \(EACCES\): ports below 1024/,
    );
    // A unicast --listen is not bound by -t (a running monitor's datagrams would go to it), but
    // its port is checked all the same.
    const unicast = await asNobody(["monitor", "--listen", "127.0.0.1:514", "-t"]);
    assert.equal(unicast.code, 2, unicast.stderr);
    assert.match(unicast.stderr, /^--listen '127\.0\.0\.1:514': permission denied \(EACCES\)/);
    // Above 1024, and beside a running monitor on the same group and port, it is fine.
    const fine = await asNobody([
      "monitor",
      "--listen",
      "127.0.0.1:27999",
      "--http",
      "127.0.0.1:8080",
      "-t",
    ]);
    assert.equal(fine.stdout, "Syntax OK\n", fine.stderr);
  },
);
