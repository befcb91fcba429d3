/** Heartbeats as HAProxy weights, and HAProxy's own state read back (src/monitor/outputs/haproxy.ts). */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { createServer } from "node:net";
import { join } from "node:path";
import { test } from "node:test";
import {
  EXCHANGE_DEADLINE_MS,
  HAProxyPush,
  MAX_ANSWER_BYTES,
  parseServersState,
} from "../../../src/monitor/outputs/haproxy.ts";
import { createLogger } from "../../../src/log.ts";
import { balancerWeights } from "../../../src/monitor/balancer.ts";
import { serveFakeHAProxy } from "../../support/fake-haproxy.ts";
import { monitorWith } from "../../support/monitor.ts";
import { recordingLog } from "../../support/fakes.ts";
import type { ServerEntry } from "../../../src/monitor/table.ts";

const entry = (ip: string, ready: number, busy: number, lastSeen = 0): ServerEntry => ({
  ip,
  ready,
  busy,
  port: 80,
  portGiven: false,
  lastSeen,
});

test("haproxy weights: as mod_lbmethod_heartbeat weighs, scaled to 1..256; 0 at ready=0 and after 10 s of silence", () => {
  const entries = [
    entry("10.0.0.1", 30, 10),
    entry("10.0.0.2", 10, 30),
    entry("10.0.0.3", 40, 0), // busy 0: ready / 4, as the balancer does
    entry("10.0.0.4", 0, 9),
    entry("10.0.0.5", 1, 500),
    entry("10.0.0.6", 50, 1, -10_000), // silent for 10 s
  ];
  const weights = balancerWeights(entries, 0);
  assert.deepEqual(entries.map((server) => weights.get(server)), [256, 85, 85, 0, 9, 0]);
  assert.deepEqual([...balancerWeights([entry("10.0.0.1", 0, 1)], 0).values()], [0]);
});

test("haproxy weights: show servers state read by its header", () => {
  const state = [
    "1",
    "# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port srv_check_addr srv_agent_addr srv_agent_port",
    "4 pushed 1 o1 10.99.19.11 2 0 256 1 12 1 0 1 0 0 0 0 - 80 - 0 0 - - 0",
    "4 pushed 2 o2 10.99.19.12 2 0 85 1 12 1 0 1 0 0 0 0 - 8080 - 0 0 - - 0",
    "",
  ].join("\n");
  assert.deepEqual(parseServersState(state), [
    { backend: "pushed", name: "o1", address: "10.99.19.11", port: 80, weight: 256 },
    { backend: "pushed", name: "o2", address: "10.99.19.12", port: 8080, weight: 85 },
  ]);
  assert.deepEqual(parseServersState("Can't find backend.\n"), []);
});

test("haproxy push: an answer without end or a byte at a time fails within the deadline, counted and logged, and the next sync runs", async () => {
  const folder = mkdtempSync(join(tmpdir(), "heartbeat-haproxy-"));
  const servers = await Promise.all(
    ["stream", "drip"].map((mode) => serveFakeHAProxy(mode, join(folder, `${mode}.sock`), 5_000)),
  );
  try {
    const log = recordingLog();
    const push = new HAProxyPush({
      sockets: ["stream", "drip"].map((mode) => join(folder, `${mode}.sock`)),
      backends: ["pushed"],
      backendsName: "--haproxy-backend",
      logger: createLogger({ level: "info", write: log.write }),
      now: Date.now,
    });
    for (const round of [1, 2]) {
      const started = Date.now();
      await push.sync([entry("10.0.0.1", 5, 1)], Date.now());
      const tookMs = Date.now() - started;
      assert.ok(tookMs < EXCHANGE_DEADLINE_MS + 1_000, `round ${round} took ${tookMs} ms`);
      assert.equal(push.errors, 2 * round);
    }
    const text = log.lines.join("\n");
    assert.match(
      text,
      new RegExp(
        `cannot set weights in HAProxy at \\S+stream\\.sock: the answer to 'show servers state pushed' is larger than ${MAX_ANSWER_BYTES} bytes`,
      ),
    );
    assert.match(
      text,
      /cannot set weights in HAProxy at \S+drip\.sock: no whole answer to 'show servers state pushed' within 2 s/,
    );
    assert.equal(log.lines.length, 2, "logged once each, not every sync");
  } finally {
    for (const server of servers) server.close();
    rmSync(folder, { recursive: true, force: true });
  }
});

test("haproxy push: as the monitor's output, update returns at once, a second one does not double the sync, and close waits for it", async () => {
  const folder = mkdtempSync(join(tmpdir(), "heartbeat-haproxy-"));
  const path = join(folder, "drip.sock");
  const server = await serveFakeHAProxy("drip", path, 5_000);
  try {
    const push = new HAProxyPush({
      sockets: [path],
      backends: ["pushed"],
      backendsName: "--haproxy-backend",
      logger: createLogger({ level: "error", write: () => {} }),
      now: Date.now,
    });
    const started = Date.now();
    push.update([entry("10.0.0.1", 5, 1)], Date.now());
    push.update([entry("10.0.0.1", 5, 1)], Date.now());
    assert.ok(Date.now() - started < EXCHANGE_DEADLINE_MS / 2, "not awaited");
    assert.equal(push.errors, 0);
    await push.close();
    assert.equal(push.errors, 1, "one sync, ended at its deadline before close did");
  } finally {
    server.close();
    rmSync(folder, { recursive: true, force: true });
  }
});

test("haproxy weights: a server with a free slot is never below 1, even at ready=1-3 and busy=0", () => {
  const small = [entry("10.0.0.1", 3, 0), entry("10.0.0.2", 1, 0)];
  assert.deepEqual([...balancerWeights(small, 0).values()], [1, 1]);
  const mixed = [entry("10.0.0.1", 100, 5), entry("10.0.0.2", 2, 0), entry("10.0.0.3", 0, 0)];
  assert.deepEqual([...balancerWeights(mixed, 0).values()], [256, 1, 0]);
});

const STATE_HEADER =
  "# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port srv_check_addr srv_agent_addr srv_agent_port";

/** A runtime API answering as HAProxy 2.6 does for a backend `pushed` of o1 and o2, weight 1. */
async function fakeRuntimeApi(path: string): Promise<{ commands: string[]; close: () => void }> {
  const commands: string[] = [];
  const server = createServer((connection) => {
    connection.on("data", (chunk) => {
      const command = String(chunk).trim();
      commands.push(command);
      if (command === "show servers state pushed") {
        connection.end(
          [
            "1",
            STATE_HEADER,
            "3 pushed 1 o1 10.0.0.11 2 0 1 1 0 1 0 2 0 0 0 0 - 80 - 0 0 - - 0",
            "3 pushed 2 o2 10.0.0.12 2 0 1 1 0 1 0 2 0 0 0 0 - 80 - 0 0 - - 0",
            "",
            "",
          ].join("\n"),
        );
      } else if (command.startsWith("show servers state")) {
        connection.end("Can't find backend.\n\n");
      } else connection.end("\n");
    });
  });
  await new Promise<void>((resolve) => server.listen(path, resolve));
  return { commands, close: () => server.close() };
}

test("haproxy push: weights scaled over the backend's members only; a server outside it changes nothing", async () => {
  const folder = mkdtempSync(join(tmpdir(), "heartbeat-haproxy-"));
  const api = await fakeRuntimeApi(join(folder, "admin.sock"));
  try {
    const push = new HAProxyPush({
      sockets: [join(folder, "admin.sock")],
      backends: ["pushed"],
      backendsName: "--haproxy-backend",
      logger: createLogger({ level: "info", write: () => {} }),
      now: Date.now,
    });
    await push.sync([
      entry("10.0.0.11", 30, 10),
      entry("10.0.0.12", 10, 30),
      entry("10.9.9.9", 4294967295, 1), // heard, but no member of the backend
    ], 0);
    assert.deepEqual(api.commands, [
      "show servers state pushed",
      "set server pushed/o1 weight 256;set server pushed/o2 weight 85",
    ]);
    assert.equal(push.errors, 0);
  } finally {
    api.close();
    rmSync(folder, { recursive: true, force: true });
  }
});

test("haproxy push: a backend HAProxy does not have is logged, named by /healthz, and the others still pushed", async () => {
  const folder = mkdtempSync(join(tmpdir(), "heartbeat-haproxy-"));
  const api = await fakeRuntimeApi(join(folder, "admin.sock"));
  try {
    const log = recordingLog();
    const push = new HAProxyPush({
      sockets: [join(folder, "admin.sock")],
      backends: ["pushd", "pushed"],
      backendsName: "--haproxy-backend",
      logger: createLogger({ level: "info", write: log.write }),
      now: Date.now,
    });
    const { monitor } = monitorWith({ outputs: [push] });
    assert.equal(monitor.health().healthy, true);
    for (let i = 0; i < 3; i++) await push.sync([entry("10.0.0.11", 30, 10)], 0);
    assert.deepEqual(log.lines.map((line) => line.replace(/^\S+ /, "")), [
      `warn  --haproxy-backend pushd: HAProxy at ${folder}/admin.sock has no such backend (it says "Can't find backend."): nothing is pushed there`,
    ]);
    assert.ok(api.commands.includes("set server pushed/o1 weight 256"));
    assert.deepEqual(monitor.health(), {
      healthy: false,
      reason: `no such --haproxy-backend: backend 'pushd' in HAProxy at ${folder}/admin.sock`,
    });
  } finally {
    api.close();
    rmSync(folder, { recursive: true, force: true });
  }
});

test("haproxy push: a socket that closes without answering is a failed push, not a missing backend", async () => {
  const folder = mkdtempSync(join(tmpdir(), "heartbeat-haproxy-"));
  const path = join(folder, "admin.sock");
  // As an HAProxy that closes its connections while it restarts.
  const api = createServer((connection) => connection.once("data", () => connection.end()));
  await new Promise<void>((resolve) => api.listen(path, resolve));
  try {
    const log = recordingLog();
    const push = new HAProxyPush({
      sockets: [path],
      backends: ["pushed"],
      backendsName: "--haproxy-backend",
      logger: createLogger({ level: "info", write: log.write }),
      now: Date.now,
    });
    const { monitor } = monitorWith({ outputs: [push] });
    await push.sync([entry("10.0.0.11", 30, 10)], 0);
    assert.deepEqual(log.lines.map((line) => line.replace(/^\S+ /, "")), [
      `warn  cannot set weights in HAProxy at ${path}: no answer to 'show servers state pushed'`,
    ]);
    assert.equal(push.errors, 1);
    assert.equal(monitor.health().healthy, true);
  } finally {
    api.close();
    rmSync(folder, { recursive: true, force: true });
  }
});

test("haproxy push: an answer that is neither a table nor 'Can't find backend' (a socket at too low a level) is a failed push, not a missing backend", async () => {
  const folder = mkdtempSync(join(tmpdir(), "heartbeat-haproxy-"));
  const path = join(folder, "admin.sock");
  // As HAProxy answers on a stats socket at `level user`.
  const api = createServer((connection) =>
    connection.once("data", () => connection.end("Permission denied\n\n"))
  );
  await new Promise<void>((resolve) => api.listen(path, resolve));
  try {
    const log = recordingLog();
    const push = new HAProxyPush({
      sockets: [path],
      backends: ["pushed"],
      backendsName: "--haproxy-backend",
      logger: createLogger({ level: "info", write: log.write }),
      now: Date.now,
    });
    await push.sync([entry("10.0.0.11", 30, 10)], 0);
    assert.deepEqual(log.lines.map((line) => line.replace(/^\S+ /, "")), [
      `warn  cannot set weights in HAProxy at ${path}: 'show servers state pushed' answered "Permission denied"`,
    ]);
    assert.equal(push.errors, 1);
    assert.deepEqual(push.missingBackends, []);
  } finally {
    api.close();
    rmSync(folder, { recursive: true, force: true });
  }
});
