/**
 * The monitor and a real mod_heartmonitor on one host, listening on the same group and port, in
 * both start orders: each must hear every heartbeat, and Apache must not log that it could not
 * bind (AH02071/AH02090 at crit). APR sets SO_REUSEADDR only, and Linux shares a UDP port only
 * between sockets that set the same option, so a monitor that set SO_REUSEPORT (as Bun's
 * udpSocket did with flags 4) broke this whichever started first.
 *
 *   proxy  10.99.7.2   apache2 with mod_heartmonitor (HeartbeatListen 239.0.0.1:27999, its file)
 *                      and heartbeat monitor --listen 239.0.0.1:27999 --storage FILE
 *   agent  10.99.7.13  this agent, multicasting
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { after, test } from "node:test";
import { parseStorage } from "../../src/monitor/storage.ts";
import { agentCommand, collect, Lab, waitFor } from "../../scripts/lab/lab.ts";
import { currentRuntime, skipUnlessLab } from "../support/lab.ts";
import { readStorage, startApacheProxy } from "../../scripts/lab/servers.ts";

const skip = skipUnlessLab(["apache2"]);
const runtime = currentRuntime();
const GROUP = "239.0.0.1:27999";

const labs: Lab[] = [];
after(() => Promise.all(labs.map((lab) => lab.close())));

/** Sockets bound to the group's port in the namespace, as `ss` lists them. */
function listenersOnPort(lab: Lab): number {
  return lab.sh("proxy", "ss -uanH 'sport = :27999'").split("\n").filter(Boolean).length;
}

for (const apacheFirst of [true, false]) {
  test(
    `port sharing ${runtime}: heartbeat monitor and a real mod_heartmonitor on one group and port, ${
      apacheFirst ? "Apache" : "the monitor"
    } started first, both hear the agent`,
    { skip },
    async () => {
      const lab = new Lab();
      labs.push(lab);
      lab.addSwitch("switch");
      for (const [ns, ip] of [["proxy", "10.99.7.2"], ["agent", "10.99.7.13"]]) {
        lab.addNamespace(ns);
        lab.plug(ns, `${ip}/24`);
      }
      const storage = join(lab.dir, "monitor-hb.dat");
      const startApache = async () => {
        const apache = startApacheProxy(lab, "proxy", {
          address: "10.99.7.2",
          members: ["http://10.99.7.13:80"],
          heartmonitor: { listen: GROUP },
        });
        await waitFor(
          () => listenersOnPort(lab) >= (apacheFirst ? 1 : 2),
          10_000,
          `mod_heartmonitor's socket: ${apache.diagnostics()}`,
        );
        return apache;
      };
      const startMonitor = async () => {
        const log = collect(lab.spawn(
          "proxy",
          agentCommand(runtime, ["monitor", "--listen", GROUP, "--storage", storage]),
        ));
        await waitFor(
          () => /listening on|cannot|error/i.test(log().stderr),
          10_000,
          "the monitor to start",
        );
        assert.match(log().stderr, /listening on/, log().stderr);
        return log;
      };
      let apache;
      let monitorLog;
      if (apacheFirst) {
        apache = await startApache();
        monitorLog = await startMonitor();
      } else {
        monitorLog = await startMonitor();
        apache = await startApache();
      }
      lab.spawn("agent", agentCommand(runtime, ["-a", GROUP, "--ready", "4", "--busy", "1"]));
      const inMonitor = () => {
        try {
          return parseStorage(readFileSync(storage, "utf8")).some((s) => s.ip === "10.99.7.13");
        } catch {
          return false;
        }
      };
      // mod_heartmonitor rewrites its file every 5 s.
      await waitFor(
        () => inMonitor() && readStorage(apache.storage).some((s) => s.ip === "10.99.7.13"),
        15_000,
        `the agent in both files: monitor ${inMonitor()}, ${apache.diagnostics()}\n${monitorLog().stderr}`,
      );
      assert.doesNotMatch(apache.diagnostics(), /AH02071|AH02090|Address already in use/);
    },
  );
}
