/**
 * How heartbeat monitor reads what mod_heartmonitor reads, side by side against a real Apache:
 * each sender sends the same datagrams to Apache's mod_heartmonitor and to heartbeat monitor
 * (one port each), and both must keep the same servers with the same counts. A trailing line end
 * (`echo ... | socat`) and a port= that is no port are taken by Apache; the monitor takes them too,
 * dropping only the bad port (README: how the monitor reads a heartbeat).
 *
 *   proxy    10.99.31.1       apache2 with mod_heartmonitor (storage file) on 239.0.0.1:27999,
 *                             heartbeat monitor on 239.0.0.1:27998
 *   sender*  10.99.31.11-14   socat, one datagram of each kind every half second
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, test } from "node:test";
import { agentCommand, collect, Lab, waitFor } from "../../scripts/lab/lab.ts";
import { currentRuntime, skipUnlessLab } from "../support/lab.ts";
import { readStorage, startApacheProxy } from "../../scripts/lab/servers.ts";

const skip = skipUnlessLab(["apache2", "socat"]);
const runtime = currentRuntime();
let lab: Lab | undefined;
after(() => lab?.close());

/** What each sender sends, and what both keep: ready, busy, and the port each stores. */
const SENDERS = [
  { ip: "10.99.31.11", payload: "v=1&ready=5&busy=1\n", apache: 80, ours: 80 },
  { ip: "10.99.31.12", payload: "v=1&ready=6&busy=2\r\n", apache: 80, ours: 80 },
  // Apache stores atoi's guess at the port; the monitor drops the port, keeps the server.
  { ip: "10.99.31.13", payload: "v=1&ready=7&busy=3&port=8080x", apache: 8080, ours: 80 },
  { ip: "10.99.31.14", payload: "v=1&ready=8&busy=4&port=0", apache: 0, ours: 80 },
];

test(
  `codec ${runtime}: a trailing line end and a bad port= are taken as mod_heartmonitor takes them`,
  { skip },
  async () => {
    lab = new Lab();
    lab.addSwitch("switch");
    lab.addNamespace("proxy");
    lab.plug("proxy", "10.99.31.1/24");
    const apache = startApacheProxy(lab, "proxy", {
      address: "10.99.31.1",
      heartmonitor: { listen: "239.0.0.1:27999" },
      members: ["http://10.99.31.11:80"],
    });
    const storage = join(lab.dir, "monitor-hb.dat");
    const monitor = collect(lab.spawn(
      "proxy",
      agentCommand(runtime, [
        "monitor",
        "--listen",
        "239.0.0.1:27998",
        "--storage",
        storage,
        "--http",
        "10.99.31.1:8080",
      ]),
    ));
    SENDERS.forEach(({ ip, payload }, i) => {
      lab!.addNamespace(`sender${i}`);
      lab!.plug(`sender${i}`, `${ip}/24`);
      const send = (port: number) =>
        `printf '${payload.replace(/\r/g, "\\r").replace(/\n/g, "\\n")}' | ` +
        `socat -u - UDP4-DATAGRAM:239.0.0.1:${port}`;
      lab!.spawn(`sender${i}`, [
        "sh",
        "-c",
        `while :; do ${send(27999)}; ${send(27998)}; sleep 0.5; done`,
      ]);
    });
    const kept = (path: string) =>
      readStorage(path).map(({ ip, ready, busy, port }) => [ip, ready, busy, port]).sort();
    // mod_heartmonitor rewrites its file every 5 s.
    try {
      await waitFor(
        () =>
          kept(apache.storage).length === SENDERS.length && kept(storage).length === SENDERS.length,
        30_000,
        "every sender in both files",
      );
    } catch (error) {
      throw new Error(
        `${(error as Error).message}: Apache kept ${JSON.stringify(kept(apache.storage))}, ` +
          `heartbeat monitor ${
            JSON.stringify(kept(storage))
          }\n${monitor().stderr}\n${apache.diagnostics()}`,
      );
    }
    const expected = (port: "apache" | "ours") =>
      SENDERS.map((sender) => {
        const [, ready, busy] = /ready=(\d+)&busy=(\d+)/.exec(sender.payload)!;
        return [sender.ip, Number(ready), Number(busy), sender[port]];
      });
    assert.deepEqual(kept(apache.storage), expected("apache"));
    assert.deepEqual(kept(storage), expected("ours"));
    const metrics = await lab.run("proxy", ["curl", "-sS", "http://10.99.31.1:8080/metrics"]);
    assert.match(metrics.stdout, /^heartbeat_ports_ignored_total [1-9]\d*$/m);
    assert.match(metrics.stdout, /^heartbeat_messages_rejected_total\{reason="bad-number"\} 0$/m);
  },
);
