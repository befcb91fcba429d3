/**
 * Unicast fan-out, on a private bridge: two proxies (heartbeat monitors listening on their own
 * unicast addresses: Apache's mod_heartmonitor only joins multicast groups), reached by IP and by
 * a host name that the sender's hosts file maps to both.
 *
 *   proxy1   10.99.8.1   heartbeat monitor --listen 10.99.8.1:27999 --storage proxy1.dat
 *   proxy2   10.99.8.2   heartbeat monitor --listen 10.99.8.2:27999 --storage proxy2.dat
 *   byip     10.99.8.11  agent -a 10.99.8.1:27999 -a 10.99.8.2:27999
 *   byname   10.99.8.12  agent -a proxies.test:27999  (/etc/hosts: proxies.test is both)
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { after, test } from "node:test";
import { agentCommand, collect, Lab, stop, waitFor } from "../../scripts/lab/lab.ts";
import { currentRuntime, skipUnlessLab } from "../support/lab.ts";

const skip = skipUnlessLab();
const runtime = currentRuntime();

let lab: Lab | undefined;
after(() => lab?.close());

function storageLine(file: string, ip: string): string {
  try {
    return readFileSync(file, "utf8").split("\n").find((line) => line.startsWith(`${ip} `)) ?? "";
  } catch {
    return "";
  }
}

test(
  `unicast ${runtime}: heartbeats reach two proxies by IP and by a name resolving to both, and follow the name`,
  { skip },
  async () => {
    lab = new Lab();
    lab.addSwitch("switch");
    const storage: Record<string, string> = {};
    for (
      const [ns, ip] of [["proxy1", "10.99.8.1"], ["proxy2", "10.99.8.2"], ["byip", "10.99.8.11"], [
        "byname",
        "10.99.8.12",
      ]]
    ) {
      lab.addNamespace(ns);
      lab.plug(ns, `${ip}/24`);
    }
    const monitors = ["proxy1", "proxy2"].map((ns, i) => {
      storage[ns] = join(lab!.dir, `${ns}.dat`);
      const child = lab!.spawn(
        ns,
        agentCommand(runtime, [
          "monitor",
          "--listen",
          `10.99.8.${i + 1}:27999`,
          "--storage",
          storage[ns],
        ]),
      );
      return { child, output: collect(child) };
    });
    for (const monitor of monitors) {
      await waitFor(
        () => monitor.output().stderr.includes("listening on"),
        10_000,
        "a monitor",
      );
    }

    lab.hosts("byname", ["10.99.8.1 proxies.test", "10.99.8.2 proxies.test"]);
    const byIp = lab.spawn(
      "byip",
      agentCommand(runtime, [
        "-a",
        "10.99.8.1:27999",
        "-a",
        "10.99.8.2:27999",
        "--ready",
        "3",
        "--busy",
        "1",
      ]),
    );
    const byName = lab.spawn(
      "byname",
      agentCommand(runtime, [
        "-a",
        "proxies.test:27999",
        "--ready",
        "7",
        "--busy",
        "2",
        "--resolve-interval",
        "1",
      ]),
    );
    const byNameLog = collect(byName);

    for (const proxy of ["proxy1", "proxy2"]) {
      await waitFor(
        () => /&ready=3&busy=1&/.test(storageLine(storage[proxy], "10.99.8.11")),
        10_000,
        `the agent sending by IP in ${proxy}'s file`,
      );
      await waitFor(
        () => /&ready=7&busy=2&/.test(storageLine(storage[proxy], "10.99.8.12")),
        10_000,
        `the agent sending by name in ${proxy}'s file: ${byNameLog().stderr}`,
      );
    }

    // The name now means proxy2 alone: proxy1 stops hearing from it.
    lab.hosts("byname", ["10.99.8.2 proxies.test"]);
    await waitFor(
      () =>
        byNameLog().stderr.includes(
          "proxies.test:27999 now means 10.99.8.2 (was 10.99.8.1, 10.99.8.2)",
        ),
      10_000,
      `the new lookup: ${byNameLog().stderr}`,
    );
    const lastSeen = (proxy: string) =>
      Number(/lastseen=(\d+)/.exec(storageLine(storage[proxy], "10.99.8.12"))?.[1]);
    await waitFor(
      () => lastSeen("proxy1") >= 2,
      10_000,
      "proxy1 to stop hearing the agent sending by name",
    );
    assert.ok(lastSeen("proxy2") <= 1, storageLine(storage.proxy2, "10.99.8.12"));

    // The name disappears: the last addresses are kept, and that is logged once.
    lab.hosts("byname", []);
    await waitFor(
      () => byNameLog().stderr.includes("cannot look up proxies.test"),
      10_000,
      "the failed lookup",
    );
    await new Promise((resolve) => setTimeout(resolve, 2500));
    assert.equal(byNameLog().stderr.match(/cannot look up/g)?.length, 1, byNameLog().stderr);
    assert.match(byNameLog().stderr, /still sending to 10\.99\.8\.2/);
    assert.ok(lastSeen("proxy2") <= 1, storageLine(storage.proxy2, "10.99.8.12"));

    await Promise.all(
      [byIp, byName, ...monitors.map((monitor) => monitor.child)].map((child) => stop(child)),
    );
  },
);
