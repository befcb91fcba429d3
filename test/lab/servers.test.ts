/**
 * `heartbeat servers -f` against the real balancer: mod_lbmethod_heartbeat finds a member's
 * server by the member's host alone, so with two members on one host (origin1 on :80 and :8080)
 * it counts origin1's weight twice and sends every pick of both to the later member, whatever
 * port= the heartbeat names. The split of some hundreds of requests through a real Apache must
 * be the one `heartbeat servers` predicts from the same storage file and httpd.conf.
 *
 *   proxy    10.99.30.1   apache2, mod_heartmonitor (storage file), balancer of
 *                         origin1:80, origin1:8080, origin2:80
 *   origin1  10.99.30.11  nginx :80 and :8080, agent --ready 20 --busy 2 --port 8080
 *   origin2  10.99.30.12  nginx :80,           agent --ready 10 --busy 1
 */
import assert from "node:assert/strict";
import { after, test } from "node:test";
import { agentCommand, Lab, waitFor } from "../../scripts/lab/lab.ts";
import { currentRuntime, skipUnlessLab } from "../support/lab.ts";
import { readStorage, startApacheProxy, startNginx } from "../../scripts/lab/servers.ts";

const skip = skipUnlessLab(["apache2", "nginx", "curl"]);
const runtime = currentRuntime();
let lab: Lab | undefined;
after(() => lab?.close());

const MEMBERS = ["http://10.99.30.11:80", "http://10.99.30.11:8080", "http://10.99.30.12:80"];
const REQUESTS = 600;
/** Percentage points the measured split may differ from the prediction: over 3 standard deviations at 600 requests. */
const TOLERANCE = 6;

test(
  `servers ${runtime}: two members on one host split requests through a real Apache as heartbeat servers -f predicts`,
  { skip },
  async () => {
    lab = new Lab();
    lab.addSwitch("switch");
    lab.addNamespace("proxy");
    lab.plug("proxy", "10.99.30.1/24");
    const proxy = startApacheProxy(lab, "proxy", {
      address: "10.99.30.1",
      heartmonitor: { listen: "239.0.0.1:27999" },
      members: MEMBERS,
    });
    const origins = [
      { ns: "origin1", ip: "10.99.30.11", ports: [80, 8080], agent: ["20", "2", "8080"] },
      { ns: "origin2", ip: "10.99.30.12", ports: [80], agent: ["10", "1", "80"] },
    ];
    for (const { ns, ip, ports, agent: [ready, busy, port] } of origins) {
      lab.addNamespace(ns);
      lab.plug(ns, `${ip}/24`);
      startNginx(lab, ns, {
        listen: ports.map((p) => `${ip}:${p}`),
        body: `http://${ip}:$server_port`,
      });
      lab.spawn(
        ns,
        agentCommand(runtime, [
          "-a",
          "239.0.0.1:27999",
          "--ready",
          ready,
          "--busy",
          busy,
          "--port",
          port,
        ]),
      );
    }
    // mod_heartmonitor rewrites its file every 5 s.
    await waitFor(
      () => readStorage(proxy.storage).length === 2,
      30_000,
      `both origins in ${proxy.storage}\n${proxy.diagnostics()}`,
    );
    const predicted = await lab.run(
      "proxy",
      agentCommand(runtime, ["servers", proxy.storage, "-f", proxy.config]),
    );
    assert.equal(predicted.code, 0, predicted.stderr);
    const shares = new Map(
      predicted.stdout.split("\n").flatMap((line) => {
        const match = /^(http:\S+) .* ([\d.]+)%$/.exec(line);
        return match ? [[match[1], Number(match[2])]] : [];
      }),
    );
    assert.deepEqual([...shares.keys()], MEMBERS, predicted.stdout);
    // 20 counted for each of origin1's members, 10 for origin2: 40 and 11 picks of 51.
    assert.deepEqual([...shares.values()], [0, 78.4, 21.6], predicted.stdout);

    const answers: string[] = [];
    for (let batch = 0; batch < REQUESTS / 100; batch++) {
      const result = await lab.run("proxy", [
        "curl",
        "-sS",
        "--max-time",
        "5",
        ...Array(100).fill("http://10.99.30.1/"),
      ]);
      answers.push(...result.stdout.split("\n").filter(Boolean));
    }
    assert.equal(answers.length, REQUESTS, `answered: ${answers.length}\n${proxy.diagnostics()}`);
    const measured = MEMBERS.map((member) =>
      100 * answers.filter((answer) => answer === member).length / REQUESTS
    );
    console.log(
      `servers (${runtime}): ${
        MEMBERS.map((member, i) =>
          `${member} ${measured[i].toFixed(1)}% (predicted ${shares.get(member)}%)`
        ).join(", ")
      } of ${REQUESTS} requests`,
    );
    MEMBERS.forEach((member, i) => {
      const expected = shares.get(member)!;
      assert.ok(
        expected === 0 ? measured[i] === 0 : Math.abs(measured[i] - expected) <= TOLERANCE,
        `${member}: ${measured[i].toFixed(1)}% measured, ${expected}% predicted`,
      );
    });
  },
);
