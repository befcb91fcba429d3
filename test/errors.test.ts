/** One wording per system error on every runtime (src/errors.ts). */
import assert from "node:assert/strict";
import { test } from "node:test";
import { describeError, errorCode } from "../src/errors.ts";

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
