/**
 * Acceptance for the monitor, on a private bridge, against real Apache:
 *
 *   monitor  10.99.6.1   heartbeat monitor --listen 239.0.0.1:27999 --http 10.99.6.1:8080 --storage FILE
 *   proxy    10.99.6.2   apache2 with mod_lbmethod_heartbeat only (no mod_heartmonitor), reading FILE
 *   origin1  10.99.6.11  apache2 running mod_heartbeat itself
 *   origin2  10.99.6.12  apache2 running mod_heartbeat itself
 *   agent    10.99.6.13  this agent, multicasting
 *   poster   10.99.6.14  this agent, POSTing heartbeats to the monitor
 *   junk     10.99.6.20  throws malformed datagrams at the monitor
 *   spy      10.99.6.30  listens to the group, to know what the origins sent
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { after, test } from "node:test";
import { parseStorage, type StoredServer } from "../../src/monitor/storage.ts";
import { agentCommand, collect, Lab, runtimeCommand, waitFor } from "../../scripts/lab/lab.ts";
import { currentRuntime, skipUnlessLab } from "../support/lab.ts";
import { listenProbe } from "../support/listen.ts";
import type { Probe } from "../support/send-probe.ts";
import { startApacheOrigin, startApacheProxy } from "../../scripts/lab/servers.ts";

const skip = skipUnlessLab(["apache2", "curl"]);
const runtime = currentRuntime();
const HOSTS: [string, string][] = [
  ["monitor", "10.99.6.1"],
  ["proxy", "10.99.6.2"],
  ["origin1", "10.99.6.11"],
  ["origin2", "10.99.6.12"],
  ["agent", "10.99.6.13"],
  ["poster", "10.99.6.14"],
  ["junk", "10.99.6.20"],
  ["spy", "10.99.6.30"],
];

let lab: Lab | undefined;
after(() => lab?.close());

let started:
  | Promise<
    {
      storage: string;
      monitorLog: () => { stdout: string; stderr: string };
      spy: () => { stdout: string };
    }
  >
  | undefined;
function network() {
  started ??= (async () => {
    lab = new Lab();
    lab.addSwitch("switch");
    for (const [ns, ip] of HOSTS) {
      lab.addNamespace(ns);
      lab.plug(ns, `${ip}/24`);
    }
    const storage = join(lab.dir, "monitor-hb.dat");
    const monitorLog = collect(lab.spawn(
      "monitor",
      agentCommand(runtime, [
        "monitor",
        "--listen",
        "239.0.0.1:27999",
        "--http",
        "10.99.6.1:8080",
        "--storage",
        storage,
        "--print",
      ]),
    ));
    await waitFor(
      () => monitorLog().stderr.includes("listening on"),
      10_000,
      `the monitor to start: ${monitorLog().stderr}`,
    );
    const spy = (await listenProbe(lab, "spy", runtime, { port: 27999, group: "239.0.0.1" }))
      .output;
    startApacheOrigin(lab, "origin1", { heartbeatAddress: "239.0.0.1:27999" });
    startApacheOrigin(lab, "origin2", { heartbeatAddress: "239.0.0.1:27999" });
    startApacheProxy(lab, "proxy", {
      address: "10.99.6.2",
      storage,
      members: ["http://10.99.6.11:80", "http://10.99.6.12:80"],
    });
    lab.spawn(
      "agent",
      agentCommand(runtime, [
        "-a",
        "239.0.0.1:27999",
        "--ready",
        "4",
        "--busy",
        "1",
        "--port",
        "8080",
      ]),
    );
    return { storage, monitorLog, spy };
  })();
  return started;
}

const stored = (storage: string): StoredServer[] => {
  try {
    return parseStorage(readFileSync(storage, "utf8"));
  } catch {
    return [];
  }
};

/** The last heartbeat the spy heard from `ip`. */
function lastFrom(spy: () => { stdout: string }, ip: string): string | undefined {
  const lines = spy().stdout.split("\n").filter((line) => line.startsWith(`{"from":"${ip}"`));
  return lines.length ? JSON.parse(lines[lines.length - 1]).payload : undefined;
}

test(
  `monitor ${runtime}: lists real Apache origins running mod_heartbeat with the values they send`,
  { skip },
  async () => {
    const { storage, spy, monitorLog } = await network();
    await waitFor(
      () =>
        ["10.99.6.11", "10.99.6.12", "10.99.6.13"].every((ip) =>
          stored(storage).some((server) => server.ip === ip)
        ),
      20_000,
      `origins and agent in the storage file: ${monitorLog().stderr}`,
    );
    // Idle origins send the same numbers every second, so the file and the spy agree.
    await waitFor(
      () =>
        ["10.99.6.11", "10.99.6.12"].every((ip) => {
          const server = stored(storage).find((candidate) => candidate.ip === ip);
          return server !== undefined &&
            lastFrom(spy, ip) === `v=1&ready=${server.ready}&busy=${server.busy}`;
        }),
      10_000,
      "the storage file to match what mod_heartbeat sent",
    );
    for (const server of stored(storage)) {
      assert.ok(server.lastseen <= 2, `${server.ip} lastseen ${server.lastseen}`);
    }
    const line = readFileSync(storage, "utf8").split("\n").find((text) =>
      text.startsWith("10.99.6.13 ")
    );
    assert.match(line ?? "", /^10\.99\.6\.13 &ready=4&busy=1&lastseen=\d&port=8080$/);
  },
);

test(
  `monitor ${runtime}: the agent's heartbeats POSTed over HTTP show up the same way, keyed by the TCP peer`,
  { skip },
  async () => {
    const { storage } = await network();
    const result = await lab!.run(
      "poster",
      agentCommand(runtime, [
        "--address",
        "http://10.99.6.1:8080/heartbeat",
        "--ready",
        "6",
        "--busy",
        "2",
        "--port",
        "81",
        "--once",
      ]),
    );
    assert.equal(result.code, 0, result.stderr);
    assert.match(
      result.stderr,
      /^\S+ info {2}sent [^\n]+ to http:\/\/10\.99\.6\.1:8080\/heartbeat\n$/,
    );
    await waitFor(
      () => stored(storage).some((server) => server.ip === "10.99.6.14"),
      5_000,
      "the POSTed server in the file",
    );
    const server = stored(storage).find((candidate) => candidate.ip === "10.99.6.14")!;
    assert.deepEqual([server.ready, server.busy, server.port], [6, 2, 81]);
  },
);

test(
  `monitor ${runtime}: junk datagrams are rejected, counted, and leave the file alone`,
  { skip },
  async () => {
    const { storage } = await network();
    const before = readFileSync(storage, "utf8").split("\n").filter(Boolean).map((line) =>
      line.split(" ")[0]
    ).sort();
    const junk = [
      "",
      "\u0000\u00ff\u0001binary",
      "x".repeat(1200),
      "v=1&ready=5",
      "ready=1&busy=1",
      "v=1&ready=lots&busy=1",
      "v=1&ready=-1&busy=0",
    ];
    const probe: Probe = {
      adapter: "node",
      sessions: [{
        options: { ttl: 1, loopback: true },
        sends: junk.map((payload) => ({ host: "239.0.0.1", port: 27999, payload })),
      }],
    };
    const sent = await lab!.run(
      "junk",
      runtimeCommand(runtime, "test/support/send-probe.ts", [JSON.stringify(probe)]),
    );
    assert.equal(sent.code, 0, sent.stderr);
    const metrics = async () =>
      (await lab!.run("poster", ["curl", "-sS", "http://10.99.6.1:8080/metrics"])).stdout;
    await new Promise((resolve) => setTimeout(resolve, 1000)); // datagrams on a local bridge arrive at once
    const text = await metrics();
    const count = (reason: string) =>
      Number(
        new RegExp(`^heartbeat_messages_rejected_total\\{reason="${reason}"\\} (\\d+)$`, "m").exec(
          text,
        )?.[1],
      );
    assert.ok(count("missing-field") >= 3, text);
    assert.ok(count("bad-number") >= 2, text);
    assert.ok(count("oversize") >= 1, text);
    const after = readFileSync(storage, "utf8").split("\n").filter(Boolean).map((line) =>
      line.split(" ")[0]
    ).sort();
    assert.ok(!after.includes("10.99.6.20"), "the junk sender is not a server");
    assert.deepEqual(after, before);
  },
);

test(
  `monitor ${runtime}: a real Apache proxy with mod_lbmethod_heartbeat alone routes by the monitor's file`,
  { skip },
  async () => {
    const { storage } = await network();
    await waitFor(
      () =>
        ["10.99.6.11", "10.99.6.12"].every((ip) =>
          stored(storage).some((server) => server.ip === ip)
        ),
      20_000,
      "both origins",
    );
    const requests = 40;
    const result = await lab!.run("poster", [
      "curl",
      "-sS",
      "--max-time",
      "10",
      ...Array(requests).fill("http://10.99.6.2/index.html"),
    ]);
    assert.equal(result.code, 0, result.stderr);
    const answers = result.stdout.split("\n").filter(Boolean);
    assert.equal(answers.length, requests, result.stdout);
    for (const origin of ["origin1", "origin2"]) {
      assert.ok(
        answers.includes(origin),
        `no request reached ${origin}: ${JSON.stringify(answers)}`,
      );
    }
  },
);

test(
  `monitor ${runtime}: heartbeat servers FILE shows the monitor's file as the balancer sees it`,
  { skip },
  async () => {
    const { storage } = await network();
    const result = await lab!.run("monitor", agentCommand(runtime, ["servers", storage]));
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /^server +port +ready +busy +age +weight +share$/m);
    assert.match(result.stdout, /^10\.99\.6\.13 +8080 +4 +1 +\d s +4 +\d+\.\d%$/m);
  },
);
