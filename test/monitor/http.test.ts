/** The monitor's HTTP side: heartbeats POSTed, GET routes, refusals and bounds (src/monitor/http.ts). */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { HTTP_BOUNDS } from "../../src/connection-limits.ts";
import { createLogger } from "../../src/log.ts";
import { parseCidr } from "../../src/monitor/cidr.ts";
import type { MonitorHttp } from "../../src/monitor/http.ts";
import { monitorMetrics } from "../../src/monitor/metrics.ts";
import { type Monitor, runMonitor } from "../../src/monitor/monitor.ts";
import { StorageOutput } from "../../src/monitor/outputs/storage.ts";
import { systemClock } from "../../src/scheduler.ts";
import type { OpenUdpListener } from "../../src/transport/transport.ts";
import { recordingLog } from "../support/fakes.ts";

const scratch = mkdtempSync(join(tmpdir(), "heartbeat-monitor-http-"));
after(() => rmSync(scratch, { recursive: true, force: true }));

/** A monitor with only its HTTP side, on a port of its own; `stop` ends it. */
async function httpMonitor(options: { allow?: string[] } = {}) {
  const stop = new AbortController();
  let port = 0;
  let monitor: Monitor | undefined;
  let http: MonitorHttp | undefined;
  const logger = createLogger({ level: "error", write: () => {} });
  const running = runMonitor({
    http: { host: "127.0.0.1", port: 0 },
    openUdpListener: () => Promise.reject(new Error("not used")),
    outputs: [
      new StorageOutput({
        path: join(scratch, `http-limits-${Math.random()}.dat`),
        logger,
        now: Date.now,
      }),
    ],
    maxServers: 10,
    allow: (options.allow ?? []).map(parseCidr),
    logger,
    clock: systemClock,
    signal: stop.signal,
    httpRequestMs: 300,
    httpBounds: { ...HTTP_BOUNDS, deadlineMs: 600 },
    onListening: (started, opened) => {
      monitor = started;
      http = opened.http;
      port = opened.port ?? 0;
    },
  });
  for (let wait = 0; wait < 100 && !port; wait++) {
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return {
    port,
    monitor: monitor!,
    metrics: () => monitorMetrics(monitor!, http!.refused),
    stop: async () => (stop.abort(), await running),
  };
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

test("monitor http: HTTP POST /heartbeat as mod_heartmonitor's handler, GET /servers and /metrics", async () => {
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
  assert.deepEqual(monitor.servers().map((server) => server.ready), [25]);
  const counted = await (await fetch(`${url}/metrics`)).text();
  assert.match(counted, /^heartbeat_http_requests_refused_total\{reason="not-found"\} 1$/m);
  assert.match(
    counted,
    /^heartbeat_http_requests_refused_total\{reason="method-not-allowed"\} 2$/m,
  );
  stop.abort();
  await running;
});

test("monitor http: --http-path replaces the paths heartbeats are taken at", async () => {
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

test("monitor http: HTTP requests that are slow, silent or too large are refused at once or on time, and the connection closed", async () => {
  const { port, metrics: monitorText, stop } = await httpMonitor();
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
  const metrics = monitorText();
  assert.match(metrics, /^heartbeat_http_requests_refused_total\{reason="timeout"\} 1$/m);
  assert.match(metrics, /^heartbeat_messages_rejected_total\{reason="oversize"\} 2$/m);
  await stop();
});

test("monitor http: --allow is checked when a connection opens, and connections beyond the bound are closed at once", async () => {
  const refused = await httpMonitor({ allow: ["10.0.0.0/8"] });
  const outsider = await exchange(
    refused.port,
    "POST /heartbeat HTTP/1.1\r\nHost: x\r\nContent-Length: 18\r\n\r\nv=1&ready=1&busy=1",
  );
  assert.equal(outsider.answer, "", "nothing read, nothing answered");
  // The status page and its data are no exception.
  for (const path of ["/", "/status.json"]) {
    const page = await exchange(refused.port, `GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`);
    assert.equal(page.answer, "", `GET ${path}`);
  }
  assert.match(
    refused.metrics(),
    /^heartbeat_http_requests_refused_total\{reason="not-allowed"\} 3$/m,
  );
  await refused.stop();

  const { port, monitor, metrics, stop } = await httpMonitor();
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
    metrics(),
    /^heartbeat_http_requests_refused_total\{reason="too-many-connections"\} [1-9]/m,
  );
  // Under it, heartbeats by UDP are taken and the storage file written as ever.
  assert.equal(monitor.accept("v=1&ready=3&busy=1", "10.0.0.7", "udp"), undefined);
  monitor.tick();
  held.forEach((socket) => socket.destroy());
  await stop();
});
