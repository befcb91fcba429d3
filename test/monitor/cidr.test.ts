/** --allow ranges (src/monitor/cidr.ts). */
import assert from "node:assert/strict";
import { test } from "node:test";
import { inCidr, parseCidr } from "../../src/monitor/cidr.ts";

test("monitor cidr: ranges and single addresses", () => {
  const lan = parseCidr("10.99.0.0/16");
  assert.ok(inCidr("10.99.5.1", lan));
  assert.ok(!inCidr("10.98.5.1", lan));
  assert.ok(inCidr("192.168.1.7", parseCidr("192.168.1.7")));
  assert.ok(!inCidr("192.168.1.8", parseCidr("192.168.1.7/32")));
  assert.ok(inCidr("8.8.8.8", parseCidr("0.0.0.0/0")));
  assert.ok(!inCidr("::1", lan));
  for (
    const bad of [
      "10.0.0.0/33",
      "10.0.0/8",
      "eth0",
      "10.0.0.0/x",
      "",
      "10.0.0.0/8/8",
      "10.0.0.1//8",
    ]
  ) {
    assert.throws(() => parseCidr(bad), /give an IPv4 address or range/, bad);
  }
});
