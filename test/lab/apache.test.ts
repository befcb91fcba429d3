/**
 * Acceptance: a real Apache proxy (Debian's apache2 with mod_heartmonitor and
 * mod_lbmethod_heartbeat) balances two real nginx origins by what this agent reports from each,
 * one agent under Deno and one under Bun. All of it on a private bridge:
 *
 *   proxy    10.99.0.1   apache2: HeartbeatListen 239.0.0.1:27999, balancer lbmethod=heartbeat
 *   origin1  10.99.0.11  nginx :80,   agent under this runtime   --ready 30 --busy 2 --port 80
 *   origin2  10.99.0.12  nginx :8080, agent under the other one  --ready 10 --busy 5 --port 8080
 */
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, test } from "node:test";
import { agentCommand, collect, Lab, type RuntimeName, waitFor } from "../../scripts/lab/lab.ts";
import { currentRuntime, skipUnlessLab } from "../support/lab.ts";
import {
  type Apache,
  readStorage,
  startApacheProxy,
  startNginx,
  type StorageEntry,
} from "../../scripts/lab/servers.ts";

const skip = skipUnlessLab(["apache2", "nginx", "curl"]);
const runtime = currentRuntime();
const other: RuntimeName = runtime === "deno" ? "bun" : "deno";

const ORIGINS = [
  { ns: "origin1", ip: "10.99.0.11", port: 80, runtime, ready: 30, busy: 2 },
  { ns: "origin2", ip: "10.99.0.12", port: 8080, runtime: other, ready: 10, busy: 5 },
];

let lab: Lab | undefined;
after(() => lab?.close());

let started: Promise<{ proxy: Apache; agentLogs: (() => { stderr: string })[] }> | undefined;
function network() {
  // async with no await: the promise caches the network, built once, for every test.
  // deno-lint-ignore require-await
  started ??= (async () => {
    lab = new Lab();
    lab.addSwitch("switch");
    lab.addNamespace("proxy");
    lab.plug("proxy", "10.99.0.1/24");
    const proxy = startApacheProxy(lab, "proxy", {
      address: "10.99.0.1",
      heartmonitor: { listen: "239.0.0.1:27999" },
      members: ORIGINS.map((origin) => `http://${origin.ip}:${origin.port}`),
    });
    const agentLogs = ORIGINS.map((origin) => {
      lab!.addNamespace(origin.ns);
      lab!.plug(origin.ns, `${origin.ip}/24`);
      startNginx(lab!, origin.ns, { listen: `${origin.ip}:${origin.port}`, body: origin.ns });
      return collect(lab!.spawn(
        origin.ns,
        agentCommand(origin.runtime, [
          "--address",
          "239.0.0.1:27999",
          "--source",
          "static",
          "--ready",
          String(origin.ready),
          "--busy",
          String(origin.busy),
          "--port",
          String(origin.port),
        ]),
      ));
    });
    return { proxy, agentLogs };
  })();
  return started;
}

async function storageWithBothOrigins(proxy: Apache): Promise<StorageEntry[]> {
  let entries: StorageEntry[] = [];
  // mod_heartmonitor rewrites its storage file every 5 seconds.
  await waitFor(
    () => {
      entries = readStorage(proxy.storage);
      return ORIGINS.every((origin) => entries.some((entry) => entry.ip === origin.ip));
    },
    30_000,
    `both origins in ${proxy.storage}`,
  );
  return entries;
}

test(
  `interop: Apache's mod_heartmonitor stores exactly what each agent reports (${runtime} and ${other})`,
  { skip },
  async () => {
    const { proxy, agentLogs } = await network();
    let entries: StorageEntry[];
    try {
      entries = await storageWithBothOrigins(proxy);
    } catch (error) {
      const logs = agentLogs.map((log, i) => `${ORIGINS[i].ns}: ${log().stderr}`).join("\n");
      throw new Error(`${(error as Error).message}\nagents:\n${logs}\n${proxy.diagnostics()}`);
    }
    for (const origin of ORIGINS) {
      const entry = entries.find((candidate) => candidate.ip === origin.ip)!;
      assert.deepEqual(
        { ready: entry.ready, busy: entry.busy, port: entry.port },
        { ready: origin.ready, busy: origin.busy, port: origin.port },
        `${origin.ns} under ${origin.runtime}`,
      );
      assert.ok(
        entry.lastseen < 10,
        `${origin.ns} lastseen ${entry.lastseen}: lbmethod_heartbeat would ignore it`,
      );
    }
    assert.equal(entries.length, ORIGINS.length);
  },
);

test(
  `interop: requests through Apache's lbmethod=heartbeat balancer reach both origins`,
  { skip },
  async () => {
    const { proxy } = await network();
    await storageWithBothOrigins(proxy);
    const requests = 60;
    const result = await lab!.run("proxy", [
      "curl",
      "-sS",
      "--max-time",
      "10",
      ...Array(requests).fill("http://10.99.0.1/"),
    ]);
    assert.equal(result.code, 0, result.stderr);
    const answers = result.stdout.split("\n").filter(Boolean);
    assert.equal(answers.length, requests, result.stdout);
    const counts = Object.fromEntries(
      ORIGINS.map((origin) => [origin.ns, answers.filter((a) => a === origin.ns).length]),
    );
    // Weighted 30:10, the chance that 60 requests miss origin2 is 0.75^60, about 3e-8.
    for (const origin of ORIGINS) {
      assert.ok(
        counts[origin.ns] > 0,
        `no request reached ${origin.ns}: ${JSON.stringify(counts)}`,
      );
    }
    assert.ok(
      counts.origin1 > counts.origin2,
      `ready 30 should win over ready 10: ${JSON.stringify(counts)}`,
    );
  },
);

test(
  `interop: a balancer routes to an origin whose agent only POSTs to mod_heartmonitor's SetHandler heartbeat (${runtime})`,
  { skip },
  async () => {
    await network();
    // Shared-memory storage: with the storage file, mod_heartmonitor's 5-second rewrite drops POSTed servers.
    lab!.addNamespace("proxy2");
    lab!.plug("proxy2", "10.99.0.2/24");
    lab!.addNamespace("origin3");
    lab!.plug("origin3", "10.99.0.13/24");
    const proxy = startApacheProxy(lab!, "proxy2", {
      address: "10.99.0.2",
      heartmonitor: { listen: "239.0.0.2:27999", slotmem: true, handler: "/heartbeat" },
      members: ["http://10.99.0.13:80"],
    });
    startNginx(lab!, "origin3", { listen: "10.99.0.13:80", body: "origin3" });
    const get = () =>
      lab!.run("proxy2", [
        "curl",
        "-s",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "--max-time",
        "5",
        "http://10.99.0.2/",
      ]);
    let before = await get();
    for (let i = 0; i < 50 && before.stdout === "000"; i++) before = await get(); // Apache still starting
    assert.equal(
      before.stdout,
      "503",
      `no heartbeat yet, so no usable member: ${proxy.diagnostics()}`,
    );

    const agent = collect(
      lab!.spawn(
        "origin3",
        agentCommand(runtime, [
          "--address",
          "http://10.99.0.2/heartbeat",
          "--ready",
          "8",
          "--busy",
          "1",
          "--interval",
          "0.5",
        ]),
      ),
    );
    let after = await get();
    for (let i = 0; i < 40 && after.stdout !== "200"; i++) {
      await new Promise((resolve) => setTimeout(resolve, 250));
      after = await get();
    }
    assert.equal(after.stdout, "200", `agent: ${agent().stderr}\n${proxy.diagnostics()}`);
    const body = await lab!.run("proxy2", ["curl", "-sS", "--max-time", "5", "http://10.99.0.2/"]);
    assert.equal(body.stdout, "origin3\n");
    assert.doesNotMatch(agent().stderr, /warn|error/, agent().stderr);
  },
);

test(
  `interop: Apache's mod_heartmonitor takes signed heartbeats, ignoring ts and sig (${runtime})`,
  { skip },
  async () => {
    const { proxy } = await network();
    lab!.addNamespace("origin4");
    lab!.plug("origin4", "10.99.0.14/24");
    const keyFile = join(lab!.dir, "key");
    writeFileSync(keyFile, "0123456789abcdef0123456789abcdef\n", { mode: 0o600 });
    const agent = collect(
      lab!.spawn(
        "origin4",
        agentCommand(runtime, [
          "-a",
          "239.0.0.1:27999",
          "--ready",
          "17",
          "--busy",
          "3",
          "--port",
          "8443",
          "--key-file",
          keyFile,
        ]),
      ),
    );
    await waitFor(
      () => readStorage(proxy.storage).some((entry) => entry.ip === "10.99.0.14"),
      20_000,
      `the signed agent in the storage file: ${agent().stderr}`,
    );
    const entry = readStorage(proxy.storage).find((candidate) => candidate.ip === "10.99.0.14")!;
    assert.deepEqual([entry.ready, entry.busy, entry.port], [17, 3, 8443]);
  },
);
