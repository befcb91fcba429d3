/** The source address each destination sees, learned per destination and again (src/senders/source-address.ts). */
import assert from "node:assert/strict";
import { test } from "node:test";
import { ipv6Bytes, ipv6Text } from "../../src/senders/route-libc.ts";
import { RELEARN_MS, SourceAddresses } from "../../src/senders/source-address.ts";

function addressesWith(routes: Map<string, string>, boundIPv4?: string) {
  let now = 0;
  const asked: string[] = [];
  const sources = new SourceAddresses({
    now: () => now,
    boundIPv4,
    probe: (host) => {
      asked.push(host);
      const address = routes.get(host);
      return new Promise((resolve) => setTimeout(() => resolve(address), 1)); // as a socket takes I/O
    },
  });
  return { sources, asked, advance: (ms: number) => now += ms };
}

test("source addresses: each destination its own, learned once, not at every heartbeat", async () => {
  const routes = new Map([["10.0.1.1", "10.0.1.9"], ["10.0.2.1", "10.0.2.9"], [
    "fd00::1",
    "fd00::9",
  ]]);
  const { sources, asked } = addressesWith(routes);
  for (let i = 0; i < 3; i++) {
    assert.equal(await sources.toward({ host: "10.0.1.1" }), "10.0.1.9");
    assert.equal(await sources.toward({ host: "10.0.2.1" }), "10.0.2.9");
    assert.equal(await sources.toward({ host: "fd00::1" }), "fd00::9");
  }
  assert.deepEqual(asked, ["10.0.1.1", "10.0.2.1", "fd00::1"]);
  assert.equal(await sources.toward({ host: "ff02::1234", zone: "eth0" }), undefined);
  assert.deepEqual(asked.at(-1), "ff02::1234%eth0");
});

test("source addresses: learned again every RELEARN_MS beside the heartbeats, and after a failed send", async () => {
  const routes = new Map([["10.0.1.1", "10.0.1.9"]]);
  const { sources, asked, advance } = addressesWith(routes);
  assert.equal(await sources.toward({ host: "10.0.1.1" }), "10.0.1.9");
  routes.set("10.0.1.1", "10.0.1.77"); // renumbered
  advance(RELEARN_MS - 1);
  assert.equal(await sources.toward({ host: "10.0.1.1" }), "10.0.1.9");
  advance(1);
  // Learned again beside the heartbeat, which goes at once with the address known so far.
  assert.equal(await sources.toward({ host: "10.0.1.1" }), "10.0.1.9");
  await new Promise((resolve) => setTimeout(resolve, 20));
  assert.equal(await sources.toward({ host: "10.0.1.1" }), "10.0.1.77");
  assert.equal(asked.length, 2);
  routes.set("10.0.1.1", "10.0.1.78");
  sources.forget({ host: "10.0.1.1" });
  assert.equal(await sources.toward({ host: "10.0.1.1" }), "10.0.1.78");
});

test("source addresses: --interface's IPv4 address for IPv4, the route for IPv6", async () => {
  const { sources, asked } = addressesWith(new Map([["fd00::1", "fd00::9"]]), "10.0.0.5");
  assert.equal(await sources.toward({ host: "239.0.0.1" }), "10.0.0.5");
  assert.equal(await sources.toward({ host: "fd00::1" }), "fd00::9");
  assert.deepEqual(asked, ["fd00::1"]);
});

test("source addresses: a destination not sent to for a minute is forgotten as new ones come", async () => {
  const routes = new Map([["10.0.1.1", "10.0.1.9"], ["10.0.2.1", "10.0.2.9"]]);
  const { sources, asked, advance } = addressesWith(routes);
  await sources.toward({ host: "10.0.1.1" });
  advance(6 * RELEARN_MS + 1);
  await sources.toward({ host: "10.0.2.1" });
  routes.set("10.0.1.1", "10.0.1.77");
  // Learned anew and waited for, not the stale address while it is learned again.
  assert.equal(await sources.toward({ host: "10.0.1.1" }), "10.0.1.77");
  assert.deepEqual(asked, ["10.0.1.1", "10.0.2.1", "10.0.1.1"]);
});

test("source addresses: IPv6 text to bytes and back as runtimes print it", () => {
  for (
    const [text, printed] of [
      ["fd00:99:3::1", "fd00:99:3::1"],
      ["::1", "::1"],
      ["2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"],
      ["FE80:0:0:0:0:0:0:1", "fe80::1"],
    ]
  ) {
    assert.equal(ipv6Text(ipv6Bytes(text)), printed);
  }
  assert.deepEqual([...ipv6Bytes("::ffff:10.0.0.1").subarray(10)], [255, 255, 10, 0, 0, 1]);
});
