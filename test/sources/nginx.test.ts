/** src/sources/nginx.ts */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { nginxLoad, parseStubStatus } from "../../src/sources/nginx.ts";

const fixture = (name: string) =>
  readFileSync(new URL(`../fixtures/${name}`, import.meta.url), "utf8");

test("nginx: stub_status from a real nginx, without our own scrape", () => {
  assert.deepEqual(parseStubStatus(fixture("nginx-busy.txt")), {
    active: 8,
    reading: 7,
    writing: 1,
    waiting: 0,
  });
  assert.deepEqual(nginxLoad(parseStubStatus(fixture("nginx-idle.txt")), 100), {
    ready: 100,
    busy: 0,
  });
  assert.deepEqual(nginxLoad(parseStubStatus(fixture("nginx-busy.txt")), 100), {
    ready: 93,
    busy: 7,
  });
  // Past capacity, ready is 0, never negative.
  assert.deepEqual(nginxLoad(parseStubStatus(fixture("nginx-busy.txt")), 4), { ready: 0, busy: 7 });
  const waiting =
    "Active connections: 10\nserver accepts handled requests\n 1 1 1\nReading: 1 Writing: 3 Waiting: 6\n";
  assert.deepEqual(nginxLoad(parseStubStatus(waiting), 20), { ready: 11, busy: 3 });
});

test("nginx: text that is not stub_status is rejected", () => {
  for (
    const text of [
      "",
      "<html>404</html>",
      "Active connections: x\nserver accepts handled requests\n 1 1 1\nReading: 0 Writing: 1 Waiting: 0",
      "Active connections: 1\nserver accepts handled requests\n 1 1 1\nReading: 0 Writing: 1",
      "Active connections: -1\nserver accepts handled requests\n 1 1 1\nReading: 0 Writing: 1 Waiting: 0",
    ]
  ) {
    assert.throws(
      () => parseStubStatus(text),
      /not an nginx stub_status page/,
      JSON.stringify(text),
    );
  }
  assert.throws(
    () =>
      parseStubStatus(
        "Active connections: 1\nserver accepts handled requests\n 1 1 1\nReading: 5 Writing: 1 Waiting: 0",
      ),
    /do not add up/,
  );
});
