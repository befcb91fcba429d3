/**
 * nginx balanced by heartbeats, for real (Debian's nginx 1.22): heartbeat monitor keeps the
 * upstream file that contrib/nginx-upstream.conf includes, and reloads nginx when it changes.
 *
 *   proxy    10.99.26.1   nginx :8080 -> upstream heartbeat { include upstream.conf; }
 *                         heartbeat monitor --listen 239.0.0.1:27999 --nginx-upstream ...
 *                           --nginx-server 10.99.26.11 --nginx-server 10.99.26.12
 *   origin1  10.99.26.11  nginx, agent --ready 30 --busy 10
 *   origin2  10.99.26.12  nginx, agent --ready 10 --busy 30
 *   origin3  10.99.26.13  nginx, agent --ready 50 --busy 5: heard, but not in --nginx-server
 *
 * The tests run in order on one lab: the split, a noisy source, a drain, an origin that stops,
 * and every server down.
 */
import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { existsSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, test } from "node:test";
import { parseUpstream, type UpstreamServer } from "../../src/monitor/outputs/nginx.ts";
import { drainSignals } from "../../src/signals.ts";
import { agentCommand, collect, Lab, stop, waitFor } from "../../scripts/lab/lab.ts";
import { REPO } from "../../scripts/repo.ts";
import { startNginx } from "../../scripts/lab/servers.ts";
import { currentRuntime, skipUnlessLab } from "../support/lab.ts";

const skip = skipUnlessLab(["nginx", "curl"]);
const runtime = currentRuntime();
/** --nginx-reload-interval in this lab. */
const INTERVAL = 3;
const PROXY = "10.99.26.1";
const ORIGINS = { origin1: "10.99.26.11", origin2: "10.99.26.12", origin3: "10.99.26.13" };

const agentArgs = (ready: number, busy: number) => [
  "-a",
  "239.0.0.1:27999",
  "--ready",
  String(ready),
  "--busy",
  String(busy),
];
const ORIGIN1_AGENT = agentArgs(30, 10);

let lab: Lab | undefined;
after(() => lab?.close());

interface Setup {
  lab: Lab;
  dir: string;
  upstream: string;
  agents: Record<string, ChildProcess>;
  monitor: () => { stdout: string; stderr: string };
  nginx: () => { stdout: string; stderr: string };
}
let setup: Setup | undefined;

/** The upstream file's servers, none while there is no file. */
function servers(): UpstreamServer[] {
  return existsSync(setup!.upstream) ? parseUpstream(readFileSync(setup!.upstream, "utf8")) : [];
}

/** Waits until the upstream file's servers pass `check`; returns when (Date.now()). */
async function upstreamWhen(
  check: (servers: UpstreamServer[]) => boolean,
  timeoutMs: number,
  what: string,
): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  while (!check(servers())) {
    if (Date.now() > deadline) {
      assert.fail(
        `${what}: the upstream holds ${JSON.stringify(servers())}\n${setup!.monitor().stderr}`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return Date.now();
}

/** Waits until the upstream file holds `expected`; returns when (Date.now()). */
function upstreamHolds(
  expected: UpstreamServer[],
  timeoutMs: number,
  what: string,
): Promise<number> {
  return upstreamWhen(
    (servers) => JSON.stringify(servers) === JSON.stringify(expected),
    timeoutMs,
    `${what} (${JSON.stringify(expected)} wanted)`,
  );
}

/** `count` requests through nginx, one connection: how many each origin answered, and the statuses. */
async function requests(
  count: number,
): Promise<{ bodies: Record<string, number>; codes: string[] }> {
  const result = await setup!.lab.run("proxy", [
    "curl",
    "-sS",
    "--max-time",
    "10",
    "-w",
    " %{http_code}\n",
    ...Array(count).fill(`http://${PROXY}:8080/`),
  ]);
  const bodies: Record<string, number> = {};
  const codes: string[] = [];
  // Each answer is `originN\n CODE\n`, or nginx's error page then ` CODE\n`.
  for (const match of result.stdout.matchAll(/(?:^|\n)(origin\d)?\n? (\d{3})(?=\n)/g)) {
    if (match[1]) bodies[match[1]] = (bodies[match[1]] ?? 0) + 1;
    codes.push(match[2]);
  }
  return { bodies, codes };
}

/** The proxy's access log: when each request went to which origin (nginx's $msec, in ms). */
function accessLog(): { at: number; upstream: string; status: string }[] {
  return readFileSync(join(setup!.dir, "access.log"), "utf8").split("\n").filter(Boolean).map(
    (line) => {
      const [msec, upstream, status] = line.split(" ");
      return { at: Number(msec) * 1000, upstream, status };
    },
  );
}

/** The reloads nginx itself saw: SIGHUPs in its error log. */
function reloadsSeen(): number {
  return readFileSync(join(setup!.dir, "error.log"), "utf8").split("\n").filter((line) =>
    line.includes("signal 1 (SIGHUP) received")
  ).length;
}

async function metric(name: string): Promise<number> {
  const result = await setup!.lab.run("proxy", ["curl", "-sS", `http://${PROXY}:8090/metrics`]);
  const escaped = name.replace(/[{}]/g, "\\$&");
  return Number(new RegExp(`^${escaped} (\\d+)$`, "m").exec(result.stdout)?.[1]);
}

test(
  "nginx: requests through nginx split as the weights say; a heartbeat from outside --nginx-server adds nothing",
  { skip },
  async () => {
    lab = new Lab();
    lab.addSwitch("switch");
    lab.addNamespace("proxy");
    lab.plug("proxy", `${PROXY}/24`);
    const dir = lab.dir;
    const upstream = join(dir, "upstream.conf");
    const agents: Record<string, ChildProcess> = {};
    for (
      const [ns, ready, busy] of [["origin1", 30, 10], ["origin2", 10, 30], [
        "origin3",
        50,
        5,
      ]] as const
    ) {
      const ip = ORIGINS[ns];
      lab.addNamespace(ns);
      lab.plug(ns, `${ip}/24`);
      startNginx(lab, ns, { listen: `${ip}:80`, body: ns });
      agents[ns] = lab.spawn(ns, agentCommand(runtime, agentArgs(ready, busy)));
    }
    // contrib/nginx-upstream.conf as an operator drops it in, with the lab's file and address,
    // under an nginx.conf of the lab's own (its prefix, pid and logs in the lab's folder).
    writeFileSync(
      join(dir, "heartbeat-upstream.conf"),
      readFileSync(join(REPO, "contrib", "nginx-upstream.conf"), "utf8")
        .replaceAll("/run/heartbeat/nginx-upstream.conf", upstream)
        .replace("listen 8080;", `listen ${PROXY}:8080;`),
    );
    const config = join(dir, "nginx.conf");
    writeFileSync(
      config,
      `daemon off;
worker_processes 2;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log notice;
events { worker_connections 256; }
http {
  log_format upstreams '$msec $upstream_addr $status';
  access_log ${dir}/access.log upstreams;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  include ${dir}/heartbeat-upstream.conf;
}
`,
    );
    const monitor = collect(lab.spawn(
      "proxy",
      agentCommand(runtime, [
        "monitor",
        "--listen",
        "239.0.0.1:27999",
        "--http",
        `${PROXY}:8090`,
        "--nginx-upstream",
        upstream,
        "--nginx-server",
        ORIGINS.origin1,
        "--nginx-server",
        `${ORIGINS.origin2}:80`,
        "--nginx-reload",
        `nginx -p ${dir} -e ${dir}/error.log -c ${config} -s reload`,
        "--nginx-reload-interval",
        String(INTERVAL),
      ]),
    ));
    let nginx = () => ({ stdout: "", stderr: "" });
    setup = { lab, dir, upstream, agents, monitor, nginx: () => nginx() };
    // Ready 30 and 10, busy both: 256 and 85, as the HAProxy push; origin3 is heard, not listed.
    const expected = [
      { address: `${ORIGINS.origin1}:80`, weight: 256 },
      { address: `${ORIGINS.origin2}:80`, weight: 85 },
    ];
    await upstreamHolds(expected, 20_000, "the first upstream");
    assert.equal(statSync(upstream).mode & 0o777, 0o644);
    // nginx starts once the file is there: an include of a missing file fails.
    nginx = collect(
      lab.spawn("proxy", ["nginx", "-p", dir, "-e", `${dir}/error.log`, "-c", config]),
    );
    await waitFor(() => existsSync(join(dir, "nginx.pid")), 10_000, "nginx to start");
    await new Promise((resolve) => setTimeout(resolve, 500));

    const { bodies, codes } = await requests(400);
    assert.deepEqual(new Set(codes), new Set(["200"]), JSON.stringify(codes));
    assert.equal((bodies.origin1 ?? 0) + (bodies.origin2 ?? 0), 400, JSON.stringify(bodies));
    // 256 of 341: 75.1 %. nginx's smooth weighted round robin, shared by both workers (zone),
    // is exact over each 341 requests: 3 points allow for where the 400 start in that cycle.
    const share = bodies.origin1 / 400;
    console.log(
      `nginx split: origin1 ${bodies.origin1}, origin2 ${bodies.origin2} of 400 (${
        (share * 100).toFixed(1)
      } %, weights say 75.1 %)`,
    );
    assert.ok(Math.abs(share - 256 / 341) <= 0.03, `origin1 had ${(share * 100).toFixed(1)} %`);
    assert.equal(bodies.origin3, undefined, "origin3 is not in --nginx-server");

    // origin3 is heard (its 50 slots would be the largest weight), and changes nothing.
    const heard = await lab.run("proxy", ["curl", "-sS", `http://${PROXY}:8090/servers`]);
    assert.match(heard.stdout, new RegExp(`"ip": "${ORIGINS.origin3}"`));
    assert.deepEqual(servers(), expected);
    assert.doesNotMatch(readFileSync(upstream, "utf8"), /10\.99\.26\.13/);
  },
);

test(
  "nginx: under a noisy source, a minute holds at most one reload each --nginx-reload-interval",
  { skip },
  async () => {
    const { lab } = setup!;
    const reloadsBefore = reloadsSeen();
    const countedBefore = await metric('heartbeat_nginx_reloads_total{result="ok"}');
    // The first reload came before nginx ran (there was no file for it to start with), and failed.
    const failedBefore = await metric('heartbeat_nginx_reloads_total{result="failed"}');
    // origin1's agent replaced by one whose load swings each second between 30 free slots of 40
    // and 3: origin1's weight between 256 and 26 (against origin2's 10 of 40), far past the
    // hysteresis, all the time.
    await stop(setup!.agents.origin1);
    const noisy = lab.spawn(
      "origin1",
      agentCommand(runtime, [
        "-a",
        "239.0.0.1:27999",
        "--source",
        "exec:if [ $(($(date +%s) % 2)) = 0 ]; then echo 'ready=30&busy=10'; else echo 'ready=3&busy=37'; fi",
      ]),
    );
    await new Promise((resolve) => setTimeout(resolve, 60_000));
    await stop(noisy);
    setup!.agents.origin1 = lab.spawn("origin1", agentCommand(runtime, ORIGIN1_AGENT));
    const reloads = reloadsSeen() - reloadsBefore;
    const counted = await metric('heartbeat_nginx_reloads_total{result="ok"}') - countedBefore;
    console.log(`nginx: ${reloads} reloads in a minute of noise (interval ${INTERVAL} s)`);
    assert.ok(reloads <= 60 / INTERVAL + 1, `${reloads} reloads in a minute`);
    assert.ok(reloads >= 60 / INTERVAL / 2, `${reloads} reloads in a minute: the weights follow`);
    // Every reload the monitor counts, nginx saw (one in flight at the end may be either side).
    assert.ok(Math.abs(counted - reloads) <= 1, `counted ${counted}, nginx saw ${reloads}`);
    assert.equal(await metric('heartbeat_nginx_reloads_total{result="failed"}'), failedBefore);
    await upstreamHolds(
      [{ address: `${ORIGINS.origin1}:80`, weight: 256 }, {
        address: `${ORIGINS.origin2}:80`,
        weight: 85,
      }],
      (INTERVAL + 3) * 1000,
      "the weights once the noise stops",
    );
  },
);

test(
  "nginx: a drained origin gets no new request within (reload interval + 1) s",
  { skip },
  async () => {
    const { lab, agents } = setup!;
    // Requests all along, 50 a second.
    // (Into /dev/null: an unread pipe must not hold curl up.)
    const load = lab.spawn("proxy", [
      "sh",
      "-c",
      `curl -sS -m 2 --rate 50/s ${
        Array((INTERVAL + 7) * 50).fill(`http://${PROXY}:8080/`).join(" ")
      } > /dev/null`,
    ]);
    const loaded = new Promise((resolve) => load.once("exit", resolve));
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    const drainedAt = Date.now();
    process.kill(agents.origin2.pid!, drainSignals(runtime).drain[0]);
    const downAt = await upstreamHolds(
      [{ address: `${ORIGINS.origin1}:80`, weight: 256 }, {
        address: `${ORIGINS.origin2}:80`,
        weight: 0,
      }],
      (INTERVAL + 2) * 1000,
      "origin2 down",
    );
    await loaded;
    const log = accessLog().filter((line) => line.at >= drainedAt);
    const toOrigin2 = log.filter((line) => line.upstream === `${ORIGINS.origin2}:80`);
    const last = Math.max(drainedAt, ...toOrigin2.map((line) => line.at));
    console.log(
      `nginx drain: the file at ${downAt - drainedAt} ms, the last request to origin2 at ${
        last - drainedAt
      } ms`,
    );
    assert.ok(
      last - drainedAt <= (INTERVAL + 1) * 1000,
      `origin2's last request ${last - drainedAt} ms after the drain`,
    );
    const later = log.filter((line) => line.at > drainedAt + (INTERVAL + 1) * 1000);
    assert.ok(later.length >= 100, `${later.length} requests after the drain took effect`);
    assert.ok(
      later.every((line) => line.upstream === `${ORIGINS.origin1}:80` && line.status === "200"),
    );
  },
);

test(
  "nginx: an origin that stops is down after 10 s and gone after 30 s; with every server down nginx answers 502",
  { skip },
  async () => {
    const { lab, agents } = setup!;
    process.kill(agents.origin2.pid!, drainSignals(runtime).undrain[0]);
    // Back up: the agent ramps its ready up after a drain, so any weight.
    const origin1 = `${ORIGINS.origin1}:80`;
    const origin2 = `${ORIGINS.origin2}:80`;
    const weightOf = (servers: UpstreamServer[], address: string) =>
      servers.find((server) => server.address === address)?.weight;
    await upstreamWhen(
      (servers) => weightOf(servers, origin2)! > 0,
      (INTERVAL + 3) * 1000,
      "origin2 back",
    );
    // origin2 dies with its agent: no farewell, only silence.
    lab.pids("origin2").forEach((pid) => process.kill(pid, "SIGKILL"));
    const killedAt = Date.now();
    const downAt = await upstreamWhen(
      (servers) => weightOf(servers, origin2) === 0,
      15_000 + INTERVAL * 1000,
      "origin2 down",
    );
    assert.equal(weightOf(servers(), origin1), 256);
    // Silent 10 s by the last heartbeat, up to a second before the kill; then at most an interval.
    assert.ok(downAt - killedAt >= 9_000, `down ${downAt - killedAt} ms after the kill`);
    assert.ok(
      downAt - killedAt <= (11 + INTERVAL + 1) * 1000,
      `down ${downAt - killedAt} ms after the kill`,
    );
    const { codes } = await requests(50);
    assert.deepEqual(new Set(codes), new Set(["200"]), "a down server gets no request");
    const goneAt = await upstreamHolds(
      [{ address: origin1, weight: 256 }],
      40_000,
      "origin2 gone",
    );
    assert.ok(goneAt - killedAt >= 29_000, `gone ${goneAt - killedAt} ms after the kill`);
    assert.ok(
      goneAt - killedAt <= (31 + INTERVAL + 1) * 1000,
      `gone ${goneAt - killedAt} ms after the kill`,
    );
    console.log(`nginx stop: down at ${downAt - killedAt} ms, gone at ${goneAt - killedAt} ms`);

    // The last server drains: the file keeps it, down (an empty upstream fails nginx -t), and
    // nginx answers 502 Bad Gateway.
    process.kill(agents.origin1.pid!, drainSignals(runtime).drain[0]);
    await upstreamHolds(
      [{ address: origin1, weight: 0 }],
      (INTERVAL + 2) * 1000,
      "origin1 down",
    );
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    const { codes: allDown } = await requests(5);
    assert.deepEqual(allDown, ["502", "502", "502", "502", "502"]);
    assert.match(readFileSync(join(setup!.dir, "error.log"), "utf8"), /no live upstreams/);
    const test = await lab.run("proxy", [
      "nginx",
      "-t",
      "-p",
      setup!.dir,
      "-e",
      `${setup!.dir}/error.log`,
      "-c",
      join(setup!.dir, "nginx.conf"),
    ]);
    assert.equal(test.code, 0, test.stderr);
  },
);
