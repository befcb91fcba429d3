/**
 * The TCP sides under attack, as users run them (source, or the binary in HEARTBEAT_BINARY): the
 * monitor's HTTP, the agent's --http and its agent-check, each against one address that opens
 * connection after connection and sends them a byte a second (slowloris, on headers), while
 * legitimate clients are still served, the heartbeats keep their schedule and the log names the
 * attacker. Each attack is bounded: a few dozen connections, reopened at most 4 times a second
 * each, for 16 s.
 *
 *   server   10.99.41.1 ─┐
 *   client   10.99.41.2 ─┼─ switch
 *   attacker 10.99.41.3 ─┘
 */
import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { after, test } from "node:test";
import {
  agentCommand,
  collect,
  Lab,
  runtimeCommand,
  stop,
  waitFor,
} from "../../scripts/lab/lab.ts";
import { currentRuntime, skipUnlessLab } from "../support/lab.ts";
import { listenProbe } from "../support/listen.ts";

const skip = skipUnlessLab(["curl", "socat"]);
const runtime = currentRuntime();
const SERVER = "10.99.41.1";
const ATTACK_SECONDS = 16;

let lab: Lab | undefined;
function network(): Lab {
  if (lab) return lab;
  lab = new Lab();
  lab.addSwitch("switch");
  for (const [name, last] of [["server", 1], ["client", 2], ["attacker", 3]] as const) {
    lab.addNamespace(name);
    lab.plug(name, `10.99.41.${last}/24`);
  }
  return lab;
}
after(() => lab?.close());

/** Starts slow-clients.ts in the attacker's namespace; resolves to its report at the end. */
async function attack(
  port: number,
  count: number,
  text: string,
): Promise<() => Promise<{ opened: number; closedByServer: number; longestMs: number }>> {
  const attacker = network().spawn(
    "attacker",
    runtimeCommand(runtime, "test/support/slow-clients.ts", [
      SERVER,
      String(port),
      String(count),
      String(ATTACK_SECONDS),
      text,
    ]),
  );
  const output = collect(attacker);
  await waitFor(() => output().stdout.includes("started"), 10_000, "the attacker");
  return async () => {
    await waitFor(() => output().stdout.includes("opened"), 30_000, "the attack's end");
    return JSON.parse(output().stdout.trim().split("\n").pop()!);
  };
}

/**
 * Stops `child` by SIGTERM; resolves to its exit status. process.kill, not child.kill: Deno's
 * ChildProcess.kill() reports the signal as the cause of exit even when the process handled it.
 */
function terminate(child: ChildProcess): Promise<number | null> {
  const exited = new Promise<number | null>((resolve) => child.once("exit", resolve));
  process.kill(child.pid!, "SIGTERM");
  return exited;
}

/** Runs `command` in the client's namespace; its output's lines. */
async function client(command: string): Promise<string[]> {
  const result = await network().run("client", ["sh", "-c", command], { timeoutMs: 60_000 });
  assert.equal(result.code, 0, result.stderr);
  return result.stdout.trim().split("\n");
}

test(
  `http limits ${runtime}: one address reopening slow connections cannot starve the monitor's HTTP`,
  { skip },
  async () => {
    const lab = network();
    const storage = join(lab.dir, "hb.dat");
    const monitor = lab.spawn(
      "server",
      agentCommand(runtime, [
        "monitor",
        "--listen",
        `${SERVER}:27999`,
        "--http",
        `${SERVER}:8080`,
        "--storage",
        storage,
      ]),
    );
    const log = collect(monitor);
    await waitFor(() => /listening on .*8080/.test(log().stderr), 10_000, "the monitor");
    // More than the monitor's 128 connections in all, from one address, each sending its
    // headers a byte a second.
    const ended = await attack(8080, 140, "POST /heartbeat HTTP/1.1\\r\\nHost: x\\r\\nX-Slow: ");
    await new Promise((resolve) => setTimeout(resolve, 2000));
    const posts = await client(
      "for i in $(seq 30); do curl -s -m 3 -o /dev/null -w '%{http_code}\\n' " +
        `--data 'v=1&ready=3&busy=1' http://${SERVER}:8080/heartbeat; sleep 0.1; done`,
    );
    assert.deepEqual(posts, Array(30).fill("200"), "every legitimate POST taken");
    const metrics = (await client(`curl -s -m 3 http://${SERVER}:8080/metrics`)).join("\n");
    assert.match(
      metrics,
      /^heartbeat_http_requests_refused_total\{reason="too-many-from-address"\} [1-9]/m,
    );
    // The storage file goes on: the client's server in it, heard within the last second or two.
    await new Promise((resolve) => setTimeout(resolve, 1500));
    assert.match(
      readFileSync(storage, "latin1"),
      /^10\.99\.41\.2 &ready=3&busy=1&lastseen=[0-2]&/m,
    );
    const report = await ended();
    assert.ok(report.closedByServer > 0, JSON.stringify(report));
    // Cut off 10 s after opening, whatever it sends (the attacker sees it at its next byte, up
    // to 1 s on), where it used to be held for the whole attack.
    assert.ok(report.longestMs <= 13_000, `a slow connection lasted ${report.longestMs} ms`);
    assert.match(
      log().stderr,
      /refused a connection from 10\.99\.41\.3 \(16 open from it\): too-many-from-address/,
    );
    assert.equal(await terminate(monitor), 0, log().stderr);
  },
);

test(
  `http limits ${runtime}: the agent's --http and agent-check keep answering and heartbeating under a slow flood`,
  { skip },
  async () => {
    const lab = network();
    const listener = await listenProbe(lab, "client", runtime, { port: 27999 });
    // When each heartbeat arrived, as it arrives.
    const heard: number[] = [];
    listener.child.stdout!.on("data", (chunk: Buffer) => {
      for (const line of String(chunk).split("\n")) {
        if (line.includes("ready=4")) heard.push(Date.now());
      }
    });
    const agent = lab.spawn(
      "server",
      agentCommand(runtime, [
        "-a",
        "10.99.41.2:27999",
        "--source",
        "static",
        "--ready",
        "4",
        "--interval",
        "0.2",
        "--http",
        `${SERVER}:9100`,
        "--agent-check",
        `${SERVER}:9300`,
      ]),
    );
    const log = collect(agent);
    await waitFor(() => /agent-check on/.test(log().stderr), 10_000, "the agent-check");
    await waitFor(() => /healthz and \/metrics on/.test(log().stderr), 10_000, "the agent's HTTP");
    // As HAProxy asks, and as `socat … </dev/null` does: a client that half-closes at once.
    const halfClosing = "for i in $(seq 20); do socat -T 3 - TCP:" + SERVER +
      ":9300 </dev/null || echo failed; sleep 0.1; done";
    assert.deepEqual(await client(halfClosing), Array(20).fill("ready up 100%"), "half-closed");
    const httpEnded = await attack(9100, 60, "GET /healthz HTTP/1.1\\r\\nHost: x\\r\\nX-Slow: ");
    const checkEnded = await attack(9300, 80, "x");
    await new Promise((resolve) => setTimeout(resolve, 2000));
    const from = Date.now();
    const checks = await client(halfClosing);
    assert.deepEqual(checks, Array(20).fill("ready up 100%"), "every legitimate check answered");
    const probes = await client(
      "for i in $(seq 10); do curl -s -m 3 -o /dev/null -w '%{http_code}\\n' " +
        `http://${SERVER}:9100/healthz; sleep 0.1; done`,
    );
    assert.deepEqual(probes, Array(10).fill("200"), "every legitimate probe answered");
    const metrics = (await client(`curl -s -m 3 http://${SERVER}:9100/metrics`)).join("\n");
    assert.match(
      metrics,
      /^heartbeat_connections_refused_total\{listener="http",reason="too-many-from-address"\} [1-9]/m,
    );
    // Every heartbeat on time meanwhile: one each 0.2 s, none more than 0.6 s after the last.
    const during = heard.filter((at) => at >= from);
    const gaps = during.slice(1).map((at, i) => at - during[i]);
    assert.ok(
      during.length >= (0.8 * (Date.now() - from)) / 200 && Math.max(...gaps) <= 600,
      `${during.length} heartbeats in ${Date.now() - from} ms, longest gap ${Math.max(...gaps)} ms`,
    );
    const [http, check] = [await httpEnded(), await checkEnded()];
    // Cut off 10 s and 2 s after opening; the attacker sees it at its next byte, up to 1 s on.
    assert.ok(http.longestMs <= 13_000, `an HTTP connection lasted ${http.longestMs} ms`);
    assert.ok(check.longestMs <= 5_000, `an agent-check connection lasted ${check.longestMs} ms`);
    // Deno holds an agent-check connection until the client closes it (or the deadline), so the
    // attacker reaches its bound there; Bun closes it as soon as the line is out, so it never does.
    const refusedChecks = /listener="agent-check",reason="too-many-from-address"\} (\d+)/.exec(
      metrics,
    )![1];
    assert.equal(
      /agent-check: refused a connection from 10\.99\.41\.3 \(8 open from it\): too-many-from-address/
        .test(log().stderr),
      refusedChecks !== "0",
      `${refusedChecks} refused, the log says:\n${log().stderr}`,
    );
    if (runtime === "deno" && !process.env.HEARTBEAT_BINARY) assert.notEqual(refusedChecks, "0");
    assert.match(
      log().stderr,
      /http: refused a connection from 10\.99\.41\.3 \(16 open from it\): too-many-from-address/,
    );
    assert.equal(await terminate(agent), 0, log().stderr);
    await stop(listener.child);
  },
);
