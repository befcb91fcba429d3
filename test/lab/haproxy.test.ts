/**
 * HAProxy, both ways, for real (Debian's haproxy 2.6, its runtime API on a unix socket):
 * pull, its agent-check asking each origin's agent; push, heartbeat monitor setting weights
 * through the runtime API from the heartbeats it hears.
 *
 *   haproxy  10.99.19.1   haproxy: frontend :8001 -> backend pulled (agent-check),
 *                                  frontend :8002 -> backend pushed (weights by the monitor);
 *                         heartbeat monitor --listen 239.0.0.1:27999 --haproxy-socket ...
 *   origin1  10.99.19.11  nginx, agent --ready 30 --busy 10 --agent-check :9300
 *   origin2  10.99.19.12  nginx, agent --ready 10 --busy 30 --agent-check :9300
 *
 * Then origin2 is drained, and at last origin1 dies with its agent while origin2 comes back.
 */
import assert from "node:assert/strict";
import { existsSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, test } from "node:test";
import { parseServersState } from "../../src/monitor/outputs/haproxy.ts";
import { drainSignals } from "../../src/signals.ts";
import { agentCommand, collect, Lab, waitFor } from "../../scripts/lab/lab.ts";
import { REPO } from "../../scripts/repo.ts";
import { currentRuntime, skipUnlessLab } from "../support/lab.ts";
import { serveFakeHAProxy } from "../support/fake-haproxy.ts";
import { startNginx } from "../../scripts/lab/servers.ts";

const skip = skipUnlessLab(["haproxy", "nginx", "curl", "socat"]);
const runtime = currentRuntime();

let lab: Lab | undefined;
after(() => lab?.close());

test(
  "haproxy: agent-check and runtime-API weights follow the heartbeats, survive a restart, and a drain empties both",
  { skip },
  async () => {
    lab = new Lab();
    lab.addSwitch("switch");
    for (
      const [ns, ip] of [["haproxy", "10.99.19.1"], ["origin1", "10.99.19.11"], [
        "origin2",
        "10.99.19.12",
      ]]
    ) {
      lab.addNamespace(ns);
      lab.plug(ns, `${ip}/24`);
    }
    const socket = join(lab.dir, "haproxy.sock");
    const config = join(lab.dir, "haproxy.cfg");
    // contrib/haproxy.cfg, as an operator copies it, with the lab's addresses and socket.
    writeFileSync(
      config,
      readFileSync(join(REPO, "contrib", "haproxy.cfg"), "utf8")
        .replaceAll("/run/haproxy/admin.sock", socket)
        .replace("bind :8001", "bind 10.99.19.1:8001")
        .replace("bind :8002", "bind 10.99.19.1:8002")
        .replaceAll("10.0.0.11", "10.99.19.11")
        .replaceAll("10.0.0.12", "10.99.19.12"),
    );

    const startHAProxy = () => collect(lab!.spawn("haproxy", ["haproxy", "-db", "-f", config]));
    let haproxy = startHAProxy();
    const agents = [["origin1", "10.99.19.11", 30, 10], ["origin2", "10.99.19.12", 10, 30]].map(
      ([ns, ip, ready, busy]) => {
        startNginx(lab!, ns as string, { listen: `${ip}:80`, body: ns as string });
        return lab!.spawn(
          ns as string,
          agentCommand(runtime, [
            "-a",
            "239.0.0.1:27999",
            "--ready",
            String(ready),
            "--busy",
            String(busy),
            "--agent-check",
            `${ip}:9300`,
          ]),
        );
      },
    );
    const monitor = collect(lab.spawn(
      "haproxy",
      agentCommand(runtime, [
        "monitor",
        "--listen",
        "239.0.0.1:27999",
        "--haproxy-socket",
        socket,
        "--haproxy-backend",
        "pushed",
      ]),
    ));
    const state = async (backend: string) => {
      const answer = await lab!.run("haproxy", [
        "sh",
        "-c",
        `echo "show servers state ${backend}" | socat - UNIX-CONNECT:${socket}`,
      ]);
      return Object.fromEntries(
        parseServersState(answer.stdout).map((server) => [server.name, server.weight]),
      );
    };
    const weighs = async (
      backend: string,
      expected: Record<string, number>,
      what: string,
      timeoutMs = 15_000,
    ) => {
      const deadline = Date.now() + timeoutMs;
      let seen: Record<string, number> = {};
      while (Date.now() < deadline) {
        seen = await state(backend);
        if (JSON.stringify(seen) === JSON.stringify(expected)) return Date.now();
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      assert.fail(
        `${what}: ${backend} weighs ${JSON.stringify(seen)}, not ${
          JSON.stringify(expected)
        }\n${monitor().stderr}\n${haproxy().stderr}`,
      );
    };
    const served = async (port: number, count: number) => {
      const result = await lab!.run("haproxy", [
        "curl",
        "-sS",
        "--max-time",
        "5",
        ...Array(count).fill(`http://10.99.19.1:${port}/`),
      ]);
      const bodies = result.stdout.split("\n").filter(Boolean);
      return {
        origin1: bodies.filter((body) => body === "origin1").length,
        origin2: bodies.filter((body) => body === "origin2").length,
      };
    };

    // Pull: ready / (ready + busy): 75 % and 25 % of the weight 100. Push: ready 30 and 10, scaled to 256.
    await weighs("pulled", { o1: 75, o2: 25 }, "agent-check");
    await weighs("pushed", { o1: 256, o2: 85 }, "the monitor's weights");
    for (const port of [8001, 8002]) {
      const { origin1, origin2 } = await served(port, 200);
      assert.equal(origin1 + origin2, 200);
      assert.ok(
        origin1 / origin2 > 2 && origin1 / origin2 < 4.5,
        `port ${port}: ${origin1} to ${origin2}`,
      );
    }

    // A mistyped backend is said in the log and by /healthz, not left to push nothing silently.
    const mistyped = collect(lab.spawn(
      "haproxy",
      agentCommand(runtime, [
        "monitor",
        "--http",
        "10.99.19.1:8090",
        "--haproxy-socket",
        socket,
        "--haproxy-backend",
        "pushd",
      ]),
    ));
    await waitFor(
      () => mistyped().stderr.includes("--haproxy-backend pushd"),
      20_000,
      "the mistyped backend's warning",
    );
    assert.match(
      mistyped().stderr,
      /warn {2}--haproxy-backend pushd: HAProxy at \S+ has no such backend \(it says "Can't find backend\."\): nothing is pushed there/,
    );
    const health = await lab.run("haproxy", [
      "curl",
      "-sS",
      "-w",
      "%{http_code}",
      "http://10.99.19.1:8090/healthz",
    ]);
    assert.equal(
      health.stdout,
      `no such --haproxy-backend: backend 'pushd' in HAProxy at ${socket}\n503`,
    );

    // HAProxy restarted under the monitor gets its weights back.
    const haproxyPids = () =>
      lab!.pids("haproxy").filter((pid) => {
        try {
          return readFileSync(`/proc/${pid}/cmdline`, "utf8").startsWith("haproxy\0");
        } catch {
          return false;
        }
      });
    haproxyPids().forEach((pid) => process.kill(pid, "SIGTERM"));
    await waitFor(() => haproxyPids().length === 0, 5_000, "HAProxy to stop");
    haproxy = startHAProxy();
    await weighs("pushed", { o1: 256, o2: 85 }, "after HAProxy's restart");

    // Drain origin2: agent-check says drain at once; the monitor hears ready=0 at once.
    const drainedAt = Date.now();
    process.kill(agents[1].pid!, drainSignals(runtime).drain[0]);
    const pushedAt = await weighs(
      "pushed",
      { o1: 256, o2: 0 },
      "the drained origin's weight",
      5_000,
    );
    assert.ok(pushedAt - drainedAt < 2_500, `pushed ${pushedAt - drainedAt} ms after the drain`);
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    for (const port of [8001, 8002]) {
      assert.deepEqual(
        await served(port, 50),
        { origin1: 50, origin2: 0 },
        `port ${port}, drained`,
      );
    }

    // origin1 dies, its agent with it (no farewell), and origin2 comes back: HAProxy ignores an
    // agent it cannot reach and the monitor waits 10 s of silence, so only the health check takes
    // origin1 out of rotation, within fall x inter (3 s).
    process.kill(agents[1].pid!, drainSignals(runtime).undrain[0]);
    for (const backend of ["pulled", "pushed"]) {
      for (const until = Date.now() + 10_000; !((await state(backend)).o2 > 0);) {
        assert.ok(Date.now() < until, `origin2 back in ${backend}`);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
    lab.pids("origin1").forEach((pid) => process.kill(pid, "SIGKILL"));
    const killedAt = Date.now();
    const allToOrigin2 = async (count: number) =>
      (await Promise.all([8001, 8002].map((port) => served(port, count))))
        .every((split) => split.origin2 === count);
    while (Date.now() - killedAt < 8_000 && !(await allToOrigin2(20))) {
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    for (const port of [8001, 8002]) {
      assert.deepEqual(
        await served(port, 200),
        { origin1: 0, origin2: 200 },
        `port ${port}, origin1 dead for ${Date.now() - killedAt} ms`,
      );
    }
  },
);

test(
  "haproxy push: runtime API sockets that stream without end or drip a byte at a time cost a bounded exchange, counted and logged; the storage file goes on",
  { skip: skipUnlessLab(["curl"]) },
  async () => {
    const misbehaving = new Lab();
    misbehaving.addNamespace("monitor");
    const sockets = ["stream", "drip"].map((mode) => join(misbehaving.dir, `${mode}.sock`));
    const fakes = await Promise.all(
      ["stream", "drip"].map((mode, i) => serveFakeHAProxy(mode, sockets[i], 8_000)),
    );
    try {
      const storage = join(misbehaving.dir, "hb.dat");
      const monitor = misbehaving.spawn(
        "monitor",
        agentCommand(runtime, [
          "monitor",
          "--http",
          "127.0.0.1:8080",
          "--storage",
          storage,
          ...sockets.flatMap((socket) => ["--haproxy-socket", socket]),
          "--haproxy-backend",
          "pushed",
        ]),
      );
      const output = collect(monitor);
      await waitFor(() => existsSync(storage), 20_000, "the storage file");
      const writes = new Set<number>();
      let largestRss = 0;
      for (const until = Date.now() + 8_000; Date.now() < until;) {
        writes.add(statSync(storage).mtimeMs);
        for (const pid of misbehaving.pids("monitor")) {
          const rss = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
          largestRss = Math.max(largestRss, Number(rss?.[1] ?? 0) * 1024);
        }
        await new Promise((resolve) => setTimeout(resolve, 250));
      }
      assert.equal(monitor.exitCode, null, output().stderr);
      assert.ok(writes.size >= 6, `the storage file written ${writes.size} times in 8 s`);
      assert.ok(largestRss < 250e6, `the monitor took ${largestRss} bytes`);
      const metrics = await misbehaving.run("monitor", [
        "curl",
        "-sS",
        "http://127.0.0.1:8080/metrics",
      ]);
      const errors = Number(/^heartbeat_haproxy_errors_total (\d+)$/m.exec(metrics.stdout)?.[1]);
      assert.ok(errors >= 4, `${errors} errors counted\n${metrics.stdout}`);
      assert.match(
        output().stderr,
        /stream\.sock: the answer to 'show servers state pushed' is larger than/,
      );
      assert.match(
        output().stderr,
        /drip\.sock: no whole answer to 'show servers state pushed' within 2 s/,
      );
    } finally {
      await misbehaving.close();
      for (const fake of fakes) fake.close();
    }
  },
);
