import assert from "node:assert/strict";
import { test } from "node:test";
import type { Destination } from "../../src/address.ts";
import { createLogger } from "../../src/log.ts";
import { createResolvingSender } from "../../src/senders/resolving.ts";
import type { UdpTransport } from "../../src/transport/transport.ts";
import { recordingLog } from "../support/fakes.ts";

function udpRecorder(failing: string[] = []) {
  const sent: string[] = [];
  const transport: UdpTransport = {
    adapter: "node",
    send: (_payload, to: Destination) =>
      failing.includes(to.host)
        ? Promise.reject(new Error("no route"))
        : (sent.push(`${to.host}:${to.port}`), Promise.resolve()),
    close: () => Promise.resolve(),
  };
  return { transport, sent, transportFor: () => Promise.resolve(transport) };
}

const payload = new TextEncoder().encode("v=1&ready=1&busy=1");
const settle = () => new Promise((resolve) => setTimeout(resolve, 10));

test("resolving: every address of the name gets each heartbeat", async () => {
  const { transportFor, sent } = udpRecorder();
  const sender = createResolvingSender("proxies.test", 27999, transportFor, {
    addresses: ["10.0.0.1", "10.0.0.2"],
    resolveIntervalMs: 30_000,
    now: () => 0,
    logger: createLogger({ level: "error", write: () => {} }),
    lookup: () => Promise.reject(new Error("not called")),
  });
  assert.equal(sender.name, "proxies.test:27999");
  await sender.send(payload);
  assert.deepEqual(sent, ["10.0.0.1:27999", "10.0.0.2:27999"]);
});

test("resolving: the name is looked up again after the interval, beside the sends, and changes are logged", async () => {
  const { transportFor, sent } = udpRecorder();
  const log = recordingLog();
  let now = 0;
  const lookups: number[] = [];
  const answers = [["10.0.0.2", "10.0.0.3"]];
  const sender = createResolvingSender("proxies.test", 1, transportFor, {
    addresses: ["10.0.0.1"],
    resolveIntervalMs: 30_000,
    now: () => now,
    logger: createLogger({ level: "info", write: log.write }),
    lookup: () => (lookups.push(now), Promise.resolve(answers.shift() ?? ["10.0.0.2", "10.0.0.3"])),
  });
  await sender.send(payload);
  now = 29_999;
  await sender.send(payload);
  assert.deepEqual(lookups, []);
  now = 30_000;
  await sender.send(payload); // still to the old address: the lookup does not hold it up
  await settle();
  await sender.send(payload);
  assert.deepEqual(lookups, [30_000]);
  assert.deepEqual(sent, ["10.0.0.1:1", "10.0.0.1:1", "10.0.0.1:1", "10.0.0.2:1", "10.0.0.3:1"]);
  assert.match(
    log.lines.join("\n"),
    /info {2}proxies\.test:1 now means 10\.0\.0\.2, 10\.0\.0\.3 \(was 10\.0\.0\.1\)/,
  );
});

test("resolving: a failed lookup keeps the last known addresses and is logged once", async () => {
  const { transportFor, sent } = udpRecorder();
  const log = recordingLog();
  let now = 0;
  let fail = true;
  const sender = createResolvingSender("proxies.test", 1, transportFor, {
    addresses: ["10.0.0.1"],
    resolveIntervalMs: 1000,
    now: () => now,
    logger: createLogger({ level: "info", write: log.write }),
    lookup: () =>
      fail
        ? Promise.reject(Object.assign(new Error("not found"), { code: "ENOTFOUND" }))
        : Promise.resolve(["10.0.0.1"]),
  });
  for (let i = 1; i <= 5; i++) {
    now = i * 1000;
    await sender.send(payload);
    await settle();
  }
  assert.equal(sent.length, 5);
  assert.deepEqual(log.lines.map((line) => line.replace(/^\S+ /, "")), [
    "warn  cannot look up proxies.test (ENOTFOUND); still sending to 10.0.0.1",
  ]);
  fail = false;
  now = 6000;
  await sender.send(payload);
  await settle();
  assert.match(log.lines[1], /info {2}proxies\.test resolves again \(after 5 failures in 5 s\)/);
});

test("resolving: a send that fails to some addresses says which, and still reaches the others", async () => {
  const { transportFor, sent } = udpRecorder(["10.0.0.2"]);
  const sender = createResolvingSender("proxies.test", 1, transportFor, {
    addresses: ["10.0.0.1", "10.0.0.2"],
    resolveIntervalMs: 30_000,
    now: () => 0,
    logger: createLogger({ level: "error", write: () => {} }),
  });
  await assert.rejects(sender.send(payload), /^Error: 10\.0\.0\.2: no route$/);
  assert.deepEqual(sent, ["10.0.0.1:1"]);
});

test("resolving: a failed send says why in the one wording of every runtime", async () => {
  // As Bun's node:dgram words it; Deno says "Network is unreachable (os error 101)".
  const unreachable = Object.assign(new Error("ENETUNREACH: network is unreachable, send"), {
    code: "ENETUNREACH",
  });
  const transport: UdpTransport = {
    adapter: "node",
    send: () => Promise.reject(unreachable),
    close: () => Promise.resolve(),
  };
  const sender = createResolvingSender("proxies.test", 1, () => Promise.resolve(transport), {
    addresses: ["10.0.0.2"],
    resolveIntervalMs: 30_000,
    now: () => 0,
    logger: createLogger({ level: "error", write: () => {} }),
  });
  await assert.rejects(
    sender.send(payload),
    /^Error: 10\.0\.0\.2: network is unreachable \(ENETUNREACH\)$/,
  );
});

test("resolving: IPv4 and IPv6 addresses of a name each go by their own family's socket", async () => {
  const v4 = udpRecorder();
  const v6 = udpRecorder();
  const families: number[] = [];
  const sender = createResolvingSender(
    "proxies.test",
    5,
    (
      family,
    ) => (families.push(family), Promise.resolve(family === 6 ? v6.transport : v4.transport)),
    {
      addresses: ["10.0.0.1", "fd00::1"],
      resolveIntervalMs: 30_000,
      now: () => 0,
      logger: createLogger({ level: "error", write: () => {} }),
    },
  );
  await sender.send(payload);
  assert.deepEqual([v4.sent, v6.sent, families], [["10.0.0.1:5"], ["fd00::1:5"], [4, 6]]);
});
