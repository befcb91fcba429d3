/**
 * What a drain really does to a real Apache balancer: origin2, the balancer's LAST member
 * (whom mod_lbmethod_heartbeat's inclusive draw favours even at ready=0), is drained by signal
 * or by creating its --drain-file while requests flow; the test finds when it gets its last new request. Apache's
 * mod_heartmonitor keeps what it hears in shared memory (seen at once, lastseen counted at each
 * request) or in its storage file (rewritten every 5 s); or `heartbeat monitor` writes the
 * storage file that mod_lbmethod_heartbeat reads (rewritten every second).
 *
 *   proxy    10.99.16.1   apache2 (mod_heartmonitor, or heartbeat monitor beside it), balancer of
 *                         origin1 then origin2
 *   origin1  10.99.16.11  nginx, agent --ready 20 --busy 1
 *   origin2  10.99.16.12  nginx, agent --ready 20 --busy 1, drained
 */
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, test } from "node:test";
import { drainSignals } from "../../src/signals.ts";
import { agentCommand, collect, Lab, runtimeCommand, waitFor } from "../../scripts/lab/lab.ts";
import { currentRuntime, skipUnlessLab } from "../support/lab.ts";
import { startApacheProxy, startNginx } from "../../scripts/lab/servers.ts";

const skip = skipUnlessLab(["apache2", "nginx"]);
const runtime = currentRuntime();
const labs: Lab[] = [];
after(() => Promise.all(labs.map((lab) => lab.close())));

/** Where the balancer's heartbeats are kept: by mod_heartmonitor, or by heartbeat monitor. */
type Mode = "slotmem" | "file" | "heartbeat monitor";

/** How origin2 is drained: by signal, or by creating its --drain-file. */
type By = "signal" | "drain file";

/**
 * Milliseconds from the drain to origin2's last new request, with heartbeats kept as `mode`
 * says, drained as `by` says.
 */
async function lastRequestAfterDrain(
  mode: Mode,
  by: By,
  subnet: number,
): Promise<{ last: number; answered: number; lastHeartbeat?: number }> {
  const lab = new Lab();
  labs.push(lab);
  lab.addSwitch("switch");
  const ip = (host: number) => `10.99.${subnet}.${host}`;
  lab.addNamespace("proxy");
  lab.plug("proxy", `${ip(1)}/24`);
  const storage = join(lab.dir, "monitor.dat");
  // heartbeat monitor also prints each heartbeat it takes, with the time: when origin2 fell silent.
  const printed = mode === "heartbeat monitor"
    ? collect(lab.spawn(
      "proxy",
      agentCommand(runtime, [
        "monitor",
        "--listen",
        "239.0.0.1:27999",
        "--storage",
        storage,
        "--print",
      ]),
    ))
    : undefined;
  const apache = startApacheProxy(lab, "proxy", {
    address: ip(1),
    ...(mode === "heartbeat monitor"
      ? { storage }
      : { heartmonitor: { listen: "239.0.0.1:27999", slotmem: mode === "slotmem" } }),
    members: [`http://${ip(11)}:80`, `http://${ip(12)}:80`],
  });
  const drainFile = join(lab.dir, "origin2.drain");
  const agents = ["origin1", "origin2"].map((ns, i) => {
    lab.addNamespace(ns);
    lab.plug(ns, `${ip(11 + i)}/24`);
    startNginx(lab, ns, { listen: `${ip(11 + i)}:80`, body: ns });
    return lab.spawn(
      ns,
      agentCommand(runtime, [
        "-a",
        "239.0.0.1:27999",
        "--ready",
        "20",
        "--busy",
        "1",
        ...(ns === "origin2" ? ["--drain-file", drainFile] : []),
      ]),
    );
  });
  const get = async () =>
    (await lab.run("proxy", [
      "curl",
      "-sS",
      "--max-time",
      "5",
      ...Array(40).fill(`http://${ip(1)}/`),
    ])).stdout;
  const deadline = Date.now() + 30_000;
  while (!(await get()).includes("origin2")) {
    assert.ok(
      Date.now() < deadline,
      `origin2 answering through the proxy\n${apache.diagnostics()}`,
    );
  }
  const probe = lab.spawn(
    "proxy",
    runtimeCommand(runtime, "test/support/request-probe.ts", [`http://${ip(1)}/`, "20", "20000"]),
  );
  const answers = collect(probe);
  await waitFor(() => answers().stdout.startsWith("ready"), 10_000, "the request probe");
  await new Promise((resolve) => setTimeout(resolve, 1000));
  const drainedAt = Date.now();
  if (by === "signal") process.kill(agents[1].pid!, drainSignals(runtime).drain[0]);
  else writeFileSync(drainFile, "");
  await new Promise<void>((resolve) => probe.once("exit", () => resolve()));
  const served = answers().stdout.split("\n").slice(1).map((line) => line.split(" "))
    .filter(([, status]) => status === "200");
  const byOrigin2 = served.filter(([, , body]) => body === "origin2").map(([at]) =>
    Number(at) - drainedAt
  );
  const heard = printed?.().stdout.split("\n").filter((line) => line.includes(` ${ip(12)} `))
    .map((line) => Date.parse(line.split(" ")[0]) - drainedAt);
  return {
    last: Math.max(...byOrigin2),
    answered: served.length,
    lastHeartbeat: heard && Math.max(...heard),
  };
}

/**
 * How soon after the drain origin2's last heartbeat must have come (heard by heartbeat monitor):
 * its two announcements 0.25 s apart, the first at once (or, by file, within 200 ms); before the
 * drain file was looked for between ticks, they came at the next two ticks, 1 to 2 s after.
 */
const LAST_HEARTBEAT_MS = 1000;

/**
 * How soon after the drain origin2 must have had its last request, by signal or by drain file
 * alike (the file is looked for every 200 ms): shared memory and heartbeat monitor's file, within
 * 12 s (10 s after the last announcement, 0.25 s after the first, and for the file up to a second
 * more till its next rewrite); mod_heartmonitor's file is rewritten every 5 s, so up to 15 s after
 * the last announcement.
 */
const BOUND_MS: Record<Mode, number> = {
  slotmem: 12_000,
  "heartbeat monitor": 12_000,
  file: 16_000,
};

for (
  const [mode, by, subnet] of [
    ["slotmem", "signal", 16],
    ["file", "signal", 17],
    ["heartbeat monitor", "signal", 18],
    ["slotmem", "drain file", 20],
    ["file", "drain file", 21],
    ["heartbeat monitor", "drain file", 22],
  ] as const
) {
  test(
    `drain by ${by}: the balancer's last member, drained, gets no new request once Apache drops it (${mode}: within ${
      BOUND_MS[mode] / 1000
    } s)`,
    { skip },
    async () => {
      const { last, answered, lastHeartbeat } = await lastRequestAfterDrain(mode, by, subnet);
      console.log(
        `drain by ${by} (${mode}): origin2's last new request came ${last} ms after the drain (${answered} answered)${
          lastHeartbeat === undefined ? "" : `, its last heartbeat ${lastHeartbeat} ms after`
        }`,
      );
      assert.ok(answered > 100, `requests answered: ${answered}`);
      assert.ok(last < BOUND_MS[mode], `origin2's last request ${last} ms after the drain`);
      // Both announcements within a moment of the drain (0.25 s apart; a drain file is looked
      // for every 200 ms), by file as by signal, rather than a tick or two later.
      if (lastHeartbeat !== undefined) {
        assert.ok(
          lastHeartbeat < LAST_HEARTBEAT_MS,
          `origin2's last heartbeat ${lastHeartbeat} ms after the drain`,
        );
      }
    },
  );
}
