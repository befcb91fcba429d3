/** HOST:PORT as mod_heartbeat reads it (src/address.ts). */
import assert from "node:assert/strict";
import { test } from "node:test";
import { parseAddress } from "../src/address.ts";

test("address: HOST:PORT read as mod_heartbeat's HeartbeatAddress", () => {
  const cases: [string, string | { host: string; port: number; zone?: string }][] = [
    ["239.0.0.1:27999", { host: "239.0.0.1", port: 27999 }],
    ["10.0.0.5:1", { host: "10.0.0.5", port: 1 }],
    ["proxy.example.com:27999", { host: "proxy.example.com", port: 27999 }],
    ["localhost:65535", { host: "localhost", port: 65535 }],
    ["239.0.0.1", "No port provided in address"],
    ["239.0.0.1:", "No port provided in address"],
    ["proxy:abc", "No port provided in address"],
    ["27999", "No host provided in address"],
    ["", "Unable to parse address."],
    [":27999", "Unable to parse address."],
    ["239.0.0.1:0", "Unable to parse address: port 0 is not from 1 to 65535"],
    ["239.0.0.1:65536", "Unable to parse address: port 65536 is not from 1 to 65535"],
    ["99999", "Unable to parse address: port 99999 is not from 1 to 65535"],
    ["bad host:80", "Unable to parse address."],
    ["a..b:80", "Unable to parse address."],
    ["[ff02::1234%eth0]:27999", { host: "ff02::1234", port: 27999, zone: "eth0" }],
    ["[fd00:99::2]:1", { host: "fd00:99::2", port: 1 }],
    ["[::ffff:10.0.0.1]:80", { host: "::ffff:10.0.0.1", port: 80 }],
    [
      "ff02::1:27999",
      "Unable to parse address. Put an IPv6 address in brackets: [ff02::1234%eth0]:27999",
    ],
    ["[ff02::1]", "No port provided in address"],
    ["[nonsense]:80", "Unable to parse address."],
    ["[ff02::1%bad zone]:80", "Unable to parse address."],
    ["[ff02::1]:0", "Unable to parse address: port 0 is not from 1 to 65535"],
  ];
  for (const [text, expected] of cases) {
    const parsed = parseAddress(text);
    if (typeof expected === "string") {
      assert.deepEqual(parsed, { ok: false, error: expected }, text);
    } else {
      assert.deepEqual(parsed, { ok: true, ...expected }, text);
    }
  }
});
