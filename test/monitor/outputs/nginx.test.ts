/** The nginx upstream output (src/monitor/outputs/nginx.ts), run by a Monitor on the fake clock. */
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { balancerWeights } from "../../../src/monitor/balancer.ts";
import { monitorMetrics } from "../../../src/monitor/metrics.ts";
import { parseServerRange } from "../../../src/monitor/cidr.ts";
import { createLogger } from "../../../src/log.ts";
import { Monitor } from "../../../src/monitor/monitor.ts";
import {
  changedEnough,
  formatUpstream,
  NginxUpstream,
  type NginxUpstreamOptions,
  parseUpstream,
  reloadArgv,
  reloadCommandProblem,
  type ReloadResult,
  runReload,
  SETTLE_MS,
  upstreamServers,
} from "../../../src/monitor/outputs/nginx.ts";
import type { ServerEntry } from "../../../src/monitor/table.ts";
import { FakeClock, recordingLog } from "../../support/fakes.ts";

const folders: string[] = [];
after(() => folders.forEach((folder) => rmSync(folder, { recursive: true, force: true })));

/** A Monitor on the fake clock with one NginxUpstream, whose reloads are recorded, not run. */
function harness(options: Partial<NginxUpstreamOptions> = {}, previous?: string) {
  const folder = mkdtempSync(join(tmpdir(), "heartbeat-nginx-"));
  folders.push(folder);
  const file = join(folder, "upstream.conf");
  if (previous !== undefined) writeFileSync(file, previous);
  const clock = new FakeClock();
  const log = recordingLog();
  const logger = createLogger({ level: "info", write: log.write });
  const reloads: { argv: string[]; at: number }[] = [];
  const result: { next: ReloadResult } = { next: { ok: true, detail: "exit 0" } };
  const output = new NginxUpstream({
    file,
    port: 80,
    servers: [],
    reload: "nginx -s reload",
    intervalSeconds: 5,
    logger,
    run: (argv) => {
      reloads.push({ argv, at: clock.now() });
      return Promise.resolve(result.next);
    },
    ...options,
  });
  const monitor = new Monitor({ maxServers: 100, allow: [], logger, clock, outputs: [output] });
  /** One second: each agent's heartbeat (none for a silent one), then the monitor's tick. */
  const second = async (agents: Record<string, string> = {}) => {
    for (const [ip, body] of Object.entries(agents)) monitor.accept(body, ip, "udp");
    clock.advance(1000);
    monitor.tick();
    await new Promise((resolve) => setImmediate(resolve)); // a reload's result comes back
  };
  const seconds = async (count: number, agents: Record<string, string> = {}) => {
    for (let i = 0; i < count; i++) await second(agents);
  };
  const servers = () => parseUpstream(readFileSync(file, "utf8"));
  return { file, clock, log, reloads, result, output, monitor, second, seconds, servers };
}

const entry = (ip: string, ready: number, busy: number, extra: Partial<ServerEntry> = {}) => ({
  ip,
  ready,
  busy,
  port: 80,
  portGiven: false,
  lastSeen: 0,
  ...extra,
});

test("nginx upstream: weights as the HAProxy push's, the heartbeat's port or --nginx-port, down at ready=0 or after 10 s of silence", () => {
  const entries = [
    entry("10.0.0.1", 30, 10),
    entry("10.0.0.2", 10, 30, { port: 8080, portGiven: true }),
    entry("10.0.0.3", 0, 9),
    entry("10.0.0.4", 50, 1, { lastSeen: -10_000 }),
    entry("fd00::5", 40, 0),
  ];
  const servers = upstreamServers(entries, 0, { port: 8000, servers: [] });
  const weights = balancerWeights(entries, 0);
  assert.deepEqual(servers.map((server) => server.weight), entries.map((e) => weights.get(e)));
  assert.equal(
    formatUpstream(servers).split("\n").slice(1).join("\n"),
    [
      "server 10.0.0.1:8000 weight=256;",
      "server 10.0.0.2:8080 weight=85;",
      "server 10.0.0.3:8000 down;",
      "server 10.0.0.4:8000 down;",
      "server [fd00::5]:8000 weight=85;",
      "",
    ].join("\n"),
  );
  assert.deepEqual(parseUpstream(formatUpstream(servers)), servers);
  assert.deepEqual(reloadArgv("  /usr/sbin/nginx  -c /etc/nginx/nginx.conf\t-s reload "), [
    "/usr/sbin/nginx",
    "-c",
    "/etc/nginx/nginx.conf",
    "-s",
    "reload",
  ]);
});

test("nginx upstream: --nginx-server keeps out every server neither listed nor in a listed range", () => {
  const servers = ["10.0.1.0/24", "10.0.2.5", "10.0.3.7:8080"].map(parseServerRange);
  const entries = [
    entry("10.0.1.9", 10, 10),
    entry("10.0.2.5", 10, 10),
    entry("10.0.2.6", 10, 10),
    entry("10.0.3.7", 10, 10), // port 80 (--nginx-port), not 8080
    entry("10.0.3.7", 10, 10, { ip: "10.0.3.7", port: 8080, portGiven: true }),
    entry("10.9.9.9", 99, 1),
  ];
  assert.deepEqual(
    upstreamServers(entries, 0, { port: 80, servers }).map((server) => server.address),
    ["10.0.1.9:80", "10.0.2.5:80", "10.0.3.7:8080"],
  );
  // Scaled over the allowed servers only: 10.9.9.9's 99 slots set nobody's weight.
  assert.deepEqual(
    upstreamServers(entries, 0, { port: 80, servers }).map((server) => server.weight),
    [256, 256, 256],
  );
  for (const wrong of ["10.0.0.1:0", "10.0.0.1:70000", "nginx.example", "10.0.0.0/33"]) {
    assert.throws(() => parseServerRange(wrong), /give/, wrong);
  }
});

test("nginx upstream: a weight moves the file only past a fifth and 3 of 256; a server coming, going, down or up always does", () => {
  const written = [{ address: "a:80", weight: 100 }, { address: "b:80", weight: 2 }];
  const wanted = (a: number, b: number) => [{ address: "a:80", weight: a }, {
    address: "b:80",
    weight: b,
  }];
  assert.equal(changedEnough(written, wanted(100, 2)), false);
  assert.equal(changedEnough(written, wanted(120, 2)), false, "a fifth is not more than a fifth");
  assert.equal(changedEnough(written, wanted(121, 2)), true);
  assert.equal(changedEnough(written, wanted(79, 2)), true);
  assert.equal(changedEnough(written, wanted(100, 1)), false, "1 of 256 is noise");
  assert.equal(changedEnough(written, wanted(100, 4)), false, "2 of 256 is noise");
  assert.equal(changedEnough(written, wanted(100, 5)), true);
  assert.equal(changedEnough(written, wanted(100, 0)), true, "down");
  assert.equal(changedEnough(wanted(100, 0), wanted(100, 1)), true, "up again");
  assert.equal(changedEnough(written, written.slice(0, 1)), true, "gone");
  assert.equal(changedEnough(written.slice(0, 1), written), true, "new");
  assert.equal(
    changedEnough(written, [{ address: "a:80", weight: 100 }, { address: "c:80", weight: 2 }]),
    true,
  );
});

test("nginx upstream: nothing before the monitor has listened 2 s, then the file at 0644 and one reload", async () => {
  const nginx = harness();
  const agents = { "10.0.0.1": "v=1&ready=30&busy=10", "10.0.0.2": "v=1&ready=10&busy=30" };
  await nginx.seconds(SETTLE_MS / 1000, agents); // the first tick starts the count
  assert.equal(nginx.reloads.length, 0);
  await nginx.second(agents);
  assert.deepEqual(nginx.servers(), [
    { address: "10.0.0.1:80", weight: 256 },
    { address: "10.0.0.2:80", weight: 85 },
  ]);
  assert.equal(statSync(nginx.file).mode & 0o777, 0o644);
  assert.deepEqual(nginx.reloads.map((reload) => reload.argv), [["nginx", "-s", "reload"]]);
  assert.match(
    nginx.log.lines.join("\n"),
    /nginx: wrote \S+upstream\.conf \(2 up, 0 down\); 'nginx -s reload' reloaded it/,
  );
  // The same heartbeats for a minute: nothing more.
  await nginx.seconds(60, agents);
  assert.equal(nginx.reloads.length, 1);
  assert.match(monitorMetrics(nginx.monitor), /^heartbeat_nginx_reloads_total\{result="ok"\} 1$/m);
  assert.match(
    monitorMetrics(nginx.monitor),
    /^heartbeat_nginx_upstream_servers\{state="up"\} 2$/m,
  );
  assert.deepEqual(nginx.monitor.health(), { healthy: true, reason: "ok: 2 servers" });
});

test("nginx upstream: a monitor restarted over an unchanged file does not reload nginx", async () => {
  const text = formatUpstream([{ address: "10.0.0.1:80", weight: 256 }]);
  const nginx = harness({}, text);
  await nginx.seconds(10, { "10.0.0.1": "v=1&ready=30&busy=10" });
  assert.equal(nginx.reloads.length, 0);
  assert.equal(readFileSync(nginx.file, "utf8"), text);
});

test("nginx upstream: under a noisy source the weights follow past the hysteresis, at most one reload each --nginx-reload-interval", async () => {
  const nginx = harness({ intervalSeconds: 5 });
  const steady = { "10.0.0.1": "v=1&ready=30&busy=10" };
  await nginx.seconds(4, { ...steady, "10.0.0.2": "v=1&ready=10&busy=30" });
  assert.equal(nginx.reloads.length, 1);
  // Noise below the hysteresis: 10 to 11 slots is 85 to 94, a ninth.
  for (let i = 0; i < 20; i++) {
    await nginx.second({ ...steady, "10.0.0.2": `v=1&ready=${10 + (i % 2)}&busy=30` });
  }
  assert.equal(nginx.reloads.length, 1, "noise under the threshold reloads nothing");
  // Noise above it, every second, for a minute.
  const start = nginx.clock.now();
  for (let i = 0; i < 60; i++) {
    await nginx.second({ ...steady, "10.0.0.2": `v=1&ready=${i % 2 ? 10 : 25}&busy=30` });
  }
  const noisy = nginx.reloads.slice(1);
  assert.ok(noisy.length <= 60 / 5 + 1, `${noisy.length} reloads in a minute`);
  assert.ok(noisy.length >= 60 / 5 - 1, `${noisy.length} reloads in a minute: the weights follow`);
  for (let i = 1; i < nginx.reloads.length; i++) {
    assert.ok(nginx.reloads[i].at - nginx.reloads[i - 1].at >= 5_000);
  }
  assert.ok(noisy[0].at - start <= 5_000);
});

test("nginx upstream: a drain is never held by the hysteresis, and waits at most the rest of the interval", async () => {
  const nginx = harness({ intervalSeconds: 5 });
  const one = { "10.0.0.1": "v=1&ready=30&busy=10" };
  await nginx.seconds(4, { ...one, "10.0.0.2": "v=1&ready=1&busy=30" });
  assert.deepEqual(nginx.servers(), [
    { address: "10.0.0.1:80", weight: 256 },
    { address: "10.0.0.2:80", weight: 9 },
  ]);
  const lastReload = nginx.reloads.at(-1)!.at;
  // Drained one second after a reload: 9 to 0 is under 3 % of the largest, still it goes at once
  // the interval allows.
  await nginx.second({ ...one, "10.0.0.2": "v=1&ready=0&busy=30" });
  for (
    ;
    nginx.servers()[1].weight !== 0;
    await nginx.second({ ...one, "10.0.0.2": "v=1&ready=0&busy=30" })
  ) {
    assert.ok(nginx.clock.now() - lastReload <= 5_000, "held past the interval");
  }
  assert.equal(nginx.reloads.at(-1)!.at - lastReload, 5_000);
  // Past the interval, a drain goes at the first tick that sees it.
  await nginx.seconds(10, { ...one, "10.0.0.2": "v=1&ready=10&busy=30" });
  const before = nginx.reloads.length;
  await nginx.second({ ...one, "10.0.0.2": "v=1&ready=0&busy=30" });
  assert.equal(nginx.reloads.length, before + 1);
  assert.equal(nginx.servers()[1].weight, 0);
});

test("nginx upstream: a silent server is down after 10 s and gone after 30 s; with none up, the file keeps every server down, never empty", async () => {
  const nginx = harness({ intervalSeconds: 1 });
  const agents = { "10.0.0.1": "v=1&ready=30&busy=10", "10.0.0.2": "v=1&ready=10&busy=30" };
  await nginx.seconds(4, agents);
  const lastHeard = nginx.clock.now() - 1000;
  const downAt = () => nginx.servers().find((s) => s.address === "10.0.0.2:80")?.weight;
  while (downAt() !== 0) await nginx.second({ "10.0.0.1": agents["10.0.0.1"] });
  assert.equal(nginx.clock.now() - lastHeard, 10_000, "down after 10 s of silence");
  while (downAt() !== undefined) await nginx.second({ "10.0.0.1": agents["10.0.0.1"] });
  assert.equal(nginx.clock.now() - lastHeard, 31_000, "gone once silent for more than 30 s");
  assert.deepEqual(nginx.servers(), [{ address: "10.0.0.1:80", weight: 256 }]);
  // The last one drains, then goes silent for good: it stays, down.
  await nginx.seconds(2, { "10.0.0.1": "v=1&ready=0&busy=10" });
  assert.deepEqual(nginx.servers(), [{ address: "10.0.0.1:80", weight: 0 }]);
  const reloads = nginx.reloads.length;
  await nginx.seconds(60);
  assert.equal(nginx.monitor.table.size, 0);
  assert.deepEqual(nginx.servers(), [{ address: "10.0.0.1:80", weight: 0 }]);
  assert.equal(nginx.reloads.length, reloads, "nothing to reload for");
  assert.match(readFileSync(nginx.file, "utf8"), /^server 10\.0\.0\.1:80 down;$/m);
});

test("nginx upstream: a failed reload is logged, counted and said by /healthz, not retried until the next change, and the monitor goes on", async () => {
  const nginx = harness({ intervalSeconds: 1 });
  nginx.result.next = { ok: false, detail: "exit 1: nginx: [error] invalid PID number" };
  const agents = { "10.0.0.1": "v=1&ready=30&busy=10" };
  await nginx.seconds(10, agents);
  assert.equal(nginx.reloads.length, 1, "not retried without a change");
  assert.match(
    nginx.log.lines.join("\n"),
    /warn {2}nginx: wrote \S+ \(1 up, 0 down\); 'nginx -s reload' failed \(exit 1: nginx: \[error\] invalid PID number\): nginx has not read \S+; tried again at the next change/,
  );
  assert.match(
    monitorMetrics(nginx.monitor),
    /^heartbeat_nginx_reloads_total\{result="failed"\} 1$/m,
  );
  assert.equal(nginx.monitor.health().healthy, false);
  assert.match(nginx.monitor.health().reason, /'nginx -s reload' failed/);
  nginx.result.next = { ok: true, detail: "exit 0" };
  await nginx.seconds(2, { ...agents, "10.0.0.2": "v=1&ready=30&busy=10" });
  assert.equal(nginx.reloads.length, 2);
  assert.deepEqual(nginx.monitor.health(), { healthy: true, reason: "ok: 2 servers" });
});

test("nginx upstream: a file that cannot be written is said by /healthz and tried again at the next tick", async () => {
  const nginx = harness({ intervalSeconds: 1 });
  const agents = { "10.0.0.1": "v=1&ready=30&busy=10" };
  rmSync(join(nginx.file, ".."), { recursive: true });
  await nginx.seconds(4, agents);
  assert.equal(nginx.reloads.length, 0);
  assert.match(nginx.monitor.health().reason, /^cannot write \S+upstream\.conf: /);
});

test("nginx upstream: -t's reload command check finds a program in PATH or by its path", () => {
  assert.equal(reloadCommandProblem("sh -c true", "/nowhere:/bin"), undefined);
  assert.equal(reloadCommandProblem("/bin/sh -c true"), undefined);
  assert.equal(
    reloadCommandProblem("nginx-missing -s reload", "/bin:/usr/bin"),
    "nginx-missing is not in PATH (/bin:/usr/bin)",
  );
  assert.equal(
    reloadCommandProblem("/nowhere/nginx -s reload"),
    "/nowhere/nginx is no executable file",
  );
  const folder = mkdtempSync(join(tmpdir(), "heartbeat-nginx-"));
  folders.push(folder);
  writeFileSync(join(folder, "nginx"), "", { mode: 0o644 });
  assert.equal(
    reloadCommandProblem(`${folder}/nginx -s reload`),
    `${folder}/nginx is no executable file`,
  );
});

test("nginx upstream: a reload runner that rejects is a failed reload, not an error out of the tick", async () => {
  const nginx = harness({
    intervalSeconds: 1,
    run: () => Promise.reject(new Error("spawn failed")),
  });
  await nginx.seconds(4, { "10.0.0.1": "v=1&ready=30&busy=10" });
  assert.match(
    monitorMetrics(nginx.monitor),
    /^heartbeat_nginx_reloads_total\{result="failed"\} 1$/m,
  );
  assert.match(nginx.monitor.health().reason, /failed \(spawn failed\)/);
});

test("nginx upstream: the reload command runs without a shell, says how it ended, and is bounded in time", async () => {
  assert.deepEqual(await runReload(["sh", "-c", "echo reloaded"]), {
    ok: true,
    detail: "exit 0: reloaded",
  });
  assert.deepEqual(await runReload(["sh", "-c", "echo 'nginx: [emerg] bad' >&2; exit 1"]), {
    ok: false,
    detail: "exit 1: nginx: [emerg] bad",
  });
  // No shell: a `;` is an argument like any other.
  assert.deepEqual(await runReload(["echo", "a;", "false"]), {
    ok: true,
    detail: "exit 0: a; false",
  });
  assert.equal((await runReload(["/nowhere/nginx", "-s", "reload"])).ok, false);
  assert.deepEqual(await runReload(["sleep", "5"], 200), {
    ok: false,
    detail: "killed by SIGKILL after 0.2 s",
  });
  // A command that leaves a process holding its output: its exit is its end, not the other's.
  const started = Date.now();
  assert.deepEqual(await runReload(["sh", "-c", "sleep 4 & echo started"]), {
    ok: true,
    detail: "exit 0: started",
  });
  assert.ok(Date.now() - started < 3000, `ended after ${Date.now() - started} ms`);
});
