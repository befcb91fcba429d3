/** src/sources/apache.ts */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { parseApacheStatus, withoutOwnScrape } from "../../src/sources/apache.ts";

const fixture = (name: string) =>
  readFileSync(new URL(`../fixtures/${name}`, import.meta.url), "utf8");

test("apache: scoreboards from real prefork, worker and event servers, by mod_heartbeat's rules", () => {
  // Apache's own BusyWorkers and IdleWorkers on the same pages agree with these counts.
  const expected: Record<string, [number, number]> = {
    "apache-prefork-idle.txt": [4, 1],
    "apache-prefork-busy.txt": [0, 13], // SSSS starting slots are neither ready nor busy
    "apache-worker-idle.txt": [19, 1],
    "apache-worker-busy.txt": [17, 13],
    "apache-event-idle.txt": [19, 1],
    "apache-event-busy.txt": [17, 13],
  };
  for (const [name, [ready, busy]] of Object.entries(expected)) {
    const text = fixture(name);
    assert.deepEqual(parseApacheStatus(text), { ready, busy }, name);
    assert.equal(
      Number(/^BusyWorkers: (\d+)$/m.exec(text)?.[1]),
      busy,
      `${name}: Apache's own count`,
    );
  }
});

test("apache: every slot state is counted as mod_heartbeat counts it", () => {
  assert.deepEqual(parseApacheStatus("Scoreboard: _SRWKDCLGI.\n"), { ready: 1, busy: 7 });
  assert.deepEqual(parseApacheStatus("Total Accesses: 1\nScoreboard: \n"), { ready: 0, busy: 0 });
});

test("apache: our own scrape's worker counts as ready, as mod_heartbeat would see it", () => {
  assert.deepEqual(withoutOwnScrape(parseApacheStatus(fixture("apache-event-idle.txt"))), {
    ready: 20,
    busy: 0,
  });
  assert.deepEqual(withoutOwnScrape(parseApacheStatus(fixture("apache-prefork-busy.txt"))), {
    ready: 1,
    busy: 12,
  });
  assert.deepEqual(withoutOwnScrape({ ready: 3, busy: 0 }), { ready: 3, busy: 0 });
});

test("apache: pages that are not mod_status ?auto are rejected", () => {
  const bad: [string, RegExp][] = [
    ["", /no Scoreboard: line/],
    ["<html><body>It works!</body></html>", /no Scoreboard: line/],
    ["Total Accesses: 5\nBusyWorkers: 1\n", /no Scoreboard: line/],
    ["Scoreboard: __W_x_\n", /characters mod_status does not use/],
    ["Scoreboard: __W_ _\n", /characters mod_status does not use/],
    ["\x00\xff\x12binary", /no Scoreboard: line/],
  ];
  for (const [text, message] of bad) {
    assert.throws(() => parseApacheStatus(text), message, JSON.stringify(text));
  }
});
