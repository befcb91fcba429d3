/**
 * The contract every UDP adapter must keep, checked on the wire: each adapter this runtime has
 * (its native one and node:dgram) sends from a namespace with two links, while tcpdump and real
 * listeners on the other ends record what arrives, with which TTL, by which link.
 *
 *   sender  eth0 10.99.1.1 ── eth0 10.99.1.2  linkA  (multicast route)
 *           eth1 10.99.2.1 ── eth0 10.99.2.2  linkB
 *   lonely  (loopback only: no route to anywhere)
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { join } from "node:path";
import { after, test } from "node:test";
import type { AdapterName } from "../../src/transport/transport.ts";
import { collect, Lab, runtimeCommand, stop, waitFor } from "../../scripts/lab/lab.ts";
import { currentRuntime, skipUnlessLab } from "../support/lab.ts";
import { startListenProbe } from "../support/listen.ts";
import type { Probe, ProbeResult } from "../support/send-probe.ts";

const skip = skipUnlessLab(["tcpdump", "cc"]);
const runtime = currentRuntime();
const ADAPTERS: AdapterName[] = [runtime, "node"];
const GROUP = "239.0.0.1";
const GROUP6 = "ff02::1234";
const PORT = 27999;

let lab: Lab | undefined;
function network(): Lab {
  if (lab) return lab;
  lab = new Lab();
  for (const name of ["sender", "linkA", "linkB", "lonely"]) lab.addNamespace(name);
  lab.link({ ns: "sender", dev: "eth0", cidr: "10.99.1.1/24", cidr6: "fd00:99:1::1/64" }, {
    ns: "linkA",
    dev: "eth0",
    cidr: "10.99.1.2/24",
    cidr6: "fd00:99:1::2/64",
  });
  lab.link({ ns: "sender", dev: "eth1", cidr: "10.99.2.1/24" }, {
    ns: "linkB",
    dev: "eth0",
    cidr: "10.99.2.2/24",
  });
  for (const name of ["sender", "linkA", "linkB"]) {
    lab.sh(name, "ip route add 224.0.0.0/4 dev eth0");
  }
  return lab;
}
after(() => lab?.close());

interface Packet {
  ttl: number;
  source: string;
  text: string;
}

interface Observed {
  probe: ProbeResult;
  lonely: ProbeResult;
  /** tcpdump's packets, per link. */
  wire: { linkA: Packet[]; linkB: Packet[] };
  /** Payloads received by listeners, per namespace, as `FROM PAYLOAD`. */
  heard: { linkA: string[]; sender: string[] };
  /** What the adapter's own listeners in linkA received, as `FROM LENGTH TEXT`. */
  received: {
    group: string[];
    unicast: string[];
    group6: string[];
    unicast6: string[];
    /** A second listener on the group's port, bound after the first. */
    groupTwin: string[];
  };
}

const payload = (adapter: string, what: string) => `v=1&ready=1&busy=0&probe=${adapter}-${what}`;

/** Runs each adapter's sends once; every test then checks one promise of the contract. */
const observed = new Map<AdapterName, Promise<Observed>>();
function observe(adapter: AdapterName): Promise<Observed> {
  if (!observed.has(adapter)) observed.set(adapter, exercise(adapter));
  return observed.get(adapter)!;
}

async function exercise(adapter: AdapterName): Promise<Observed> {
  const lab = network();
  const captures = (["linkA", "linkB"] as const).map((ns) => {
    const child = lab.spawn(ns, [
      "tcpdump",
      "-l",
      "-n",
      "-v",
      "-A",
      "-i",
      "eth0",
      "udp",
      "and",
      "portrange",
      `${PORT - 5}-${PORT}`,
    ]);
    return { ns, child, output: collect(child) };
  });
  const listeners = (["linkA", "sender"] as const).map((ns) =>
    startListenProbe(lab, ns, runtime, { port: PORT, group: GROUP })
  );
  const adapterListeners = ([
    [GROUP, PORT - 2],
    ["10.99.1.2", PORT - 3],
    [GROUP6, PORT - 4, "eth0"],
    ["fd00:99:1::2", PORT - 5],
    // A second listener on the same group and port, as mod_heartmonitor beside the monitor.
    [GROUP, PORT - 2],
  ] as const).map(([address, port, zone]) =>
    startListenProbe(lab, "linkA", runtime, { adapter, address, port, zone })
  );
  await Promise.all([
    ...captures.map((c) =>
      waitFor(() => c.output().stderr.includes("listening on"), 10_000, `tcpdump in ${c.ns}`)
    ),
    ...[...listeners, ...adapterListeners].map((listener) => listener.listening()),
  ]);

  const send = (host: string, what: string) => ({
    host,
    port: PORT,
    payload: payload(adapter, what),
  });
  const probe: Probe = {
    adapter,
    sessions: [
      {
        options: { ttl: 1, loopback: true },
        sends: [send(GROUP, "default"), send("10.99.1.2", "unicast")],
      },
      { options: { ttl: 7, loopback: true }, sends: [send(GROUP, "ttl7")] },
      {
        options: { ttl: 3, loopback: true, interfaceAddress: "10.99.2.1" },
        sends: [send(GROUP, "interface")],
      },
      {
        options: { ttl: 1, loopback: true },
        sends: [
          { ...send(GROUP, "to-listener"), port: PORT - 2 },
          { ...send(GROUP, "x".repeat(1200)), port: PORT - 2 },
          { ...send("10.99.1.2", "to-unicast-listener"), port: PORT - 3 },
        ],
      },
      {
        options: { family: 6, ttl: 1, loopback: true },
        sends: [{ ...send(GROUP6, "v6-group"), zone: "eth0", port: PORT - 4 }, {
          ...send("fd00:99:1::2", "v6-unicast"),
          port: PORT - 5,
        }],
      },
      {
        options: { family: 6, ttl: 4, loopback: true },
        sends: [{ ...send(GROUP6, "v6-hops"), zone: "eth0", port: PORT - 4 }],
      },
    ],
  };
  const lonelyProbe: Probe = {
    adapter,
    sessions: [{
      options: { ttl: 1, loopback: true },
      sends: [send(GROUP, "unreachable"), { ...send("127.0.0.1", "after"), port: 9 }],
    }],
  };
  const results = await Promise.all(
    [["sender", probe], ["lonely", lonelyProbe]].map(async ([ns, p]) => {
      const result = await lab.run(
        ns as string,
        runtimeCommand(runtime, "test/support/send-probe.ts", [JSON.stringify(p)]),
      );
      assert.equal(result.code, 0, `send probe in ${ns}: ${result.stderr}`);
      return JSON.parse(result.stdout) as ProbeResult;
    }),
  );
  await new Promise((resolve) => setTimeout(resolve, 300));
  await Promise.all([...captures, ...listeners, ...adapterListeners].map((c) => stop(c.child)));

  const packets = (text: string): Packet[] =>
    text.split(/^(?=\d\d:\d\d:\d\d\.\d+ IP6? )/m).filter((block) => / IP6? /.test(block)).map((
      block,
    ) => ({
      ttl: Number(/\b(?:ttl|hlim) (\d+)/.exec(block)?.[1]),
      source: /([0-9a-f.:]+)\.\d+ > /.exec(block)?.[1] ?? "",
      text: block,
    }));
  const received = (stdout: string) =>
    stdout.split("\n").filter((line) => line.startsWith('{"from"')).map((line) => {
      const { from, length, text } = JSON.parse(line);
      return `${from} ${length} ${text}`;
    });
  const heard = (stdout: string) =>
    stdout.split("\n").filter((line) => line.startsWith('{"from"')).map((line) => {
      const { from, payload } = JSON.parse(line);
      return `${from} ${payload}`;
    });
  return {
    probe: results[0],
    lonely: results[1],
    wire: {
      linkA: packets(captures[0].output().stdout),
      linkB: packets(captures[1].output().stdout),
    },
    heard: {
      linkA: heard(listeners[0].output().stdout),
      sender: heard(listeners[1].output().stdout),
    },
    received: {
      group: received(adapterListeners[0].output().stdout),
      unicast: received(adapterListeners[1].output().stdout),
      group6: received(adapterListeners[2].output().stdout),
      unicast6: received(adapterListeners[3].output().stdout),
      groupTwin: received(adapterListeners[4].output().stdout),
    },
  };
}

function onWire(packets: Packet[], text: string): Packet[] {
  return packets.filter((packet) => packet.text.includes(text));
}

for (const adapter of ADAPTERS) {
  const name = `transport contract, ${runtime}/${adapter}:`;

  test(`${name} every send on a working network resolves`, { skip }, async () => {
    assert.deepEqual((await observe(adapter)).probe.sends.slice(0, 5), [
      ["ok", "ok"],
      ["ok"],
      ["ok"],
      ["ok", "ok", "ok"],
      ["ok", "ok"],
    ]);
  });

  test(
    `${name} multicast reaches a listener on the link, with TTL 1 by default`,
    { skip },
    async () => {
      const { wire, heard } = await observe(adapter);
      assert.ok(
        heard.linkA.includes(`10.99.1.1 ${payload(adapter, "default")}`),
        heard.linkA.join("\n"),
      );
      assert.deepEqual(
        onWire(wire.linkA, payload(adapter, "default")).map((p) => [p.source, p.ttl]),
        [["10.99.1.1", 1]],
      );
    },
  );

  test(`${name} the TTL asked for is the TTL on the wire`, { skip }, async () => {
    const { wire } = await observe(adapter);
    assert.deepEqual(onWire(wire.linkA, payload(adapter, "ttl7")).map((p) => p.ttl), [7]);
  });

  test(`${name} the interface asked for is the link multicast leaves by, and its source address`, {
    skip,
  }, async () => {
    const { wire } = await observe(adapter);
    assert.deepEqual(
      onWire(wire.linkB, payload(adapter, "interface")).map((p) => [p.source, p.ttl]),
      [["10.99.2.1", 3]],
    );
    assert.deepEqual(onWire(wire.linkA, payload(adapter, "interface")), []);
  });

  test(`${name} multicast loops back to listeners on the sending host`, { skip }, async () => {
    const { heard } = await observe(adapter);
    assert.ok(
      heard.sender.includes(`10.99.1.1 ${payload(adapter, "default")}`),
      heard.sender.join("\n"),
    );
  });

  test(`${name} unicast reaches its host`, { skip }, async () => {
    const { heard } = await observe(adapter);
    assert.ok(
      heard.linkA.includes(`10.99.1.1 ${payload(adapter, "unicast")}`),
      heard.linkA.join("\n"),
    );
  });

  test(
    `${name} a send with no route rejects, and the next send still works`,
    { skip },
    async () => {
      const [[unreachable, next]] = (await observe(adapter)).lonely.sends;
      assert.notEqual(unreachable, "ok");
      assert.match(unreachable, /unreachable|ENETUNREACH|UNKNOWN|os error 101/i);
      assert.equal(next, "ok");
    },
  );
}

for (const adapter of ADAPTERS) {
  const name = `transport contract, ${runtime}/${adapter} listener:`;
  const sent = (what: string) => payload(adapter, what);

  test(
    `${name} joins a multicast group and receives it, with the sender's address`,
    { skip },
    async () => {
      const { received } = await observe(adapter);
      const message = sent("to-listener");
      assert.ok(
        received.group.includes(`10.99.1.1 ${message.length} ${message}`),
        received.group.join("\n"),
      );
      assert.ok(
        !received.group.some((line) => line.includes("to-unicast-listener")),
        "only the group's port and address",
      );
    },
  );

  test(
    `${name} shares the group and port with another listener, each receiving every datagram`,
    { skip },
    async () => {
      const { received } = await observe(adapter);
      const message = sent("to-listener");
      assert.ok(
        received.groupTwin.includes(`10.99.1.1 ${message.length} ${message}`),
        received.groupTwin.join("\n"),
      );
    },
  );

  test(`${name} receives unicast on the address it is bound to`, { skip }, async () => {
    const { received } = await observe(adapter);
    const message = sent("to-unicast-listener");
    assert.deepEqual(received.unicast, [`10.99.1.1 ${message.length} ${message}`]);
  });

  test(
    `${name} hands over an oversize datagram whole, for the monitor to reject`,
    { skip },
    async () => {
      const { received } = await observe(adapter);
      const big = sent("x".repeat(1200));
      assert.ok(
        received.group.some((line) => line.startsWith(`10.99.1.1 ${big.length} `)),
        received.group.map((line) => line.slice(0, 40)).join("\n"),
      );
    },
  );
}

let plainPeer: string | undefined;
/** test/support/reuseaddr-peer.c, compiled once into the lab's folder. */
function plainPeerProgram(): string {
  if (plainPeer) return plainPeer;
  const path = join(network().dir, "reuseaddr-peer");
  execFileSync("cc", ["-O2", "-o", path, "test/support/reuseaddr-peer.c"]);
  return plainPeer = path;
}

/**
 * Starts, on one group and port in linkA, an adapter's listener and a plain socket that sets
 * SO_REUSEADDR only, as APR does for mod_heartmonitor, in the order given; sends one datagram to
 * the group from the sender; returns what each of the two received, or why one could not start.
 */
async function shareWithPlainPeer(
  adapter: AdapterName,
  port: number,
  peerFirst: boolean,
): Promise<{ adapter: string; peer: string }> {
  const lab = network();
  const start = (which: "adapter" | "peer") => {
    const child = which === "peer"
      ? lab.spawn("linkA", [plainPeerProgram(), GROUP, String(port)])
      : startListenProbe(lab, "linkA", runtime, { adapter, address: GROUP, port }).child;
    const output = collect(child);
    const started = waitFor(
      () => output().stdout.includes("listening") || child.exitCode !== null,
      10_000,
      `the ${which} listener`,
    ).then(() => output().stdout.includes("listening") ? "" : `${which}: ${output().stderr}`);
    return { child, output, started };
  };
  const first = start(peerFirst ? "peer" : "adapter");
  const failedFirst = await first.started;
  const second = start(peerFirst ? "adapter" : "peer");
  const failedSecond = await second.started;
  const message = payload(adapter, `shared-${peerFirst ? "peer-first" : "adapter-first"}`);
  if (!failedFirst && !failedSecond) {
    const sent = await lab.run(
      "sender",
      runtimeCommand(runtime, "test/support/send-probe.ts", [JSON.stringify(
        {
          adapter: "node",
          sessions: [{
            options: { ttl: 1, loopback: false },
            sends: [{ host: GROUP, port, payload: message }],
          }],
        } satisfies Probe,
      )]),
    );
    assert.equal(sent.code, 0, sent.stderr);
    await new Promise((resolve) => setTimeout(resolve, 300));
  }
  await Promise.all([first, second].map(({ child }) => stop(child)));
  const [adapterSide, peerSide] = peerFirst ? [second, first] : [first, second];
  const heard = (stdout: string) =>
    stdout.includes(message) ? "heard" : `not heard${failedFirst || failedSecond}`;
  return {
    adapter: heard(adapterSide.output().stdout),
    peer: heard(peerSide.output().stdout),
  };
}

ADAPTERS.forEach((adapter, index) => {
  const name = `transport contract, ${runtime}/${adapter} listener:`;
  for (const peerFirst of [true, false]) {
    test(
      `${name} shares the group's port with a plain SO_REUSEADDR socket (mod_heartmonitor's) started ${
        peerFirst ? "before" : "after"
      } it, both hearing every datagram`,
      { skip },
      async () => {
        const port = PORT - 20 - 2 * index - (peerFirst ? 0 : 1);
        assert.deepEqual(await shareWithPlainPeer(adapter, port, peerFirst), {
          adapter: "heard",
          peer: "heard",
        });
      },
    );
  }
});

/**
 * Opens an adapter's listener in linkA asking for `bytes` of receive buffer; returns what the
 * listener says the kernel gave and what the kernel says the socket has (`ss`'s rb, which Linux
 * reports doubled).
 */
async function receiveBufferOf(
  adapter: AdapterName,
  bytes: number,
): Promise<{ said: number; kernel: number }> {
  const port = PORT - 10;
  const listener = startListenProbe(network(), "linkA", runtime, {
    adapter,
    address: GROUP,
    port,
    env: { RECEIVE_BUFFER: String(bytes) },
  });
  try {
    await listener.listening();
    const said = JSON.parse(listener.output().stdout.split("\n")[0]).receiveBuffer;
    const ss = network().sh("linkA", `ss -uamn 'sport = :${port}'`);
    const kernel = Number(/\brb(\d+)/.exec(ss)?.[1]);
    return { said, kernel: kernel / 2 };
  } finally {
    await stop(listener.child);
  }
}

for (const adapter of ADAPTERS) {
  const name = `transport contract, ${runtime}/${adapter} receive buffer:`;

  test(`${name} the size asked for is the socket's, and said`, { skip }, async () => {
    assert.deepEqual(await receiveBufferOf(adapter, 1 << 20), { said: 1 << 20, kernel: 1 << 20 });
  });

  test(`${name} capped by net.core.rmem_max, it says what the kernel gave`, { skip }, async () => {
    const max = Number(network().sh("linkA", "cat /proc/sys/net/core/rmem_max"));
    assert.deepEqual(await receiveBufferOf(adapter, max * 2), { said: max, kernel: max });
  });
}

for (const adapter of ADAPTERS) {
  const name = `transport contract, ${runtime}/${adapter} IPv6:`;

  test(
    `${name} multicast to [ff02::1234%eth0] leaves by eth0 with hop limit 1, and a listener joined there gets it`,
    { skip },
    async () => {
      const { wire, received } = await observe(adapter);
      const message = payload(adapter, "v6-group");
      assert.deepEqual(
        onWire(wire.linkA, message).map((
          packet,
        ) => [packet.source.startsWith("fe80:"), packet.ttl]),
        [[true, 1]],
      );
      assert.ok(
        received.group6.some((line) => line.endsWith(` ${message.length} ${message}`)),
        received.group6.join("\n"),
      );
    },
  );

  test(
    `${name} unicast reaches an IPv6 listener, with the sender's address`,
    { skip },
    async () => {
      const { received } = await observe(adapter);
      const message = payload(adapter, "v6-unicast");
      assert.deepEqual(received.unicast6, [`fd00:99:1::1 ${message.length} ${message}`]);
    },
  );

  test(
    `${name} the hop limit asked for is on the wire, or refused where the runtime cannot set it`,
    { skip },
    async () => {
      const { wire, probe } = await observe(adapter);
      if (runtime === "deno") {
        // Deno can set no IPv6 hop limit, natively or through node:dgram: refusing beats sending with 1.
        assert.deepEqual(probe.sends[5], [
          "open failed: Deno cannot set the IPv6 multicast hop limit: ask for 1, or run under Bun",
        ]);
        assert.deepEqual(onWire(wire.linkA, payload(adapter, "v6-hops")), []);
      } else {
        assert.deepEqual(probe.sends[5], ["ok"]);
        assert.deepEqual(
          onWire(wire.linkA, payload(adapter, "v6-hops")).map((packet) => packet.ttl),
          [4],
        );
      }
    },
  );
}
