import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { connect, type Socket } from "node:net";
import { join } from "node:path";
import { after, test } from "node:test";
import { createLogger } from "../../src/log.ts";
import { systemClock } from "../../src/scheduler.ts";
import { parseCidr } from "../../src/monitor/cidr.ts";
import { HTTP_BOUNDS } from "../../src/connection-limits.ts";
import { Monitor, runMonitor } from "../../src/monitor/monitor.ts";
import { SEEN_TIMEOUT_MS } from "../../src/monitor/table.ts";
import type { OpenUdpListener } from "../../src/transport/transport.ts";
import { FakeClock, recordingLog } from "../support/fakes.ts";

const scratch = mkdtempSync(join(tmpdir(), "heartbeat-monitor-"));
after(() => rmSync(scratch, { recursive: true, force: true }));

function monitorWith(options: { maxServers?: number; allow?: string[]; storage?: string } = {}) {
  const clock = new FakeClock();
  const log = recordingLog();
  const printed: string[] = [];
  const monitor = new Monitor({
    maxServers: options.maxServers ?? 100,
    allow: (options.allow ?? []).map(parseCidr),
    storage: options.storage,
    print: (line) => printed.push(line),
    logger: createLogger({ level: "info", write: log.write }),
    clock,
  });
  return { monitor, clock, log: log.lines, printed };
}

test("monitor: mod_heartmonitor's input rules; everything else rejected, counted and logged once per reason", () => {
  const { monitor, log, printed } = monitorWith();
  assert.equal(
    monitor.accept("v=1&ready=5&busy=2&port=8080&zone=eu", "10.0.0.1", "udp"),
    undefined,
  );
  const junk: [string | Uint8Array, string][] = [
    ["", "missing-field"],
    [new Uint8Array([0, 1, 2, 255]), "missing-field"],
    ["v=1&ready=5", "missing-field"],
    ["v=1&ready=x&busy=1", "bad-number"],
    ["v=1&ready=-3&busy=1", "bad-number"],
    [`v=1&ready=1&busy=1&pad=${"x".repeat(1000)}`, "oversize"],
    ["ready=1&busy=1", "missing-field"],
  ];
  for (const [message, reason] of junk) {
    assert.equal(
      monitor.accept(message, "10.0.0.66", "udp")?.reason,
      reason,
      JSON.stringify(message),
    );
  }
  assert.deepEqual(monitor.servers().map((server) => (server as { ip: string }).ip), ["10.0.0.1"]);
  assert.deepEqual(Object.fromEntries(monitor.rejected), {
    "missing-field": 4,
    "bad-number": 2,
    oversize: 1,
  });
  const warnings = log.filter((line) => line.includes(" warn "));
  assert.equal(warnings.length, 3, warnings.join("\n"));
  assert.match(
    warnings[0],
    /rejected a heartbeat from 10\.0\.0\.66 \(udp\): missing-field: no v, ready, busy/,
  );
  assert.match(
    warnings[1],
    /bad-number: ready must be a whole number from 0 to 4294967295, got 'x'/,
  );
  assert.equal(printed.length, 1);
  assert.match(printed[0], / 10\.0\.0\.1 ready=5 busy=2 port=8080 \(udp\)$/);
});

test("monitor: --allow turns away other senders; --max-servers turns away new ones", () => {
  const allowed = monitorWith({ allow: ["10.99.0.0/16"] });
  assert.equal(allowed.monitor.accept("v=1&ready=1&busy=1", "10.99.1.1", "udp"), undefined);
  assert.deepEqual(allowed.monitor.accept("v=1&ready=1&busy=1", "10.1.1.1", "http"), {
    reason: "not-allowed",
    detail: "not in --allow",
  });
  const small = monitorWith({ maxServers: 1 });
  small.monitor.accept("v=1&ready=1&busy=1", "10.0.0.1", "udp");
  assert.equal(small.monitor.accept("v=1&ready=1&busy=1", "10.0.0.2", "udp")?.reason, "full");
  assert.match(
    small.log.find((line) => line.includes("full"))!,
    /rejected a heartbeat from 10\.0\.0\.2 \(udp\): full: already 1 servers \(--max-servers\)/,
  );
});

test("monitor: the storage file is written every tick, a new server at the next one, and loses silent servers after 30 s", () => {
  const storage = join(scratch, "tick.dat");
  const { monitor, clock, log } = monitorWith({ storage });
  monitor.accept("v=1&ready=4&busy=1", "10.0.0.1", "udp");
  monitor.tick();
  assert.equal(readFileSync(storage, "utf8"), "10.0.0.1 &ready=4&busy=1&lastseen=0&port=80\n");
  clock.advance(5_000);
  monitor.accept("v=1&ready=6&busy=0&port=81", "10.0.0.2", "http");
  clock.advance(2_000);
  monitor.tick();
  assert.equal(
    readFileSync(storage, "utf8"),
    "10.0.0.1 &ready=4&busy=1&lastseen=7&port=80\n10.0.0.2 &ready=6&busy=0&lastseen=2&port=81\n",
  );
  clock.advance(SEEN_TIMEOUT_MS - 7_000 + 1);
  monitor.tick();
  assert.equal(readFileSync(storage, "utf8"), "10.0.0.2 &ready=6&busy=0&lastseen=25&port=81\n");
  assert.ok(log.some((line) => line.endsWith("info  server 10.0.0.1 silent for 30 s: removed")));
});

test("monitor: an unwritable storage file is logged once, and the monitor goes on", () => {
  const { monitor, log } = monitorWith({ storage: join(scratch, "missing-dir", "hb.dat") });
  monitor.accept("v=1&ready=1&busy=1", "10.0.0.1", "udp");
  monitor.tick();
  monitor.tick();
  assert.equal(log.filter((line) => line.includes("cannot write")).length, 1);
  assert.equal(monitor.table.size, 1);
});

test("monitor: /metrics in Prometheus' text format", () => {
  const { monitor, clock } = monitorWith();
  monitor.accept("v=1&ready=5&busy=2", "10.0.0.1", "udp");
  monitor.accept("v=1&busy=2", "10.0.0.2", "udp");
  clock.advance(1500);
  const metrics = monitor.metrics();
  for (
    const line of [
      "# TYPE heartbeat_server_ready gauge",
      'heartbeat_server_ready{ip="10.0.0.1",port="80"} 5',
      'heartbeat_server_busy{ip="10.0.0.1",port="80"} 2',
      'heartbeat_server_last_seen_seconds{ip="10.0.0.1",port="80"} 1.500',
      "heartbeat_servers 1",
      'heartbeat_messages_accepted_total{via="udp"} 1',
      'heartbeat_messages_rejected_total{reason="missing-field"} 1',
      'heartbeat_messages_rejected_total{reason="full"} 0',
    ]
  ) assert.ok(metrics.split("\n").includes(line), line);
});

test("monitor: HTTP POST /heartbeat as mod_heartmonitor's handler, GET /servers and /metrics", async () => {
  const stop = new AbortController();
  const noUdp: OpenUdpListener = () => Promise.reject(new Error("not used"));
  let monitor: Monitor | undefined;
  const running = runMonitor({
    http: { host: "127.0.0.1", port: 0 },
    openUdpListener: noUdp,
    maxServers: 10,
    allow: [],
    logger: createLogger({ level: "error", write: () => {} }),
    clock: systemClock,
    signal: stop.signal,
    onListening: (started, address) => {
      monitor = started;
      port = address.port ?? 0;
    },
  });
  let port = 0;
  for (let wait = 0; wait < 100 && !monitor; wait++) {
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  assert.ok(monitor && port > 0, "listening");
  const url = `http://127.0.0.1:${port}`;
  const post = (body: string) => fetch(`${url}/heartbeat`, { method: "POST", body });
  const ok = await post("v=1&ready=3&busy=1&port=8080");
  assert.deepEqual([ok.status, await ok.text()], [200, "OK"]);
  const bad = await post("v=1&ready=3");
  assert.deepEqual([bad.status, await bad.text()], [400, "missing-field: no busy\n"]);
  const big = await post(`v=1&ready=1&busy=1&pad=${"x".repeat(2000)}`);
  assert.equal(big.status, 413);
  await big.text();
  const get = await fetch(`${url}/heartbeat`);
  assert.equal(get.status, 405);
  await get.text();
  const servers = await (await fetch(`${url}/servers`)).json();
  assert.deepEqual(servers, [{
    ip: "127.0.0.1",
    ready: 3,
    busy: 1,
    port: 8080,
    lastSeenSeconds: 0,
  }]);
  const metrics = await (await fetch(`${url}/metrics`)).text();
  assert.match(metrics, /^heartbeat_messages_accepted_total\{via="http"\} 1$/m);
  assert.match(metrics, /^heartbeat_messages_rejected_total\{reason="oversize"\} 1$/m);
  const missing = await fetch(`${url}/nope`);
  assert.equal(missing.status, 404);
  assert.equal(
    await missing.text(),
    "Not Found: POST heartbeats to /heartbeat or /HeartbeatListener; GET / (the status page), /healthz, /servers, /metrics\n",
  );
  assert.equal(get.headers.get("allow"), "POST");
  const posted = await fetch(`${url}/metrics`, { method: "POST", body: "x" });
  assert.deepEqual([posted.status, posted.headers.get("allow")], [405, "GET, HEAD"]);
  await posted.text();
  // Tomcat's TcpSender: POST /HeartbeatListener, the body ending in CRLF.
  const tomcat = await fetch(`${url}/HeartbeatListener`, {
    method: "POST",
    body: "v=1&ready=25&busy=0&port=8080\r\n",
  });
  assert.deepEqual([tomcat.status, await tomcat.text()], [200, "OK"]);
  assert.deepEqual(monitor.servers().map((server) => (server as { ready: number }).ready), [25]);
  const counted = await (await fetch(`${url}/metrics`)).text();
  assert.match(counted, /^heartbeat_http_requests_refused_total\{reason="not-found"\} 1$/m);
  assert.match(
    counted,
    /^heartbeat_http_requests_refused_total\{reason="method-not-allowed"\} 2$/m,
  );
  stop.abort();
  await running;
});

test("monitor: --http-path replaces the paths heartbeats are taken at", async () => {
  const stop = new AbortController();
  const log = recordingLog();
  let port = 0;
  const running = runMonitor({
    http: { host: "127.0.0.1", port: 0 },
    httpPaths: ["/hb"],
    openUdpListener: () => Promise.reject(new Error("not used")),
    maxServers: 10,
    allow: [],
    logger: createLogger({ level: "info", write: log.write }),
    clock: systemClock,
    signal: stop.signal,
    onListening: (_started, address) => port = address.port ?? 0,
  });
  for (let wait = 0; wait < 100 && !port; wait++) {
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  const ok = await fetch(`http://127.0.0.1:${port}/hb`, {
    method: "POST",
    body: "v=1&ready=2&busy=1",
  });
  assert.deepEqual([ok.status, await ok.text()], [200, "OK"]);
  const old = await fetch(`http://127.0.0.1:${port}/heartbeat`, {
    method: "POST",
    body: "v=1&ready=2&busy=1",
  });
  assert.deepEqual([old.status, await old.text()], [
    404,
    "Not Found: POST heartbeats to /hb; GET / (the status page), /healthz, /servers, /metrics\n",
  ]);
  await fetch(`http://127.0.0.1:${port}/heartbeat`, { method: "POST", body: "v=1" }).then((
    response,
  ) => response.text());
  // Logged once, with a count later, not once a request.
  assert.equal(
    log.lines.filter((line) => line.includes('refused POST "/heartbeat" from 127.0.0.1: not-found'))
      .length,
    1,
  );
  stop.abort();
  await running;
});

test("monitor: a heartbeat without a sender address is refused, never stored as a line the balancer cannot match", () => {
  const storage = join(scratch, "no-address.dat");
  const { monitor } = monitorWith({ storage });
  for (const from of ["", "?", "undefined"]) {
    assert.equal(monitor.accept("v=1&ready=5&busy=1", from, "http")?.reason, "no-address");
  }
  monitor.tick();
  assert.equal(readFileSync(storage, "utf8"), "");
  assert.match(monitor.metrics(), /^heartbeat_messages_rejected_total\{reason="no-address"\} 3$/m);
});

test("monitor: new servers wait for the next tick's rewrite, and a storm of them is logged in a few lines", () => {
  const storage = join(scratch, "storm.dat");
  const { monitor, log } = monitorWith({ storage, maxServers: 1000 });
  for (let i = 1; i <= 200; i++) {
    monitor.accept("v=1&ready=1&busy=1", `10.1.${i >> 8}.${i & 255}`, "udp");
  }
  assert.throws(() => readFileSync(storage), /ENOENT/, "no rewrite per new sender");
  monitor.tick();
  assert.equal(readFileSync(storage, "utf8").split("\n").filter(Boolean).length, 200);
  assert.equal(log.filter((line) => /new server \S+ \(udp\)$/.test(line)).length, 10);
  assert.ok(log.some((line) => line.includes("and 190 more new servers")));
});

test("monitor: a storm of servers falling silent is logged in a few lines", () => {
  const { monitor, clock, log } = monitorWith({
    storage: join(scratch, "silent-storm.dat"),
    maxServers: 1000,
  });
  for (let i = 1; i <= 200; i++) {
    monitor.accept("v=1&ready=1&busy=1", `10.2.${i >> 8}.${i & 255}`, "udp");
  }
  monitor.tick();
  clock.advance(SEEN_TIMEOUT_MS + 1);
  log.length = 0;
  monitor.tick();
  assert.equal(log.filter((line) => /server \S+ silent for 30 s: removed$/.test(line)).length, 10);
  assert.equal(log.length, 11, log.join("\n"));
  assert.match(log[10], /info {2}and 190 more servers silent: removed$/);
});

test("monitor: a restart keeps the servers in the storage file, aged, and removes a killed run's temporary file", async () => {
  const storage = join(scratch, "restart.dat");
  writeFileSync(
    storage,
    [
      "10.0.0.1 &ready=5&busy=1&lastseen=3&port=80",
      "10.0.0.2 &ready=7&busy=0&lastseen=31&port=80", // too old: mod_heartmonitor would drop it
      " &ready=5&busy=1&lastseen=0&port=80", // no address
      "",
    ].join("\n"),
  );
  // A temporary file of a process that is gone: pid 2^22+1 is above Linux's pid_max.
  const stale = `${storage}.tmp.4194305.abc`;
  writeFileSync(stale, "half a file");
  const log = recordingLog();
  const stop = new AbortController();
  const clock = new FakeClock();
  clock.time = 100_000;
  const running = runMonitor({
    openUdpListener: () => Promise.reject(new Error("not used")),
    storage,
    maxServers: 10,
    allow: [],
    logger: createLogger({ level: "info", write: log.write }),
    clock,
    signal: stop.signal,
    onListening: (monitor) => {
      assert.deepEqual(monitor.servers(), [{
        ip: "10.0.0.1",
        ready: 5,
        busy: 1,
        port: 80,
        lastSeenSeconds: 3,
      }]);
      stop.abort();
    },
  });
  await running;
  assert.ok(!existsSync(stale), "the stale temporary file is gone");
  assert.ok(log.lines.some((line) => line.includes(`removed ${stale}`)));
  assert.ok(log.lines.some((line) => line.includes(`kept 1 of the 3 servers in ${storage}`)));
});

test("monitor: what a datagram says reaches the log escaped; a signed-only monitor checks the signature first", () => {
  const { monitor, log } = monitorWith();
  monitor.accept(
    "v=1&ready=\n2026-01-01T00:00:00Z info  new server 6.6.6.6\u001b[2J&busy=1",
    "10.0.0.1",
    "udp",
  );
  assert.equal(log.length, 1);
  assert.ok(!log[0].includes("\n") && !log[0].includes("\u001b"), log[0]);
});

/** A monitor with only its HTTP side, on a port of its own; `stop` ends it. */
async function httpMonitor(options: { allow?: string[] } = {}) {
  const stop = new AbortController();
  let port = 0;
  let monitor: Monitor | undefined;
  const running = runMonitor({
    http: { host: "127.0.0.1", port: 0 },
    openUdpListener: () => Promise.reject(new Error("not used")),
    storage: join(scratch, `http-limits-${Math.random()}.dat`),
    maxServers: 10,
    allow: (options.allow ?? []).map(parseCidr),
    logger: createLogger({ level: "error", write: () => {} }),
    clock: systemClock,
    signal: stop.signal,
    httpRequestMs: 300,
    httpBounds: { ...HTTP_BOUNDS, deadlineMs: 600 },
    onListening: (started, address) => {
      monitor = started;
      port = address.port ?? 0;
    },
  });
  for (let wait = 0; wait < 100 && !port; wait++) {
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return { port, monitor: monitor!, stop: async () => (stop.abort(), await running) };
}

/** Connects, writes `text`, and resolves to what came back once the server closed (or after `ms`). */
function exchange(
  port: number,
  text: string,
  ms = 3000,
): Promise<{ answer: string; closedAfter: number }> {
  return new Promise((resolve) => {
    const started = Date.now();
    const socket = connect(port, "127.0.0.1", () => socket.write(text));
    let answer = "";
    socket.on("data", (chunk) => answer += chunk);
    socket.on("error", () => {});
    const done = () => resolve({ answer, closedAfter: Date.now() - started });
    socket.on("close", done);
    setTimeout(() => (socket.destroy(), done()), ms);
  });
}

test("monitor: HTTP requests that are slow, silent or too large are refused at once or on time, and the connection closed", async () => {
  const { port, monitor, stop } = await httpMonitor();
  const post = "POST /heartbeat HTTP/1.1\r\nHost: x\r\n";
  const slow = await exchange(port, `${post}Content-Length: 40\r\n\r\nv=1&ready=1`);
  assert.match(slow.answer, /^HTTP\/1\.1 408 /);
  assert.ok(slow.closedAfter < 2000, `slow body closed after ${slow.closedAfter} ms`);
  const silent = await exchange(port, "");
  assert.equal(silent.answer, "");
  assert.ok(silent.closedAfter < 2000, `silent connection closed after ${silent.closedAfter} ms`);
  const declared = await exchange(port, `${post}Content-Length: 5000000000\r\n\r\nv=1`);
  assert.match(declared.answer, /^HTTP\/1\.1 413 /);
  assert.ok(
    declared.closedAfter < 1000,
    `a huge declared body refused after ${declared.closedAfter} ms`,
  );
  const chunked = await exchange(
    port,
    `${post}Transfer-Encoding: chunked\r\n\r\n7d0\r\n${"x".repeat(2000)}\r\n`,
  );
  assert.match(chunked.answer, /^HTTP\/1\.1 413 /);
  const metrics = monitor.metrics();
  assert.match(metrics, /^heartbeat_http_requests_refused_total\{reason="timeout"\} 1$/m);
  assert.match(metrics, /^heartbeat_messages_rejected_total\{reason="oversize"\} 2$/m);
  await stop();
});

test("monitor: --allow is checked when a connection opens, and connections beyond the bound are closed at once", async () => {
  const refused = await httpMonitor({ allow: ["10.0.0.0/8"] });
  const outsider = await exchange(
    refused.port,
    "POST /heartbeat HTTP/1.1\r\nHost: x\r\nContent-Length: 18\r\n\r\nv=1&ready=1&busy=1",
  );
  assert.equal(outsider.answer, "", "nothing read, nothing answered");
  assert.match(
    refused.monitor.metrics(),
    /^heartbeat_http_requests_refused_total\{reason="not-allowed"\} 1$/m,
  );
  await refused.stop();

  const { port, monitor, stop } = await httpMonitor();
  // From as many addresses as it takes, none holding more than its share.
  const held = await Promise.all(
    Array.from({ length: HTTP_BOUNDS.total }, (_, i) =>
      new Promise<Socket>((resolve) => {
        // A request begun, not finished: on Bun, a connection counts once it sends something.
        const socket = connect(
          {
            port,
            host: "127.0.0.1",
            localAddress: `127.0.0.${2 + Math.floor(i / HTTP_BOUNDS.perAddress)}`,
          },
          () => socket.write("GET /metrics HTTP/1.1\r\n", () => resolve(socket)),
        );
        socket.on("error", () => {});
      })),
  );
  // Time for the server to take them all in.
  await new Promise((resolve) => setTimeout(resolve, 200));
  const extra = await exchange(port, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
  assert.equal(extra.answer, "");
  assert.match(
    monitor.metrics(),
    /^heartbeat_http_requests_refused_total\{reason="too-many-connections"\} [1-9]/m,
  );
  // Under it, heartbeats by UDP are taken and the storage file written as ever.
  assert.equal(monitor.accept("v=1&ready=3&busy=1", "10.0.0.7", "udp"), undefined);
  monitor.tick();
  held.forEach((socket) => socket.destroy());
  await stop();
});

test("monitor: a datagram ending in a line end is taken, as the same body POSTed is and as Apache takes it", () => {
  const { monitor } = monitorWith();
  const encode = (text: string) => new TextEncoder().encode(text);
  // `echo 'v=1&ready=5&busy=0' | socat - UDP:...` sends the \n.
  assert.equal(monitor.accept(encode("v=1&ready=5&busy=0\n"), "10.0.0.1", "udp"), undefined);
  assert.equal(monitor.accept(encode("v=1&ready=6&busy=1\r\n"), "10.0.0.2", "udp"), undefined);
  assert.equal(
    monitor.accept(encode("v=1&ready=7&busy=2&port=8080\n"), "10.0.0.3", "udp"),
    undefined,
  );
  // The limit counts the heartbeat, not the line end after it.
  const base = "v=1&ready=3&busy=2&pad=";
  const full = base + "x".repeat(1000 - base.length);
  assert.equal(monitor.accept(encode(`${full}\n`), "10.0.0.4", "udp"), undefined);
  assert.deepEqual(
    monitor.table.entries().map(({ ip, ready, busy, port }) => [ip, ready, busy, port]),
    [
      ["10.0.0.1", 5, 0, 80],
      ["10.0.0.2", 6, 1, 80],
      ["10.0.0.3", 7, 2, 8080],
      ["10.0.0.4", 3, 2, 80],
    ],
  );
  // Over the limit it is refused, where Apache would parse the first 1000 bytes: the cut may
  // fall inside a number.
  assert.equal(
    monitor.accept(encode(`${full}&ready=12345`), "10.0.0.5", "udp")?.reason,
    "oversize",
  );
});

test("monitor: a bad port= alone costs the port, not the server: taken at port 80, counted and logged", () => {
  const { monitor, log, clock } = monitorWith();
  for (const [port, ip] of [["0", "10.0.0.1"], ["65536", "10.0.0.2"], ["8080x", "10.0.0.3"]]) {
    assert.equal(
      monitor.accept(new TextEncoder().encode(`v=1&ready=4&busy=1&port=${port}`), ip, "udp"),
      undefined,
      port,
    );
  }
  assert.equal(monitor.accept("v=1&ready=4&busy=1&port=-1", "10.0.0.4", "http"), undefined);
  assert.deepEqual(
    monitor.table.entries().map(({ ip, ready, busy, port }) => [ip, ready, busy, port]),
    [
      ["10.0.0.1", 4, 1, 80],
      ["10.0.0.2", 4, 1, 80],
      ["10.0.0.3", 4, 1, 80],
      ["10.0.0.4", 4, 1, 80],
    ],
  );
  assert.equal(monitor.rejected.size, 0, "nothing rejected");
  clock.advance(1000);
  assert.match(monitor.metrics(), /^heartbeat_ports_ignored_total 4$/m);
  const warnings = log.filter((line) => line.includes("without its port"));
  assert.equal(warnings.length, 1, "logged once, not per heartbeat");
  assert.match(warnings[0], /10\.0\.0\.1 \(udp\) without its port: port="0" is no port from 1/);
});
