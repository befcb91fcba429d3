/** One wording per system error on every runtime (src/errors.ts). */
import assert from "node:assert/strict";
import { test } from "node:test";
import { describeError, errorCode, listenFailure } from "../src/errors.ts";

test("errors: Bun's, Deno's and node's wordings of one failure read the same", () => {
  const bun = Object.assign(new Error("ENETUNREACH: network is unreachable, send"), {
    code: "ENETUNREACH",
  });
  const deno = Object.assign(new Error("Network is unreachable (os error 101)"), {
    name: "NetworkUnreachable",
  });
  const denoWithCode = Object.assign(new Error("Network is unreachable (os error 101)"), {
    code: "ENETUNREACH",
  });
  for (const error of [bun, deno, denoWithCode]) {
    assert.equal(describeError(error), "network is unreachable (ENETUNREACH)");
  }
  assert.equal(errorCode(Object.assign(new Error("x"), { code: "UNKNOWN" })), undefined);
  assert.equal(
    describeError(
      Object.assign(new Error("ENOENT: no such file or directory, open '/x'"), { code: "ENOENT" }),
    ),
    "no such file or directory (ENOENT)",
  );
  assert.equal(describeError(Object.assign(new Error("odd"), { code: "EWEIRD" })), "odd (EWEIRD)");
  assert.equal(describeError(new Error("plain")), "plain");
  assert.equal(describeError("text"), "text");
});

test("errors: a listener's failure gets the way out its code has, and only that one", () => {
  const code = (name: string) => Object.assign(new Error(name), { code: name });
  assert.equal(
    listenFailure(code("ENODEV"), { port: 27999, multicast: true, interfaceName: "--interface" }),
    "no such device (ENODEV): no interface routes multicast: add a route (ip route add 224.0.0.0/4 dev eth0) or give --interface ADDRESS",
  );
  // The caller names the interface setting as the operator gave it.
  assert.match(
    listenFailure(code("ENODEV"), {
      port: 27999,
      multicast: true,
      interfaceName: "HEARTBEAT_INTERFACE",
    }),
    /or give HEARTBEAT_INTERFACE ADDRESS$/,
  );
  // Every adapter says ENODEV for a group without a route (transport/node.ts maps Deno's
  // node:dgram's EINVAL): an EINVAL is some other mistake, which the route would not mend.
  assert.equal(
    listenFailure(code("EINVAL"), { port: 27999, multicast: true, interfaceName: "--interface" }),
    "invalid argument (EINVAL)",
  );
  assert.equal(
    listenFailure(code("EACCES"), { port: 80, multicast: false }),
    "permission denied (EACCES): ports below 1024 need root or CAP_NET_BIND_SERVICE",
  );
  assert.equal(
    listenFailure(code("EADDRINUSE"), { port: 8080, multicast: false }),
    "the address is in use (EADDRINUSE): another process listens there (ss -lnp shows which)",
  );
});
