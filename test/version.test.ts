import assert from "node:assert/strict";
import { test } from "node:test";
import { VERSION, versionLine } from "../src/version.ts";

test("version: a build names version, commit, date, runtime and target", () => {
  assert.equal(
    versionLine({ commit: "abc1234-dirty", date: "2026-11-24", target: "linux-x64" }, "bun 1.4.5"),
    `heartbeat ${VERSION} (abc1234-dirty, 2026-11-24, bun 1.4.5, linux-x64)`,
  );
});

test("version: from source it says so, and names the runtime and this platform", () => {
  assert.equal(
    versionLine({}, "deno 2.9.5"),
    `heartbeat ${VERSION} (from source, deno 2.9.5, ${process.platform}-${process.arch})`,
  );
  assert.match(VERSION, /^\d+\.\d+\.\d+$/);
});
